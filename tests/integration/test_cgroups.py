"""The container's cgroup, side by side with runc 1.1: the host-side files, what the container sees, clean-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime
from tests.integration._helpers import chain, created, run_ok, sh
from tests.integration._support import new_id, popen, state, wait_for, wait_for_status

# Throttling needs a real disk: the one holding / (a whole disk on these VMs).
ROOT_DEV = {"major": os.major(os.stat("/").st_dev), "minor": os.minor(os.stat("/").st_dev)}
RESOURCES: dict[str, Any] = {
    "memory": {"limit": 104857600, "reservation": 52428800, "swap": 209715200, "swappiness": 10},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
    "pids": {"limit": 42},
    "blockIO": {"throttleReadBpsDevice": [{**ROOT_DEV, "rate": 1048576}]},
}
FILES = {
    "memory": ["memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes",
               "memory.swappiness", "memory.oom_control"],
    "cpu": ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"],
    "cpuset": ["cpuset.cpus", "cpuset.mems"],
    "pids": ["pids.max"],
    "blkio": ["blkio.throttle.read_bps_device"],
    "devices": ["devices.list"],
    "freezer": ["freezer.state"],
}  # fmt: skip


def with_resources(resources: dict[str, Any], **linux: Any) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["resources"].update(resources)
        config["linux"].update(linux)

    return edit


def add_namespaces(namespaces: list[dict[str, str]]) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"].extend(namespaces)

    return edit


def cgroup_dirs(pid: int) -> dict[str, str]:
    """{hierarchy: host directory} of a process, from /proc/<pid>/cgroup."""
    mounts = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup":
                opts = [o for o in fields[sep + 3].split(",") if o not in ("rw", "ro")]
                mounts[",".join(opts)] = (fields[4], fields[3])
            elif fields[sep + 1] == "cgroup2":
                mounts[""] = (fields[4], fields[3])
    dirs = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers in mounts:
                point, root = mounts[controllers]
                dirs[controllers] = os.path.normpath(point + "/" + os.path.relpath(path, root))
    return dirs


def host_files(pid: int) -> dict[str, str]:
    dirs = cgroup_dirs(pid)
    return {f"{c}/{name}": Path(dirs[c], name).read_text() for c, names in FILES.items() for name in names}


def all_exist(dirs: dict[str, str]) -> list[str]:
    return [d for d in dirs.values() if os.path.isdir(d)]


def test_host_side_cgroup_files_match_runcs(runc: Runtime, runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle(["sleep", "100"], with_resources(RESOURCES))
    cid = new_id("cg")
    seen = {}
    for rt in (runc, runtime):
        with created(rt, bundle, cid) as pid:
            dirs = cgroup_dirs(pid)
            # runc 1.1 on a hybrid host: every v1 hierarchy, name=systemd and the cgroup2 mount.
            assert set(dirs) >= {"memory", "cpu", "devices", "freezer", "name=systemd", ""}
            assert all(d.endswith("/" + cid) for d in dirs.values()), dirs
            seen[rt] = (host_files(pid), dirs)
        assert all_exist(dirs) == [], "cgroup left after delete"
    assert seen[runtime] == seen[runc]


def test_container_sees_the_same_cgroups(runc: Runtime, runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    script = "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max"
    for namespaces in ([], [{"type": "cgroup"}]):
        bundle = make_bundle(sh(script), chain(add_namespaces(namespaces), with_resources(RESOURCES)))
        cid = new_id("cg")
        outputs = [run_ok(rt, bundle, cid) for rt in (runc, runtime)]
        assert outputs[1] == outputs[0]
        assert "104857600\n42\n" in outputs[1]
        if namespaces:
            assert "4:memory:/\n" in outputs[1]  # a new cgroup namespace is rooted at the container's cgroup


def test_absolute_cgroups_path_and_delete(runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    name = new_id("/hull-test/abs")
    bundle = make_bundle(["sleep", "100"], with_resources({}, cgroupsPath=name))
    with created(runtime, bundle, "c1") as pid:
        dirs = cgroup_dirs(pid)
        assert dirs["memory"] == "/sys/fs/cgroup/memory" + name
        assert dirs[""] == "/sys/fs/cgroup/unified" + name
    assert all_exist(dirs) == []
    for d in dirs.values():
        os.rmdir(os.path.dirname(d))  # runc leaves the parents; so does hull-runtime


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (
            {"cpu": {"cpus": "9"}},
            'failed to write "9": write /sys/fs/cgroup/cpuset/{cid}/cpuset.cpus: numerical result out of range',
        ),
        ({"memory": {"limit": 104857600, "swap": 52428800}}, "memory.memsw.limit_in_bytes: invalid argument"),
        (
            {"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]},
            "cannot set hugetlb limit: container could not join or create cgroup",
        ),
        ({"memory": {"swappiness": 200}}, "invalid memory swappiness value: 200 (valid range is 0-100)"),
        ({"unified": {"memory.max": "1"}}, "invalid configuration: cannot use unified on cgroup v1"),
    ],
)
def test_failed_create_leaves_no_cgroup(
    runc: Runtime, runtime: Runtime, make_bundle: Callable[..., Path], resources: dict[str, Any], message: str
) -> None:
    bundle = make_bundle(["true"], with_resources(resources))
    cid = new_id("cgfail")
    for rt in (runc, runtime):
        proc = rt("create", "--bundle", str(bundle), cid, check=False)
        assert proc.returncode != 0
        # logrus escapes the quotes of a value inside msg="..."
        assert message.format(cid=cid) in proc.stderr.replace('\\"', '"'), f"{rt.argv0[-1]}: {proc.stderr}"
        left = subprocess.run(["find", "/sys/fs/cgroup", "-name", cid], capture_output=True, text=True).stdout
        assert left == ""
        assert not (rt.root / cid).exists()


def test_kill_9_mid_create_then_delete_force(runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    def edit(config: dict[str, Any]) -> None:
        config["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"]}]}

    bundle = make_bundle(["true"], edit)
    cid = new_id("cgkill")
    creator = popen(runtime, "create", "--bundle", str(bundle), cid)
    try:
        wait_for(
            lambda: (runtime.root / cid / "state.json").exists() and state(runtime, cid)["pid"] != 0,
            what="init to be forked",
        )
        dirs = cgroup_dirs(state(runtime, cid)["pid"])
        creator.send_signal(signal.SIGKILL)
        creator.wait()
        assert all_exist(dirs)
        runtime("delete", "--force", cid)
    finally:
        creator.kill()
        creator.wait()
    assert all_exist(dirs) == []
    assert not (runtime.root / cid).exists()


def test_kill_all_signals_every_process_in_the_cgroup(runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    # Without a PID namespace the cgroup is what holds the container's processes together.
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"]

    bundle = make_bundle(sh("sleep 100 & sleep 100 & wait"), edit)
    cid = new_id("cgall")
    with created(runtime, bundle, cid) as pid:
        runtime("start", cid)
        dirs = cgroup_dirs(pid)
        procs = Path(dirs["devices"], "cgroup.procs")
        wait_for(lambda: len(procs.read_text().split()) == 3, what="both sleeps")
        runtime("kill", "--all", cid, "KILL")
        wait_for(lambda: procs.read_text() == "", what="every process to go")
        wait_for_status(runtime, cid, "stopped")


def test_pause_and_resume(runc: Runtime, runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle(["sleep", "100"])
    cid = new_id("cgpause")
    for rt in (runc, runtime):
        with created(rt, bundle, cid) as pid:
            rt("start", cid)
            rt("pause", cid)
            assert state(rt, cid)["status"] == "paused"
            assert Path(cgroup_dirs(pid)["freezer"], "freezer.state").read_text() == "FROZEN\n"
            listed = json.loads(rt("list", "--format", "json").stdout)
            assert [c["status"] for c in listed] == ["paused"]
            refused = rt("delete", cid, check=False)
            assert f"cannot delete container {cid} that is not stopped: paused" in refused.stderr
            rt("resume", cid)
            assert state(rt, cid)["status"] == "running"
            again = rt("resume", cid, check=False)
            assert again.returncode == 1 and "container not paused" in again.stderr


def test_ps_lists_the_cgroups_processes_as_runc(
    runc: Runtime, runtime: Runtime, make_bundle: Callable[..., Path]
) -> None:
    bundle = make_bundle(["sleep", "100"])
    cid = new_id("cgps")
    for rt in (runc, runtime):
        with created(rt, bundle, cid) as pid:
            rt("start", cid)
            assert rt("ps", "--format", "json", cid).stdout == f"[{pid}]\n"
            table = rt("ps", cid, "-o", "pid,comm").stdout.splitlines()
            assert [line.split() for line in table] == [["PID", "COMMAND"], [str(pid), "sleep"]]
            bad = rt("ps", "-f", "yaml", cid, check=False)
            assert bad.returncode == 1 and "invalid format option" in bad.stderr


def test_delete_force_of_a_paused_container(runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle(["sleep", "100"])
    cid = new_id("cgpdel")
    runtime("create", "--bundle", str(bundle), cid)
    dirs = cgroup_dirs(state(runtime, cid)["pid"])
    runtime("start", cid)
    runtime("pause", cid)
    runtime("delete", "--force", cid)
    assert all_exist(dirs) == []
