"""start, state, kill, delete and list (runtime-spec runtime.md "Operations").

These run on every engine poll, so this module keeps its imports light: the
recorded config is read as plain JSON and only parsed when it has hooks to
run. ``create`` (create.py) is the heavy one.
"""

from __future__ import annotations

import os
import time

from hull.oci import jsonfast
from hull.oci.state import State
from hull.runtime import unixsock
from hull.runtime.errors import ContainerNotFound, InvalidState, SetupError
from hull.runtime.store import ContainerDir, Record, Store, is_alive, process_start_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from hull.oci.runtime_config import Config

SIGKILL = 9


def run_hooks(kind: str, config: Config, state: bytes) -> None:
    hooks = config.hooks.get(kind)
    if hooks:
        from hull.runtime import hooks as hooks_mod

        # runtime.md lifecycle steps 9 and 13: a failing poststart or poststop
        # hook is only a warning, and the remaining hooks still run.
        hooks_mod.run_hooks(kind, hooks, state, warn if kind in ("poststart", "poststop") else None)


def run_recorded_hooks(kind: str, record: Record, state: bytes) -> None:
    """Hooks of ``kind`` from the config recorded at create; the config is parsed only if there are any."""
    if (record.config.get("hooks") or {}).get(kind):
        from hull.oci.runtime_config import parse_config

        run_hooks(kind, parse_config(record.config), state)


def to_state(record: Record, status: str) -> State:
    return State(
        id=record.id,
        status=status,
        pid=record.pid if status in ("created", "running") or (status == "creating" and record.pid) else 0,
        bundle=record.bundle,
        annotations=record.annotations,
        rootfs=record.rootfs,
        created=record.created,
    )


def state_json(record: Record, status: str) -> bytes:
    return jsonfast.dumps(to_state(record, status).to_dict(), compact=False).encode()


def reap(pid: int) -> None:
    # init is our child only when we are its subreaper (foreground run); otherwise wait until it is gone.
    try:
        os.waitpid(pid, 0)
        return
    except ChildProcessError:
        pass
    for _ in range(1000):
        if process_start_time(pid) is None:
            return
        time.sleep(0.002)


def start(store: Store, container_id: str) -> None:
    with store.open(container_id) as cdir:
        record = cdir.read()
        status = status_of(cdir, record)
        if status == "running":
            raise InvalidState("cannot start an already running container")
        if status == "stopped":
            raise InvalidState("cannot start a container that has stopped")
        if status != "created":
            raise InvalidState(f"cannot start a container in the {status} state")
        _signal_start(cdir, state_json(record, "running"), record)
        # Init removes the socket, whose absence marks "running", unless it may
        # not write the state directory (a user namespace's root mapped to an
        # unprivileged host UID); then start does, as runc's removes exec.fifo.
        try:
            os.unlink(cdir.start_socket)
        except FileNotFoundError:
            pass
        record.status = "running"
        cdir.write(record)
    run_recorded_hooks("poststart", record, state_json(record, "running"))


def _signal_start(cdir: ContainerDir, state: bytes, record: Record) -> None:
    profile = (record.config.get("linux") or {}).get("seccomp")
    sock = unixsock.connect(cdir.start_socket)
    try:
        sock.sendall(b"start" + state)
        unixsock.shutdown_write(sock)
        if profile and profile.get("listenerPath"):
            reply = _relay_seccomp_fd(sock, profile, record)
        else:
            reply = unixsock.read_all(sock)
    finally:
        sock.close()
    if reply.startswith(b"error "):
        raise SetupError(f"unable to start container process: {reply[6:].decode(errors='replace')}")
    if len(reply) == 1:
        # The exec trampoline's report of a failed last execve: its errno (exec_trampoline.py).
        args = ((record.config.get("process") or {}).get("args")) or ["?"]
        raise SetupError(f"unable to start container process: exec {args[0]}: {os.strerror(reply[0]).lower()}")


def _relay_seccomp_fd(sock: unixsock.Socket, profile: dict[str, Any], record: Record) -> bytes:
    # config-linux.md "listenerPath": init loads the filter but cannot reach the
    # host's socket, so start sends the notify fd on; the state is "created"
    # (runtime.md: the user's program has not run yet).
    from hull.runtime import seccomp

    try:
        return seccomp.read_start_reply(sock, profile, record.pid, state_json(record, "created"))
    except SetupError:
        # runtime.md "Errors": the agent never got the fd; the container must not run without it.
        os.kill(record.pid, SIGKILL)
        raise


