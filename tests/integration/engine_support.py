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

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 60, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
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
        for controller in CGROUP_CONTROLLERS:
            for cid in ids:
                path = f"/sys/fs/cgroup/{controller}/hull/{cid}"
                if os.path.exists(path):
                    found.append(path)
        return found

    def volumes(self) -> list[str]:
        """Names of this engine's volumes (<root>/volumes/<name>, as engine.volumes keeps them)."""
        return [v for v in _entries(self.root / "volumes") if (self.root / "volumes" / v / "_data").is_dir()]

    def event_ids(self) -> list[str]:
        """Every container ID this engine ever created (its events log), --rm ones included."""
        import json

        try:
            with open(self.root / "events.log") as f:
                ids = [json.loads(line).get("id", "") for line in f if line.strip()]
        except FileNotFoundError:
            return []
        return sorted({i for i in ids if i})

    def leaks(self) -> dict[str, list[str]]:
        """What an engine with no containers must not have: mounts, monitors, cgroups, snapshots
        other than committed image layers, runtime state, container and run directories."""
        from hull.image.snapshot import open_snapshotter

        snapshots: list[str] = []
        if (self.root / "snapshots").exists():
            for name in os.listdir(self.root / "snapshots"):
                snap = open_snapshotter(str(self.root / "snapshots"), name)
                snapshots += [f"{name}:{i.name}:{i.kind}" for i in snap.walk() if i.kind != "committed"]
                known = {i.id for i in snap.walk()}
                tree = self.root / "snapshots" / name / "snapshots"
                if tree.exists():
                    snapshots += [f"{name} dir {d}" for d in os.listdir(tree) if d not in known]
        # "~name" entries are the runtime's caches (a compiled seccomp filter cache), not a container's state
        runtime_state = [e for e in _entries(self.runroot / "runtime") if not e.startswith("~")]
        if (self.runroot / "runtimes").exists():
            for name in os.listdir(self.runroot / "runtimes"):
                runtime_state += [e for e in _entries(self.runroot / "runtimes" / name) if e != "console"]
        return {
            "mounts": self.mounts(),
            "monitors": [str(p) for p in self.monitors()],
            "cgroups": self.cgroups(self.event_ids()),
            "snapshots": snapshots,
            "runtime state": runtime_state,
            "containers dirs": [e for e in _entries(self.root / "containers") if e != ".names"],
            "names": _entries(self.root / "containers" / ".names"),
            "run dirs": _entries(self.runroot / "c"),
            "anonymous volumes": [v for v in self.volumes() if len(v) == 64],
        }

    def assert_no_leaks(self, timeout: float = 5) -> None:
        """Wait up to ``timeout`` for monitors to finish, then no leak of any kind."""
        deadline = time.monotonic() + timeout
        while True:
            left = {k: v for k, v in self.leaks().items() if v}
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert not left, f"left behind: {left}"


CGROUP_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "devices", "freezer", "blkio", "cpuset", "systemd", "unified")


def _entries(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


@pytest.fixture
def engine(tmp_path: Path, root_required: None) -> Iterator[Engine]:
    import shutil
    import tempfile

    # The run root in /tmp, short, as /run/hull is (engine.attach copes with longer ones too).
    runroot = Path(tempfile.mkdtemp(prefix="hr-", dir="/tmp"))
    eng = Engine(tmp_path / "root", runroot)
    yield eng
    ids = eng.ids() if (eng.root / "containers").exists() else []
    if ids:
        eng("rm", "-f", *ids, check=False)
    left = eng.mounts()
    for point in sorted(left, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    assert not left, f"mounts left behind: {left}"
    if not eng.mounts() and not eng.monitors():
        shutil.rmtree(runroot, ignore_errors=True)
