"""The engine's event log: docker's ``events`` stream, as JSON lines in ``<root>/events.log``.

Writers (the CLI and each container's monitor) append one line per event with a
single ``O_APPEND`` write, so lines from several processes never interleave.
Readers (``hull events``) replay the past lines in a time window and, unless
the window is closed, follow the file for new ones, as the daemon streams them.

Which events a reader gets is moby's (daemon/events): with neither ``since``
nor ``until``, only new events; with either, the past ones between them first
(docker keeps only its last 256; hull keeps them all); ``until`` in the past
ends the stream after the past events, in the future it ends it then. Filters
are moby's ``events.Filter``: values of one key OR, different keys AND;
``container`` and ``event`` (for exec_*) match by prefix, ``image`` with or
without the tag, ``label`` all of its values (``KEY`` or ``KEY=VALUE``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from hull.engine.containers import Container, now_ns
from hull.engine.errors import EngineError
from hull.engine.paths import EnginePaths

Event = dict[str, Any]
Filters = dict[str, list[str]]

FILTER_KEYS = ("container", "event", "image", "label", "type", "volume", "network", "daemon", "plugin", "scope")
# moby matches these event filters by prefix ("exec_start" matches "exec_start: sh -c ...").
_FUZZY_EVENTS = frozenset({"health_status", "exec_create", "exec_start"})
POLL_SECONDS = 0.05


def emit(paths: EnginePaths, action: str, container: Container, extra: dict[str, str] | None = None) -> None:
    """Append one event, docker's ``events`` JSON shape, to the events log (one write: O_APPEND keeps
    lines whole across processes)."""
    import json

    ns = now_ns()
    attributes = {"image": container.image, "name": container.name, **container.options.labels, **(extra or {})}
    event = {
        "status": action, "id": container.id, "from": container.image, "Type": "container", "Action": action,
        "Actor": {"ID": container.id, "Attributes": attributes}, "scope": "local",
        "time": ns // 1_000_000_000, "timeNano": ns,
    }  # fmt: skip
    try:
        fd = os.open(paths.events, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        os.write(fd, json.dumps(event, separators=(",", ":")).encode() + b"\n")
    finally:
        os.close(fd)


# ---------------------------------------------------------------- filters


def parse_filters(values: list[str]) -> Filters:
    """``--filter KEY=VALUE`` flags grouped by key; an unknown key is docker's error."""
    out: Filters = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep:
            raise EngineError(f"bad format of filter (expected name=value): {item}")
        if key not in FILTER_KEYS:
            raise EngineError(f"invalid filter '{key}'")
        out.setdefault(key, []).append(value)
    return out


def _exact(filters: Filters, key: str, *candidates: str) -> bool:
    values = filters.get(key)
    return not values or any(c in values for c in candidates if c)


def _fuzzy(filters: Filters, key: str, *candidates: str) -> bool:
    values = filters.get(key)
    return not values or any(c.startswith(v) for v in values for c in candidates if c)


def _strip_tag(ref: str) -> str:
    """A reference without its tag (moby's stripTag): ``busybox:1.36`` -> ``busybox``."""
    if "@" in ref:
        return ref
    name, colon, tag = ref.rpartition(":")
    return name if colon and "/" not in tag else ref


def _labels_match(filters: Filters, attributes: dict[str, str]) -> bool:
    for want in filters.get("label", []):
        key, sep, value = want.partition("=")
        if key not in attributes or (sep and attributes[key] != value):
            return False
    return True


def matches(event: Event, filters: Filters) -> bool:
    """Whether moby's events.Filter.Include would pass ``event``."""
    if not filters:
        return True
    action = str(event.get("Action", ""))
    kind = str(event.get("Type", ""))
    actor = event.get("Actor") or {}
    actor_id = str(actor.get("ID", ""))
    attributes = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
    if _FUZZY_EVENTS & set(filters.get("event", [])):
        ok = _fuzzy(filters, "event", action)
    else:
        ok = _exact(filters, "event", action)
    if not ok or not _exact(filters, "type", kind) or not _exact(filters, "scope", str(event.get("scope", ""))):
        return False
    for key in ("container", "volume", "network", "plugin", "daemon"):
        if key in filters and (kind != key or not _fuzzy(filters, key, actor_id, attributes.get("name", ""))):
            return False
    image_name = attributes.get("name" if kind == "image" else "image", "")
    if "image" in filters and not _exact(
        filters, "image", actor_id, image_name, _strip_tag(actor_id), _strip_tag(image_name)
    ):
        return False
    return _labels_match(filters, attributes)


