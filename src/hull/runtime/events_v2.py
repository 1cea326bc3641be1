"""``events`` on a cgroup v2 host: OOM notifications from memory.events, as runc 1.1's notifyOnOOMV2.

cgroup v2 has no eventfd registration; its memory.events and cgroup.events
files signal a change to poll(2) as POLLPRI (kernfs_notify; cgroup-v2.rst,
"a value change in this file generates a file modified event"), and each
read re-arms them. Like runc, every change of memory.events with a non-zero
oom_kill counter is reported as an "oom" event (as is a failure to read it),
and the loop ends once cgroup.events says the cgroup is no longer populated:
the container's processes are gone.
"""

from __future__ import annotations

import os
import time

from hull.runtime.errors import RuntimeFailure, SetupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Emit = Callable[[dict[str, Any]], None]


def value_of(text: str, key: str) -> int:
    """runc's GetValueByKey over a flat-keyed file ("oom_kill 2"); 0 if the key is absent."""
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def _reread(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 4096).decode()


def loop(
    container_id: str,
    path: str,
    interval: float,
    stats: Callable[[], dict[str, Any]],
    emit: Emit,
    on_error: Callable[[str], None],
) -> None:
    import select

    fds = []
    try:
        for name in ("memory.events", "cgroup.events"):
            try:
                fds.append(os.open(os.path.join(path, name), os.O_RDONLY | os.O_CLOEXEC))
            except OSError as err:
                reason = (err.strerror or str(err))[:1].lower() + (err.strerror or str(err))[1:]
                raise SetupError(f"unable to add inotify watch: {reason}") from None
        memory, cgroup = fds
        poller = select.poll()
        for fd in fds:
            _reread(fd)  # arm: only changes from now on wake poll
            poller.register(fd, select.POLLPRI)
        next_tick = time.monotonic() + interval
        while True:
            ready = poller.poll(max(0.0, next_tick - time.monotonic()) * 1000)
            for fd, _ in ready:
                try:
                    text = _reread(fd)
                except OSError:
                    text = None  # the cgroup was removed
                if fd == memory and (text is None or value_of(text, "oom_kill") > 0):
                    emit({"type": "oom", "id": container_id})
                if fd == cgroup and (text is None or value_of(text, "populated") == 0):
                    return
                if text is None:
                    return
            if ready:
                continue
            next_tick += interval
            if next_tick < time.monotonic():
                next_tick = time.monotonic() + interval
            try:
                emit({"type": "stats", "id": container_id, "data": stats()})
            except RuntimeFailure as err:
                on_error(str(err))
    finally:
        for fd in fds:
            os.close(fd)
