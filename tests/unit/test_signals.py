"""Signal arguments of `kill`, as runc accepts them: "KILL", "SIGKILL" or "9"."""

from __future__ import annotations

import signal

import pytest

from hull.runtime.errors import RuntimeFailure
from hull.runtime.signals import parse_signal


@pytest.mark.parametrize("text", ["KILL", "SIGKILL", "9", "kill", "sigkill", "Kill", "SigKill"])
def test_sigkill_spellings(text: str) -> None:
    assert parse_signal(text) == signal.SIGKILL


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("TERM", signal.SIGTERM),
        ("SIGTERM", signal.SIGTERM),
        ("15", 15),
        ("HUP", signal.SIGHUP),
        ("INT", signal.SIGINT),
        ("USR1", signal.SIGUSR1),
        ("usr2", signal.SIGUSR2),
        ("WINCH", signal.SIGWINCH),
        ("STOP", signal.SIGSTOP),
        ("CONT", signal.SIGCONT),
        ("1", 1),
        ("64", 64),
        # runc takes any number as is; 0 probes whether the process exists (kill(2)).
        ("0", 0),
    ],
)
def test_signal_names_and_numbers(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize(
    "text",
    ["FOO", "SIGFOO", "", "SIG", "-9", "9x", "1.5", "KILL ", "SIG KILL", "65", "100", "SIG_DFL"],
)
def test_unknown_signal_is_rejected_with_runc_message(text: str) -> None:
    with pytest.raises(RuntimeFailure) as info:
        parse_signal(text)

    assert str(info.value) == f'unknown signal "{text}"'
