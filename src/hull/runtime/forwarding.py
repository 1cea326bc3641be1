"""What a foreground runtime does for the process it waits for: forward signals, report its status.

Shared by ``run`` and ``exec``. runc's signal handler passes on every signal
but SIGCHLD (it reaps), SIGWINCH (it resizes the tty it relays, if any) and
SIGURG (the Go runtime's own); these are the catchable ones that matter.
_signal, not signal: the latter builds enums at import, on every start-up.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

FORWARDED = (
    _signal.SIGHUP,
    _signal.SIGINT,
    _signal.SIGQUIT,
    _signal.SIGTERM,
    _signal.SIGUSR1,
    _signal.SIGUSR2,
    _signal.SIGCONT,
    _signal.SIGALRM,
    _signal.SIGPIPE,
)


def forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


class forwarding_to:  # noqa: N801 - used as a context manager, named for the with statement
    """``with forwarding_to(pid):`` the signals in FORWARDED go to ``pid``; the old handlers come back after."""

    def __init__(self, pid: int, extra: dict[int, Callable[[int, object], None]] | None = None) -> None:
        self._pid = pid
        self._extra = extra or {}
        self._previous: dict[int, object] = {}

    def __enter__(self) -> None:
        pid = self._pid
        for sig in FORWARDED:
            self._previous[sig] = _signal.signal(sig, lambda s, _f: forward(pid, s))
        for sig, handler in self._extra.items():
            self._previous[sig] = _signal.signal(sig, handler)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            _signal.signal(sig, handler)


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N when signal N killed the process."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def write_pid_file(path: str, pid: int) -> None:
    # runc's createPidFile: "." + name beside it, then renamed into place, so a reader never sees it half-written.
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path))
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_SYNC | os.O_CLOEXEC, 0o666)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
