"""linux.resources -> cgroup v1 writes: runc 1.1's files, values and order, and errors naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from hull.runtime.cgroup_resources import HostFacts, emulate, parse_devices_list, plan, warnings
from hull.runtime.errors import ConfigError

DENY_ALL = [{"allow": False, "access": "rwm"}]

# devices.list after runc 1.1.5 created a container from `runc spec`'s rules on this host.
RUNC_DEFAULT_DEVICES_LIST = """b *:* m
c *:* m
c 1:3 rwm
c 1:5 rwm
c 1:7 rwm
c 1:8 rwm
c 1:9 rwm
c 5:0 rwm
c 5:2 rwm
c 10:200 rwm
c 136:* rwm
"""


def writes(resources: dict[str, Any], controller: str | None = None, **facts: Any) -> list[tuple[str, str, str]]:
    result = plan({"devices": DENY_ALL, **resources}, HostFacts(**facts))
    return [w for w in result if controller is None or w[0] == controller]


def test_default_devices_end_as_runc_leaves_devices_list() -> None:
    result = writes({}, "devices")
    assert result[0] == ("devices", "devices.deny", "a *:* rwm")
    assert [w[2] for w in result[1:]] == RUNC_DEFAULT_DEVICES_LIST.splitlines()
    assert {w[1] for w in result[1:]} == {"devices.allow"}


def test_a_linux_devices_path_replaces_the_default_rule_for_it() -> None:
    result = plan({"devices": DENY_ALL}, HostFacts(), frozenset({"/dev/null"}))
    assert ("devices", "devices.allow", "c 1:3 rwm") not in result


def test_config_rules_apply_in_order_before_the_defaults() -> None:
    rules = [*DENY_ALL, {"allow": True, "type": "c", "major": 4, "minor": 1, "access": "rw"}]
    rules.append({"allow": False, "type": "c", "major": 4, "minor": 1, "access": "w"})
    result = writes({"devices": rules}, "devices")
    assert ("devices", "devices.allow", "c 4:1 r") in result


def test_update_of_devices_writes_only_the_difference() -> None:
    current = parse_devices_list(RUNC_DEFAULT_DEVICES_LIST)
    rules = [*DENY_ALL, {"allow": True, "type": "c", "major": 4, "minor": 1, "access": "rwm"}]
    result = writes({"devices": rules}, "devices", devices=current)
    # Never through deny-all under a running container.
    assert result == [("devices", "devices.allow", "c 4:1 rwm")]


def test_emulator_allow_all_then_deny() -> None:
    assert emulate([(True, "a", -1, -1, "rwm"), (False, "c", 1, 3, "w")]) == (True, {("c", 1, 3): "w"})


def test_memory_limit_then_swap_then_the_rest() -> None:
    memory = {"limit": 100, "swap": 200, "reservation": 50, "swappiness": 10, "disableOOMKiller": True}
    assert writes({"memory": memory}, "memory") == [
        ("memory", "memory.limit_in_bytes", "100"),
        ("memory", "memory.memsw.limit_in_bytes", "200"),
        ("memory", "memory.soft_limit_in_bytes", "50"),
        ("memory", "memory.oom_control", "1"),
        ("memory", "memory.swappiness", "10"),
    ]


def test_swap_goes_first_when_raised_above_the_current_limit() -> None:
    result = writes({"memory": {"limit": 300, "swap": 400}}, "memory", memory_limit=100)
    assert [w[1] for w in result] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]


def test_unlimited_memory_unlimits_swap_when_accounted() -> None:
    assert writes({"memory": {"limit": -1}}, "memory")[0] == ("memory", "memory.memsw.limit_in_bytes", "-1")
    assert writes({"memory": {"limit": -1}}, "memory", swap_accounting=False) == [
        ("memory", "memory.limit_in_bytes", "-1")
    ]


def test_kernel_memory_is_ignored_with_runcs_warning() -> None:
    memory = {"kernel": 1000, "kernelTCP": 1000}
    assert writes({"memory": memory}, "memory") == []
    assert warnings({"memory": memory}) == ["Kernel memory settings are ignored and will be removed"]


def test_cpu() -> None:
    cpu = {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}
    cpu |= {"realtimeRuntime": 1000, "realtimePeriod": 1000000}
    assert writes({"cpu": cpu}) == [
        ("cpuset", "cpuset.cpus", "0"),
        ("cpuset", "cpuset.mems", "0"),
        *writes({}, "devices"),
        ("cpu", "cpu.shares", "512"),
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
        ("cpu", "cpu.rt_period_us", "1000000"),
        ("cpu", "cpu.rt_runtime_us", "1000"),
    ]


@pytest.mark.parametrize(("limit", "expected"), [(42, ["42"]), (-1, ["max"]), (0, [])])
def test_pids(limit: int, expected: list[str]) -> None:
    assert [w[2] for w in writes({"pids": {"limit": limit}}, "pids")] == expected


def test_blkio_uses_bfq_files_without_cfq() -> None:
    blkio = {
        "weight": 300,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 500}],
        "throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": 254, "minor": 0, "rate": 100}],
    }
    assert writes({"blockIO": blkio}, "blkio", blkio_weight_prefix="blkio.bfq.") == [
        ("blkio", "blkio.bfq.weight", "300"),
        ("blkio", "blkio.bfq.weight_device", "8:0 500"),
        ("blkio", "blkio.throttle.read_bps_device", "254:0 1048576"),
        ("blkio", "blkio.throttle.write_iops_device", "254:0 100"),
    ]


def test_hugetlb_network_rdma() -> None:
    resources = {
        "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
        "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
    }
    assert writes(resources)[-4:] == [
        ("hugetlb", "hugetlb.2MB.limit_in_bytes", "2097152"),
        ("net_cls", "net_cls.classid", "1048577"),
        ("net_prio", "net_prio.ifpriomap", "eth0 5"),
        ("rdma", "rdma.max", "mlx5_1 hca_handle=3 hca_object=10000"),
    ]


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"memory": {"limit": "1G"}}, "linux.resources.memory.limit: must be an integer, got str"),
        ({"memory": {"swappiness": 200}}, "linux.resources.memory.swappiness: invalid memory swappiness value: 200"),
        ({"cpu": {"shares": -5}}, "linux.resources.cpu.shares: -5 is out of range"),
        ({"cpu": {"cpus": 3}}, "linux.resources.cpu.cpus: must be a string, got int"),
        ({"pids": {"limit": True}}, "linux.resources.pids.limit: must be an integer, got bool"),
        ({"devices": [{"allow": True}]}, "linux.resources.devices[0].access: device access at 0 field cannot be empty"),
        ({"devices": [{"allow": True, "type": "x", "access": "r"}]}, "linux.resources.devices[0].type: invalid"),
        ({"devices": [{"allow": True, "access": "rx"}]}, "linux.resources.devices[0].access: invalid device perm"),
        ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "linux.resources.hugepageLimits[0].pageSize:"),
        ({"unified": {"memory.max": "1"}}, "cannot use unified on cgroup v1"),
    ],
)
def test_invalid_values_name_the_field(resources: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        plan(resources, HostFacts())
    assert message in str(err.value)


def test_empty_unified_is_accepted_as_by_runc() -> None:
    assert plan({"unified": {}}, HostFacts()) == plan({}, HostFacts())
