"""Small typed readers over decoded JSON, each naming the field it rejects.

The runtime spec (config.md, "Extensibility") says unknown properties MUST be
ignored, so these readers only look at the keys they are asked for; a known
key with a value of the wrong type or outside its enum is an error that names
the field by its JSON path (``process.rlimits[0].type``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")


class SpecError(ValueError):
    """A spec document is malformed; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem


_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    dict: "an object",
    list: "an array",
}


def _type_name(kind: type) -> str:
    return _TYPE_NAMES.get(kind, kind.__name__)


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def check(value: Any, kind: type[T], path: str) -> T:
    """Return ``value`` if it is of ``kind``; JSON booleans are not integers."""
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise SpecError(path, f"must be {_type_name(kind)}, got {type(value).__name__}")
    checked: T = value
    return checked


def opt(obj: dict[str, Any], key: str, kind: type[T], path: str, default: T) -> T:
    value = obj.get(key)
    if value is None:
        return default
    return check(value, kind, join(path, key))


def req(obj: dict[str, Any], key: str, kind: type[T], path: str) -> T:
    if obj.get(key) is None:
        raise SpecError(join(path, key), "is required")
    return check(obj[key], kind, join(path, key))


def str_list(obj: dict[str, Any], key: str, path: str) -> list[str]:
    items = opt(obj, key, list, path, [])
    where = join(path, key)
    return [check(item, str, join(where, i)) for i, item in enumerate(items)]


def str_map(obj: dict[str, Any], key: str, path: str) -> dict[str, str]:
    items = opt(obj, key, dict, path, {})
    where = join(path, key)
    return {k: check(v, str, join(where, k)) for k, v in items.items()}


def uint(obj: dict[str, Any], key: str, path: str, default: int | None = None, bits: int = 32) -> int | None:
    value = obj.get(key)
    if value is None:
        return default
    return uint_value(value, join(path, key), bits)


def uint_value(value: Any, path: str, bits: int = 32) -> int:
    number = check(value, int, path)
    if not 0 <= number < 1 << bits:
        raise SpecError(path, f"must be an unsigned {bits}-bit integer, got {number}")
    return number


def req_uint(obj: dict[str, Any], key: str, path: str, bits: int = 32) -> int:
    if obj.get(key) is None:
        raise SpecError(join(path, key), "is required")
    value = uint(obj, key, path, bits=bits)
    assert value is not None
    return value


def one_of(value: str, allowed: frozenset[str] | dict[str, Any], path: str) -> str:
    if value not in allowed:
        names = ", ".join(sorted(allowed))
        raise SpecError(path, f"unknown value {value!r} (expected one of: {names})")
    return value