def warn(message: str) -> None:
    os.write(2, f"hull-runtime: warning: {message}\n".encode())


def status_of(cdir: ContainerDir, record: Record) -> str:
    """The lifecycle status, "paused" included: a live container whose cgroup is frozen (runc's isPaused)."""
    status = cdir.status(record)
    if status in ("created", "running") and record.cgroup_paths:
        from hull.runtime import cgroups

        if cgroups.is_frozen(record.cgroup_paths):
            return "paused"
    return status


def state(store: Store, container_id: str) -> State:
    with store.peek(container_id) as cdir:
        record = cdir.read()
        return to_state(record, status_of(cdir, record))


def list_states(store: Store) -> list[State]:
    """Every container's state; ``owner`` filled in, as runc's list does, from who owns its state directory."""
    states = []
    for container_id in store.ids():
        try:
            with store.peek(container_id) as cdir:
                record = cdir.read()
                current = to_state(record, status_of(cdir, record))
                current.owner = _user_name(os.stat(cdir.path).st_uid)
        except (ContainerNotFound, FileNotFoundError):
            continue
        states.append(current)
    return states


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def kill(store: Store, container_id: str, signum: int, all_processes: bool = False) -> None:
    with store.open(container_id) as cdir:
        record = cdir.read()
        status = status_of(cdir, record)
        if status not in ("created", "running", "paused"):
            raise InvalidState("container not running")
        if all_processes and record.cgroup_paths:
            from hull.runtime import cgroups

            # runc's signalAllProcesses: everything in the container's cgroup, frozen meanwhile.
            cgroups.signal_all(record.cgroup_paths, signum)
        elif all_processes:
            for pid in _container_processes(record):
                _signal(pid, signum)
        else:
            _signal(record.pid, signum)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _container_processes(record: Record) -> list[int]:
    """Every process in the container's PID namespace (without cgroups, the namespace is the container)."""
    linux = record.config.get("linux") or {}
    pid_ns = next((ns for ns in linux.get("namespaces") or [] if ns.get("type") == "pid"), None)
    if pid_ns is None or pid_ns.get("path"):
        return [record.pid]
    from hull.runtime.namespaces import same_namespace

    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit() and same_namespace(int(name), "pid", record.pid):
            pids.append(int(name))
    return pids


def _remove_cgroup(record: Record) -> None:
    from hull.runtime import cgroups

    linux = record.config.get("linux") or {}
    pid_ns = next((ns for ns in linux.get("namespaces") or [] if ns.get("type") == "pid"), None)
    if pid_ns is None or pid_ns.get("path"):
        # runc's destroy: without a PID namespace of its own, the container's
        # processes outlive init and the cgroup is what finds them. With one,
        # they died with init, and the cgroup (which another container given
        # the same cgroupsPath may share) is not searched.
        cgroups.kill_all(record.cgroup_paths)
    try:
        cgroups.remove(record.cgroup_paths)
    except SetupError as err:
        warn(str(err))  # still in use (a shared cgroupsPath): the state goes anyway


def delete(store: Store, container_id: str, force: bool = False) -> None:
    with store.open(container_id) as cdir:
        try:
            record = cdir.read()
        except ContainerNotFound:
            cdir.remove()  # a create killed before it wrote any state
            return
        status = status_of(cdir, record)
        if status in ("running", "creating", "paused") and not force:
            raise InvalidState(f"cannot delete container {container_id} that is not stopped: {status}")
        if status == "creating":
            _signal(record.creator_pid, SIGKILL)
            # Gone before its cgroup is removed: it would make it again.
            reap(record.creator_pid)
        # Not only when created or running: the init of a create that was
        # killed half-way reads "stopped" (its creator is gone) but may still
        # be alive, running a createContainer hook say, and must go too.
        if is_alive(record.pid, record.pid_start):
            for pid in _container_processes(record):
                _signal(pid, SIGKILL)
            if status == "paused":
                from hull.runtime import cgroups

                cgroups.thaw(record.cgroup_paths)  # frozen tasks only die once thawed
            reap(record.pid)
        if record.cgroup_paths:
            _remove_cgroup(record)
        cdir.remove()
    run_recorded_hooks("poststop", record, state_json(record, "stopped"))
