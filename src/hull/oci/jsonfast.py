"""JSON through CPython's C accelerator (_json) alone, without importing ``json``.

``import json`` pulls in ``re`` (and with it ``enum``), which costs more than a
whole ``hull-runtime state`` call does otherwise; hull-runtime is started once
per container operation, so that start-up is on every engine's hot path.
The C scanner and encoder are the very ones ``json`` uses, so the accepted
input and the produced output are the same.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"


class _ScanContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_scan = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]


class DecodeError(ValueError):
    pass


def loads(data: str | bytes) -> Any:
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_WS))
    try:
        value, end = _scan(text, start)
    except (StopIteration, ValueError, SystemError):
        # Invalid input: the C scanner alone cannot always word the error (it
        # looks for json.decoder's exception class), so let json say it.
        _explain(text)
        raise DecodeError("invalid JSON") from None
    if text[end:].strip(_WS):
        _explain(text)
    return value


def _explain(text: str) -> None:
    """Raise DecodeError with json's own message (line, column) for invalid ``text``."""
    import json

    try:
        json.loads(text)
    except ValueError as err:
        raise DecodeError(str(err)) from None


def _float(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not valid JSON")
    return repr(value)


def _unknown(value: object) -> object:
    raise TypeError(f"object of type {type(value).__name__} is not JSON serializable")


_encode_compact = _json.make_encoder({}, _unknown, _json.encode_basestring_ascii, None, ":", ",", False, False, False)
_encode_spaced = _json.make_encoder({}, _unknown, _json.encode_basestring_ascii, None, ": ", ", ", False, False, False)


def dumps(value: Any, compact: bool = True) -> str:
    """One-line JSON (``json.dumps``'s output with ``separators=(",", ":")`` or its default)."""
    encoder = _encode_compact if compact else _encode_spaced
    return "".join(encoder(value, 0))


def dumps_indented(value: Any, indent: str = "  ", level: int = 0) -> str:
    """Like ``json.dumps(value, indent=...)``; the C encoder only does one-line output."""
    pad, inner = indent * level, indent * (level + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{dumps(str(k))}: {dumps_indented(v, indent, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and value:
        items = [f"{inner}{dumps_indented(v, indent, level + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return dumps(value)
