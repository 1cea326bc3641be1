"""A container's processes and resource usage from its cgroup, and ``docker stats``' arithmetic.

The numbers are runc's ``events --stats`` data (types.Stats): read in-process
through hull.runtime.cgroup_stats for hull's runtime, or asked of an
external runtime's ``events --stats``. docker's CLI (cli/command/container/
stats_helpers.go) turns two samples into its columns: CPU % is the
container's CPU time over the host's across the interval, times the online
CPUs; memory usage leaves out the inactive page cache (v1
``total_inactive_file``, v2 ``inactive_file``); block I/O sums the
``io_service_bytes`` entries by direction. A container without a memory
limit shows the host's memory as its limit, as dockerd reports it.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from hull.engine.containers import Container
from hull.engine.errors import EngineError
from hull.engine.paths import EnginePaths

_NS_PER_TICK = 1_000_000_000 // 100  # /proc/stat counts USER_HZ (100) ticks


def _runtime(paths: EnginePaths, container: Container) -> Any:
    from hull.engine import lifecycle

    return lifecycle.runtime_for(paths, container)


def processes(paths: EnginePaths, container: Container) -> list[int]:
    """Every PID in the container's cgroup (runc's ps)."""
    from hull.engine.runtimes import HullRuntime

    runtime = _runtime(paths, container)
    if isinstance(runtime, HullRuntime):
        from hull.runtime import cgroup_ops
        from hull.runtime.errors import RuntimeFailure

        try:
            return cgroup_ops.processes(runtime.store, container.id)
        except RuntimeFailure as err:
            raise EngineError(f"{container.short_id}: {err}") from None
    pids: list[int] = json.loads(_external(runtime, "ps", "--format", "json", container.id))
    return pids


def cgroup_stats(paths: EnginePaths, container: Container) -> dict[str, Any]:
    """runc's types.Stats of the container's cgroup."""
    from hull.engine.runtimes import HullRuntime

    runtime = _runtime(paths, container)
    if isinstance(runtime, HullRuntime):
        from hull.runtime import cgroup_stats as stats_of
        from hull.runtime.errors import RuntimeFailure

        try:
            with runtime.store.peek(container.id) as cdir:
                record = cdir.read()
            data: dict[str, Any] = stats_of.stats(record.cgroup_paths)
        except RuntimeFailure as err:
            raise EngineError(f"{container.short_id}: {err}") from None
        return data
    event = json.loads(_external(runtime, "events", "--stats", container.id))
    out: dict[str, Any] = event.get("data") or {}
    return out


def _external(runtime: Any, *args: str) -> str:
    proc = subprocess.run([runtime.path, "--root", runtime.root, *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise EngineError(f"{runtime.name} {args[0]}: {lines[-1] if lines else 'failed'}")
    return proc.stdout


def system_cpu_ns() -> int:
    """The host's CPU time (every CPU, idle included) in ns, as dockerd's getSystemCPUUsage."""
    with open("/proc/stat") as f:
        for line in f:
            fields = line.split()
            if fields and fields[0] == "cpu":
                return sum(int(v) for v in fields[1:8]) * _NS_PER_TICK
    return 0


def machine_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


class Sample:
    """One reading, the fields docker's stats computation uses."""

    def __init__(self, data: dict[str, Any], system: int, online_cpus: int, machine: int) -> None:
        cpu = (data.get("cpu") or {}).get("usage") or {}
        self.cpu_total = int(cpu.get("total", 0))
        self.system = system
        self.online_cpus = online_cpus or len(cpu.get("percpu") or [])
        memory = data.get("memory") or {}
        raw = memory.get("raw") or {}
        usage = int((memory.get("usage") or {}).get("usage", 0))
        inactive = raw.get("total_inactive_file", raw.get("inactive_file"))
        self.mem_usage = usage - int(inactive) if inactive is not None and int(inactive) < usage else usage
        limit = int((memory.get("usage") or {}).get("limit", 0))
        self.mem_limit = machine if machine and (limit == 0 or limit > machine) else limit
        self.blk_read = self.blk_write = 0
        for entry in (data.get("blkio") or {}).get("ioServiceBytesRecursive") or []:
            op = str(entry.get("op", ""))[:1]
            if op in ("r", "R"):
                self.blk_read += int(entry.get("value", 0))
            elif op in ("w", "W"):
                self.blk_write += int(entry.get("value", 0))
        self.pids = int((data.get("pids") or {}).get("current", 0))
        self.net_rx = self.net_tx = 0
        for iface in data.get("network_interfaces") or []:
            self.net_rx += int(iface.get("rx_bytes", 0))
            self.net_tx += int(iface.get("tx_bytes", 0))


def sample(paths: EnginePaths, container: Container) -> Sample:
    return Sample(cgroup_stats(paths, container), system_cpu_ns(), os.cpu_count() or 0, machine_memory())


def cpu_percent(before: Sample | None, now: Sample) -> float:
    """docker's calculateCPUPercentUnix."""
    if before is None:
        return 0.0
    cpu_delta = now.cpu_total - before.cpu_total
    system_delta = now.system - before.system
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * now.online_cpus * 100.0
    return 0.0
