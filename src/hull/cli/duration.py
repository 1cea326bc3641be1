"""Go's ``time.ParseDuration`` grammar, for flags podman takes as durations (``--retry-delay 500ms``).

A duration is a sequence of decimal numbers, each with an optional fraction
and a unit suffix: ``ns``, ``us`` (or ``µs``/``μs``), ``ms``, ``s``, ``m``,
``h`` — ``1s``, ``1.5s``, ``500ms``, ``1m30s``; a bare ``0`` is allowed, as
in Go. A sign is refused: no hull flag means anything by a negative wait.
Scanned by hand, without ``re``: this runs on every pull's start-up.
"""

from __future__ import annotations

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (Go syntax); DurationError naming the text as Go's ``invalid duration``."""
    bad = DurationError(f'invalid duration "{text}" (as 1s, 500ms, 1m30s)')
    if text == "0":
        return 0.0
    if not text:
        raise bad
    total = 0.0
    i = 0
    while i < len(text):
        start = i
        while i < len(text) and (text[i].isdigit() or text[i] == "."):
            i += 1
        number = text[start:i]
        if not number or number == "." or number.count(".") > 1 or not number.isascii():
            raise bad
        start = i
        while i < len(text) and not (text[i].isdigit() or text[i] == "."):
            i += 1
        unit = _UNITS.get(text[start:i])
        if unit is None:
            raise bad  # Go: a missing or unknown unit is an error too
        total += float(number) * unit
    return total
