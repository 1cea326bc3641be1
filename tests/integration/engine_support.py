"""A private hull engine for end-to-end tests: its own --root and --runroot, torn down with a leak check."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HULL = [sys.executable, "-m", "hull.cli.main"]
BUSYBOX = "localhost/busybox"


class Engine:
    def __init__(self, root: Path, runroot: Path) -> None:
        self.root = root
        self.runroot = runroot

    def argv(self, *args: str) -> list[str]:
        return [*HULL, "--root", str(self.root), "--runroot", str(self.runroot), *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout, **kw)
        if check and proc.returncode != 0:
            raise AssertionError(f"hull {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def ids(self) -> list[str]:
        return self("ps", "-a", "-q", "--no-trunc").stdout.split()

    def inspect(self, ref: str) -> dict[str, Any]:
        import json

        docs: list[dict[str, Any]] = json.loads(self("inspect", "--type", "container", ref).stdout)
        return docs[0]

    def wait_status(self, ref: str, status: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            doc = self.inspect(ref)
            if doc["State"]["Status"] == status or time.monotonic() > deadline:
                return doc
            time.sleep(0.05)

    def mounts(self) -> list[str]:
        """Mount points under this engine's directories (none may be left)."""
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        return [p for p in points if p.startswith((str(self.root), str(self.runroot)))]

    def monitors(self) -> list[int]:
        """Monitor processes of this engine still alive."""
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if str(self.root).encode() in cmdline and b"hull.cli.main" in cmdline:
                out.append(int(entry))
        return out

    def cgroups(self, ids: list[str]) -> list[str]:
        found = []
        for controller in ("memory", "pids", "cpu,cpuacct", "devices", "freezer"):
            for cid in ids:
                path = f"/sys/fs/cgroup/{controller}/hull/{cid}"
                if os.path.exists(path):
                    found.append(path)
        return found


@pytest.fixture
def engine(tmp_path: Path, root_required: None) -> Iterator[Engine]:
    eng = Engine(tmp_path / "root", tmp_path / "run")
    yield eng
    ids = eng.ids() if (eng.root / "containers").exists() else []
    if ids:
        eng("rm", "-f", *ids, check=False)
    left = eng.mounts()
    for point in sorted(left, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    assert not left, f"mounts left behind: {left}"
