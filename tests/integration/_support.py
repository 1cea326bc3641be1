"""Helpers shared by the integration tests: reading state, waiting, and looking for leftovers.

A container must leave nothing behind once it is deleted or its create failed
(runtime.md lifecycle step 12, "continue at step 12"): no state directory, no
process, no mount. ``leftovers`` looks for all three; processes are found by a
tag put in both the runtime's environment (init inherits it until exec) and
the container's (``process.env``), by cwd/root inside the bundle, or by a
command line naming the container.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import Runtime

TAG_VAR = "HULL_TEST_TAG"


def state(runtime: Runtime, cid: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(runtime("state", cid).stdout)
    return doc


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def wait_for_status(runtime: Runtime, cid: str, status: str, timeout: float = 5.0) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def reached() -> bool:
        got.update(state(runtime, cid))
        return got["status"] == status

    wait_for(reached, timeout, f"{cid} to be {status}")
    return got


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie does not (the host's init may take a while to reap it)."""
    stat = _read(f"/proc/{pid}/stat")
    return bool(stat) and stat[stat.rindex(b")") + 2 :][:1] not in (b"Z", b"X")


def new_id(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def tag_env(tag: str) -> dict[str, str]:
    """The environment to run hull-runtime with so that init (before exec) carries ``tag``."""
    return {**os.environ, TAG_VAR: tag}


def add_tag(config: dict[str, Any], tag: str) -> None:
    config["process"]["env"].append(f"{TAG_VAR}={tag}")


def popen(runtime: Runtime, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A runtime command in the background; its stdio goes nowhere (see Runtime.__call__ on pipes)."""
    return subprocess.Popen(
        [*runtime.argv0, "--root", str(runtime.root), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def container_processes(bundle: Path, cid: str, tag: str = "") -> list[str]:
    """Processes that belong to the container: "pid cmdline" of each, ourselves excepted."""
    found = []
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        base = f"/proc/{name}"
        cmdline = _read(f"{base}/cmdline").replace(b"\0", b" ").decode(errors="replace").strip()
        if not cmdline:
            continue  # a kernel thread or a zombie
        inside = any(_link(f"{base}/{what}").startswith(str(bundle)) for what in ("cwd", "root"))
        tagged = bool(tag) and f"{TAG_VAR}={tag}".encode() in _read(f"{base}/environ").split(b"\0")
        if inside or tagged or cid in cmdline.split():
            found.append(f"{name} {cmdline}")
    return found


def mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return points


def leftovers(runtime: Runtime, bundle: Path, cid: str, tag: str = "") -> dict[str, list[str]]:
    """What a container left behind; every list is empty when it left nothing."""
    state_dir = runtime.root / cid
    return {
        "state": [str(state_dir)] if state_dir.exists() else [],
        "processes": container_processes(bundle, cid, tag),
        "mounts": mounts_under(bundle),
    }


def assert_nothing_left(runtime: Runtime, bundle: Path, cid: str, tag: str = "", timeout: float = 3.0) -> None:
    """Processes may take a moment to go (an init that saw the runtime die exits by itself)."""
    empty = {"state": [], "processes": [], "mounts": []}
    deadline = time.monotonic() + timeout
    while (left := leftovers(runtime, bundle, cid, tag)) != empty and time.monotonic() < deadline:
        time.sleep(0.02)
    assert left == empty, f"{cid} left behind: {left}"
    assert "container does not exist" in runtime("state", cid, check=False).stderr
