"""linux.resources (runtime-spec config-linux.md "Control groups") as cgroup v1 file writes.

Pure: ``plan`` turns the config's resources into an ordered list of
(controller, file, value) writes in runc 1.1's order (its fs subsystems:
cpuset, devices, memory, cpu, pids, blkio, hugetlb, net_cls, net_prio, rdma),
with the few facts it needs about the host cgroup passed in; cgroups.py
performs them. Invalid values raise ConfigError naming the field.
"""

from __future__ import annotations

from hull.oci._parse import SpecError, check
from hull.oci.records import record
from hull.runtime.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Write = tuple[str, str, str]  # controller, file, value
    Rules = dict[tuple[str, int, int], str]  # (type, major, minor) -> permissions

BASE = "linux.resources"
_I64 = 1 << 63
_U64 = 1 << 64
# runc 1.1's specconv.AllowedDevices, appended after the config's own rules
# (minus those whose path the config redefines in linux.devices): mknod of any
# device, then /dev/null, random, full, tty, zero, urandom, the pts devices,
# /dev/ptmx and /dev/net/tun.
_DEFAULT_RULES = [
    ("c", -1, -1, "m", "/"),
    ("b", -1, -1, "m", "/"),
    ("c", 1, 3, "rwm", "/dev/null"),
    ("c", 1, 8, "rwm", "/dev/random"),
    ("c", 1, 7, "rwm", "/dev/full"),
    ("c", 5, 0, "rwm", "/dev/tty"),
    ("c", 1, 5, "rwm", "/dev/zero"),
    ("c", 1, 9, "rwm", "/dev/urandom"),
    ("c", 136, -1, "rwm", "/"),
    ("c", 5, 2, "rwm", "/"),
    ("c", 10, 200, "rwm", "/"),
]


@record
class HostFacts:
    """What the plan depends on in the container's (possibly updated) cgroup."""

    memory_limit: int = _I64  # memory.limit_in_bytes now
    swap_accounting: bool = True  # memory.memsw.limit_in_bytes exists
    blkio_weight_prefix: str = "blkio."  # "blkio.bfq." where CFQ's blkio.weight is absent
    devices: tuple[bool, dict[tuple[str, int, int], str]] = (True, {})  # devices.list: default allow, rules


def _int(obj: dict[str, Any], key: str, path: str, low: int = -_I64, high: int = _I64) -> int:
    value = obj.get(key)
    if value is None:
        return 0
    where = f"{path}.{key}"
    number: int = _checked(value, int, where)
    if not low <= number < high:
        raise ConfigError(f"{where}: {number} is out of range")
    return number


def _checked(value: Any, kind: type, where: str) -> Any:
    try:
        return check(value, kind, where)
    except SpecError as err:
        raise ConfigError(str(err)) from None


def _obj(resources: dict[str, Any], key: str) -> dict[str, Any]:
    value = resources.get(key)
    return {} if value is None else _checked(value, dict, f"{BASE}.{key}")


def _items(obj: dict[str, Any], key: str, path: str) -> list[tuple[str, dict[str, Any]]]:
    value = obj.get(key)
    where = f"{path}.{key}"
    items = [] if value is None else _checked(value, list, where)
    return [(f"{where}[{i}]", _checked(item, dict, f"{where}[{i}]")) for i, item in enumerate(items)]


def warnings(resources: dict[str, Any]) -> list[str]:
    memory = resources.get("memory") or {}
    if memory.get("kernel") is not None or memory.get("kernelTCP") is not None:
        # runc 1.1 ignores kernel memory limits (deprecated by the kernel) with this warning.
        return ["Kernel memory settings are ignored and will be removed"]
    return []


