"""pause, resume and ps: runc 1.1's commands over the container's cgroup."""

from __future__ import annotations

from hull.runtime import cgroups
from hull.runtime.container import status_of
from hull.runtime.errors import InvalidState, SetupError
from hull.runtime.store import Store


def pause(store: Store, container_id: str) -> None:
    with store.open(container_id) as cdir:
        record = cdir.read()
        # runc pauses a created container too (its init waits frozen for start).
        if status_of(cdir, record) not in ("created", "running"):
            raise InvalidState("container not running")
        cgroups.freeze(record.cgroup_paths)


def resume(store: Store, container_id: str) -> None:
    with store.open(container_id) as cdir:
        record = cdir.read()
        if status_of(cdir, record) != "paused":
            raise InvalidState("container not paused")
        cgroups.thaw(record.cgroup_paths)


def processes(store: Store, container_id: str) -> list[int]:
    """Every PID in the container's cgroup (runc's container.Processes)."""
    with store.peek(container_id) as cdir:
        record = cdir.read()
    return cgroups.pids(record.cgroup_paths)


def ps_table(pids: list[int], ps_args: list[str]) -> list[str]:
    """``ps`` (default ``-ef``) filtered to the container's PIDs, its header kept, as runc's ps."""
    import subprocess

    proc = subprocess.run(["ps", *(ps_args or ["-ef"])], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise SetupError(f"exit status {proc.returncode}: {proc.stdout}")
    lines = proc.stdout.split("\n")
    header = lines[0].split()
    if "PID" not in header:
        raise SetupError("couldn't find PID field in ps output")
    index = header.index("PID")
    wanted = set(pids)
    shown = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        if not fields[index].isdigit():
            raise SetupError(f'unable to parse pid: strconv.Atoi: parsing "{fields[index]}": invalid syntax')
        if int(fields[index]) in wanted:
            shown.append(line)
    return shown
