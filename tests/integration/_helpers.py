"""Helpers shared by the integration tests that check what a container gets."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hull.testing import busybox
from tests.conftest import Runtime

Edit = Callable[[dict[str, Any]], None]


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def run_ok(runtime: Runtime, bundle: Path, cid: str = "c1", *flags: str, **kw: Any) -> str:
    """``run`` in the foreground; the container's stdout, failing on a non-zero exit."""
    proc = runtime("run", *flags, "--bundle", str(bundle), cid, check=False, **kw)
    assert proc.returncode == 0, f"run exited {proc.returncode}: stderr {proc.stderr.strip()!r}, stdout {proc.stdout!r}"
    return proc.stdout


def run_fails(runtime: Runtime, bundle: Path, cid: str = "c1", *flags: str, **kw: Any) -> str:
    """``run`` that must fail; its stderr."""
    proc = runtime("run", *flags, "--bundle", str(bundle), cid, check=False, **kw)
    assert proc.returncode != 0, f"run unexpectedly succeeded: stdout {proc.stdout!r}"
    return proc.stderr


@contextlib.contextmanager
def created(runtime: Runtime, bundle: Path, cid: str = "c1", *flags: str, **kw: Any) -> Iterator[int]:
    """A created (not started) container; yields its init PID and force-deletes it afterwards."""
    runtime("create", *flags, "--bundle", str(bundle), cid, **kw)
    try:
        yield int(json.loads(runtime("state", cid).stdout)["pid"])
    finally:
        runtime("delete", "--force", cid, check=False)


def chain(*edits: Edit) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        for e in edits:
            e(config)

    return edit


def add_mounts(*mounts: dict[str, Any]) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        config["mounts"] += list(mounts)

    return edit


def set_process(**fields: Any) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        config["process"].update(fields)

    return edit


def set_linux(**fields: Any) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        config["linux"].update(fields)

    return edit


def mountinfo(text: str) -> dict[str, dict[str, Any]]:
    """proc(5) mountinfo by mount point (the last mount on a point wins, as path lookup sees it)."""
    rows: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or "-" not in fields:
            continue
        sep = fields.index("-")
        rows[fields[4]] = {
            "root": fields[3],
            "options": set(fields[5].split(",")),
            "optional": fields[6:sep],
            "fstype": fields[sep + 1],
            "source": fields[sep + 2],
            "super": set(fields[sep + 3].split(",")) if len(fields) > sep + 3 else set(),
        }
    return rows


def sections(text: str) -> dict[str, str]:
    """Output split on lines ``== name``: {name: the text up to the next such line}."""
    out: dict[str, str] = {}
    name = ""
    for line in text.splitlines(keepends=True):
        if line.startswith("== "):
            name = line[3:].strip()
            out[name] = ""
        else:
            out[name] = out.get(name, "") + line
    return out


@pytest.fixture
def public_bundle(busybox_rootfs: Path) -> Iterator[Callable[..., Path]]:
    """Bundles in a world-searchable directory, for containers whose root is not host root.

    pytest's tmp_path lies below a 0700 directory that a user namespace's
    root (an unprivileged host UID) cannot enter.
    """
    base = Path("/tmp") / f"hull-it-{uuid.uuid4().hex[:10]}"
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    counter = iter(range(1000))

    def make(args: list[str], edit: Edit | None = None) -> Path:
        config = busybox.default_config(args)
        if edit:
            edit(config)
        dest = base / f"bundle{next(counter)}"
        return Path(busybox.build_bundle(str(dest), args, config, str(busybox_rootfs)))

    make.base = base  # type: ignore[attr-defined]
    yield make
    shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def holder(*unshare_flags: str, setup: str = "true") -> Iterator[int]:
    """A process in new namespaces (``unshare`` flags) that ran ``setup`` there; yields its PID."""
    proc = subprocess.Popen(
        ["unshare", *unshare_flags, "sh", "-c", f"{setup} && echo ready && exec sleep 600"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n", "namespace holder did not start"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


def ns_inode(path: str) -> int:
    return os.stat(path).st_ino
