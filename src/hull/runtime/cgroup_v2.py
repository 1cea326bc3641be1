"""linux.resources on a cgroup v2 (unified) host, as runc 1.1's fs2 driver.

``plan`` turns the config's resources into an ordered list of (file, value)
writes in the container's one cgroup directory, in the order of runc's
fs2 manager.Set: pids, memory, io, cpu, devices, cpuset, hugetlb, rdma, then
``unified``. The OCI fields were made for cgroup v1; runc converts them
(libcontainer/cgroups/utils.go): CPU shares to cpu.weight, the memory+swap
limit to a swap-only one, the blkio weight to io.weight where BFQ's
io.bfq.weight is absent. Fields v2 has no file for (swappiness,
disableOOMKiller, the realtime CPU values, leaf weights, network) are
ignored, as runc ignores them. Device rules are not a file on v2 but an eBPF
program (device_filter.py), attached where the DEVICES marker stands.
Invalid values raise ConfigError naming the field, before anything is written.
"""

from __future__ import annotations

import errno
import os

from hull.oci.records import record
from hull.runtime.cgroup_resources import BASE, _checked, _hugetlb, _int, _items, _obj, _rdma
from hull.runtime.errors import ConfigError, SetupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Write = tuple[str, str]  # file, value

MOUNT = "/sys/fs/cgroup"
DEVICES = "<devices>"  # where in the plan the device filter is attached (runc's order)
_U64 = 1 << 64
_UNABLE = "unable to apply cgroup configuration: "


@record
class Facts:
    """What the plan depends on in the container's cgroup directory."""

    bfq_weight: bool = False  # io.bfq.weight exists (the BFQ scheduler): the weight goes there, unconverted
    bfq_device_weight: bool = False  # it takes per-device weights (kernel 5.4+: it reads back more than a number)


def facts(path: str) -> Facts:
    found = Facts()
    try:
        with open(os.path.join(path, "io.bfq.weight")) as f:
            text = f.read(32).strip()
    except OSError:
        return found
    found.bfq_weight = True
    # runc's bfqDeviceWeightSupported: an old kernel reads back just the default weight.
    found.bfq_device_weight = not text.lstrip("-").isdigit()
    return found


# -- runc's conversions (libcontainer/cgroups/utils.go) -------------------------------