# ---------------------------------------------------------------- reading


def _decode(line: bytes) -> Event | None:
    import json

    try:
        event = json.loads(line)
    except ValueError:
        return None  # a torn line (the disk filled up mid-write): skipped, as a log reader does
    return event if isinstance(event, dict) else None


def _in_window(event: Event, since_ns: int | None, until_ns: int | None) -> bool:
    t = int(event.get("timeNano") or int(event.get("time") or 0) * 1_000_000_000)
    return (since_ns is None or t >= since_ns) and (until_ns is None or t <= until_ns)


def read(
    path: str, since_ns: int | None = None, until_ns: int | None = None, filters: Filters | None = None
) -> Iterator[Event]:
    """The recorded events between ``since_ns`` and ``until_ns`` (inclusive) that pass ``filters``."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # being written: a follower reads it whole later
            event = _decode(line)
            if event is not None and _in_window(event, since_ns, until_ns) and matches(event, filters or {}):
                yield event


def stream(
    path: str,
    since_ns: int | None = None,
    until_ns: int | None = None,
    filters: Filters | None = None,
    *,
    stop: Callable[[], bool] = lambda: False,
    clock: Callable[[], int] = now_ns,
) -> Iterator[Event]:
    """``docker events``: the past events of the window (when ``since_ns`` or ``until_ns`` is given),
    then new ones as they are appended, until ``until_ns`` passes or ``stop()`` says so."""
    import time

    filters = filters or {}
    if until_ns is not None and since_ns is not None and until_ns < since_ns:
        raise EngineError("`since` time cannot be after `until` time")
    start = clock()
    past = since_ns is not None or until_ns is not None
    f = _open_at_end(path, keep=past)
    try:
        offset = 0
        pending = b""
        if past and f is not None:
            data = f.read()
            cut = data.rfind(b"\n") + 1
            pending = data[cut:]
            offset = cut
            for line in data[:cut].splitlines():
                event = _decode(line)
                if event is not None and _in_window(event, since_ns, until_ns) and matches(event, filters):
                    yield event
        elif f is not None:
            offset = f.tell()
        if until_ns is not None and until_ns < start:
            return  # only past events (moby's onlyPastEvents)
        while not stop() and (until_ns is None or clock() <= until_ns):
            if f is None:
                f = _open_at_end(path, keep=True)  # made by the first event after we began
                offset = 0
                if f is None:
                    time.sleep(POLL_SECONDS)
                    continue
            f.seek(offset)
            data = f.read()
            if not data:
                time.sleep(POLL_SECONDS)
                continue
            offset += len(data)
            data = pending + data
            cut = data.rfind(b"\n") + 1
            pending = data[cut:]
            for line in data[:cut].splitlines():
                event = _decode(line)
                if event is None or not _in_window(event, since_ns, until_ns) or not matches(event, filters):
                    continue
                yield event
    finally:
        if f is not None:
            f.close()


def _open_at_end(path: str, *, keep: bool) -> Any:
    """The log open for reading: at its start when ``keep``, else at its end (only new events)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None
    if not keep:
        f.seek(0, os.SEEK_END)
    return f


# ---------------------------------------------------------------- printing


def _local_rfc3339_fixed(ns: int) -> str:
    """Go's ``time.Unix(0, ns).Format("2006-01-02T15:04:05.000000000Z07:00")`` in local time."""
    from hull.engine.logfile import format_local

    return format_local(ns, 9)


def format_event(event: Event) -> str:
    """docker/cli's prettyPrintEvent: ``TIME TYPE ACTION ID (k=v, ...)`` with attributes sorted by key."""
    ns = int(event.get("timeNano") or 0)
    if not ns and event.get("time"):
        ns = int(event["time"]) * 1_000_000_000
    out = f"{_local_rfc3339_fixed(ns)} " if ns else ""
    actor = event.get("Actor") or {}
    out += f"{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attributes = actor.get("Attributes") or {}
    if attributes:
        out += " (" + ", ".join(f"{k}={attributes[k]}" for k in sorted(attributes)) + ")"
    return out
