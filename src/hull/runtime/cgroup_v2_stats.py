"""A container's resource usage from its cgroup v2 directory, as runc 1.1's fs2 GetStats.

The result has the shape of runc's types.Stats (see cgroup_stats.py, the v1
reader, for the keys and ``omitempty`` rules): runc maps v2's files onto
the v1-shaped struct. cpu.stat's microseconds become nanoseconds; memory
usage is memory.current against memory.max, and "swap" is reported as
memory+swap as on v1; io.stat's rbytes/wbytes and rios/wios become the
"Read"/"Write" rows of ioServiceBytesRecursive and ioServicedRecursive;
hugetlb.<size>.current and the "max" count of hugetlb.<size>.events. A file
that does not exist (a controller not enabled) contributes nothing, as in
runc; other failures are collected and reported together.
"""

from __future__ import annotations

from hull.runtime.cgroup_stats import (
    _U64_MAX,
    StatsError,
    _cpuset,
    _errstr,
    _read,
    _uint,
    hugepage_sizes,
    parse_key_values,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_EMPTY = {"limit": 0, "failcnt": 0}
_IO_OPS = {
    "rbytes": ("ioServiceBytesRecursive", "Read"),
    "wbytes": ("ioServiceBytesRecursive", "Write"),
    "rios": ("ioServicedRecursive", "Read"),
    "wios": ("ioServicedRecursive", "Write"),
}


def stats(path: str, sizes: list[str] | None = None) -> dict[str, Any]:
    """runc's types.Stats for the container whose cgroup v2 directory is ``path``."""
    errors: list[str] = []
    out: dict[str, Any] = {
        "cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
        "cpuset": _cpuset(None),  # fs2 does not read cpuset: the zero struct
        "memory": {"usage": _EMPTY, "swap": _EMPTY, "kernel": _EMPTY, "kernelTCP": _EMPTY},
        "pids": {},
        "blkio": {},
        "hugetlb": {},
        "intel_rdt": {},
        "network_interfaces": None,
    }
    # runc's order: pids, memory, io, cpu, hugetlb.
    for key, reader in (("pids", _pids), ("memory", _memory), ("blkio", _io), ("cpu", _cpu)):
        try:
            out[key] = reader(path)
        except FileNotFoundError as err:
            if key == "pids":  # runc ignores a missing file everywhere but here
                errors.append(_describe(err))
        except (OSError, StatsError) as err:
            errors.append(_describe(err))
    out["hugetlb"] = _hugetlb(path, hugepage_sizes() if sizes is None else sizes, errors)
    if errors:
        raise StatsError(f"unable to get container cgroup stats: error while statting cgroup v2: [{' '.join(errors)}]")
    return out


def _describe(err: Exception) -> str:
    if isinstance(err, OSError):
        return f"open {err.filename}: {_errstr(err)}" if err.filename else _errstr(err)
    return str(err)


def _pids(path: str) -> dict[str, int]:
    try:
        current = _uint(_read(path, "pids.current"), path, "pids.current")
        limit = _uint(_read(path, "pids.max"), path, "pids.max")
    except FileNotFoundError:
        # The pids controller is not enabled here: runc counts cgroup.procs, no limit.
        current, limit = _read(path, "cgroup.procs").count("\n"), 0
    out = {"current": current, "limit": 0 if limit == _U64_MAX else limit}
    return {k: v for k, v in out.items() if v}


def _memory(path: str) -> dict[str, Any]:
    raw = parse_key_values(_read(path, "memory.stat"), path, "memory.stat")
    out: dict[str, Any] = {}
    if raw.get("file"):
        out["cache"] = raw["file"]
    usage, limit = _data(path, "memory")
    try:
        swap_usage, swap_limit = _data(path, "memory.swap")
    except FileNotFoundError:
        swap_usage, swap_limit = 0, 0  # no swap accounting in this kernel
    # v1 reported memory+swap: runc adds memory to v2's swap-only numbers.
    swap_usage = (swap_usage + usage) % (1 << 64)
    if swap_limit != _U64_MAX:
        swap_limit = (swap_limit + limit) % (1 << 64)
    out["usage"] = _entry(usage, limit)
    out["swap"] = _entry(swap_usage, swap_limit)
    out["kernel"] = out["kernelTCP"] = _EMPTY
    if raw:
        out["raw"] = dict(sorted(raw.items()))
    return out


def _data(path: str, module: str) -> tuple[int, int]:
    usage = _uint(_read(path, f"{module}.current"), path, f"{module}.current")
    return usage, _uint(_read(path, f"{module}.max"), path, f"{module}.max")


def _entry(usage: int, limit: int) -> dict[str, int]:
    entry = {"limit": limit}
    if usage:
        entry["usage"] = usage
    entry["failcnt"] = 0
    return entry


def _io(path: str) -> dict[str, Any]:
    return parse_io_stat(_read(path, "io.stat"), path)


def parse_io_stat(text: str, path: str = "") -> dict[str, Any]:
    """io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...") as types.Blkio; other keys are skipped as runc does."""
    tables: dict[str, list[dict[str, Any]]] = {"ioServiceBytesRecursive": [], "ioServicedRecursive": []}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        device = fields[0].split(":")
        if len(device) != 2:
            continue
        major = _uint(device[0], path, "io.stat", signed_ok=False)
        minor = _uint(device[1], path, "io.stat", signed_ok=False)
        for item in fields[1:]:
            key, eq, value = item.partition("=")
            if not eq or "=" in value or key not in _IO_OPS:
                continue
            table, op = _IO_OPS[key]
            entry = {"major": major, "minor": minor, "op": op, "value": _uint(value, path, "io.stat", signed_ok=False)}
            tables[table].append({k: v for k, v in entry.items() if v})
    return {k: v for k, v in tables.items() if v}


def _cpu(path: str) -> dict[str, Any]:
    found = parse_key_values(_read(path, "cpu.stat"), path, "cpu.stat")
    usage = {"total": found.get("usage_usec", 0) * 1000}
    usage = {k: v for k, v in usage.items() if v}
    throttling = {
        "periods": found.get("nr_periods", 0),
        "throttledPeriods": found.get("nr_throttled", 0),
        "throttledTime": found.get("throttled_usec", 0) * 1000,
    }
    return {
        "usage": {**usage, "kernel": found.get("system_usec", 0) * 1000, "user": found.get("user_usec", 0) * 1000},
        "throttling": {k: v for k, v in throttling.items() if v},
    }


def _hugetlb(path: str, sizes: list[str], errors: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in sizes:
        try:
            usage = _uint(_read(path, f"hugetlb.{size}.current"), path, f"hugetlb.{size}.current")
            failcnt = 0
            for line in _read(path, f"hugetlb.{size}.events").splitlines():
                key, _, value = line.partition(" ")
                if key == "max":
                    failcnt = _uint(value, path, f"hugetlb.{size}.events")
        except FileNotFoundError:
            break  # runc stops at the first size without files (the controller is off) and keeps the rest
        except (OSError, StatsError) as err:
            errors.append(_describe(err))
            break
        out[size] = {**({"usage": usage} if usage else {}), "failcnt": failcnt}
    return dict(sorted(out.items()))


def oom_kills(path: str) -> int:
    """memory.events' oom_kill counter; 0 where absent."""
    try:
        text = _read(path, "memory.events")
    except FileNotFoundError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0
