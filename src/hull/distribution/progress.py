"""Progress of blob transfers (issue 5 section 4): bars per layer on a terminal, plain lines otherwise.

pull.py reports four events per blob through a ``Reporter``: ``started``
(with the descriptor's size), ``advanced`` (bytes received, from the
download threads), ``finished``, or ``skipped`` when the store already has
it. Three reporters:

- ``LineReporter``: one line when a blob starts and one when it is done, in
  skopeo's words ("Copying blob sha256:abcd... 12.3 MB" / "... done",
  "... skipped: already exists"); for logs and pipes, where redrawn bars are
  noise.
- ``RichReporter``: a live bar per blob with size, speed and time left
  (``rich``, imported only here, only when stderr is a terminal: the import
  costs tens of milliseconds that a piped or quiet pull should not pay).
- ``Silent``: ``--quiet``.

``reporter_for`` picks one as podman does: quiet wins, a terminal gets bars.
Events come from several download threads at once; each reporter is safe
for that (a lock for the lines; rich's Progress locks itself).

Other lines written while a reporter is active (the client's "Retrying GET
... in 0.8 s" lines) go through its ``note``, as ``log_through`` arranges:
whole lines under the reporter's lock, and above the bars on a terminal,
printed by rich's console without its word wrapping (a print to the
redirected stderr would be re-wrapped at the terminal's width, and two
threads' prints could interleave their halves).
"""

from __future__ import annotations

import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol, TextIO

    class Reporter(Protocol):
        def started(self, digest: str, size: int) -> None: ...
        def advanced(self, digest: str, amount: int) -> None: ...
        def finished(self, digest: str) -> None: ...
        def skipped(self, digest: str) -> None: ...
        def note(self, line: str) -> None: ...
        def close(self) -> None: ...

    from hull.distribution.client import Retry


SHORT = 12  # hex digits shown of a digest, as docker and skopeo show them


def short(digest: str) -> str:
    """``sha256:0123456789ab`` for ``sha256:0123456789abcdef...``."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}:{encoded[:SHORT]}" if encoded else digest[:SHORT]


def human_size(size: float) -> str:
    """Decimal units as docker and skopeo print sizes: 12.3 MB."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


class Silent:
    """``--quiet``: nothing."""

    def started(self, digest: str, size: int) -> None:
        pass

    def advanced(self, digest: str, amount: int) -> None:
        pass

    def finished(self, digest: str) -> None:
        pass

    def skipped(self, digest: str) -> None:
        pass

    def note(self, line: str) -> None:
        pass

    def close(self) -> None:
        pass


class LineReporter:
    """Whole lines on a stream, written under a lock so lines from concurrent downloads never interleave."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def started(self, digest: str, size: int) -> None:
        self._line(f"Copying blob {short(digest)} {human_size(size)}")

    def advanced(self, digest: str, amount: int) -> None:
        pass  # a line per chunk would drown a log; the bars show it on a terminal

    def finished(self, digest: str) -> None:
        self._line(f"Copying blob {short(digest)} done")

    def skipped(self, digest: str) -> None:
        self._line(f"Copying blob {short(digest)} skipped: already exists")

    def note(self, line: str) -> None:
        self._line(line)

    def close(self) -> None:
        pass


class RichReporter:
    """A live bar per blob on a terminal: short digest, bar, bytes done of total, speed, time left."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("Copying blob {task.description}"),
            BarColumn(bar_width=20),  # the whole line fits 80 columns
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(file=stream, force_terminal=True),
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.progress.start()

    def _task(self, digest: str, size: int | None = None) -> Any:
        with self._lock:
            task = self._tasks.get(digest)
            if task is None:
                task = self._tasks[digest] = self.progress.add_task(short(digest), total=size)
            return task

    def started(self, digest: str, size: int) -> None:
        self._task(digest, size)

    def advanced(self, digest: str, amount: int) -> None:
        self.progress.update(self._task(digest), advance=amount)

    def finished(self, digest: str) -> None:
        task = self._task(digest)
        done = {t.id: t.total for t in self.progress.tasks}.get(task)
        self.progress.update(task, completed=done, description=f"{short(digest)} done")

    def skipped(self, digest: str) -> None:
        self.note(f"Copying blob {short(digest)} skipped: already exists")

    def note(self, line: str) -> None:
        # Above the bars (rich clears them, prints, redraws); no markup, colouring or re-wrapping.
        self.progress.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def close(self) -> None:
        self.progress.stop()


def reporter_for(quiet: bool, stream: TextIO | None = None) -> Reporter:
    """Silent when ``quiet``; bars when ``stream`` (stderr by default) is a terminal and rich is
    installed; plain lines otherwise."""
    out = stream if stream is not None else sys.stderr
    if quiet:
        return Silent()
    isatty = getattr(out, "isatty", None)
    if isatty is not None and isatty():
        try:
            return RichReporter(out)
        except ImportError:
            pass  # rich missing from this install: lines still tell the story
    return LineReporter(out)


def log_through(reporter: Reporter, retry: Retry) -> Callable[[], None]:
    """Send ``retry``'s log lines through ``reporter.note`` while it is active (when it has a log
    at all: ``-q`` has none); returns what puts the old log back."""
    old = retry.log
    if old is not None:
        retry.log = reporter.note

    def restore() -> None:
        retry.log = old

    return restore
