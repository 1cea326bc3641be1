"""The engine's event log: docker's ``events`` stream, as JSON lines in ``<root>/events.log``."""

from __future__ import annotations

import os

from hull.engine.containers import Container, now_ns
from hull.engine.paths import EnginePaths


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
