"""linux.resources on cgroup v2 as runc 1.1's fs2: the write plan, its conversions, a fake cgroup tree, stats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hull.runtime import cgroup_stats, cgroup_v2, cgroup_v2_stats, cgroups, events_v2
from hull.runtime.errors import ConfigError, SetupError

NO_BFQ = cgroup_v2.Facts()
BFQ_OLD = cgroup_v2.Facts(bfq_weight=True)
BFQ = cgroup_v2.Facts(bfq_weight=True, bfq_device_weight=True)
DEV = {"major": 8, "minor": 0}


@pytest.mark.parametrize(
    ("resources", "facts", "writes"),
    [
        ({}, NO_BFQ, []),
        ({"pids": {"limit": 42}}, NO_BFQ, [("pids.max", "42")]),
        ({"pids": {"limit": -1}}, NO_BFQ, [("pids.max", "max")]),
        ({"pids": {"limit": 0}}, NO_BFQ, []),
        # memory: OCI swap is memory+swap; v2's memory.swap.max is swap alone (runc writes it first).
        ({"memory": {"limit": 100, "swap": 300}}, NO_BFQ, [("memory.swap.max", "200"), ("memory.max", "100")]),
        ({"memory": {"limit": 100, "swap": 100}}, NO_BFQ, [("memory.swap.max", "0"), ("memory.max", "100")]),
        ({"memory": {"limit": 100, "swap": -1}}, NO_BFQ, [("memory.swap.max", "max"), ("memory.max", "100")]),
        ({"memory": {"limit": -1}}, NO_BFQ, [("memory.swap.max", "max"), ("memory.max", "max")]),
        ({"memory": {"limit": 100}}, NO_BFQ, [("memory.max", "100")]),
        ({"memory": {"reservation": 50}}, NO_BFQ, [("memory.low", "50")]),
        ({"memory": {"swappiness": 10, "disableOOMKiller": True}}, NO_BFQ, []),  # no v2 file: ignored as runc
        # io: BFQ's weight is the blkio one; io.weight gets runc's [10,1000] -> [1,10000] conversion.
        ({"blockIO": {"weight": 500}}, NO_BFQ, [("io.weight", "4950")]),
        ({"blockIO": {"weight": 10}}, NO_BFQ, [("io.weight", "1")]),
        ({"blockIO": {"weight": 1000}}, NO_BFQ, [("io.weight", "10000")]),
        ({"blockIO": {"weight": 500}}, BFQ_OLD, [("io.bfq.weight", "500")]),
        ({"blockIO": {"weightDevice": [{**DEV, "weight": 300}]}}, BFQ, [("io.bfq.weight", "8:0 300\n")]),
        ({"blockIO": {"weightDevice": [{**DEV, "weight": 300}]}}, BFQ_OLD, []),
        ({"blockIO": {"leafWeight": 300}}, BFQ, []),
        ({"blockIO": {"throttleReadBpsDevice": [{**DEV, "rate": 1024}],
                      "throttleWriteBpsDevice": [{**DEV, "rate": 2048}],
                      "throttleReadIOPSDevice": [{**DEV, "rate": 10}],
                      "throttleWriteIOPSDevice": [{**DEV, "rate": 20}]}}, NO_BFQ,
         [("io.max", "8:0 rbps=1024"), ("io.max", "8:0 wbps=2048"), ("io.max", "8:0 riops=10"),
          ("io.max", "8:0 wiops=20")]),
        # cpu: shares -> weight (runc's [2,262144] -> [1,10000]), quota/period -> cpu.max.
        ({"cpu": {"shares": 1024}}, NO_BFQ, [("cpu.weight", "39")]),
        ({"cpu": {"shares": 2}}, NO_BFQ, [("cpu.weight", "1")]),
        ({"cpu": {"shares": 262144}}, NO_BFQ, [("cpu.weight", "10000")]),
        ({"cpu": {"quota": 50000, "period": 100000}}, NO_BFQ, [("cpu.max", "50000 100000")]),
        ({"cpu": {"quota": 50000}}, NO_BFQ, [("cpu.max", "50000 100000")]),
        ({"cpu": {"quota": -1, "period": 20000}}, NO_BFQ, [("cpu.max", "max 20000")]),
        ({"cpu": {"period": 20000}}, NO_BFQ, [("cpu.max", "max 20000")]),
        ({"cpu": {"realtimeRuntime": 10, "realtimePeriod": 100}}, NO_BFQ, []),
        ({"cpu": {"cpus": "0-1", "mems": "0"}}, NO_BFQ, [("cpuset.cpus", "0-1"), ("cpuset.mems", "0")]),
        ({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}, NO_BFQ, [("hugetlb.2MB.max", "4194304")]),
        ({"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}}}, NO_BFQ,
         [("rdma.max", "mlx5_1 hca_handle=3 hca_object=10000")]),
        ({"unified": {"memory.high": "1000000", "io.weight": "default 100"}}, NO_BFQ,
         [("memory.high", "1000000"), ("io.weight", "default 100")]),
        # runc's order: pids, memory, io, cpu, (devices), cpuset, hugetlb, rdma, unified.
        ({"unified": {"pids.max": "9"}, "cpu": {"cpus": "0", "shares": 1024}, "pids": {"limit": 3},
          "memory": {"limit": 100}, "blockIO": {"weight": 100}}, NO_BFQ,
         [("pids.max", "3"), ("memory.max", "100"), ("io.weight", "910"), ("cpu.weight", "39"),
          ("cpuset.cpus", "0"), ("pids.max", "9")]),
    ],
)  # fmt: skip
def test_plan(resources: dict[str, Any], facts: cgroup_v2.Facts, writes: list[tuple[str, str]]) -> None:
    assert cgroup_v2.plan(resources, facts, devices=False) == writes


def test_devices_marker_between_cpu_and_cpuset() -> None:
    writes = cgroup_v2.plan({"cpu": {"shares": 1024, "cpus": "0"}}, NO_BFQ)
    assert writes == [("cpu.weight", "39"), (cgroup_v2.DEVICES, ""), ("cpuset.cpus", "0")]


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"memory": {"swap": 300}}, "linux.resources.memory.swap: unable to set swap limit without memory limit"),
        ({"memory": {"limit": -1, "swap": 300}}, "unable to set swap limit without memory limit"),
        ({"memory": {"limit": 300, "swap": 100}}, "memory+swap limit should be >= memory limit"),
        ({"memory": {"limit": -5, "swap": 100}}, "invalid memory value: -5"),
        ({"unified": {"../memory.max": "1"}}, 'unified resource "../memory.max" must be a file name (no slashes)'),
        ({"unified": {"memory.max": 1}}, "linux.resources.unified.memory.max"),
        ({"pids": {"limit": "x"}}, "linux.resources.pids.limit"),
        ({"hugepageLimits": [{"pageSize": "2XB", "limit": 1}]}, "linux.resources.hugepageLimits[0].pageSize"),
    ],
)
def test_plan_errors(resources: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        cgroup_v2.plan(resources, NO_BFQ)
    assert message in str(err.value)


def test_conversions_match_runc() -> None:
    # The ends of the ranges as runc's utils_test.go; the middle by its formulas (integer division).
    assert [cgroup_v2.cpu_weight(s) for s in (0, 2, 1024, 262144)] == [0, 1, 39, 10000]
    assert [cgroup_v2.io_weight(w) for w in (0, 10, 500, 1000)] == [0, 1, 4950, 10000]
    assert cgroup_v2.swap_max(0, 100) == 0
    assert cgroup_v2.swap_max(-1, 100) == -1
    assert cgroup_v2.swap_max(0, -1) == -1
    assert cgroup_v2.swap_max(500, 200) == 300


# -- a fake cgroup v2 tree --------------------------------------------------------------

FILES = (
    "cgroup.controllers cgroup.subtree_control cgroup.type cgroup.procs pids.max memory.max memory.swap.max"
    " memory.low cpu.weight cpu.max io.weight io.max cpuset.cpus cpuset.mems hugetlb.2MB.max memory.high"
).split()


def fake_cgroup(path: Path, controllers: str = "cpuset cpu io memory hugetlb pids rdma") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (path / name).write_text("")
    (path / "cgroup.controllers").write_text(controllers + "\n")
    (path / "cgroup.type").write_text("domain\n")
    return path


def test_apply_writes_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    leaf = fake_cgroup(tmp_path / "c1")
    attached: list[tuple[str, frozenset[str], bool]] = []
    import hull.runtime.device_filter as device_filter

    monkeypatch.setattr(device_filter, "apply", lambda p, r, d, rootless: attached.append((p, d, rootless)))
    resources = {"memory": {"limit": 100, "swap": 300}, "cpu": {"quota": 5000, "cpus": "0"}, "pids": {"limit": 5}}
    cgroups.apply({"": str(leaf)}, resources, frozenset({"/dev/fuse"}))
    got = {n: (leaf / n).read_text() for n in ("memory.max", "memory.swap.max", "cpu.max", "cpuset.cpus", "pids.max")}
    assert got == {
        "memory.max": "100",
        "memory.swap.max": "200",
        "cpu.max": "5000 100000",
        "cpuset.cpus": "0",
        "pids.max": "5",
    }
    assert attached == [(str(leaf), frozenset({"/dev/fuse"}), False)]
    attached.clear()
    cgroups.apply({"": str(leaf)}, {"pids": {"limit": 6}}, skip_devices=True)  # update: devices left alone
    assert attached == []
    assert (leaf / "pids.max").read_text() == "6"


def test_write_errors(tmp_path: Path) -> None:
    leaf = fake_cgroup(tmp_path / "c1", controllers="cpu")
    (leaf / "pids.max").unlink()  # the pids controller is not enabled here
    with pytest.raises(SetupError) as err:
        cgroup_v2.apply(str(leaf), {"pids": {"limit": 5}}, skip_devices=True)
    assert str(err.value) == (
        f"unable to apply cgroup configuration: openat2 {leaf}/pids.max: no such file or directory"
    )
    with pytest.raises(SetupError) as err:
        cgroup_v2.apply(str(leaf), {"unified": {"memory.oom.group": "1"}}, skip_devices=True)
    assert str(err.value) == (
        'unable to apply cgroup configuration: unified resource "memory.oom.group" can\'t be set:'
        ' controller "memory" not available'
    )
    with pytest.raises(SetupError, match='unified resource "nodot" must be in the form CONTROLLER.PARAMETER'):
        cgroup_v2.apply(str(leaf), {"unified": {"nodot": "1"}}, skip_devices=True)
    with pytest.raises(SetupError, match='unable to set unified resource "cpu.nosuch": openat2 .*no such file'):
        cgroup_v2.apply(str(leaf), {"unified": {"cpu.nosuch": "1"}}, skip_devices=True)


def test_threaded_cgroup_refuses_domain_controllers(tmp_path: Path) -> None:
    leaf = fake_cgroup(tmp_path / "c1")
    (leaf / "cgroup.type").write_text("threaded\n")
    with pytest.raises(SetupError, match=r'cannot enter cgroupv2 ".*c1" with domain controllers -- it is in threaded'):
        cgroup_v2.apply(str(leaf), {"memory": {"limit": 100}}, skip_devices=True)
    cgroup_v2.apply(str(leaf), {"pids": {"limit": 3}}, skip_devices=True)  # pids is thread-aware
    (leaf / "cgroup.type").write_text("domain invalid\n")
    cgroup_v2.apply(str(leaf), {"pids": {"limit": 3}}, skip_devices=True)
    # runc makes it threaded (the fake file is not truncated by the write, as cgroupfs needs no truncation).
    assert (leaf / "cgroup.type").read_text().startswith("threaded")


def test_enable_controllers_top_down(tmp_path: Path) -> None:
    root = fake_cgroup(tmp_path / "root", controllers="cpu memory pids")
    mid = fake_cgroup(root / "a")
    fake_cgroup(mid / "leaf")
    cgroup_v2.enable_controllers(str(mid / "leaf"), mount=str(root))
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (mid / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (mid / "leaf" / "cgroup.subtree_control").read_text() == ""  # not the leaf itself


def test_facts_bfq(tmp_path: Path) -> None:
    assert cgroup_v2.facts(str(tmp_path)) == NO_BFQ
    (tmp_path / "io.bfq.weight").write_text("100\n")
    assert cgroup_v2.facts(str(tmp_path)) == BFQ_OLD
    (tmp_path / "io.bfq.weight").write_text("default 100\n")
    assert cgroup_v2.facts(str(tmp_path)) == BFQ


# -- stats --------------------------------------------------------------------------------

MEMORY_STAT = "anon 1000\nfile 4096\nkernel 300\n"
CPU_STAT = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 7\n"
IO_STAT = "8:0 rbytes=4096 wbytes=0 rios=2 wios=0 dbytes=0 dios=0\n253:1 rbytes=1 wbytes=2 rios=3 wios=4\n"


def stats_tree(tmp_path: Path) -> Path:
    files = {
        "memory.stat": MEMORY_STAT,
        "memory.current": "8192\n",
        "memory.max": "1048576\n",
        "memory.swap.current": "100\n",
        "memory.swap.max": "max\n",
        "cpu.stat": CPU_STAT,
        "pids.current": "3\n",
        "pids.max": "max\n",
        "io.stat": IO_STAT,
        "hugetlb.2MB.current": "0\n",
        "hugetlb.2MB.events": "max 2\n",
        "hugetlb.1GB.current": "1073741824\n",
        "hugetlb.1GB.events": "max 0\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_stats_shape(tmp_path: Path) -> None:
    path = str(stats_tree(tmp_path))
    got = cgroup_stats.stats({"": path}, ["2MB", "1GB"])
    assert got["cpu"] == {
        "usage": {"total": 1_500_000, "kernel": 500_000, "user": 1_000_000},
        "throttling": {"periods": 4, "throttledPeriods": 1, "throttledTime": 7000},
    }
    assert got["memory"] == {
        "cache": 4096,
        "usage": {"limit": 1048576, "usage": 8192, "failcnt": 0},
        "swap": {"limit": (1 << 64) - 1, "usage": 8292, "failcnt": 0},  # memory+swap, as v1
        "kernel": {"limit": 0, "failcnt": 0},
        "kernelTCP": {"limit": 0, "failcnt": 0},
        "raw": {"anon": 1000, "file": 4096, "kernel": 300},
    }
    assert got["pids"] == {"current": 3}
    assert got["blkio"] == {
        "ioServiceBytesRecursive": [
            {"major": 8, "op": "Read", "value": 4096},
            {"major": 8, "op": "Write"},
            {"major": 253, "minor": 1, "op": "Read", "value": 1},
            {"major": 253, "minor": 1, "op": "Write", "value": 2},
        ],
        "ioServicedRecursive": [
            {"major": 8, "op": "Read", "value": 2},
            {"major": 8, "op": "Write"},
            {"major": 253, "minor": 1, "op": "Read", "value": 3},
            {"major": 253, "minor": 1, "op": "Write", "value": 4},
        ],
    }
    assert got["hugetlb"] == {"1GB": {"usage": 1073741824, "failcnt": 0}, "2MB": {"failcnt": 2}}
    assert list(got) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"]
    assert got["cpuset"] == cgroup_stats.stats({}, [])["cpuset"]  # fs2 reports the zero struct


def test_stats_swap_limit_adds_memory(tmp_path: Path) -> None:
    stats_tree(tmp_path)
    (tmp_path / "memory.swap.max").write_text("1000\n")
    got = cgroup_v2_stats.stats(str(tmp_path), [])
    assert got["memory"]["swap"]["limit"] == 1000 + 1048576


def test_stats_controllers_off(tmp_path: Path) -> None:
    # Only what every v2 cgroup has: missing controller files contribute nothing, pids come from cgroup.procs.
    (tmp_path / "cgroup.procs").write_text("10\n11\n")
    (tmp_path / "cpu.stat").write_text("usage_usec 0\nuser_usec 0\nsystem_usec 0\n")
    got = cgroup_v2_stats.stats(str(tmp_path), ["2MB"])
    assert got["pids"] == {"current": 2}
    assert got["memory"]["usage"] == {"limit": 0, "failcnt": 0}
    assert got["hugetlb"] == {} and got["blkio"] == {}


def test_stats_parse_error(tmp_path: Path) -> None:
    stats_tree(tmp_path)
    (tmp_path / "memory.stat").write_text("anon x\n")
    with pytest.raises(cgroup_stats.StatsError, match="error while statting cgroup v2: \\[unable to parse"):
        cgroup_v2_stats.stats(str(tmp_path), [])


def test_events_values() -> None:
    text = "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\noom_group_kill 0\n"
    assert events_v2.value_of(text, "oom_kill") == 1
    assert events_v2.value_of(text, "missing") == 0
    assert events_v2.value_of("populated 0\nfrozen 0\n", "populated") == 0


def test_events_needs_memory_events(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="unable to add inotify watch: no such file or directory"):
        events_v2.loop("c1", str(tmp_path), 1.0, dict, lambda e: None, lambda m: None)