def plan(resources: dict[str, Any], facts: HostFacts, device_paths: frozenset[str] = frozenset()) -> list[Write]:
    """The writes that apply ``resources``; ``device_paths`` are linux.devices[].path (see _DEFAULT_RULES)."""
    if resources.get("unified"):
        # runc: only the fs2 (unified) manager understands it.
        raise ConfigError(f"{BASE}.unified: invalid configuration: cannot use unified on cgroup v1")
    writes: list[Write] = []
    writes += _cpuset(_obj(resources, "cpu"))
    writes += _devices(resources, facts, device_paths)
    writes += _memory(_obj(resources, "memory"), facts)
    writes += _cpu(_obj(resources, "cpu"))
    writes += _pids(_obj(resources, "pids"))
    writes += _blkio(_obj(resources, "blockIO"), facts)
    writes += _hugetlb(resources)
    writes += _network(_obj(resources, "network"))
    writes += _rdma(_obj(resources, "rdma"))
    return writes


def _cpuset(cpu: dict[str, Any]) -> list[Write]:
    path = f"{BASE}.cpu"
    writes = []
    for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
        value = cpu.get(key)
        if value:
            writes.append(("cpuset", name, _checked(value, str, f"{path}.{key}")))
    return writes


def _memory(memory: dict[str, Any], facts: HostFacts) -> list[Write]:
    path = f"{BASE}.memory"
    limit = _int(memory, "limit", path)
    swap = _int(memory, "swap", path)
    reservation = _int(memory, "reservation", path)
    swappiness = memory.get("swappiness")
    if swappiness is not None:
        swappiness = _checked(swappiness, int, f"{path}.swappiness")
        if swappiness > 100 or swappiness < -1:
            raise ConfigError(
                f"{path}.swappiness: invalid memory swappiness value: {swappiness} (valid range is 0-100)"
            )
    oom = memory.get("disableOOMKiller")
    if oom is not None:
        _checked(oom, bool, f"{path}.disableOOMKiller")
    # runc's setMemoryAndSwap: an unlimited memory limit with no swap limit
    # unlimits swap too; and when both are set, swap goes first if it is
    # raised above the current limit (or unlimited), so that the kernel's
    # "memsw >= memory" check holds after each write.
    if limit == -1 and swap == 0 and facts.swap_accounting:
        swap = -1
    pair = [("memory", "memory.limit_in_bytes", limit), ("memory", "memory.memsw.limit_in_bytes", swap)]
    if limit and swap and (swap == -1 or facts.memory_limit < swap):
        pair.reverse()
    writes = [(c, f, str(v)) for c, f, v in pair if v]
    if reservation:
        writes.append(("memory", "memory.soft_limit_in_bytes", str(reservation)))
    if oom:
        writes.append(("memory", "memory.oom_control", "1"))
    if swappiness is not None and swappiness != -1:
        writes.append(("memory", "memory.swappiness", str(swappiness)))
    return writes


def _cpu(cpu: dict[str, Any]) -> list[Write]:
    path = f"{BASE}.cpu"
    shares = _int(cpu, "shares", path, 0, _U64)
    period = _int(cpu, "period", path, 0, _U64)
    quota = _int(cpu, "quota", path)
    rt_runtime = _int(cpu, "realtimeRuntime", path)
    rt_period = _int(cpu, "realtimePeriod", path, 0, _U64)
    writes = []
    if shares:
        writes.append(("cpu", "cpu.shares", str(shares)))
    # Period before quota; cgroups.apply retries the period after the quota
    # when the kernel refuses it first (runc's CpuGroup.Set does the same).
    if period:
        writes.append(("cpu", "cpu.cfs_period_us", str(period)))
    if quota:
        writes.append(("cpu", "cpu.cfs_quota_us", str(quota)))
    if cpu.get("idle") is not None:
        writes.append(("cpu", "cpu.idle", str(_int(cpu, "idle", path))))
    if rt_period:
        writes.append(("cpu", "cpu.rt_period_us", str(rt_period)))
    if rt_runtime:
        writes.append(("cpu", "cpu.rt_runtime_us", str(rt_runtime)))
    return writes


def _pids(pids: dict[str, Any]) -> list[Write]:
    limit = _int(pids, "limit", f"{BASE}.pids")
    if not limit:
        return []  # runc leaves a zero limit alone: the kernel's default, "max"
    return [("pids", "pids.max", "max" if limit < 0 else str(limit))]


