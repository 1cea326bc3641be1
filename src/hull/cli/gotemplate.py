"""The part of Go's text/template that ``--format`` users write for docker and podman.

Supported: text and ``{{ }}`` actions with the trim markers ``{{- `` and `` -}}``, comments
``{{/* */}}``; fields ``.A.B`` (on dicts), ``.``, variables ``$``, ``$x := ...``, ``$x = ...``,
``range $i, $v := ...``; pipelines ``{{.X | json}}``; parenthesised pipelines with fields after
them; ``if``/``else if``/``else``/``end``, ``range`` (with ``else``, ``break``, ``continue``),
``with`` (with ``else``); string (``"..."`` with Go escapes, raw `````), number, ``true``,
``false`` and ``nil`` constants. Functions: docker's (``json``, ``join``, ``split``, ``lower``,
``upper``, ``title``, ``pad``, ``truncate``) and Go's builtins ``index``, ``len``, ``printf``,
``print``, ``println``, ``and``, ``or``, ``not``, ``eq``, ``ne``, ``lt``, ``le``, ``gt``, ``ge``,
``slice``. Not supported: ``define``/``template``/``block``, methods, ``call``, ``html``,
``js``, ``urlquery``.

Values are plain Python data as JSON gives it. They print as Go's fmt prints ``any``: booleans
``true``/``false``, None ``<nil>``, lists ``[a b]``, dicts as Go maps ``map[k:v]`` (keys sorted),
and a key missing from a dict as ``<no value>``. ``json`` is docker's: compact, no HTML escaping,
keys in the dict's order (pass maps sorted to get Go's order for maps).

``render(format, items, headers)`` is docker/cli's formatter: a leading ``table`` prints a header
row (the template run over ``headers``, docker's header functions echoing their argument) and
aligns the cells through a tabwriter(minwidth 10, tabwidth 1, padding 3); "\\t" and "\\n" typed
literally in the format become a tab and a newline; ``json`` alone means ``{{json .}}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing (and the re it imports) stays out of a plain --format run
    from typing import Any

    _Node = tuple[Any, ...]


class TemplateError(Exception):
    """A template that cannot be parsed or executed; the message names the line and column."""


class _NoValue:
    """A key missing from a map: Go's invalid reflect.Value, printed as "<no value>"."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE: Any = _NoValue()


# ---------------------------------------------------------------- Go's fmt


