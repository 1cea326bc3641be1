"""Signal names and numbers as ``kill`` accepts them (runc: "KILL", "SIGKILL" or "9")."""

from __future__ import annotations

import signal

from hull.runtime.errors import RuntimeFailure


def parse_signal(text: str) -> int:
    if text.isdigit():
        number = int(text)
        # runc passes any number through; 0 is kill(2)'s existence probe.
        if 0 <= number < signal.NSIG:
            return number
        raise RuntimeFailure(f'unknown signal "{text}"')
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    value = getattr(signal.Signals, name, None) if name.isidentifier() else None
    if value is None:
        raise RuntimeFailure(f'unknown signal "{text}"')
    return int(value)