def _blkio(blkio: dict[str, Any], facts: HostFacts) -> list[Write]:
    path = f"{BASE}.blockIO"
    prefix = facts.blkio_weight_prefix
    writes = []
    weight = _int(blkio, "weight", path, 0, 1 << 16)
    if weight:
        writes.append(("blkio", f"{prefix}weight", str(weight)))
    leaf = _int(blkio, "leafWeight", path, 0, 1 << 16)
    if leaf:
        writes.append(("blkio", "blkio.leaf_weight", str(leaf)))
    for where, dev in _items(blkio, "weightDevice", path):
        major, minor = _int(dev, "major", where), _int(dev, "minor", where)
        weight = _int(dev, "weight", where, 0, 1 << 16)
        leaf = _int(dev, "leafWeight", where, 0, 1 << 16)
        if weight:
            writes.append(("blkio", f"{prefix}weight_device", f"{major}:{minor} {weight}"))
        if leaf:
            writes.append(("blkio", "blkio.leaf_weight_device", f"{major}:{minor} {leaf}"))
    for key, name in (
        ("throttleReadBpsDevice", "read_bps_device"),
        ("throttleWriteBpsDevice", "write_bps_device"),
        ("throttleReadIOPSDevice", "read_iops_device"),
        ("throttleWriteIOPSDevice", "write_iops_device"),
    ):
        for where, dev in _items(blkio, key, path):
            rate = _int(dev, "rate", where, 0, _U64)
            writes.append(
                ("blkio", f"blkio.throttle.{name}", f"{_int(dev, 'major', where)}:{_int(dev, 'minor', where)} {rate}")
            )
    return writes


def _hugetlb(resources: dict[str, Any]) -> list[Write]:
    writes = []
    for where, limit in _items(resources, "hugepageLimits", BASE):
        size = _checked(limit.get("pageSize"), str, f"{where}.pageSize")
        if not size[:-2].isdigit() or size[-2:] not in ("KB", "MB", "GB"):
            raise ConfigError(f"{where}.pageSize: invalid hugepage size {size!r} (expected e.g. 2MB)")
        writes.append(("hugetlb", f"hugetlb.{size}.limit_in_bytes", str(_int(limit, "limit", where, 0, _U64))))
    return writes


def _network(network: dict[str, Any]) -> list[Write]:
    path = f"{BASE}.network"
    writes = []
    classid = _int(network, "classID", path, 0, 1 << 32)
    if classid:
        writes.append(("net_cls", "net_cls.classid", str(classid)))
    for where, prio in _items(network, "priorities", path):
        name = _checked(prio.get("name"), str, f"{where}.name")
        writes.append(("net_prio", "net_prio.ifpriomap", f"{name} {_int(prio, 'priority', where, 0, 1 << 32)}"))
    return writes


def _rdma(rdma: dict[str, Any]) -> list[Write]:
    writes = []
    for device, limits in rdma.items():
        where = f"{BASE}.rdma.{device}"
        _checked(limits, dict, where)
        parts = [device]
        for key, name in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")):
            if limits.get(key) is not None:
                parts.append(f"{name}={_int(limits, key, where, 0, 1 << 32)}")
        writes.append(("rdma", "rdma.max", " ".join(parts)))
    return writes


# -- devices: runc's v1 emulator, reduced to what a whitelist needs ----------


def device_rules(resources: dict[str, Any], device_paths: frozenset[str]) -> list[tuple[bool, str, int, int, str]]:
    """(allow, type, major, minor, access): the config's rules in order, then runc's defaults."""
    rules = []
    for where, dev in _items(resources, "devices", BASE):
        allow = _checked(dev.get("allow"), bool, f"{where}.allow")
        kind = _checked(dev.get("type") or "a", str, f"{where}.type")
        if kind not in ("a", "b", "c"):
            raise ConfigError(f"{where}.type: invalid cgroup device type {kind!r}")
        access = _checked(dev.get("access") or "", str, f"{where}.access")
        if not access:
            index = where.rsplit("[", 1)[1][:-1]
            raise ConfigError(f"{where}.access: device access at {index} field cannot be empty")
        if not set(access) <= set("rwm"):
            raise ConfigError(f"{where}.access: invalid device permissions {access!r} (expected r, w and m)")
        major = -1 if dev.get("major") is None else _int(dev, "major", where)
        minor = -1 if dev.get("minor") is None else _int(dev, "minor", where)
        rules.append((allow, kind, major, minor, access))
    for kind, major, minor, access, dev_path in _DEFAULT_RULES:
        if dev_path == "/" or dev_path not in device_paths:
            rules.append((True, kind, major, minor, access))
    return rules


