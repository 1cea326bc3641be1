"""cgroup v2 for real, on this hybrid host's cgroup2 mount: the eBPF device filter, hugetlb limits, stats.

Device-cgroup BPF programs apply on any cgroup2 hierarchy, alongside the v1
devices controller: a throwaway cgroup under /sys/fs/cgroup/unified gets the
program runc's rules make, and a forked process moved into it tries what a
container would (open, mknod). Only hugetlb is a v2 controller here; the
other limits are covered by the unit tests' write plan.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hull.runtime import cgroup_v2, cgroup_v2_stats
from hull.runtime import linux as L
from hull.runtime.errors import SetupError
from tests.conftest import Runtime

UNIFIED = Path("/sys/fs/cgroup/unified")
DENY_ALL: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}


@pytest.fixture
def cgroup(root_required: None) -> Iterator[Path]:
    assert (UNIFIED / "cgroup.controllers").exists(), "this machine has a cgroup2 mount at /sys/fs/cgroup/unified"
    path = UNIFIED / f"hull-test-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    try:
        yield path
    finally:
        # Every process the tests put there has exited and been reaped.
        path.rmdir()


def attempts_inside(path: Path) -> dict[str, str]:
    """Fork a process into the cgroup; what it can open and mknod ("ok" or the errno name)."""
    tmp = Path(f"/tmp/hull-v2-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        result = {}
        try:
            (path / "cgroup.procs").write_text(str(os.getpid()))
            tries: dict[str, Any] = {
                "read /dev/null": lambda: os.close(os.open("/dev/null", os.O_RDONLY)),
                "write /dev/null": lambda: os.close(os.open("/dev/null", os.O_WRONLY)),
                "read /dev/zero": lambda: os.close(os.open("/dev/zero", os.O_RDONLY)),
                "read /dev/full": lambda: os.close(os.open("/dev/full", os.O_RDONLY)),
                "mknod c 1:3": lambda: os.mknod(tmp / "c", 0o600 | 0o020000, os.makedev(1, 3)),
                "mknod b 7:0": lambda: os.mknod(tmp / "b", 0o600 | 0o060000, os.makedev(7, 0)),
            }
            for name, attempt in tries.items():
                try:
                    attempt()
                    result[name] = "ok"
                except OSError as err:
                    result[name] = os.strerror(err.errno or 0)
        finally:
            os.write(write_end, json.dumps(result).encode())
            os._exit(0)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
    finally:
        for child in tmp.iterdir():
            child.unlink()
        tmp.rmdir()
    got: dict[str, str] = json.loads(data)
    return got


def attached(path: Path) -> list[int]:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return L.bpf_prog_query(fd, L.BPF_CGROUP_DEVICE)
    finally:
        os.close(fd)


def test_no_filter_allows_everything(cgroup: Path) -> None:
    # The baseline the other tests differ from: without a program the cgroup2 side restricts nothing.
    assert set(attempts_inside(cgroup).values()) == {"ok"}


def test_runc_default_rules(cgroup: Path) -> None:
    # runc spec's "deny all" plus runc's default allowed devices: /dev/null, zero, full... and mknod of any.
    cgroup_v2.apply(str(cgroup), DENY_ALL)
    assert len(attached(cgroup)) == 1
    assert attempts_inside(cgroup) == {
        "read /dev/null": "ok",
        "write /dev/null": "ok",
        "read /dev/zero": "ok",
        "read /dev/full": "ok",
        "mknod c 1:3": "ok",
        "mknod b 7:0": "ok",
    }


def test_rules_deny(cgroup: Path) -> None:
    # /dev/null and /dev/full redefined in linux.devices: their defaults are dropped, as runc does;
    # then only read access to /dev/full is granted.
    resources = {
        "devices": [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "r"},
        ]
    }
    cgroup_v2.apply(str(cgroup), resources, frozenset({"/dev/null", "/dev/full"}))
    got = attempts_inside(cgroup)
    assert got["read /dev/null"] == os.strerror(1) and got["write /dev/null"] == os.strerror(1)
    assert got["read /dev/full"] == "ok" and got["read /dev/zero"] == "ok"
    assert got["mknod c 1:3"] == "ok"  # "c *:* m" stays a default


def test_blacklist(cgroup: Path) -> None:
    resources = {
        "devices": [
            {"allow": True, "access": "rwm"},
            {"allow": False, "type": "b", "access": "m"},
            {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "r"},
        ]
    }
    cgroup_v2.apply(str(cgroup), resources, frozenset({"/dev/zero"}))  # its default rule dropped
    got = attempts_inside(cgroup)
    # runc's defaults allow mknod of block devices again ("b *:* m" comes after the config's rules).
    assert got == {**dict.fromkeys(got, "ok"), "read /dev/zero": os.strerror(1)}


def test_update_replaces_the_program(cgroup: Path) -> None:
    cgroup_v2.apply(str(cgroup), DENY_ALL, frozenset({"/dev/null"}))
    first = attached(cgroup)
    assert attempts_inside(cgroup)["read /dev/null"] == os.strerror(1)
    cgroup_v2.apply(str(cgroup), DENY_ALL)  # /dev/null allowed again
    second = attached(cgroup)
    assert len(first) == len(second) == 1 and first != second
    assert attempts_inside(cgroup)["read /dev/null"] == "ok"


def test_unified_key_of_missing_controller(cgroup: Path) -> None:
    with pytest.raises(SetupError) as err:
        cgroup_v2.apply(str(cgroup), {"unified": {"memory.max": "1000000"}}, skip_devices=True)
    assert str(err.value) == (
        'unable to apply cgroup configuration: unified resource "memory.max" can\'t be set:'
        ' controller "memory" not available'
    )


@pytest.fixture
def hugetlb_cgroup(root_required: None) -> Iterator[Path]:
    assert "hugetlb" in (UNIFIED / "cgroup.controllers").read_text().split(), "hugetlb is a v2 controller here"
    was_enabled = "hugetlb" in (UNIFIED / "cgroup.subtree_control").read_text().split()
    path = UNIFIED / f"hull-test-{uuid.uuid4().hex[:12]}"
    try:
        path.mkdir()
        cgroup_v2.enable_controllers(str(path), mount=str(UNIFIED))
        yield path
    finally:
        if path.exists():
            path.rmdir()
        if not was_enabled:
            (UNIFIED / "cgroup.subtree_control").write_text("-hugetlb")


def test_hugetlb_limit_and_stats(hugetlb_cgroup: Path) -> None:
    path = hugetlb_cgroup
    cgroup_v2.apply(str(path), {"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}, skip_devices=True)
    assert (path / "hugetlb.2MB.max").read_text().strip() == "4194304"
    got = cgroup_v2_stats.stats(str(path))
    assert got["hugetlb"] == {"1GB": {"failcnt": 0}, "2MB": {"failcnt": 0}}
    assert got["pids"] == {}  # no process, no pids controller: cgroup.procs counted
    assert got["memory"]["usage"] == {"limit": 0, "failcnt": 0}  # no memory controller on this v2 mount


# -- hull and runc on a cgroup v2 host --------------------------------------------------
#
# A private mount namespace with the cgroup2 hierarchy mounted over /sys/fs/cgroup is, to
# runc (which asks statfs) and to hull, a unified host: both then use their v2 drivers for
# real, side by side, on the same kernel.

PROBE = (
    "head -c1 /dev/full >/dev/null && echo full-ok || echo full-denied;"
    " head -c1 /dev/zero >/dev/null && echo zero-ok || echo zero-denied;"
    " mknod /dev/n c 1 3 && echo mknod-ok || echo mknod-denied"
)


def on_v2_host(tmp_path: Path, name: str, script: str) -> str:
    """Run ``script`` with the cgroup2 hierarchy as /sys/fs/cgroup; its output (from a file, never a pipe)."""
    path = tmp_path / f"{name}.sh"
    path.write_text("set -u\nmount -t cgroup2 none /sys/fs/cgroup || exit 99\n" + script)
    out = tmp_path / f"{name}.out"
    with open(out, "w") as f:
        proc = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", str(path)],
            stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, timeout=60,
        )  # fmt: skip
    text = out.read_text()
    assert proc.returncode == 0, text
    return text


@pytest.fixture
def hugetlb_enabled(root_required: None) -> Iterator[None]:
    # Both runtimes enable every available controller in the root's subtree_control (runc's
    # CreateCgroupPath); put it back as it was.
    was_enabled = "hugetlb" in (UNIFIED / "cgroup.subtree_control").read_text().split()
    yield
    if not was_enabled:
        (UNIFIED / "cgroup.subtree_control").write_text("-hugetlb")


def _remove_leftovers(cid: str) -> None:
    """A container's cgroups if the script failed half-way (the runtimes' own cleanup sees the v1 view)."""
    for path in (UNIFIED / cid, UNIFIED / f"{cid}s"):
        if path.exists():
            for pid in (path / "cgroup.procs").read_text().split():
                os.kill(int(pid), 9)
            for _ in range(100):
                try:
                    path.rmdir()
                    break
                except OSError:
                    time.sleep(0.01)


def test_same_as_runc_on_v2(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    make_bundle: Callable[..., Path],
    runtime: Runtime,
    runc: Runtime,
    hugetlb_enabled: None,
) -> None:
    def edit(config: dict[str, Any]) -> None:
        linux = config["linux"]
        # /dev/full redefined in linux.devices: runc's default rule for it is dropped, none allows it.
        linux["devices"] = [{"path": "/dev/full", "type": "c", "major": 1, "minor": 7, "fileMode": 0o666}]
        linux["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 4194304}]

    probe = make_bundle(["sh", "-c", PROBE], edit)
    sleeper = make_bundle(["sleep", "100"], edit)
    update = tmp_path / "update.json"
    update.write_text(json.dumps({"unified": {"hugetlb.2MB.max": "2097152"}}))
    outputs = {}
    for name, rt in (("hull", runtime), ("runc", runc)):
        cid = f"v2-{name}-{uuid.uuid4().hex[:8]}"
        cmd = " ".join([*rt.argv0, "--root", str(rt.root)])
        request.addfinalizer(functools.partial(_remove_leftovers, cid))
        outputs[name] = on_v2_host(
            tmp_path,
            name,
            f"{cmd} run --bundle {probe} {cid} 2>&1\n"
            f"{cmd} create --bundle {sleeper} {cid}s </dev/null >/dev/null 2>&1 || echo create failed\n"
            f"{cmd} start {cid}s\n"
            f"cat /sys/fs/cgroup/{cid}s/hugetlb.2MB.max\n"
            f"{cmd} update -r {update} {cid}s\n"
            f"cat /sys/fs/cgroup/{cid}s/hugetlb.2MB.max\n"
            f"{cmd} events --stats {cid}s > {tmp_path}/{name}.stats\n"
            f"{cmd} delete -f {cid}s\n"
            f"test -e /sys/fs/cgroup/{cid}s && echo cgroup left behind\n"
            "true\n",
        )
    # runc's log lines (a warning that this v2 mount has no memory.events) are not compared; the
    # container's error messages are, but not their order against its output (stderr vs stdout).
    plain = {name: [line for line in out.splitlines() if not line.startswith("time=")] for name, out in outputs.items()}
    said = {name: [line for line in lines if ":" not in line] for name, lines in plain.items()}
    errors = {name: sorted(line for line in lines if ":" in line) for name, lines in plain.items()}
    assert said["hull"] == said["runc"] and errors["hull"] == errors["runc"], outputs
    assert said["hull"] == [
        "full-denied",
        "zero-ok",
        "mknod-denied",  # the default capabilities lack CAP_MKNOD (the device rules allow it: see above)
        "4194304",  # hugepageLimits, read on the host after start
        "2097152",  # update's unified value
    ]
    stats = {name: json.loads((tmp_path / f"{name}.stats").read_text()) for name in outputs}
    for doc in stats.values():
        doc["data"]["cpu"] = doc["data"]["pids"] = None  # the sleeper's own numbers differ
        doc["id"] = None
    assert stats["hull"] == stats["runc"]
