"""The container's cgroup (runtime-spec config-linux.md "Control groups"), as runc 1.1's cgroupfs driver.

Paths are keyed as runc keys them: by subsystem ("cpu", "memory", ...,
"name=systemd"), and "" for cgroup v2 — the whole tree on a unified host, or
on a hybrid host the cgroup2 mount at /sys/fs/cgroup/unified, where runc 1.1
creates and joins a directory too (it holds no controller it sets).

``linux.cgroupsPath`` as runc without --systemd-cgroup: cleaned (".." cannot
climb out); absolute paths are below each hierarchy's root, relative ones and
the default (the container ID) below the runtime's own cgroup. A
"slice:prefix:name" value is, as for runc's cgroupfs driver, just a name.
Creating a cgroup only makes directories, so create records the paths before
making them and a killed create is cleaned up by ``delete``.
"""

from __future__ import annotations

import errno
import os
import time

from hull.runtime.cgroupfs import Hierarchy, bind_source, hierarchies, own_paths
from hull.runtime.errors import SetupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# runc 1.1's fs subsystems (plus the named hierarchies it joins); others are left alone.
SUBSYSTEMS = frozenset(
    "cpuset devices memory cpu cpuacct pids blkio hugetlb net_cls net_prio perf_event freezer rdma"
    " name=systemd misc".split()
)
UNIFIED = ""


def clean_path(path: str) -> str:
    """runc's utils.CleanPath: lexically cleaned; a relative path cannot climb above its base."""
    if not path:
        return ""
    cleaned = os.path.normpath(path)
    if not cleaned.startswith("/"):
        return os.path.relpath(os.path.normpath("/" + cleaned), "/")
    return "/" + cleaned.lstrip("/")


def resolve_paths(mountinfo: str, proc_cgroup: str, cgroups_path: str, container_id: str) -> dict[str, str]:
    """{subsystem: directory} for the container; parsers take text (/proc/self/mountinfo, /proc/self/cgroup)."""
    inner = clean_path(cgroups_path) or container_id
    own = own_paths(proc_cgroup)
    found = hierarchies(mountinfo)
    # runc decides by what /sys/fs/cgroup itself is (IsCgroup2UnifiedMode): a cgroup2
    # mounted over it hides any v1 hierarchies still listed below it.
    top = [h for h in found if h.mount_point == "/sys/fs/cgroup"]
    if top and top[-1].fstype == "cgroup2":
        found = top[-1:]
    paths = {}
    for h in found:
        if h.fstype == "cgroup2":
            if h.mount_point in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                paths[UNIFIED] = _directory(h, own, inner)
            continue
        for name in h.controllers.split(","):
            if name in SUBSYSTEMS:
                paths[name] = _directory(h, own, inner)
    return paths


def _directory(h: Hierarchy, own: dict[str, str], inner: str) -> str:
    if inner.startswith("/"):
        return os.path.normpath(h.mount_point + inner)
    # Below our own cgroup, as runc's GetOwnCgroupPath: an engine runs the
    # runtime in the cgroup its containers belong under.
    return os.path.join(bind_source(h, own), inner)


def resolve(cgroups_path: str, container_id: str) -> dict[str, str]:
    with open("/proc/self/mountinfo") as f:
        mountinfo = f.read()
    with open("/proc/self/cgroup") as f:
        proc_cgroup = f.read()
    return resolve_paths(mountinfo, proc_cgroup, cgroups_path, container_id)


def is_unified(paths: dict[str, str]) -> bool:
    """A cgroup v2 host: the cgroup2 tree is the only hierarchy (a hybrid host has v1 ones too)."""
    return list(paths) == [UNIFIED]


def directories(paths: dict[str, str]) -> list[str]:
    """Each directory once (co-mounted controllers such as cpu,cpuacct share one)."""
    return list(dict.fromkeys(paths.values()))


# -- create, join, remove ------------------------------------------------------