def emulate(rules: list[tuple[bool, str, int, int, str]], default_allow: bool = True) -> tuple[bool, Rules]:
    """The cgroup state after writing ``rules`` in order to a cgroup that allows everything."""
    state: Rules = {}
    for allow, kind, major, minor, access in rules:
        if kind == "a":
            default_allow, state = allow, {}  # "a" resets the cgroup to allow- or deny-all
            continue
        key = (kind, major, minor)
        have = state.get(key, "")
        if allow != default_allow:
            state[key] = "".join(p for p in "rwm" if p in have or p in access)
        else:
            _check_no_hole(state, key, access, default_allow)
            left = "".join(p for p in have if p not in access)
            if left:
                state[key] = left
            else:
                state.pop(key, None)
    return default_allow, state


def _check_no_hole(state: Rules, key: tuple[str, int, int], access: str, default_allow: bool) -> None:
    # runc's Emulator.rmRule: an exception cannot be carved out of a wildcard one (the kernel's
    # devices cgroup cannot express it, and the eBPF filter keeps the same semantics).
    kind, major, minor = key
    for wider in ((kind, -1, minor), (kind, major, -1), (kind, -1, -1)):
        shared = "".join(p for p in state.get(wider, "") if p in access)
        if wider != key and shared:
            what = "deny" if default_allow else "allow"
            raise ConfigError(
                f"{BASE}.devices: unable to remove '{what}' exception: requested rule"
                f" [{{{ord(kind)} {major} {minor}}} {access}] not supported by devices cgroupv1"
                f" (cannot punch hole in existing wildcard rule"
                f" [{{{ord(kind)} {wider[1]} {wider[2]}}} {state[wider]}])"
            )


def parse_devices_list(text: str) -> tuple[bool, Rules]:
    """devices.list: "a *:* rwm" alone means allow-all (exceptions of a deny list are not shown)."""
    rules: Rules = {}
    for line in text.splitlines():
        kind, numbers, access = line.split()
        if kind == "a":
            return True, {}
        major, minor = numbers.split(":")
        rules[(kind, -1 if major == "*" else int(major), -1 if minor == "*" else int(minor))] = access
    return False, rules


def _rule_text(key: tuple[str, int, int], access: str) -> str:
    kind, major, minor = key
    return f"{kind} {'*' if major < 0 else major}:{'*' if minor < 0 else minor} {access}"


def _devices(resources: dict[str, Any], facts: HostFacts, device_paths: frozenset[str]) -> list[Write]:
    target_allow, target = emulate(device_rules(resources, device_paths))
    current_allow, current = facts.devices
    # As runc's Emulator.Transition: the fewest writes that reach the target,
    # so an update never passes through deny-all under a running container;
    # rules sorted (type, major, minor) as runc writes them.
    writes: list[Write] = []
    grant, revoke = ("devices", "devices.allow"), ("devices", "devices.deny")
    if current_allow != target_allow:
        writes.append((*(grant if target_allow else revoke), "a *:* rwm"))
        current = {}
    add = revoke if target_allow else grant
    remove = grant if target_allow else revoke
    for key in sorted(target):
        missing = "".join(p for p in target[key] if p not in current.get(key, ""))
        if missing:
            writes.append((*add, _rule_text(key, missing)))
    for key in sorted(current):
        extra = "".join(p for p in current[key] if p not in target.get(key, ""))
        if extra:
            writes.append((*remove, _rule_text(key, extra)))
    return writes
