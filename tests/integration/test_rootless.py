"""hull-runtime run by an unprivileged user, with a user namespace (rootless), next to runc.

The user is UID/GID 1000 through setpriv(1), whatever /etc/passwd says of it.
It cannot read root's virtualenv, so hull runs from a world-readable copy of
src/ under Debian's /usr/bin/python3. The newuidmap test gives the user
subordinate IDs in a private mount namespace, over a bind-mounted /etc/subuid
and /etc/subgid, so the host's files are never changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hull
from hull.testing import busybox

UID = GID = 1000
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def rootless(busybox_rootfs: Path) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    if os.geteuid() != 0:
        pytest.skip("needs root to become another user")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.fail(f"{SYSTEM_PYTHON} is missing")
    # Not under pytest's tmp_path: /tmp/pytest-of-root is private to root.
    tmp_path = Path(tempfile.mkdtemp(prefix="hull-rootless-"))
    home = tmp_path / "home"
    src = home / "src"
    shutil.copytree(Path(hull.__file__).parent, src / "hull", ignore=shutil.ignore_patterns("__pycache__"))
    runtime_dir = home / "run"
    runtime_dir.mkdir()
    bundle = Path(busybox.build_bundle(str(home / "bundle"), ["true"], None, str(busybox_rootfs)))
    for path in [tmp_path, home, *home.rglob("*")]:
        os.lchown(path, UID, GID)
    tmp_path.chmod(0o755)

    def run(config: dict[str, Any], *args: str, wrap: list[str] | None = None) -> subprocess.CompletedProcess[str]:
        (bundle / "config.json").write_text(json.dumps(config))
        os.chown(bundle / "config.json", UID, GID)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime_dir), "PYTHONPATH": str(src)}
        user = ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups", "env", "-i"]
        user += [f"{k}={v}" for k, v in env.items()]
        command = [*(wrap or []), *user, SYSTEM_PYTHON, "-m", "hull.cli.runtime", *args]
        # Output through files: a created container's init inherits them and would hold pipes open.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.run(command, cwd=bundle, stdout=out, stderr=err, timeout=60, stdin=subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(command, code.returncode, out.read(), err.read())

    run.runtime_dir = runtime_dir  # type: ignore[attr-defined]
    run.home = home  # type: ignore[attr-defined]
    yield run
    shutil.rmtree(tmp_path)


def rootless_config(args: list[str], uid_maps: list[dict[str, int]], gid_maps: list[dict[str, int]]) -> dict[str, Any]:
    # What `spec --rootless` gives (runc's), with the mappings and program under test.
    from hull.runtime.spec_template import default_spec

    config = default_spec(rootless=True)
    config["process"]["args"] = args
    config["process"]["terminal"] = False
    config["linux"]["uidMappings"] = uid_maps
    config["linux"]["gidMappings"] = gid_maps
    return config


def own_id_only() -> tuple[list[dict[str, int]], list[dict[str, int]]]:
    return [{"containerID": 0, "hostID": UID, "size": 1}], [{"containerID": 0, "hostID": GID, "size": 1}]


def _subids(home: Path, text: str) -> list[str]:
    """A wrapper command: a private mount namespace where /etc/subuid and /etc/subgid hold ``text``.

    The host's files stay untouched, whatever subordinate IDs this machine gives UID 1000.
    """
    sub = home / "subids"
    sub.write_text(text)
    sub.chmod(0o644)
    script = f'mount --bind {sub} /etc/subuid && mount --bind {sub} /etc/subgid && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "wrap"]


def test_rootless_run_maps_the_users_own_id_to_root(rootless: Any) -> None:
    config = rootless_config(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map"], *own_id_only())
    proc = rootless(config, "run", "r1")
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines()]
    assert lines == [["0"], ["0"], ["0", str(UID), "1"], ["0", str(GID), "1"]]
    # State lives in the user's runtime directory (as runc's $XDG_RUNTIME_DIR/runc), gone after run.
    assert os.listdir(rootless.runtime_dir / "hull-runtime") == []


def test_rootless_lifecycle_and_state(rootless: Any) -> None:
    config = rootless_config(["sleep", "30"], *own_id_only())
    assert rootless(config, "create", "r2").returncode == 0
    try:
        state = json.loads(rootless(config, "state", "r2").stdout)
        assert state["status"] == "created"
        with open(f"/proc/{state['pid']}/status") as f:
            uids = next(line.split()[1:] for line in f if line.startswith("Uid:"))
        assert uids == [str(UID)] * 4  # the host sees the unprivileged user
        assert rootless(config, "start", "r2").returncode == 0
        assert json.loads(rootless(config, "state", "r2").stdout)["status"] == "running"
    finally:
        proc = rootless(config, "delete", "--force", "r2")
    assert proc.returncode == 0, proc.stderr
    assert not os.path.exists(rootless.runtime_dir / "hull-runtime" / "r2")


def test_rootless_several_ranges_without_subordinate_ids_fail_clearly(rootless: Any) -> None:
    uid_maps = [{"containerID": 0, "hostID": UID, "size": 1}, {"containerID": 1, "hostID": 200000, "size": 1000}]
    gid_maps = [{"containerID": 0, "hostID": GID, "size": 1}, {"containerID": 1, "hostID": 200000, "size": 1000}]
    proc = rootless(rootless_config(["true"], uid_maps, gid_maps), "run", "r3", wrap=_subids(rootless.home, ""))
    assert proc.returncode != 0
    # newuidmap refuses (no /etc/subuid entry for the user): its reason is in the one line.
    assert "linux.uidMappings" in proc.stderr and "newuidmap" in proc.stderr and "not allowed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert os.listdir(rootless.runtime_dir / "hull-runtime") == []


def test_rootless_several_ranges_through_newuidmap(rootless: Any) -> None:
    if not (os.access("/usr/bin/newuidmap", os.X_OK) and os.access("/usr/bin/newgidmap", os.X_OK)):
        pytest.fail("newuidmap/newgidmap missing (scripts/setup.sh installs uidmap)")
    wrap = _subids(rootless.home, f"{UID}:300000:65536\n")
    uid_maps = [{"containerID": 0, "hostID": UID, "size": 1}, {"containerID": 1, "hostID": 300000, "size": 65536}]
    gid_maps = [{"containerID": 0, "hostID": GID, "size": 1}, {"containerID": 1, "hostID": 300000, "size": 65536}]
    script = "cat /proc/self/uid_map; chown 1000:1000 /tmp && stat -c %u:%g /tmp"
    config = rootless_config(["sh", "-c", script], uid_maps, gid_maps)
    for kind in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][kind].append("CAP_CHOWN")
    config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]})
    proc = rootless(config, "run", "r4", wrap=wrap)
    assert proc.returncode == 0, proc.stderr
    maps = [line.split() for line in proc.stdout.splitlines()[:2]]
    assert maps == [["0", str(UID), "1"], ["1", "300000", "65536"]]
    # Container UID 1000 exists only through the subordinate range.
    assert proc.stdout.splitlines()[2] == "1000:1000"
