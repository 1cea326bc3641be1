"""``@record``: dataclass-style classes without the cost of ``dataclasses``.

Importing ``dataclasses`` (it pulls in ``inspect`` and ``re``) and generating
code for each class costs hull-runtime more start-up time than the rest of a
``state`` command. This decorator gives the same declaration syntax, typed
for mypy through PEP 681 ``dataclass_transform``, with a generic ``__init__``
built from the class annotations: fields in order, defaults from class
attributes, ``field(default_factory=...)`` for mutable ones.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")

_MISSING = object()


class _Field:
    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory


def field(*, default_factory: Callable[[], T]) -> T:
    return _Field(default_factory)  # type: ignore[return-value]


def _collect(cls: type) -> tuple[list[str], dict[str, Any]]:
    names: list[str] = []
    defaults: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for name in klass.__dict__.get("__annotations__", {}):
            if name not in names:
                names.append(name)
            value = klass.__dict__.get(name, _MISSING)
            if value is not _MISSING:
                defaults[name] = value
    for name, value in defaults.items():
        if isinstance(value, _Field) and name in cls.__dict__:
            delattr(cls, name)
    return names, defaults


def _make_init(cls: type, names: list[str], defaults: dict[str, Any]) -> Callable[..., None]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} positional arguments but {len(args)} were given")
        for name, value in zip(names, args, strict=False):
            setattr(self, name, value)
        for name in names[len(args) :]:
            if name in kwargs:
                setattr(self, name, kwargs.pop(name))
            elif name in defaults:
                default = defaults[name]
                setattr(self, name, default.factory() if isinstance(default, _Field) else default)
            else:
                raise TypeError(f"{cls.__name__}() missing required argument: {name!r}")
        if kwargs:
            raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {next(iter(kwargs))!r}")

    return __init__


def _record(cls: type[T]) -> type[T]:
    names, defaults = _collect(cls)
    cls.__record_fields__ = tuple(names)  # type: ignore[attr-defined]
    cls.__init__ = _make_init(cls, names, defaults)  # type: ignore[method-assign]

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in names)

    def __repr__(self: Any) -> str:
        body = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{cls.__name__}({body})"

    cls.__eq__ = __eq__  # type: ignore[method-assign]
    cls.__repr__ = __repr__  # type: ignore[method-assign]
    cls.__hash__ = None  # type: ignore[method-assign,assignment]
    return cls


if TYPE_CHECKING:

    @dataclass_transform(field_specifiers=(field,))
    def record(cls: type[T]) -> type[T]: ...

else:
    record = _record


def as_dict(obj: Any) -> dict[str, Any]:
    """The record's fields, recursively, as plain data (``dataclasses.asdict``)."""
    return {name: _plain(getattr(obj, name)) for name in obj.__record_fields__}


def _plain(value: Any) -> Any:
    if hasattr(value, "__record_fields__"):
        return as_dict(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