def create(paths: dict[str, str], rootless: bool = False) -> dict[str, str]:
    """Make the directories; the paths made. ``rootless``: a hierarchy we may not write is left out."""
    made = {}
    for key, path in paths.items():
        try:
            _make(path, key == "cpuset")
            if rootless and not os.access(os.path.join(path, "cgroup.procs"), os.W_OK):
                raise PermissionError(errno.EACCES, "permission denied")
        except OSError as err:
            # runc 1.1 (rootless, no linux.cgroupsPath): a permission error drops
            # that hierarchy rather than failing; a limit asked of it fails later.
            if rootless and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                continue
            raise SetupError(f"unable to apply cgroup configuration: mkdir {path}: {_errstr(err)}") from None
        made[key] = path
    if is_unified(made):
        from hull.runtime.cgroup_v2 import enable_controllers

        enable_controllers(made[UNIFIED])
    return made


def _make(path: str, cpuset: bool) -> None:
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    _make(parent, cpuset)
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass
    if cpuset:
        # A new v1 cpuset starts with no CPUs and no memory nodes and refuses
        # tasks: runc copies them down from the parent at every level it makes.
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not _read(path, name).strip():
                _write(path, name, _read(parent, name).strip())


_grace_period_done: Any = None


def start_migration_grace_period() -> None:
    """Begin, in a thread, the kernel wait that the first cgroup migration of a create pays.

    Moving a process between cgroups takes the kernel's cgroup_threadgroup_rwsem
    for writing, and the first writer after a quiet spell waits a whole RCU
    grace period (rcu_sync; 5-25 ms on this 2-vCPU VM) while the writers that
    follow it within that window do not. Writing our own PID into the cgroup we
    are already in takes the same lock and changes nothing: done in a thread,
    blocked in write(2) while create imports and parses, the wait overlaps that
    work instead of following it. ``join`` in the intermediate is then cheap.
    Nothing is lost if it fails (say, rootless): the join just pays the wait.
    """
    global _grace_period_done
    import _thread

    done = _thread.allocate_lock()
    done.acquire()

    def own_cgroup_procs() -> None:
        try:
            with open("/proc/self/mountinfo") as f:
                mounts = hierarchies(f.read())
            with open("/proc/self/cgroup") as f:
                own = own_paths(f.read())
            for h in mounts:
                if h.fstype == "cgroup" and h.controllers in own:
                    fd = os.open(os.path.join(bind_source(h, own), "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
                    try:
                        os.write(fd, str(os.getpid()).encode())
                    finally:
                        os.close(fd)
                    break
        except OSError:
            pass
        finally:
            done.release()

    _grace_period_done = done
    _thread.start_new_thread(own_cgroup_procs, ())


def await_migration_grace_period() -> None:
    """Wait for ``start_migration_grace_period``'s thread, if one was started (before forking)."""
    global _grace_period_done
    if _grace_period_done is not None:
        _grace_period_done.acquire()
        _grace_period_done = None


def join(paths: dict[str, str]) -> None:
    """Move the calling process into every cgroup in ``paths`` (the contract init and exec share)."""
    pid = str(os.getpid())
    for path in directories(paths):
        try:
            _write(path, "cgroup.procs", pid)
        except OSError as err:
            raise SetupError(f"joining cgroup {path}: {_errstr(err)}") from None


def remove(paths: dict[str, str]) -> None:
    """rmdir every container cgroup (sub-cgroups the container made first); only the leaf, as runc."""
    for path in directories(paths):
        _remove(path)


def _remove(path: str) -> None:
    try:
        children = [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    for child in children:
        _remove(child)
    # The kernel lists a killed task until it is fully gone (EBUSY meanwhile):
    # retry as runc's RemovePath does, a little longer.
    delay = 0.001
    for _ in range(12):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != errno.EBUSY:
                raise SetupError(f"removing cgroup {path}: {_errstr(err)}") from None
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    raise SetupError(f"removing cgroup {path}: device or resource busy")


# -- processes -------------------------------------------------------------------


def _process_dir(paths: dict[str, str]) -> str:
    # runc 1.1 lists a v1 container's processes from its devices cgroup.
    return paths.get("devices") or paths.get("freezer") or paths.get(UNIFIED) or next(iter(paths.values()))


def pids(paths: dict[str, str]) -> list[int]:
    """Every process in the container's cgroup, sub-cgroups included."""
    found: list[int] = []
    if paths:
        _collect(_process_dir(paths), found)
    return found


def _collect(path: str, found: list[int]) -> None:
    try:
        text = _read(path, "cgroup.procs")
        children = [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    found.extend(int(line) for line in text.split())
    for child in children:
        _collect(child, found)


def signal_all(paths: dict[str, str], signum: int) -> list[int]:
    """Signal every process, frozen meanwhile so none forks past the list (runc's signalAllProcesses)."""
    where = _freezer(paths)
    can_freeze = where is not None and os.path.isdir(where[0])
    if can_freeze:
        freeze(paths)
    try:
        targets = pids(paths)
        for pid in targets:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
    finally:
        if can_freeze:
            thaw(paths)
    return targets


def kill_all(paths: dict[str, str]) -> None:
    """SIGKILL everything in the cgroup and wait until the kernel no longer lists it."""
    if not signal_all(paths, 9):
        return
    for _ in range(2000):
        if not pids(paths):
            return
        time.sleep(0.001)


# -- freezer -----------------------------------------------------------------------


def _freezer(paths: dict[str, str]) -> tuple[str, str] | None:
    """(directory, "v1" or "v2") of the freezer runc would use: v1's on v1 and hybrid hosts."""
    if "freezer" in paths:
        return paths["freezer"], "v1"
    if is_unified(paths):
        return paths[UNIFIED], "v2"
    return None


def freeze(paths: dict[str, str]) -> None:
    _set_frozen(paths, True)


def thaw(paths: dict[str, str]) -> None:
    _set_frozen(paths, False)


def _set_frozen(paths: dict[str, str], frozen: bool) -> None:
    where = _freezer(paths)
    if where is None:
        raise SetupError("the container's cgroup has no freezer")
    path, version = where
    try:
        if version == "v2":
            _write(path, "cgroup.freeze", "1" if frozen else "0")
            _wait(lambda: ("frozen 1" in _read(path, "cgroup.events")) == frozen)
            return
        want = "FROZEN" if frozen else "THAWED"
        # v1 passes through FREEZING while tasks are caught; the write is
        # repeated as runc does, since a task forking meanwhile may be missed.
        for _ in range(1000):
            _write(path, "freezer.state", want)
            if _read(path, "freezer.state").strip() == want:
                return
            time.sleep(0.001)
    except OSError as err:
        raise SetupError(f"{'freezing' if frozen else 'thawing'} cgroup {path}: {_errstr(err)}") from None
    raise SetupError(f"unable to {'freeze' if frozen else 'thaw'} cgroup {path}")


def _wait(done: Any) -> None:
    for _ in range(1000):
        if done():
            return
        time.sleep(0.001)


def is_frozen(paths: dict[str, str]) -> bool:
    where = _freezer(paths)
    if where is None:
        return False
    path, version = where
    try:
        if version == "v2":
            return "frozen 1" in _read(path, "cgroup.events")
        return _read(path, "freezer.state").strip() == "FROZEN"
    except OSError:
        return False


# -- resources -----------------------------------------------------------------


def apply(
    paths: dict[str, str],
    resources: dict[str, Any],
    device_paths: frozenset[str] = frozenset(),
    rootless: bool = False,
    skip_devices: bool = False,
) -> None:
    """Write linux.resources into the container's cgroups (runc's Manager.Set; cgroup_v2 on a v2 host).

    ``skip_devices``: leave the devices cgroup alone, as runc's update does (SkipDevices).
    """
    from hull.runtime import cgroup_resources as res

    if is_unified(paths):
        from hull.runtime import cgroup_v2

        cgroup_v2.apply(paths[UNIFIED], resources, device_paths, rootless, skip_devices)
        return
    writes = res.plan(resources, host_facts(paths), device_paths)
    if rootless or skip_devices:
        # runc ignores the devices controller for rootless containers: it cannot work.
        writes = [w for w in writes if w[0] != "devices"]
    run_writes(paths, writes)


def host_facts(paths: dict[str, str]) -> Any:
    from hull.runtime import cgroup_resources as res

    facts = res.HostFacts()
    memory, blkio, devices = paths.get("memory"), paths.get("blkio"), paths.get("devices")
    if memory:
        facts.swap_accounting = os.path.exists(os.path.join(memory, "memory.memsw.limit_in_bytes"))
        try:
            facts.memory_limit = int(_read(memory, "memory.limit_in_bytes"))
        except (OSError, ValueError):
            pass
    if blkio and not os.path.exists(os.path.join(blkio, "blkio.weight")):
        facts.blkio_weight_prefix = "blkio.bfq."
    if devices:
        try:
            facts.devices = res.parse_devices_list(_read(devices, "devices.list"))
        except OSError:
            pass
    return facts


def run_writes(paths: dict[str, str], writes: list[tuple[str, str, str]]) -> None:
    retry_period = None
    for controller, name, value in writes:
        path = paths.get(controller)
        if path is None:
            # runc's words for a limit whose controller is not mounted.
            raise SetupError(f"cannot set {controller} limit: container could not join or create cgroup")
        try:
            _write(path, name, value)
        except OSError as err:
            if (
                name == "cpu.cfs_period_us"
                and err.errno == errno.EINVAL
                and any(w[1] == "cpu.cfs_quota_us" for w in writes)
            ):
                # A shorter period may be refused until the quota shrinks: runc
                # writes it again after the quota.
                retry_period = (path, value)
                continue
            raise _write_error(path, name, value, err) from None
        if name == "cpu.cfs_quota_us" and retry_period:
            _checked_write(retry_period[0], "cpu.cfs_period_us", retry_period[1])
        if name == "cpu.shares":
            _check_shares(path, int(value))


def _checked_write(path: str, name: str, value: str) -> None:
    try:
        _write(path, name, value)
    except OSError as err:
        raise _write_error(path, name, value, err) from None


def _write_error(path: str, name: str, value: str, err: OSError) -> SetupError:
    if name == "memory.limit_in_bytes" and err.errno == errno.EBUSY:
        usage, peak = _read(path, "memory.usage_in_bytes").strip(), _read(path, "memory.max_usage_in_bytes").strip()
        return SetupError(f"unable to set memory limit to {value} (current usage: {usage}, peak usage: {peak})")
    full = os.path.join(path, name)
    return SetupError(f'unable to apply cgroup configuration: failed to write "{value}": write {full}: {_errstr(err)}')


def _check_shares(path: str, wanted: int) -> None:
    # The kernel clamps cpu.shares silently; runc reads it back and says so.
    got = int(_read(path, "cpu.shares"))
    if wanted > got:
        raise SetupError(f"the maximum allowed cpu-shares is {got}")
    if wanted < got:
        raise SetupError(f"the minimum allowed cpu-shares is {got}")


# -- files -------------------------------------------------------------------------


def _read(path: str, name: str) -> str:
    with open(os.path.join(path, name)) as f:
        return f.read()


def _write(path: str, name: str, value: str) -> None:
    # One write(2) per value: cgroup files take one value per write.
    fd = os.open(os.path.join(path, name), os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _errstr(err: OSError) -> str:
    # Go's (and so runc's) wording of errno: strerror, lower-cased.
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]
