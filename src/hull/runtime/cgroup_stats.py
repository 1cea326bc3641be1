"""A container's resource usage from its v1 cgroups, in the shape of runc 1.1's ``events`` data.

runc reads each fs subsystem's files (libcontainer/cgroups/fs/*.go GetStats)
into cgroups.Stats, then converts that into types.Stats (runc's types/events.go),
the JSON object engines parse. ``stats`` builds that object directly, keys in
the Go structs' order and with their ``omitempty`` rules applied, so that
``json.dumps`` of it has the same keys as runc's output. A hierarchy the
container has no directory in contributes nothing, as in runc.
"""

from __future__ import annotations

import os

from hull.runtime.errors import RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_U64_MAX = (1 << 64) - 1
_I64_MAX = (1 << 63) - 1
# runc's clockTicks: USER_HZ, 100 on every Linux it supports (cpuacct.stat counts in it).
_CLOCK_TICKS = 100
_NS_PER_SECOND = 1_000_000_000
# runc's blkio stat groups, tried in order; the first group whose first file
# has entries wins (BlkioGroup.GetStats): BFQ with debug stats, BFQ, CFQ, then
# the throttle counters, recursive and not.
_BLKIO_GROUPS = (
    (
        ("blkio.bfq.sectors_recursive", "sectorsRecursive"),
        ("blkio.bfq.io_service_time_recursive", "ioServiceTimeRecursive"),
        ("blkio.bfq.io_wait_time_recursive", "ioWaitTimeRecursive"),
        ("blkio.bfq.io_merged_recursive", "ioMergedRecursive"),
        ("blkio.bfq.io_queued_recursive", "ioQueueRecursive"),
        ("blkio.bfq.time_recursive", "ioTimeRecursive"),
        ("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
        ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive"),
    ),
    (
        ("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
        ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive"),
    ),
    (
        ("blkio.sectors_recursive", "sectorsRecursive"),
        ("blkio.io_service_time_recursive", "ioServiceTimeRecursive"),
        ("blkio.io_wait_time_recursive", "ioWaitTimeRecursive"),
        ("blkio.io_merged_recursive", "ioMergedRecursive"),
        ("blkio.io_queued_recursive", "ioQueueRecursive"),
        ("blkio.time_recursive", "ioTimeRecursive"),
        ("blkio.io_serviced_recursive", "ioServicedRecursive"),
        ("blkio.io_service_bytes_recursive", "ioServiceBytesRecursive"),
    ),
    (
        ("blkio.throttle.io_serviced_recursive", "ioServicedRecursive"),
        ("blkio.throttle.io_service_bytes_recursive", "ioServiceBytesRecursive"),
    ),
    (
        ("blkio.throttle.io_serviced", "ioServicedRecursive"),
        ("blkio.throttle.io_service_bytes", "ioServiceBytesRecursive"),
    ),
)
# types.Blkio's field order.
_BLKIO_KEYS = (
    "ioServiceBytesRecursive",
    "ioServicedRecursive",
    "ioQueueRecursive",
    "ioServiceTimeRecursive",
    "ioWaitTimeRecursive",
    "ioMergedRecursive",
    "ioTimeRecursive",
    "sectorsRecursive",
)
_CPUSET_FLAGS = (
    "cpu_exclusive",
    "mem_hardwall",
    "mem_exclusive",
    "memory_migrate",
    "memory_spread_page",
    "memory_spread_slab",
    "memory_pressure",
    "sched_load_balance",
)


class StatsError(RuntimeFailure):
    """A cgroup file could not be read or parsed."""


def stats(paths: dict[str, str], hugepage_sizes: list[str] | None = None) -> dict[str, Any]:
    """runc's types.Stats for the container whose v1 cgroup directories are ``paths``."""
    if list(paths) == [""]:  # a cgroup v2 host (cgroups.is_unified)
        from hull.runtime import cgroup_v2_stats

        return cgroup_v2_stats.stats(paths[""], hugepage_sizes)
    try:
        return {
            "cpu": _cpu(paths.get("cpu"), paths.get("cpuacct")),
            "cpuset": _cpuset(paths.get("cpuset")),
            "memory": _memory(paths.get("memory")),
            "pids": _pids(paths.get("pids")),
            "blkio": _blkio(paths.get("blkio")),
            "hugetlb": _hugetlb(paths.get("hugetlb"), hugepage_sizes),
            # A struct in runc (never omitted); hull has no Intel RDT support, runc fills it only with one.
            "intel_rdt": {},
            # runc reports host-side veth statistics only for libcontainer networks, which an OCI config never has.
            "network_interfaces": None,
        }
    except OSError as err:
        where = f"open {err.filename}: " if err.filename else ""
        raise StatsError(f"unable to get container cgroup stats: {where}{_errstr(err)}") from None


# -- cpu and cpuacct ---------------------------------------------------------------


def _cpu(cpu: str | None, cpuacct: str | None) -> dict[str, Any]:
    usage: dict[str, Any] = {}
    kernel = user = 0
    if cpuacct and os.path.isdir(cpuacct):
        user, kernel = parse_cpuacct_stat(_read(cpuacct, "cpuacct.stat"), cpuacct)
        usage["total"] = _uint(_read(cpuacct, "cpuacct.usage"), cpuacct, "cpuacct.usage")
        usage["percpu"] = [
            _uint(v, cpuacct, "cpuacct.usage_percpu") for v in _read(cpuacct, "cpuacct.usage_percpu").split()
        ]
        text = _read_optional(cpuacct, "cpuacct.usage_all")
        usage["percpu_kernel"], usage["percpu_user"] = parse_usage_all(text or "", cpuacct)
    throttling: dict[str, Any] = {}
    text = _read_optional(cpu, "cpu.stat") if cpu else None
    if text is not None:
        assert cpu is not None
        names = {"nr_periods": "periods", "nr_throttled": "throttledPeriods", "throttled_time": "throttledTime"}
        found = parse_key_values(text, cpu, "cpu.stat")
        throttling = {names[k]: v for k, v in found.items() if k in names}
        throttling = {k: throttling[k] for k in ("periods", "throttledPeriods", "throttledTime") if throttling.get(k)}
    usage = {k: v for k, v in usage.items() if v}  # omitempty
    return {"usage": {**usage, "kernel": kernel, "user": user}, "throttling": throttling}


def parse_cpuacct_stat(text: str, path: str = "") -> tuple[int, int]:
    """(user, system) in nanoseconds from cpuacct.stat's USER_HZ ticks."""
    fields = text.split()
    if len(fields) < 4 or fields[0] != "user" or fields[2] != "system":
        raise StatsError(f'unable to parse {path}/cpuacct.stat: malformed line "{text}"')
    user = _uint(fields[1], path, "cpuacct.stat", signed_ok=False)
    system = _uint(fields[3], path, "cpuacct.stat", signed_ok=False)
    return user * _NS_PER_SECOND // _CLOCK_TICKS, system * _NS_PER_SECOND // _CLOCK_TICKS


def parse_usage_all(text: str, path: str = "") -> tuple[list[int], list[int]]:
    """(per-CPU kernel, per-CPU user) from cpuacct.usage_all: a header, then "cpu user system" rows."""
    kernel, user = [], []
    for line in text.splitlines()[1:]:
        columns = line.split(" ")
        if len(columns) != 3:
            continue
        kernel.append(_uint(columns[2], path, "cpuacct.usage_all", signed_ok=False))
        user.append(_uint(columns[1], path, "cpuacct.usage_all", signed_ok=False))
    return kernel, user


# -- cpuset --------------------------------------------------------------------------


def _cpuset(path: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    values: dict[str, int] = dict.fromkeys(_CPUSET_FLAGS, 0)
    level = 0
    cpus: list[int] = []
    mems: list[int] = []
    if path:
        # runc ignores a missing file here (an old kernel without one of them).
        text = _read_optional(path, "cpuset.cpus")
        cpus = parse_cpu_list(text.strip(), path, "cpuset.cpus") if text is not None else []
        text = _read_optional(path, "cpuset.mems")
        mems = parse_cpu_list(text.strip(), path, "cpuset.mems") if text is not None else []
        for name in _CPUSET_FLAGS:
            text = _read_optional(path, f"cpuset.{name}")
            if text is not None:
                values[name] = _uint(text, path, f"cpuset.{name}")
        text = _read_optional(path, "cpuset.sched_relax_domain_level")
        if text is not None:
            level = _int(text, path, "cpuset.sched_relax_domain_level")
    if cpus:
        out["cpus"] = cpus
    out["cpu_exclusive"] = values["cpu_exclusive"]
    if mems:
        out["mems"] = mems
    for name in _CPUSET_FLAGS[1:]:
        out[name] = values[name]
    out["sched_relax_domain_level"] = level
    return out


def parse_cpu_list(text: str, path: str = "", name: str = "cpuset.cpus") -> list[int]:
    """A cpuset list ("0-2,5") as numbers; runc's getCpusetStat, uint16 each."""
    if not text:
        raise StatsError(f"unable to parse {path}/{name}: empty file")
    out: list[int] = []
    for part in text.split(","):
        bounds = part.split("-")
        if len(bounds) > 2:
            raise StatsError(f"unable to parse {path}/{name}: extra dash")
        low, high = (_u16(b, path, name) for b in (bounds[0], bounds[-1]))
        if low > high:
            raise StatsError(f"unable to parse {path}/{name}: invalid values, min > max")
        out.extend(range(low, high + 1))
    return out


# -- memory -------------------------------------------------------------------------


def _memory(path: str | None) -> dict[str, Any]:
    empty = {"limit": 0, "failcnt": 0}
    out: dict[str, Any] = {"usage": empty, "swap": empty, "kernel": empty, "kernelTCP": empty}
    text = _read_optional(path, "memory.stat") if path else None
    if text is None:
        return out
    assert path is not None
    raw = parse_key_values(text, path, "memory.stat")
    out = {}
    if raw.get("cache"):
        out["cache"] = raw["cache"]
    out["usage"] = _memory_data(path, "memory")
    # Swap and kernel accounting are optional in the kernel: runc reports zeros then.
    for key, module in (("swap", "memory.memsw"), ("kernel", "memory.kmem"), ("kernelTCP", "memory.kmem.tcp")):
        out[key] = (
            _memory_data(path, module) if os.path.exists(os.path.join(path, f"{module}.usage_in_bytes")) else empty
        )
    if raw:
        out["raw"] = dict(sorted(raw.items()))  # a Go map: encoded with its keys sorted
    return out


def _memory_data(path: str, module: str) -> dict[str, int]:
    got = {
        name: _uint(_read(path, f"{module}.{name}"), path, f"{module}.{name}")
        for name in ("usage_in_bytes", "max_usage_in_bytes", "failcnt", "limit_in_bytes")
    }
    entry = {"limit": got["limit_in_bytes"]}
    if got["usage_in_bytes"]:
        entry["usage"] = got["usage_in_bytes"]
    if got["max_usage_in_bytes"]:
        entry["max"] = got["max_usage_in_bytes"]
    entry["failcnt"] = got["failcnt"]
    return entry


# -- pids, blkio, hugetlb -------------------------------------------------------------


def _pids(path: str | None) -> dict[str, int]:
    if not path or not os.path.isdir(path):
        return {}
    current = _uint(_read(path, "pids.current"), path, "pids.current")
    limit = _uint(_read(path, "pids.max"), path, "pids.max")
    # runc reports "no limit" ("max") as 0, and omits zeros.
    out = {"current": current, "limit": 0 if limit == _U64_MAX else limit}
    return {k: v for k, v in out.items() if v}


def _blkio(path: str | None) -> dict[str, Any]:
    found: dict[str, list[dict[str, Any]]] = {}
    if path:
        _blkio_groups(path, found)
    return {key: found[key] for key in _BLKIO_KEYS if found.get(key)}


def _blkio_groups(path: str, found: dict[str, list[dict[str, Any]]]) -> None:
    for group in _BLKIO_GROUPS:
        for i, (name, key) in enumerate(group):
            try:
                entries = _blkio_entries(path, name)
            except OSError:
                if i == 0:
                    break  # runc: an error on a group's first file moves on to the next group
                raise
            if not entries:
                if i == 0:
                    break
                return  # runc stops at a later empty file, keeping what it has
            found[key] = entries
            if i == len(group) - 1:
                return


def _blkio_entries(path: str, name: str) -> list[dict[str, Any]]:
    text = _read_optional(path, name)
    return parse_blkio(text, path, name) if text else []


def parse_blkio(text: str, path: str = "", name: str = "") -> list[dict[str, Any]]:
    """blkio stat lines "major:minor [op] value" (the "Total" line skipped) as types.BlkioEntry."""
    entries = []
    for line in text.splitlines():
        fields = line.replace(":", " ").split()
        if len(fields) < 3:
            if len(fields) == 2 and fields[0] == "Total":
                continue
            raise StatsError(f'unable to parse {path}/{name}: malformed line "{line}"')
        op, value = (fields[2], fields[3]) if len(fields) == 4 else ("", fields[2])
        entry = {
            "major": _uint(fields[0], path, name, signed_ok=False),
            "minor": _uint(fields[1], path, name, signed_ok=False),
            "op": op,
            "value": _uint(value, path, name, signed_ok=False),
        }
        entries.append({k: v for k, v in entry.items() if v})  # every field is omitempty
    return entries


def _hugetlb(path: str | None, sizes: list[str] | None) -> dict[str, Any]:
    if not path or not os.path.isdir(path):
        return {}
    out = {}
    for size in sorted(hugepage_sizes() if sizes is None else sizes):
        got = {
            name: _uint(_read(path, f"hugetlb.{size}.{name}"), path, f"hugetlb.{size}.{name}")
            for name in ("usage_in_bytes", "max_usage_in_bytes", "failcnt")
        }
        entry = {"usage": got["usage_in_bytes"], "max": got["max_usage_in_bytes"]}
        out[size] = {**{k: v for k, v in entry.items() if v}, "failcnt": got["failcnt"]}
    return out


def hugepage_sizes(names: list[str] | None = None) -> list[str]:
    """The hugetlb controller's page size names ("2MB", "1GB") from /sys/kernel/mm/hugepages."""
    if names is None:
        try:
            names = os.listdir("/sys/kernel/mm/hugepages")
        except OSError:
            return []
    sizes = []
    for name in names:
        number = name.removeprefix("hugepages-").removesuffix("kB")
        if not name.startswith("hugepages-") or not name.endswith("kB") or not number.isdigit():
            continue
        kb = int(number)
        # The kernel's names for its hugetlb files (mm/hugetlb_cgroup.c), from a size in kB.
        sizes.append(f"{kb >> 20}GB" if kb >= 1 << 20 else f"{kb >> 10}MB" if kb >= 1 << 10 else f"{kb}KB")
    return sizes


# -- parsing, as runc's fscommon --------------------------------------------------------


def parse_key_values(text: str, path: str = "", name: str = "") -> dict[str, int]:
    """ "name value" lines (memory.stat, cpu.stat)."""
    out = {}
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) != 2:
            raise StatsError(f'unable to parse {path}/{name}: line "{line}" is not in key value format')
        out[parts[0]] = _uint(parts[1], path, name)
    return out


def _uint(text: str, path: str, name: str, signed_ok: bool = True) -> int:
    """runc's GetCgroupParamUint: "max" is the largest uint64, and (a kernel bug) a negative value is 0."""
    value = text.strip()
    if value == "max":
        return _U64_MAX
    if value.isdigit() and value.isascii() and int(value) <= _U64_MAX:
        return int(value)
    if signed_ok and value[:1] == "-" and value[1:].isdigit() and value[1:].isascii():
        return 0
    raise StatsError(f'unable to parse {path}/{name}: strconv.ParseUint: parsing "{value}": invalid syntax')


def _int(text: str, path: str, name: str) -> int:
    value = text.strip()
    if value == "max":
        return _I64_MAX
    try:
        return int(value)
    except ValueError:
        raise StatsError(
            f'unable to parse {path}/{name}: strconv.ParseInt: parsing "{value}": invalid syntax'
        ) from None


def _u16(text: str, path: str, name: str) -> int:
    if not (text.isdigit() and text.isascii()) or int(text) > 0xFFFF:
        raise StatsError(f'unable to parse {path}/{name}: strconv.ParseUint: parsing "{text}": invalid syntax')
    return int(text)


def _read(path: str, name: str) -> str:
    with open(os.path.join(path, name)) as f:
        return f.read()


def _read_optional(path: str | None, name: str) -> str | None:
    if not path:
        return None
    try:
        return _read(path, name)
    except FileNotFoundError:
        return None


def _errstr(err: OSError) -> str:
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]
