"""Shared fixtures: busybox bundles from the host's busybox-static, a private runtime root.

Under HULL_NO_SKIP=1 (set by the test command, which CI runs as root) a
skipped test is reported as a failure: an integration test that cannot run
must not pass silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hull.testing import busybox

HULL_RUNTIME = [sys.executable, "-m", "hull.cli.runtime"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("HULL_NO_SKIP") == "1" and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under HULL_NO_SKIP=1 (CI must run every test): {report.longrepr}"


@pytest.fixture
def root_required() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One busybox rootfs per session, copied into each bundle."""
    return Path(busybox.build_rootfs(str(tmp_path_factory.mktemp("busybox") / "rootfs")))


@pytest.fixture
def make_bundle(tmp_path: Path, busybox_rootfs: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def make(args: list[str] | None = None, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
        config = busybox.default_config(args or ["true"])
        if edit:
            edit(config)
        dest = tmp_path / f"bundle{next(counter)}"
        return Path(busybox.build_bundle(str(dest), config["process"]["args"], config, str(busybox_rootfs)))

    return make


class Runtime:
    """hull-runtime (or runc/crun, for differential tests) with a private state root."""

    def __init__(self, argv0: list[str], root: Path) -> None:
        self.argv0 = argv0
        self.root = root

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 30, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run a command; its output is read from files, never pipes.

        A created container inherits the runtime's stdio, so with pipes the
        caller would wait for the container to exit before seeing EOF.
        """
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            kw.setdefault("stdin", subprocess.DEVNULL)
            code = subprocess.run(
                [*self.argv0, "--root", str(self.root), *args], stdout=out, stderr=err, timeout=timeout, **kw
            ).returncode
            out.seek(0)
            err.seek(0)
            proc = subprocess.CompletedProcess(args, code, out.read(), err.read())
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc


@pytest.fixture
def runtime(tmp_path: Path, root_required: None) -> Iterator[Runtime]:
    rt = Runtime(HULL_RUNTIME, tmp_path / "state")
    yield rt
    _cleanup(rt)


@pytest.fixture
def runc(tmp_path: Path, root_required: None) -> Iterator[Runtime]:
    rt = Runtime(["runc"], tmp_path / "runc-state")
    yield rt
    _cleanup(rt)


def _cleanup(rt: Runtime) -> None:
    if not rt.root.exists():
        return
    for name in os.listdir(rt.root):
        rt("delete", "--force", name, check=False)


@pytest.fixture(scope="session")
def debian_image() -> str:
    """The Debian bookworm rootfs tar with python3 (hull.testing.debian), built once and cached in
    /var/cache/hull-tests between runs; the first build runs debootstrap (about 30 s, needs root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (debootstrap)")
    from hull.testing import debian

    return debian.debian_rootfs_tar()
