"""A small command-line parser in the style of runc's (urfave/cli, Go flags).

``-flag`` and ``--flag`` are the same, values come as ``--flag=v`` or
``--flag v``, and flags stop at the first positional argument. It exists
because argparse alone costs more start-up time than the whole of a
``state`` command, and hull-runtime is started once per container operation.
"""

from __future__ import annotations

from hull.oci.records import field, record


class UsageError(Exception):
    pass


@record
class Flag:
    name: str
    takes_value: bool = False
    aliases: tuple[str, ...] = ()
    help: str = ""
    repeated: bool = False  # a slice flag (urfave/cli StringSliceFlag): every value is kept, in order


@record
class Parsed:
    values: dict[str, str | bool] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    lists: dict[str, list[str]] = field(default_factory=dict)

    def flag(self, name: str) -> bool:
        return bool(self.values.get(name, False))

    def value(self, name: str, default: str = "") -> str:
        got = self.values.get(name, default)
        return got if isinstance(got, str) else default

    def all_values(self, name: str) -> list[str]:
        """Every value of a repeated flag, in command-line order."""
        return self.lists.get(name, [])


_TRUE = {"true", "1", "t", "yes"}
_FALSE = {"false", "0", "f", "no"}


def parse(argv: list[str], flags: list[Flag], stop_at_positional: bool = True) -> Parsed:
    table = {alias: f for f in flags for alias in (f.name, *f.aliases)}
    out = Parsed()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.args.extend(argv[i + 1 :])
            break
        if not arg.startswith("-") or arg == "-":
            if stop_at_positional:
                out.args.extend(argv[i:])
                break
            out.args.append(arg)
            i += 1
            continue
        name, eq, inline = arg.lstrip("-").partition("=")
        spec = table.get(name)
        if spec is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if spec.takes_value:
            if eq:
                out.values[spec.name] = inline
            elif i + 1 < len(argv):
                i += 1
                out.values[spec.name] = argv[i]
            else:
                raise UsageError(f"flag needs an argument: -{name}")
            if spec.repeated:
                out.lists.setdefault(spec.name, []).append(str(out.values[spec.name]))
        elif eq:
            if inline.lower() not in _TRUE | _FALSE:
                raise UsageError(f'invalid boolean value "{inline}" for -{name}')
            out.values[spec.name] = inline.lower() in _TRUE
        else:
            out.values[spec.name] = True
        i += 1
    return out


def usage(flags: list[Flag]) -> str:
    lines = []
    for f in flags:
        names = ", ".join(f"--{n}" if len(n) > 1 else f"-{n}" for n in (f.name, *f.aliases))
        value = " value" if f.takes_value else ""
        lines.append(f"   {names}{value}\t{f.help}")
    return "\n".join(lines)