def go_float(f: float, json: bool = False) -> str:
    """Go's ``%v`` of a float64, or with ``json`` encoding/json's number.

    Both use the shortest digits that read back the same (as Python's repr); ``%v`` is strconv's
    shortest ``'g'``, with an exponent (at least two digits) when the decimal exponent is below -4
    or from 6 on (1e+06); JSON only below 1e-6 or from 1e21, with the exponent as short as possible.
    """
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    sign = "-" if str(f).startswith("-") else ""
    if f == 0:
        return sign + "0" if not json else "0"
    mantissa, _, exp_text = repr(abs(f)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    point = len(whole) + int(exp_text or 0)  # the decimal point comes after `point` digits
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    exp = point - 1
    use_e = (abs(f) < 1e-6 or abs(f) >= 1e21) if json else (exp < -4 or exp >= 6)
    if use_e:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        e = str(abs(exp)) if json else f"{abs(exp):02d}"
        return f"{sign}{body}e{'-' if exp < 0 else '+'}{e}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def go_print(value: Any) -> str:
    """Go's ``fmt.Sprint`` of a value that came from JSON-like data (``%v``)."""
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{go_print(k)}:{go_print(value[k])}" for k in _sorted_keys(value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    return str(value)


def _sorted_keys(m: Mapping[Any, Any]) -> list[Any]:
    try:
        return sorted(m)
    except TypeError:
        return sorted(m, key=str)


def _json(value: Any) -> str:
    import json

    def fix(v: Any) -> Any:
        if v is NO_VALUE:
            return None
        if isinstance(v, Mapping):
            return {str(k): fix(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [fix(x) for x in v]
        return v

    text = json.dumps(fix(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    if any(isinstance(v, float) for v in _walk(value)):
        text = _json_floats(fix(value))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _walk(v: Any) -> Iterable[Any]:
    yield v
    if isinstance(v, Mapping):
        for x in v.values():
            yield from _walk(x)
    elif isinstance(v, list | tuple):
        for x in v:
            yield from _walk(x)


def _json_floats(v: Any) -> str:
    import json

    # Go writes 1.0 as 1 and switches to an exponent only below 1e-6 or from 1e21.
    if isinstance(v, bool) or v is None or isinstance(v, int | str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise TemplateError(f"json: unsupported value: {go_float(v)}")
        return go_float(v, json=True)
    if isinstance(v, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{_json_floats(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list | tuple):
        return "[" + ",".join(_json_floats(x) for x in v) + "]"
    return json.dumps(str(v), ensure_ascii=False)


def _go_quote(s: str) -> str:
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif c < 0x20 or c == 0x7F:
            out.append(f"\\x{c:02x}")
        elif not ch.isprintable() and c > 0x7F:
            out.append(f"\\u{c:04x}" if c <= 0xFFFF else f"\\U{c:08x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def _go_type(v: Any) -> str:
    if v is None or v is NO_VALUE:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Mapping):
        return "map[string]interface {}"
    if isinstance(v, list | tuple):
        return "[]interface {}"
    return type(v).__name__


def sprintf(fmt: str, args: list[Any]) -> str:
    """Go's ``fmt.Sprintf`` for the verbs format strings use: v s d q t x X o b f F e E g G c %."""
    out: list[str] = []
    i = 0
    argi = 0
    n = len(fmt)
    while i < n:
        pct = fmt.find("%", i)
        if pct < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:pct])
        i = pct + 1
        flags = ""
        while i < n and fmt[i] in "-+# 0":
            flags += fmt[i]
            i += 1
        width = ""
        while i < n and fmt[i].isdigit():
            width += fmt[i]
            i += 1
        prec: str | None = None
        if i < n and fmt[i] == ".":
            i += 1
            prec = ""
            while i < n and fmt[i].isdigit():
                prec += fmt[i]
                i += 1
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        out.append(_pad(_verb(verb, flags, prec, arg), flags, width))
    if argi < len(args):
        extra = ", ".join(f"{_go_type(a)}={go_print(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _pad(text: str, flags: str, width: str) -> str:
    if not width or len(text) >= int(width):
        return text
    w = int(width)
    if "-" in flags:
        return text.ljust(w)
    if "0" in flags and text[:1] in "+-" and text[1:].replace(".", "").isdigit():
        return text[0] + text[1:].rjust(w - 1, "0")
    return text.rjust(w, "0" if "0" in flags else " ")


def _verb(verb: str, flags: str, prec: str | None, arg: Any) -> str:
    is_int = isinstance(arg, int) and not isinstance(arg, bool)
    if verb == "v" or (verb == "s" and not isinstance(arg, int | float)):
        text = go_print(arg)
        return text[: int(prec or 0)] if prec is not None and verb == "s" else text
    if verb == "d" and is_int:
        return ("+" if "+" in flags and arg >= 0 else "") + str(arg)
    if verb == "q" and isinstance(arg, str):
        return _go_quote(arg)
    if verb == "t" and isinstance(arg, bool):
        return "true" if arg else "false"
    if verb in "xX" and (is_int or isinstance(arg, str)):
        text = format(arg, "x") if is_int else arg.encode().hex()
        text = ("0x" + text if "#" in flags else text) if is_int else text
        return text.upper() if verb == "X" else text
    if verb == "o" and is_int:
        return format(arg, "o")
    if verb == "b" and is_int:
        return format(arg, "b")
    if verb == "c" and is_int:
        return chr(arg)
    if verb in "fFeEgG" and isinstance(arg, int | float) and not isinstance(arg, bool):
        p = 6 if prec is None else int(prec or 0)
        if verb in "gG" and prec is None:
            text = go_float(float(arg))
            return text.upper() if verb == "G" else text
        return format(float(arg), f"{'+' if '+' in flags else ''}.{p}{verb}")
    return f"%!{verb}({_go_type(arg)}={go_print(arg)})"


# ---------------------------------------------------------------- parsing

# Nodes: ("text", s) | ("action", pipe, pos) | (if|with|range, pipe, body, else_body, pos) | (break|continue, pos)
# pipe: ("pipe", declared variable names, is "=" assignment, commands); a command is a list of operands:
# ("field", chain, pos) | ("dot", None, pos) | ("var", (name, chain), pos) | ("const", v, pos) |
# ("nil", None, pos) | ("ident", name, pos) | ("sub", pipe, chain, pos).

_SPACE = " \t\r\n"


class _Lexer:
    """The tokens of one action's text ``src[start:end]``."""

    def __init__(self, src: str, start: int, end: int, where: Callable[[int], str]) -> None:
        self.src = src
        self.i = start
        self.end = end
        self.where = where
        self.toks: list[tuple[str, Any, int]] = []
        self._scan()
        self.k = 0

    def error(self, msg: str, pos: int | None = None) -> TemplateError:
        return TemplateError(f"template: {self.where(self.i if pos is None else pos)}: {msg}")

    def _scan(self) -> None:
        s, end = self.src, self.end
        while self.i < end:
            c = s[self.i]
            start = self.i
            if c in _SPACE:
                self.i += 1
            elif c in "\"'":
                j = self.i + 1
                while j < end and s[j] != c and s[j] != "\n":
                    j += 2 if s[j] == "\\" else 1
                if j >= end or s[j] != c:
                    raise self.error("unterminated quoted string", start)
                text = _unquote(s[self.i + 1 : j], self.error)
                if c == "'" and len(text) != 1:
                    raise self.error(f"malformed character constant: {s[start : j + 1]}", start)
                self.toks.append(("const", text if c == '"' else ord(text), start))
                self.i = j + 1
            elif c == "`":
                j = s.find("`", self.i + 1, end)
                if j < 0:
                    raise self.error("unterminated raw quoted string", start)
                self.toks.append(("const", s[self.i + 1 : j], start))
                self.i = j + 1
            elif c in "|(,=":
                self.toks.append((c, None, start))
                self.i += 1
            elif c == ")":
                self.i += 1
                self.toks.append((")", self._chain(), start))
            elif s.startswith(":=", self.i):
                self.toks.append((":=", None, start))
                self.i += 2
            elif c == "." and not (self.i + 1 < end and s[self.i + 1].isdigit()):
                chain = self._chain()
                if not chain:
                    self.i += 1
                    self.toks.append(("dot", None, start))
                else:
                    self.toks.append(("field", chain, start))
            elif c == "$":
                j = self.i + 1
                while j < end and (s[j].isalnum() or s[j] == "_"):
                    j += 1
                name = s[self.i : j]
                self.i = j
                self.toks.append(("var", (name, self._chain()), start))
            elif (
                c.isdigit()
                or c == "."
                or (c in "+-" and self.i + 1 < end and (s[self.i + 1].isdigit() or s[self.i + 1] == "."))
            ):
                self._number()
            elif c.isalpha() or c == "_":
                j = self.i
                while j < end and (s[j].isalnum() or s[j] == "_"):
                    j += 1
                word = s[self.i : j]
                self.i = j
                if word in ("true", "false"):
                    self.toks.append(("const", word == "true", start))
                elif word == "nil":
                    self.toks.append(("nil", None, start))
                else:
                    self.toks.append(("ident", word, start))
            else:
                raise self.error(f"unexpected {c!r} in command", start)

    def _chain(self) -> list[str]:
        """The ``.A.B`` at the cursor (possibly none), consumed."""
        s, end = self.src, self.end
        chain: list[str] = []
        while self.i + 1 < end and s[self.i] == "." and (s[self.i + 1].isalnum() or s[self.i + 1] == "_"):
            j = self.i + 1
            while j < end and (s[j].isalnum() or s[j] == "_"):
                j += 1
            chain.append(s[self.i + 1 : j])
            self.i = j
        return chain

    def _number(self) -> None:
        s, end, start = self.src, self.end, self.i
        j = self.i + 1
        while j < end and (s[j].isalnum() or s[j] in "._" or (s[j] in "+-" and s[j - 1] in "eEpP")):
            j += 1
        text = s[start:j].replace("_", "")
        self.i = j
        value: int | float
        try:
            value = int(text, 0)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise self.error(f"bad number syntax: {text!r}", start) from None
        self.toks.append(("const", value, start))

    def peek(self, offset: int = 0) -> tuple[str, Any, int] | None:
        k = self.k + offset
        return self.toks[k] if k < len(self.toks) else None

    def take(self) -> tuple[str, Any, int]:
        tok = self.toks[self.k]
        self.k += 1
        return tok


_SIMPLE_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
}


def _unquote(body: str, error: Callable[..., TemplateError]) -> str:
    """The value of a Go string literal's body (escapes as strconv.Unquote)."""
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1 : i + 2]
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
            continue
        size = {"x": 2, "u": 4, "U": 8}.get(e, 3 if e in "01234567" and e else 0)
        digits = body[i + 2 : i + 2 + size] if e in "xuU" else body[i + 1 : i + 1 + size]
        try:
            if not size or len(digits) != size:
                raise ValueError
            out.append(chr(int(digits, 8 if e.isdigit() else 16)))
        except ValueError:
            raise error(f'invalid syntax in "{body}"') from None
        i += (2 if e in "xuU" else 1) + size
    return "".join(out)


class _Action:
    """One ``{{...}}``: the text before it, its content's bounds, and where the template goes on."""

    __slots__ = ("after", "end", "open", "start", "text")

    def __init__(self, text: str, open_at: int, start: int, end: int, after: int) -> None:
        self.text = text
        self.open = open_at
        self.start = start
        self.end = end
        self.after = after


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.pos = 0

    def where(self, offset: int) -> str:
        line = self.src.count("\n", 0, offset) + 1
        col = offset - (self.src.rfind("\n", 0, offset) + 1)
        return f":{line}:{col}"

    def error(self, offset: int, msg: str) -> TemplateError:
        return TemplateError(f"template: {self.where(offset)}: {msg}")

    def parse(self) -> list[_Node]:
        body, stop = self._list(("EOF",))
        return body

    def _next_action(self) -> _Action | None:
        """The next action from ``pos``, with Go's trim markers applied to the text around it."""
        src = self.src
        open_at = src.find("{{", self.pos)
        if open_at < 0:
            return None
        text = src[self.pos : open_at]
        start = open_at + 2
        if src[start : start + 1] == "-" and src[start + 1 : start + 2] in tuple(_SPACE):
            text = text.rstrip(_SPACE)
            start += 2
        i = start
        if src.startswith("/*", i):
            close = src.find("*/", i + 2)
            if close < 0:
                raise self.error(open_at, "unclosed comment")
            i = close + 2
            end = start  # an empty action: the comment prints nothing
            trim = src[i : i + 2] in tuple(c + "-" for c in _SPACE)
            close_at = i + 2 if trim else i
            if not src.startswith("}}", close_at):
                raise self.error(open_at, "comment ends before closing delimiter")
        else:
            while True:  # find the closing delimiter outside quotes
                close_at = src.find("}}", i)
                if close_at < 0:
                    raise self.error(open_at, "unclosed action")
                quotes = [q for q in (src.find(c, i, close_at) for c in "\"`'") if q >= 0]
                if not quotes:
                    break
                q = min(quotes)
                j = q + 1
                while j < len(src) and src[j] != src[q] and (src[q] == "`" or src[j] != "\n"):
                    j += 2 if src[j] == "\\" and src[q] != "`" else 1
                if j >= len(src) or src[j] != src[q]:
                    raise self.error(q, "unterminated quoted string")
                i = j + 1
            trim = close_at >= 2 and src[close_at - 1] == "-" and src[close_at - 2] in _SPACE
            end = close_at - 1 if trim else close_at
        after = close_at + 2
        if trim:
            after += len(src[after:]) - len(src[after:].lstrip(_SPACE))
        return _Action(text, open_at, start, end, after)

    def _list(self, stops: tuple[str, ...]) -> tuple[list[_Node], tuple[str, _Lexer | None, int]]:
        """Nodes up to one of ``stops`` ("end", "else", "EOF"): the nodes and (stop word, its lexer, position)."""
        nodes: list[_Node] = []
        while True:
            act = self._next_action()
            if act is None:
                if self.pos < len(self.src):
                    nodes.append(("text", self.src[self.pos :]))
                self.pos = len(self.src)
                if "EOF" not in stops:
                    raise self.error(len(self.src), "unexpected EOF")
                return nodes, ("EOF", None, len(self.src))
            if act.text:
                nodes.append(("text", act.text))
            self.pos = act.after
            if act.start == act.end and self.src.startswith("/*", act.start):
                continue
            lex = _Lexer(self.src, act.start, act.end, self.where)
            first = lex.peek()
            if first is None:
                raise self.error(act.start, "missing value for command")
            word = first[1] if first[0] == "ident" else None
            if word in ("end", "else"):
                if word not in stops:
                    raise self.error(act.start, f"unexpected {{{{{word}}}}}")
                lex.take()
                if word == "end" and lex.peek() is not None:
                    raise self.error(act.start, "unexpected tokens in {{end}}")
                return nodes, (word, lex, act.start)
            if word in ("if", "with", "range"):
                lex.take()
                nodes.append(self._control(word, lex, act.start))
            elif word in ("break", "continue"):
                nodes.append((word, act.start))
            elif word in ("define", "template", "block"):
                raise self.error(act.start, f"{{{{{word}}}}} is not supported")
            else:
                nodes.append(("action", self._pipeline(lex, decl_ok=True), act.start))

    def _control(self, word: str, lex: _Lexer, pos: int) -> _Node:
        pipe = self._pipeline(lex, decl_ok=True, range_decl=word == "range")
        body, (stop, stop_lex, stop_pos) = self._list(("end", "else"))
        other: list[_Node] = []
        if stop == "else" and stop_lex is not None and stop_lex.peek() is not None:
            # {{else if ...}} / {{else with ...}}: a nested control that shares our {{end}}.
            kw = stop_lex.take()
            if kw[0] != "ident" or kw[1] not in ("if", "with") or word == "range":
                raise self.error(stop_pos, "expected end; found else")
            other = [self._control(kw[1], stop_lex, stop_pos)]
        elif stop == "else":
            other, _ = self._list(("end",))
        return (word, pipe, body, other, pos)

    def _pipeline(self, lex: _Lexer, decl_ok: bool, range_decl: bool = False) -> _Node:
        decl: list[str] = []
        assign = False
        tok, nxt = lex.peek(), lex.peek(1)
        if decl_ok and tok is not None and tok[0] == "var" and not tok[1][1] and nxt is not None:
            if nxt[0] in (":=", "="):
                decl, assign = [tok[1][0]], nxt[0] == "="
                lex.k += 2
            elif range_decl and nxt[0] == ",":
                third, fourth = lex.peek(2), lex.peek(3)
                if third is not None and third[0] == "var" and fourth is not None and fourth[0] in (":=", "="):
                    decl, assign = [tok[1][0], third[1][0]], fourth[0] == "="
                    lex.k += 4
        cmds: list[list[_Node]] = []
        while True:
            cmds.append(self._command(lex))
            tok = lex.peek()
            if tok is None or tok[0] == ")":
                break
            lex.take()  # "|": _command stops only there or at ")"
        return ("pipe", decl, assign, cmds)

    def _command(self, lex: _Lexer) -> list[_Node]:
        args: list[_Node] = []
        while True:
            tok = lex.peek()
            if tok is None or tok[0] in ("|", ")"):
                break
            kind, value, pos = lex.take()
            if kind == "(":
                inner = self._pipeline(lex, decl_ok=False)
                close = lex.peek()
                if close is None or close[0] != ")":
                    raise lex.error("unclosed left paren", pos)
                lex.take()
                args.append(("sub", inner, close[1], pos))
            elif kind in ("field", "dot", "var", "const", "nil", "ident"):
                args.append((kind, value, pos))
            else:
                raise lex.error(f"unexpected {kind!r} in operand", pos)
        if not args:
            raise lex.error("missing value for command")
        return args


# ---------------------------------------------------------------- execution


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def _truth(v: Any) -> bool:
    if v is NO_VALUE or v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float | str | list | tuple | Mapping):
        return bool(v)
    return True


def _string_arg(name: str, v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is NO_VALUE or v is None:
        raise ValueError("invalid value; expected string")
    raise ValueError(f"wrong type for value; expected string; got {_go_type(v)}")


def _int_arg(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise ValueError(f"wrong type for value; expected int; got {_go_type(v)}")


def _join(elems: Any, separator: Any) -> str:
    sep = _string_arg("join", separator)
    if elems is None or elems is NO_VALUE:
        return ""
    if isinstance(elems, list | tuple):
        return sep.join(go_print(e) for e in elems)
    if isinstance(elems, Mapping):
        return sep.join(sorted(go_print(v) for v in elems.values()))
    raise ValueError(f"expected slice, got {_go_type(elems)}")


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if item is None or item is NO_VALUE:
            raise ValueError("index of untyped nil")
        if isinstance(item, Mapping):
            item = item.get(key, "")  # docker's maps hold strings: a missing key is ""
        elif isinstance(item, list | tuple | str):
            if not isinstance(key, int) or isinstance(key, bool):
                raise ValueError(f"cannot index slice/array with type {_go_type(key)}")
            if not 0 <= key < len(item):
                raise ValueError(f"index out of range: {key}")
            item = item[key] if not isinstance(item, str) else item.encode()[key]
        else:
            raise ValueError(f"can't index item of type {_go_type(item)}")
    return item


def _len(item: Any) -> int:
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, list | tuple | Mapping):
        return len(item)
    raise ValueError(f"len of type {_go_type(item)}")


def _slice(item: Any, *idx: Any) -> Any:
    if not isinstance(item, list | tuple | str):
        raise ValueError(f"can't slice item of type {_go_type(item)}")
    bounds = [_int_arg(i) for i in idx]
    if len(bounds) > 2:
        raise ValueError("too many slice indexes")
    lo = bounds[0] if bounds else 0
    hi = bounds[1] if len(bounds) > 1 else len(item)
    if not 0 <= lo <= hi <= len(item):
        raise ValueError(f"index out of range: {hi if hi > len(item) else lo}")
    return item[lo:hi]


def _eq(a: Any, *rest: Any) -> bool:
    if not rest:
        raise ValueError("missing argument for comparison")
    return any(_cmp_key(a) == _cmp_key(b) for b in rest)


def _cmp_key(v: Any) -> Any:
    if isinstance(v, list | tuple | Mapping):
        raise ValueError("incompatible types for comparison")
    return v


def _order(op: str) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        numeric = (int, float)
        if (
            isinstance(a, bool)
            or isinstance(b, bool)
            or not ((isinstance(a, numeric) and isinstance(b, numeric)) or (isinstance(a, str) and isinstance(b, str)))
        ):
            raise ValueError("incompatible types for comparison")
        x: Any = a
        return bool({"lt": x < b, "le": x <= b, "gt": x > b, "ge": x >= b}[op])

    return compare


def _sprint(*args: Any) -> str:
    # Go's Sprint puts a space between operands when neither side is a string.
    out: list[str] = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_print(a))
    return "".join(out)


def _title(s: Any) -> str:
    """strings.Title: upper-case letters that follow a separator (space, or ASCII other than alnum and _)."""
    out: list[str] = []
    prev = " "
    for ch in _string_arg("title", s):
        sep = prev.isspace() or (prev.isascii() and not prev.isalnum() and prev != "_")
        out.append(ch.upper() if sep else ch)
        prev = ch
    return "".join(out)


def _split(s: Any, sep: Any) -> list[str]:
    text, by = _string_arg("split", s), _string_arg("split", sep)
    return text.split(by) if by else list(text)


def _pad_fn(source: Any, prefix: Any, suffix: Any) -> str:
    text = _string_arg("pad", source)
    return text and " " * _int_arg(prefix) + text + " " * _int_arg(suffix)


def _truncate(source: Any, length: Any) -> str:
    text = _string_arg("truncate", source)
    n = _int_arg(length)
    raw = text.encode()
    # docker slices bytes; a cut through a character leaves invalid UTF-8, shown as U+FFFD.
    return text if len(raw) < n else raw[:n].decode(errors="replace")


_FUNCS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "join": _join,
    "split": _split,
    "lower": lambda s: _string_arg("lower", s).lower(),
    "upper": lambda s: _string_arg("upper", s).upper(),
    "title": _title,
    "pad": _pad_fn,
    "truncate": _truncate,
    "index": _index,
    "len": _len,
    "slice": _slice,
    "printf": lambda fmt, *a: sprintf(_string_arg("printf", fmt), list(a)),
    "print": _sprint,
    "println": lambda *a: " ".join(go_print(x) for x in a) + "\n",
    "not": lambda v: not _truth(v),
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _order("lt"),
    "le": _order("le"),
    "gt": _order("gt"),
    "ge": _order("ge"),
}

# docker/cli's HeaderFunctions: in the header row these echo their first argument.
_HEADER_FUNCS = ("json", "split", "join", "title", "lower", "upper", "truncate", "index")


class _Exec:
    def __init__(self, root: Any, src: str, where: Callable[[int], str], header: bool) -> None:
        self.src = src
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.where = where
        self.header = header
        self.out: list[str] = []

    def error(self, pos: int, msg: str) -> TemplateError:
        return TemplateError(f'template: {self.where(pos)}: executing "" at <{self._at(pos)}>: {msg}')

    def _at(self, pos: int) -> str:
        """The operand at ``pos`` as written, as Go names it in execution errors."""
        src = self.src
        end = pos
        depth = 0
        while end < len(src) and not src.startswith("}}", end):
            c = src[end]
            if c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    break
                depth -= 1
            elif c in " |\t\n" and depth == 0:
                break
            end += 1
        return src[pos:end]

    def run(self, nodes: list[_Node], dot: Any) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                self.out.append(node[1])
            elif kind == "action":
                value = self.pipe(node[1], dot, node[2])
                if not node[1][1]:  # a declaration prints nothing
                    self.out.append(go_print(value))
            elif kind in ("if", "with"):
                _, pipe, body, other, pos = node
                mark = len(self.vars)
                value = self.pipe(pipe, dot, pos)
                if _truth(value):
                    self.run(body, value if kind == "with" else dot)
                else:
                    self.run(other, dot)
                del self.vars[mark:]
            elif kind == "range":
                self.range(node, dot)
            elif kind == "break":
                raise _Break
            elif kind == "continue":
                raise _Continue

    def range(self, node: _Node, dot: Any) -> None:
        _, pipe, body, other, pos = node
        decl = pipe[1]
        mark = len(self.vars)
        value = self.pipe(("pipe", [], False, pipe[3]), dot, pos)
        pairs: list[tuple[Any, Any]]
        if value is None or value is NO_VALUE:
            pairs = []
        elif isinstance(value, Mapping):
            pairs = [(k, value[k]) for k in _sorted_keys(value)]
        elif isinstance(value, list | tuple):
            pairs = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = [(i, i) for i in range(value)]
        elif self.header:
            pairs = [(0, value)]
        else:
            raise self.error(pos, f"range can't iterate over {go_print(value)}")
        if not pairs:
            self.run(other, dot)
            return
        for key, elem in pairs:
            del self.vars[mark:]
            if len(decl) == 1:
                self._set(decl[0], elem, pipe[2], pos)
            elif len(decl) == 2:
                self._set(decl[0], key, pipe[2], pos)
                self._set(decl[1], elem, pipe[2], pos)
            try:
                self.run(body, elem)
            except _Break:
                break
            except _Continue:
                continue
        del self.vars[mark:]

    def _set(self, name: str, value: Any, assign: bool, pos: int) -> None:
        if assign:
            for i in range(len(self.vars) - 1, -1, -1):
                if self.vars[i][0] == name:
                    self.vars[i] = (name, value)
                    return
            raise self.error(pos, f"undefined variable: {name}")
        self.vars.append((name, value))

    def pipe(self, pipe: _Node, dot: Any, pos: int) -> Any:
        _, decl, assign, cmds = pipe
        value: Any = NO_VALUE
        for i, cmd in enumerate(cmds):
            value = self.command(cmd, dot, value if i else None, i > 0)
        for name in decl:
            self._set(name, value, assign, pos)
        return value

    def command(self, cmd: list[_Node], dot: Any, piped: Any, has_piped: bool) -> Any:
        first = cmd[0]
        if first[0] == "ident":
            name, pos = first[1], first[2]
            args = [self.arg(a, dot) for a in cmd[1:]]
            if has_piped:
                args.append(piped)
            return self.call(name, args, pos)
        if len(cmd) > 1 or has_piped:
            raise self.error(first[-1], f"can't give argument to non-function {self._text(first)}")
        return self.arg(first, dot)

    def call(self, name: str, args: list[Any], pos: int) -> Any:
        if name in ("and", "or"):
            if not args:
                raise self.error(pos, f"wrong number of args for {name}: want at least 1 got 0")
            for a in args:
                if _truth(a) != (name == "and"):
                    return a
            return args[-1]
        if self.header and name in _HEADER_FUNCS:
            return args[0] if args else ""
        fn = _FUNCS.get(name)
        if fn is None:
            raise TemplateError(f'template: {self.where(pos)}: function "{name}" not defined')
        try:
            return fn(*args)
        except TypeError:
            raise self.error(pos, f"wrong number of args for {name}: got {len(args)}") from None
        except (ValueError, IndexError, KeyError, TemplateError) as e:
            raise self.error(pos, f"error calling {name}: {e}") from None

    def arg(self, node: _Node, dot: Any) -> Any:
        kind = node[0]
        if kind == "dot":
            return dot
        if kind == "const":
            return node[1]
        if kind == "nil":
            raise self.error(node[2], "nil is not a command")
        if kind == "field":
            return self.fields(dot, node[1], node[2])
        if kind == "var":
            name, chain = node[1]
            for vname, value in reversed(self.vars):
                if vname == name:
                    return self.fields(value, chain, node[2])
            raise TemplateError(f'template: {self.where(node[2])}: undefined variable "{name}"')
        if kind == "sub":
            return self.fields(self.pipe(node[1], dot, node[3]), node[2], node[3])
        if kind == "ident":
            return self.call(node[1], [], node[2])
        raise self.error(node[-1], f"unexpected {kind}")

    def fields(self, value: Any, chain: list[str], pos: int) -> Any:
        if self.header and chain:
            # The header row: a column's name, whatever the field chain reaches in the items.
            return value.lookup(chain) if isinstance(value, _Headers) else value
        for name in chain:
            if value is NO_VALUE:
                return NO_VALUE  # Go: a field of a missing key is missing too
            if isinstance(value, Mapping):
                value = value[name] if name in value else NO_VALUE
            elif value is None:
                raise self.error(pos, f"nil pointer evaluating interface {{}}.{name}")
            else:
                raise self.error(pos, f"can't evaluate field {name} in type {_go_type(value)}")
        return value

    def _text(self, node: _Node) -> str:
        if node[0] == "field":
            return "." + ".".join(node[1])
        if node[0] == "const":
            return go_print(node[1])
        return str(node[0])


class _Headers(dict[str, str]):
    """The header row's data: a column's header by its field path, else its last field upper-cased."""

    def lookup(self, chain: list[str]) -> str:
        full = ".".join(chain)
        return self.get(full) or self.get(chain[-1]) or chain[-1].upper()


class Template:
    """A parsed template; ``execute(data)`` returns the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._parser = _Parser(text)
        self.nodes = self._parser.parse()

    def execute(self, data: Any, header: bool = False) -> str:
        ex = _Exec(data, self.text, self._parser.where, header)
        try:
            ex.run(self.nodes, data)
        except (_Break, _Continue):
            raise TemplateError("template: {{break}} or {{continue}} outside {{range}}") from None
        return "".join(ex.out)


def template_string(fmt: str) -> str:
    """docker/cli's Format.templateString: no ``table`` prefix, spaces trimmed, literal \\t and \\n typed out."""
    if fmt == "table":
        return ""
    if fmt == "json":
        return "{{json .}}"
    if fmt.startswith("table"):
        fmt = fmt[len("table") :]
    fmt = fmt.strip(" ")
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


def render(
    fmt: str, items: list[Any], headers: Mapping[str, str] | None = None, *, table_default: str | None = None
) -> str:
    """The output of ``--format fmt`` over ``items`` (one template run plus "\\n" per item).

    ``headers`` maps a field path ("ID", "State.Status") or a last field name to its column header;
    a field without one is headed by its name upper-cased. ``table_default`` is the command's
    table layout that a bare ``table`` stands for. TemplateError if the format is malformed or
    fails on an item.
    """
    from hull.cli.table import tabwrite

    if fmt == "table" and table_default is not None:
        fmt = table_default
    tmpl = Template(template_string(fmt))
    body = "".join(tmpl.execute(item) + "\n" for item in items)
    if not fmt.startswith("table"):
        return body
    head = tmpl.execute(_Headers(headers or {}), header=True)
    return tabwrite(head + "\n" + body, minwidth=10, tabwidth=1, padding=3)