def cpu_weight(shares: int) -> int:
    """ConvertCPUSharesToCgroupV2Value: [2, 262144] onto [1, 10000], in Go's uint64 arithmetic."""
    if shares == 0:
        return 0
    return (1 + ((shares - 2) % _U64 * 9999 % _U64) // 262142) % _U64


def io_weight(blkio_weight: int) -> int:
    """ConvertBlkIOToIOWeightValue: [10, 1000] onto [1, 10000], in Go's uint64 arithmetic."""
    if blkio_weight == 0:
        return 0
    return (1 + ((blkio_weight - 10) % _U64 * 9999 % _U64) // 990) % _U64


def swap_max(swap: int, memory: int, where: str = f"{BASE}.memory.swap") -> int:
    """ConvertMemorySwapToCgroupV2Value: OCI's swap is memory+swap, cgroup v2's swap alone."""
    if memory == -1 and swap == 0:
        return -1  # "unlimited memory, swap unset" unlimits both, as on cgroup v1
    if swap in (-1, 0):
        return swap
    if memory in (0, -1):
        raise ConfigError(f"{where}: unable to set swap limit without memory limit")
    if memory < 0:
        raise ConfigError(f"{where}: invalid memory value: {memory}")
    if swap < memory:
        raise ConfigError(f"{where}: memory+swap limit should be >= memory limit")
    return swap - memory


def _num(value: int) -> str:
    # runc's numToStr for the .max/.low files: 0 is "leave alone", -1 "max".
    return "" if value == 0 else "max" if value == -1 else str(value)


# -- the plan ----------------------------------------------------------------------


def plan(resources: dict[str, Any], found: Facts, devices: bool = True) -> list[Write]:
    """The writes that apply ``resources``; ``devices``: include the DEVICES marker."""
    memory, cpu = _obj(resources, "memory"), _obj(resources, "cpu")
    writes: list[Write] = []
    writes += _pids(_obj(resources, "pids"))
    writes += _memory(memory)
    writes += _io(_obj(resources, "blockIO"), found)
    writes += _cpu(cpu)
    if devices:
        writes.append((DEVICES, ""))
    for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
        value = cpu.get(key)
        if value:
            writes.append((name, _checked(value, str, f"{BASE}.cpu.{key}")))
    # Same validation and names as v1; the v2 file is hugetlb.<size>.max.
    writes += [(name.replace(".limit_in_bytes", ".max"), value) for _, name, value in _hugetlb(resources)]
    writes += [(name, value) for _, name, value in _rdma(_obj(resources, "rdma"))]
    writes += _unified(resources)
    return writes


def _pids(pids: dict[str, Any]) -> list[Write]:
    value = _num(_int(pids, "limit", f"{BASE}.pids"))
    return [("pids.max", value)] if value else []


def _memory(memory: dict[str, Any]) -> list[Write]:
    path = f"{BASE}.memory"
    limit = _int(memory, "limit", path)
    swap = _int(memory, "swap", path)
    reservation = _int(memory, "reservation", path)
    if not (limit or swap or reservation):
        return []
    converted = swap_max(swap, limit)
    swap_value = _num(converted)
    if not swap_value and swap > 0:
        swap_value = "0"  # memory+swap equal to memory: no swap at all
    writes = []
    # Swap first, as runc: its limit does not depend on memory.max on v2.
    if swap_value:
        writes.append(("memory.swap.max", swap_value))
    if _num(limit):
        writes.append(("memory.max", _num(limit)))
    if _num(reservation):
        writes.append(("memory.low", _num(reservation)))
    return writes


def _io(blkio: dict[str, Any], found: Facts) -> list[Write]:
    path = f"{BASE}.blockIO"
    writes = []
    weight = _int(blkio, "weight", path, 0, 1 << 16)
    if weight:
        if found.bfq_weight:
            writes.append(("io.bfq.weight", str(weight)))
        else:
            writes.append(("io.weight", str(io_weight(weight))))
    devices = _items(blkio, "weightDevice", path)
    if found.bfq_device_weight:
        for where, dev in devices:
            major, minor = _int(dev, "major", where), _int(dev, "minor", where)
            writes.append(("io.bfq.weight", f"{major}:{minor} {_int(dev, 'weight', where, 0, 1 << 16)}\n"))
    # Without BFQ per-device weights runc drops weightDevice silently.
    for key, name in (
        ("throttleReadBpsDevice", "rbps"),
        ("throttleWriteBpsDevice", "wbps"),
        ("throttleReadIOPSDevice", "riops"),
        ("throttleWriteIOPSDevice", "wiops"),
    ):
        for where, dev in _items(blkio, key, path):
            rate = _int(dev, "rate", where, 0, _U64)
            writes.append(("io.max", f"{_int(dev, 'major', where)}:{_int(dev, 'minor', where)} {name}={rate}"))
    return writes


def _cpu(cpu: dict[str, Any]) -> list[Write]:
    path = f"{BASE}.cpu"
    shares = _int(cpu, "shares", path, 0, _U64)
    quota = _int(cpu, "quota", path)
    period = _int(cpu, "period", path, 0, _U64)
    writes = []
    weight = cpu_weight(shares)
    if weight:
        writes.append(("cpu.weight", str(weight)))
    if quota or period:
        # cgroup-v2.rst: cpu.max is "$MAX $PERIOD"; 100000 is the kernel's default period.
        writes.append(("cpu.max", f"{quota if quota > 0 else 'max'} {period or 100000}"))
    return writes


def _unified(resources: dict[str, Any]) -> list[Write]:
    unified = resources.get("unified")
    if not unified:
        return []
    where = f"{BASE}.unified"
    _checked(unified, dict, where)
    writes = []
    for key, value in unified.items():
        _checked(value, str, f"{where}.{key}")
        if "/" in key:
            raise ConfigError(f'{where}: unified resource "{key}" must be a file name (no slashes)')
        writes.append((key, value))
    return writes


# -- the cgroup ---------------------------------------------------------------------


def enable_controllers(path: str, mount: str = MOUNT) -> None:
    """Enable every controller the hierarchy has in each ancestor of ``path`` (runc's CreateCgroupPath).

    A controller is usable in a cgroup only once every ancestor lists it in
    cgroup.subtree_control. Written top-down from the mount's root to the
    parent of ``path``; one at a time where the whole set is refused (rootless,
    or a controller taken by a v1 hierarchy); what stays off fails when set.
    """
    try:
        with open(os.path.join(mount, "cgroup.controllers")) as f:
            controllers = f.read().split()
    except OSError:
        return
    if not controllers:
        return
    wanted = " ".join("+" + c for c in controllers)
    relative = os.path.relpath(os.path.dirname(path), mount)
    current = mount
    for part in [""] + ([] if relative == "." else relative.split("/")):
        current = os.path.join(current, part) if part else current
        try:
            _write(current, "cgroup.subtree_control", wanted)
        except OSError:
            for one in wanted.split():
                try:
                    _write(current, "cgroup.subtree_control", one)
                except OSError:
                    pass


def _domain_controllers(resources: dict[str, Any]) -> bool:
    # runc's containsDomainController: memory, io, cpu or hugetlb limits (pids and cpuset are thread-aware).
    memory, cpu, blkio = (resources.get(k) or {} for k in ("memory", "cpu", "blockIO"))
    return bool(
        any(memory.get(k) for k in ("limit", "swap", "reservation"))
        or any(blkio.get(k) for k in ("weight", "weightDevice") + _THROTTLE)
        or any(cpu.get(k) for k in ("shares", "quota", "period"))
        or resources.get("hugepageLimits")
    )


_THROTTLE = ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice")


def check_type(path: str, resources: dict[str, Any]) -> None:
    """runc's cgroup.type rules: a threaded (or invalid) cgroup takes no domain controller's limits."""
    try:
        kind = _read(path, "cgroup.type").strip()
    except OSError:
        return
    if kind not in ("domain invalid", "domain threaded", "threaded"):
        return
    if _domain_controllers(resources):
        state = "an invalid state" if kind == "domain invalid" else f"{kind} mode"
        raise SetupError(f'cannot enter cgroupv2 "{path}" with domain controllers -- it is in {state}')
    if kind == "domain invalid":
        # All asked-for controllers are thread-aware: runc makes the cgroup threaded rather than fail.
        try:
            _write(path, "cgroup.type", "threaded")
        except OSError:
            pass


def apply(
    path: str,
    resources: dict[str, Any],
    device_paths: frozenset[str] = frozenset(),
    rootless: bool = False,
    skip_devices: bool = False,
) -> None:
    """Write linux.resources into the container's cgroup v2 directory ``path`` (runc's fs2 Set)."""
    writes = plan(resources, facts(path), devices=not skip_devices)
    check_type(path, resources)
    first_unified = len(writes) - len(resources.get("unified") or {})  # they come last
    for i, (name, value) in enumerate(writes):
        if name == DEVICES:
            _devices(path, resources, device_paths, rootless)
        else:
            _apply_one(path, name, value, is_unified=i >= first_unified)


def _apply_one(path: str, name: str, value: str, is_unified: bool) -> None:
    try:
        _write(path, name, value)
    except OSError as err:
        if not is_unified:
            raise write_error(path, name, value, err) from None
        raise SetupError(_UNABLE + _unified_error(path, name, value, err)) from None


def write_error(path: str, name: str, value: str, err: OSError) -> SetupError:
    """runc's words: the open error alone, or "failed to write" with the write error."""
    full = os.path.join(path, name)
    if getattr(err, "during_open", False):
        return SetupError(f"{_UNABLE}openat2 {full}: {_errstr(err)}")
    return SetupError(f'{_UNABLE}failed to write "{value}": write {full}: {_errstr(err)}')


def _unified_error(path: str, name: str, value: str, err: OSError) -> str:
    if err.errno in (errno.EPERM, errno.EACCES, errno.ENOENT):
        controller, dot, _ = name.partition(".")
        if not dot:
            return f'unified resource "{name}" must be in the form CONTROLLER.PARAMETER'
        try:
            available = _read(path, "cgroup.controllers").split()
        except OSError:
            available = []
        if controller not in available and controller != "cgroup":
            return f'unified resource "{name}" can\'t be set: controller "{controller}" not available'
    full = os.path.join(path, name)
    if getattr(err, "during_open", False):
        return f'unable to set unified resource "{name}": openat2 {full}: {_errstr(err)}'
    return f'unable to set unified resource "{name}": failed to write "{value}": write {full}: {_errstr(err)}'


def _devices(path: str, resources: dict[str, Any], device_paths: frozenset[str], rootless: bool) -> None:
    # Imported here: the eBPF assembler and bpf(2) are needed only on a v2 host.
    from hull.runtime import device_filter

    device_filter.apply(path, resources, device_paths, rootless)


# -- files ----------------------------------------------------------------------------


class _OpenError(OSError):
    during_open = True


def _read(path: str, name: str) -> str:
    with open(os.path.join(path, name)) as f:
        return f.read()


def _write(path: str, name: str, value: str) -> None:
    full = os.path.join(path, name)
    try:
        fd = os.open(full, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as err:
        raise _OpenError(err.errno, err.strerror, full) from None
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _errstr(err: OSError) -> str:
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]
