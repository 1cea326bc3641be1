"""Where the container's cgroup goes (runc 1.1's cgroupfs paths) and the file operations on a fake tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hull.runtime import cgroups
from hull.runtime.errors import SetupError

# This machine's hybrid layout (v1 controllers, cpu and cpuacct apart, name=systemd, cgroup2 at unified).
HYBRID = """\
30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime shared:10 - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuacct rw,relatime shared:11 - cgroup cgroup rw,cpuacct
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime shared:12 - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/devices rw,relatime shared:13 - cgroup cgroup rw,devices
35 30 0:31 / /sys/fs/cgroup/systemd rw,relatime shared:14 - cgroup cgroup rw,name=systemd
36 30 0:32 / /sys/fs/cgroup/unified rw,relatime shared:15 - cgroup2 cgroup2 rw
"""
PROC_CGROUP = "4:memory:/process_api/abc\n1:cpu:/\n9:name=systemd:/\n0::/\n"
UNIFIED = "30 24 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [("", ""), ("/a/../b", "/b"), ("//a//b/", "/a/b"), ("../../up", "up"), ("rel/b", "rel/b"), ("a:b:c", "a:b:c")],
)
def test_clean_path_as_runc(path: str, cleaned: str) -> None:
    assert cgroups.clean_path(path) == cleaned


def test_default_path_is_the_id_below_the_runtimes_own_cgroup() -> None:
    paths = cgroups.resolve_paths(HYBRID, PROC_CGROUP, "", "c1")
    assert paths["memory"] == "/sys/fs/cgroup/memory/process_api/abc/c1"
    assert paths["cpu"] == "/sys/fs/cgroup/cpu/c1"
    assert paths["name=systemd"] == "/sys/fs/cgroup/systemd/c1"
    # runc 1.1 makes and joins a directory in a hybrid host's cgroup2 mount too.
    assert paths[""] == "/sys/fs/cgroup/unified/c1"


def test_co_mounted_controllers_share_one_directory() -> None:
    mountinfo = "31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
    paths = cgroups.resolve_paths(mountinfo, "1:cpu,cpuacct:/\n", "/a", "c1")
    assert paths == {"cpu": "/sys/fs/cgroup/cpu,cpuacct/a", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct/a"}
    assert cgroups.directories(paths) == ["/sys/fs/cgroup/cpu,cpuacct/a"]


def test_absolute_path_is_below_each_hierarchy_root() -> None:
    paths = cgroups.resolve_paths(HYBRID, PROC_CGROUP, "/hull/x/../a", "c1")
    assert paths["memory"] == "/sys/fs/cgroup/memory/hull/a"
    assert paths[""] == "/sys/fs/cgroup/unified/hull/a"


def test_relative_path_and_systemd_form_are_names_below_our_cgroup() -> None:
    paths = cgroups.resolve_paths(HYBRID, PROC_CGROUP, "system.slice:docker:abc", "c1")
    assert paths["memory"] == "/sys/fs/cgroup/memory/process_api/abc/system.slice:docker:abc"


def test_unified_host() -> None:
    paths = cgroups.resolve_paths(UNIFIED, "0::/user.slice\n", "", "c1")
    assert paths == {"": "/sys/fs/cgroup/user.slice/c1"}
    assert cgroups.is_unified(paths)
    assert not cgroups.is_unified(cgroups.resolve_paths(HYBRID, PROC_CGROUP, "", "c1"))


def _fake_cpuset(root: Path) -> None:
    root.mkdir()
    (root / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset.mems").write_text("0\n")


def test_create_copies_cpuset_down_every_new_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A plain directory stands in for cgroupfs, which would show empty cpuset files in a new cgroup.
    _fake_cpuset(tmp_path / "cpuset")
    real_mkdir = os.mkdir

    def mkdir(path: str, mode: int = 0o777) -> None:
        real_mkdir(path, mode)
        for name in ("cpuset.cpus", "cpuset.mems"):
            Path(path, name).write_text("")

    monkeypatch.setattr(os, "mkdir", mkdir)
    cgroups.create({"cpuset": str(tmp_path / "cpuset/a/b")})
    assert (tmp_path / "cpuset/a/b/cpuset.cpus").read_text() == "0-1"
    assert (tmp_path / "cpuset/a/cpuset.mems").read_text() == "0"


def test_run_writes_names_file_and_value(tmp_path: Path) -> None:
    with pytest.raises(SetupError) as err:
        cgroups.run_writes({"pids": str(tmp_path)}, [("pids", "pids.max", "42")])
    assert str(err.value) == (
        f'unable to apply cgroup configuration: failed to write "42": write {tmp_path}/pids.max: '
        "no such file or directory"
    )


def test_run_writes_without_the_controller_uses_runcs_words() -> None:
    with pytest.raises(SetupError, match="^cannot set hugetlb limit: container could not join or create cgroup$"):
        cgroups.run_writes({}, [("hugetlb", "hugetlb.2MB.limit_in_bytes", "1")])


def test_cpu_shares_read_back(tmp_path: Path) -> None:
    (tmp_path / "cpu.shares").write_text("")
    cgroups.run_writes({"cpu": str(tmp_path)}, [("cpu", "cpu.shares", "512")])
    assert (tmp_path / "cpu.shares").read_text() == "512"


def test_pids_are_collected_from_sub_cgroups(tmp_path: Path) -> None:
    (tmp_path / "cgroup.procs").write_text("1\n2\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/cgroup.procs").write_text("3\n")
    assert sorted(cgroups.pids({"devices": str(tmp_path)})) == [1, 2, 3]
    assert cgroups.pids({"devices": str(tmp_path / "gone")}) == []


def test_frozen_state_is_read_from_the_v1_freezer(tmp_path: Path) -> None:
    (tmp_path / "freezer.state").write_text("FROZEN\n")
    assert cgroups.is_frozen({"freezer": str(tmp_path)})
    (tmp_path / "freezer.state").write_text("THAWED\n")
    assert not cgroups.is_frozen({"freezer": str(tmp_path)})
    assert not cgroups.is_frozen({})
