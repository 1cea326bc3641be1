"""``events``: a container's resource statistics and OOM notifications, as runc 1.1's events command.

``--stats`` prints one {"type": "stats"} event and returns. Otherwise a
stats event follows every interval (the first after one interval, as Go's
time.Tick) and an {"type": "oom"} event each time the kernel reports that the
memory cgroup hit its limit, until the container's cgroup is removed
(``delete``): like runc, a container that merely stopped still has a cgroup
to report on. cgroup v1's OOM notification (Documentation/admin-guide/cgroup-v1/
memory.rst, "OOM Control") is an eventfd registered through
cgroup.event_control against memory.oom_control; the kernel also signals it
when the cgroup is removed, which is how the loop learns the end.
"""

from __future__ import annotations

import errno
import os
import time

from hull.runtime import cgroup_stats, cgroups
from hull.runtime.container import status_of
from hull.runtime.errors import InvalidState, RuntimeFailure, SetupError
from hull.runtime.store import Record, Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Emit = Callable[[dict[str, Any]], None]

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration ("5s", "1m30s", "250ms", "0"), in seconds; ValueError if malformed."""
    rest = text
    sign = -1.0 if rest[:1] == "-" else 1.0
    rest = rest[1:] if rest[:1] in ("-", "+") else rest
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(text)
    total = 0.0
    while rest:
        i = 0
        while i < len(rest) and (rest[i].isascii() and rest[i].isdigit() or rest[i] == "."):
            i += 1
        number, rest = rest[:i], rest[i:]
        if number in ("", ".") or number.count(".") > 1:
            raise ValueError(text)
        j = 0
        while j < len(rest) and not (rest[j].isascii() and (rest[j].isdigit() or rest[j] == ".")):
            j += 1
        unit, rest = rest[:j], rest[j:]
        if unit not in _UNITS:
            raise ValueError(text)
        total += float(number) * _UNITS[unit]
    return sign * total


def _open(store: Store, container_id: str, interval: float) -> Record:
    with store.peek(container_id) as cdir:
        record = cdir.read()
        # runc's order: the container is found, then the interval checked, then its state.
        if interval <= 0:
            raise RuntimeFailure("duration interval must be greater than 0")
        if status_of(cdir, record) == "stopped":
            raise InvalidState(f"container with id {container_id} is not running")
    return record


def stats_event(record: Record) -> dict[str, Any]:
    return {"type": "stats", "id": record.id, "data": cgroup_stats.stats(record.cgroup_paths)}


def events(
    store: Store,
    container_id: str,
    emit: Emit,
    on_error: Callable[[str], None],
    interval: float = 5.0,
    stats_only: bool = False,
) -> None:
    record = _open(store, container_id, interval)
    if stats_only:
        emit(stats_event(record))
        return
    if cgroups.is_unified(record.cgroup_paths):
        from hull.runtime import events_v2

        path = record.cgroup_paths[cgroups.UNIFIED]
        events_v2.loop(record.id, path, interval, lambda: stats_event(record)["data"], emit, on_error)
        return
    memory = record.cgroup_paths.get("memory")
    if not memory:
        raise SetupError("memory controller missing")
    efd = register_oom(memory)
    try:
        _loop(record, efd, os.path.join(memory, "cgroup.event_control"), interval, emit, on_error)
    finally:
        os.close(efd)


def register_oom(memory: str) -> int:
    """An eventfd the kernel signals on each OOM in the memory cgroup (and once when it is removed)."""
    control = os.open(os.path.join(memory, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
    try:
        efd = os.eventfd(0, os.EFD_CLOEXEC)
        try:
            fd = os.open(os.path.join(memory, "cgroup.event_control"), os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, f"{efd} {control} ".encode())
            finally:
                os.close(fd)
        except OSError:
            os.close(efd)
            raise
    finally:
        # The kernel holds its own reference to the file once registered.
        os.close(control)
    return efd


def _loop(record: Record, efd: int, control: str, interval: float, emit: Emit, on_error: Callable[[str], None]) -> None:
    import select

    poller = select.poll()
    poller.register(efd, select.POLLIN)
    next_tick = time.monotonic() + interval
    while True:
        wait = max(0.0, next_tick - time.monotonic())
        if poller.poll(wait * 1000):
            try:
                os.eventfd_read(efd)
            except OSError as err:
                if err.errno == errno.EAGAIN:
                    continue
                return
            # The kernel signals the eventfd when the cgroup goes too: no OOM then, the end.
            if not os.path.lexists(control):
                return
            emit({"type": "oom", "id": record.id})
            continue
        next_tick += interval
        if next_tick < time.monotonic():
            next_tick = time.monotonic() + interval  # Go's Tick drops ticks a slow reader missed
        try:
            emit(stats_event(record))
        except RuntimeFailure as err:
            on_error(str(err))  # runc logs a failed collection and carries on
