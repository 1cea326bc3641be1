"""update's request parsing and merging, events' duration parsing, and stats from cgroup v1 files (no root)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hull.runtime import cgroup_stats
from hull.runtime.cgroup_resources import HostFacts, plan
from hull.runtime.errors import RuntimeFailure
from hull.runtime.events import parse_duration
from hull.runtime.update import (
    merged,
    parse_int,
    parse_uint,
    ram_in_bytes,
    request_from_flags,
    request_from_json,
    runc_view,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("64m", 64 << 20),
        ("64M", 64 << 20),
        ("64mb", 64 << 20),
        ("64MiB", 64 << 20),
        ("1.5g", 3 << 29),
        ("512 k", 512 << 10),
        ("100", 100),
        ("100b", 100),
        ("2t", 2 << 40),
    ],
)
def test_ram_in_bytes_as_go_units(text: str, value: int) -> None:
    assert ram_in_bytes(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "invalid size: 'abc'"),
        ("10x", "invalid size: '10x'"),
        ("-5m", "invalid size: '-5m'"),
        ("5  m", "invalid size: '5  m'"),
        ("1.2.3m", 'strconv.ParseFloat: parsing "1.2.3": invalid syntax'),
    ],
)
def test_ram_in_bytes_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        ram_in_bytes(text)


def test_go_integer_parsing() -> None:
    assert parse_uint("100000") == 100000
    assert parse_int("-1") == -1
    with pytest.raises(ValueError, match='strconv.ParseUint: parsing "-5": invalid syntax'):
        parse_uint("-5")
    with pytest.raises(ValueError, match="value out of range"):
        parse_uint(str(1 << 64))
    with pytest.raises(ValueError, match='strconv.ParseInt: parsing "x": invalid syntax'):
        parse_int("x")


def test_request_from_flags_leaves_unset_fields_zero() -> None:
    request = request_from_flags({"memory": "64m", "cpu-quota": "20000", "cpuset-cpus": "0"}, pids_limit=20)
    assert request["memory"] == {"limit": 64 << 20, "reservation": 0, "swap": 0, "kernel": 0, "kernelTCP": 0}
    assert request["cpu"]["quota"] == 20000 and request["cpu"]["period"] == 0 and request["cpu"]["cpus"] == "0"
    assert request["pids"]["limit"] == 20
    assert request_from_flags({"memory-swap": "-1"})["memory"]["swap"] == -1
    # runc converts the int flag to a uint16.
    assert request_from_flags({}, blkio_weight=70000)["blockIO"]["weight"] == 4464


def test_request_from_flags_errors_name_the_flag() -> None:
    with pytest.raises(RuntimeFailure, match="^invalid value for memory: invalid size: 'abc'$"):
        request_from_flags({"memory": "abc"})
    with pytest.raises(RuntimeFailure, match="^invalid value for cpu-period: strconv.ParseUint"):
        request_from_flags({"cpu-period": "-5"})


def test_request_from_json() -> None:
    request = request_from_json(b'{"memory": {"limit": 1048576}, "pids": {"limit": -1}, "devices": []} trailing')
    assert request["memory"]["limit"] == 1048576 and request["pids"]["limit"] == -1
    assert request["cpu"]["shares"] == 0


GO = "json: cannot unmarshal "


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "EOF"),
        (b'{"memory": ', "unexpected EOF"),
        (b"[1]", GO + "array into Go value of type specs.LinuxResources"),
        (b'{"memory": {"limit": "abc"}}', GO + "string into Go struct field LinuxMemory.memory.limit of type int64"),
        (b'{"memory": {"limit": 1.5}}', GO + "number 1.5 into Go struct field LinuxMemory.memory.limit of type int64"),
        (b'{"cpu": {"shares": -1}}', GO + "number -1 into Go struct field LinuxCPU.cpu.shares of type uint64"),
        (b'{"blockIO": {"weight": 70000}}',
         GO + "number 70000 into Go struct field LinuxBlockIO.blockIO.weight of type uint16"),
        (b'{"pids": 5}', GO + "number into Go struct field LinuxResources.pids of type specs.LinuxPids"),
    ],
)  # fmt: skip
def test_request_from_json_errors_in_gos_words(data: bytes, message: str) -> None:
    with pytest.raises(RuntimeFailure) as info:
        request_from_json(data)
    assert str(info.value) == message


OLD: dict[str, Any] = {
    "devices": [{"allow": False, "access": "rwm"}],
    "memory": {"limit": 104857600, "swap": 209715200, "swappiness": 10},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000},
    "pids": {"limit": 42},
}


def test_runc_view_writes_only_what_was_asked_plus_what_update_never_touches() -> None:
    view = runc_view(OLD, request_from_flags({"memory": "64m"}, pids_limit=20))
    writes = [w for w in plan(view, HostFacts(memory_limit=104857600)) if w[0] != "devices"]
    # swappiness is outside update's fields: runc's Set writes it again from the config.
    assert writes == [
        ("memory", "memory.limit_in_bytes", "67108864"),
        ("memory", "memory.swappiness", "10"),
        ("pids", "pids.max", "20"),
    ]
    assert OLD["memory"]["limit"] == 104857600  # the recorded resources are not modified in place


def test_runc_view_quota_alone_keeps_the_recorded_period() -> None:
    view = runc_view(OLD, request_from_flags({"cpu-quota": "20000"}))
    assert (view["cpu"]["quota"], view["cpu"]["period"]) == (20000, 100000)
    view = runc_view(OLD, request_from_flags({}))
    assert (view["cpu"]["quota"], view["cpu"]["period"]) == (0, 0)


def test_memory_raised_above_current_limit_with_swap_goes_swap_first() -> None:
    view = runc_view(OLD, request_from_flags({"memory": "300m", "memory-swap": "400m"}))
    writes = [w[1] for w in plan(view, HostFacts(memory_limit=104857600)) if w[0] == "memory"]
    assert writes[:2] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]


def test_merged_keeps_omitted_values() -> None:
    result = merged(OLD, request_from_flags({"memory": "64m"}, pids_limit=20))
    assert result["memory"] == {"limit": 64 << 20, "swap": 209715200, "swappiness": 10}
    assert result["pids"] == {"limit": 20}
    assert result["cpu"] == OLD["cpu"]
    assert merged(OLD, request_from_flags({"kernel-memory": "1m"}))["memory"] == OLD["memory"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("5s", 5.0), ("250ms", 0.25), ("1m30s", 90.0), ("1.5h", 5400.0), ("0", 0.0), ("-1s", -1.0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["abc", "5", "", "1.2.3s", "5x", "s"])
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# -- stats --------------------------------------------------------------------------------

# What these files held for a runc 1.1.5 container on this host (hybrid v1, BFQ, no hugetlb hierarchy).
FILES = {
    "cpuacct": {
        "cpuacct.stat": "user 3\nsystem 5\n",
        "cpuacct.usage": "8161489\n",
        "cpuacct.usage_percpu": "8161489 0 \n",
        "cpuacct.usage_all": "cpu user system\n0 4000000 8000000\n1 0 0\n",
    },
    "cpu": {"cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"},
    "cpuset": {
        "cpuset.cpus": "0-1\n",
        "cpuset.mems": "0\n",
        "cpuset.sched_load_balance": "1\n",
        "cpuset.sched_relax_domain_level": "-1\n",
        "cpuset.cpu_exclusive": "0\n",
    },
    "memory": {
        "memory.stat": "cache 0\nrss 49152\ntotal_rss 49152\n",
        **{f"memory.{n}": v for n, v in (("usage_in_bytes", "708608"), ("max_usage_in_bytes", "2220032"),
                                         ("failcnt", "0"), ("limit_in_bytes", "104857600"))},
        **{f"memory.memsw.{n}": v for n, v in (("usage_in_bytes", "708608"), ("max_usage_in_bytes", "2220032"),
                                               ("failcnt", "0"), ("limit_in_bytes", "9223372036854771712"))},
    },
    "pids": {"pids.current": "1\n", "pids.max": "max\n"},
    "blkio": {
        "blkio.bfq.io_serviced_recursive": "Total 0\n",
        "blkio.throttle.io_serviced_recursive": "8:0 Read 2\n8:0 Write 0\n8:0 Total 2\nTotal 2\n",
        "blkio.throttle.io_service_bytes_recursive": "8:0 Read 8192\n8:0 Total 8192\nTotal 8192\n",
    },
}  # fmt: skip


def cgroup_tree(tmp_path: Path) -> dict[str, str]:
    paths = {}
    for controller, files in FILES.items():
        directory = tmp_path / controller
        directory.mkdir()
        for name, text in files.items():
            (directory / name).write_text(text)
        paths[controller] = str(directory)
    return paths


def test_stats_shape_and_values(tmp_path: Path) -> None:
    data = cgroup_stats.stats(cgroup_tree(tmp_path), hugepage_sizes=[])
    assert list(data) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"]
    assert data["cpu"] == {
        "usage": {
            "total": 8161489,
            "percpu": [8161489, 0],
            "percpu_kernel": [8000000, 0],
            "percpu_user": [4000000, 0],
            "kernel": 50000000,
            "user": 30000000,
        },
        "throttling": {},
    }
    assert data["cpuset"]["cpus"] == [0, 1] and data["cpuset"]["sched_relax_domain_level"] == -1
    memory = data["memory"]
    assert "cache" not in memory  # omitempty
    assert memory["usage"] == {"limit": 104857600, "usage": 708608, "max": 2220032, "failcnt": 0}
    assert memory["kernel"] == {"limit": 0, "failcnt": 0}  # no kmem files: runc's zero entry
    assert list(memory["raw"]) == ["cache", "rss", "total_rss"]
    assert data["pids"] == {"current": 1}  # "max" is reported as no limit, and omitted
    # BFQ's counters are empty, so runc falls through to the throttle ones; op "Total" rows are kept.
    assert data["blkio"] == {
        "ioServiceBytesRecursive": [
            {"major": 8, "op": "Read", "value": 8192},
            {"major": 8, "op": "Total", "value": 8192},
        ],
        "ioServicedRecursive": [
            {"major": 8, "op": "Read", "value": 2},
            {"major": 8, "op": "Write"},
            {"major": 8, "op": "Total", "value": 2},
        ],
    }
    assert data["hugetlb"] == {} and data["intel_rdt"] == {} and data["network_interfaces"] is None
    assert json.dumps(data)  # encodable as is


def test_stats_of_a_removed_cgroup_are_empty_not_an_error(tmp_path: Path) -> None:
    paths = {c: str(tmp_path / "gone" / c) for c in FILES}
    data = cgroup_stats.stats(paths, hugepage_sizes=[])
    assert data["pids"] == {} and data["blkio"] == {} and "raw" not in data["memory"]


def test_stats_parse_errors_name_the_file(tmp_path: Path) -> None:
    paths = cgroup_tree(tmp_path)
    (tmp_path / "pids" / "pids.current").write_text("lots\n")
    with pytest.raises(RuntimeFailure, match=r"unable to parse .*/pids/pids.current: strconv.ParseUint"):
        cgroup_stats.stats(paths, hugepage_sizes=[])


def test_hugepage_size_names() -> None:
    assert cgroup_stats.hugepage_sizes(["hugepages-2048kB", "hugepages-1048576kB", "hugepages-64kB", "x"]) == [
        "2MB",
        "1GB",
        "64KB",
    ]


def test_cpu_list() -> None:
    assert cgroup_stats.parse_cpu_list("0-2,5") == [0, 1, 2, 5]
    with pytest.raises(RuntimeFailure, match="min > max"):
        cgroup_stats.parse_cpu_list("3-1")
