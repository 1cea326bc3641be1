"""The container lifecycle (runtime-spec runtime.md "Lifecycle" and "Operations").

create forks the container (init.py), runs prestart and createRuntime hooks
while init waits before pivot_root, records the state and returns with init
waiting for start. Any failure on the way kills what was forked and removes
the state directory: a failed create leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from hull.oci.runtime_config import Config, parse_config
from hull.oci.state import State
from hull.runtime import bundle as bundle_mod
from hull.runtime import console, hooks, namespaces
from hull.runtime.errors import ContainerNotFound, HookError, InvalidState, RuntimeFailure, SetupError
from hull.runtime.init import InitContext, intermediate
from hull.runtime.store import ContainerDir, Record, Store, process_start_time
from hull.runtime.sync import Channel, ChannelClosed, ChildError, pair


@dataclass(slots=True)
class CreateOptions:
    bundle: str
    console_socket: str = ""
    pid_file: str = ""
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _owner() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def to_state(record: Record, status: str) -> State:
    return State(
        id=record.id,
        status=status,
        pid=record.pid if status in ("created", "running") or (status == "creating" and record.pid) else 0,
        bundle=record.bundle,
        annotations=record.annotations,
        rootfs=record.rootfs,
        created=record.created,
        owner=record.owner,
    )


def _state_json(record: Record, status: str) -> bytes:
    return json.dumps(to_state(record, status).to_dict()).encode()


def create(store: Store, container_id: str, opts: CreateOptions) -> int:
    """Create the container; return its init PID. Leaves nothing behind on failure."""
    bundle = os.path.abspath(opts.bundle)
    if not os.path.isdir(bundle):
        raise RuntimeFailure(f"chdir {opts.bundle}: no such file or directory")
    doc, config, rootfs = bundle_mod.load(bundle)
    _check_console_flags(config, opts)
    cdir = store.create(container_id)
    record = Record(
        id=container_id,
        bundle=bundle,
        rootfs=rootfs,
        created=_now(),
        owner=_owner(),
        status="creating",
        config=doc,
        creator_pid=os.getpid(),
        creator_start=process_start_time(os.getpid()) or 0,
        annotations=config.annotations,
    )
    try:
        cdir.write(record)
        _spawn(cdir, record, config, opts)
    except BaseException:
        _destroy(cdir, record)
        raise
    if opts.pid_file:
        _write_pid_file(opts.pid_file, record.pid)
    cdir.close()
    return record.pid


def _check_console_flags(config: Config, opts: CreateOptions) -> None:
    assert config.process is not None
    if opts.console_socket and not config.process.terminal:
        raise RuntimeFailure("cannot use console socket if runc will not detach or allocate tty")
    if config.process.terminal and not opts.console_socket:
        raise RuntimeFailure("cannot allocate tty if runc will detach without setting console socket")


def _spawn(cdir: ContainerDir, record: Record, config: Config, opts: CreateOptions) -> None:
    extra_env, preserved = _listen_fds()
    preserved += opts.preserve_fds
    _occupy_preserved(preserved)
    console_sock = console.connect(opts.console_socket) if opts.console_socket else None
    ctx = InitContext(
        config=config,
        container_id=record.id,
        bundle=record.bundle,
        rootfs=record.rootfs,
        state_dir=cdir.path,
        no_pivot=opts.no_pivot,
        no_new_keyring=opts.no_new_keyring,
        preserved_fds=preserved,
        console_fd=console_sock.fileno() if console_sock else -1,
        extra_env=extra_env,
    )
    ours, theirs = pair()
    try:
        child = os.fork()
        if child == 0:
            # The flock belongs to this runtime process, not to the container:
            # an inherited copy would hold the lock for the container's lifetime.
            cdir.close()
            ours.close()
            intermediate(ctx, theirs)
        theirs.close()
        if console_sock:
            console_sock.close()
        _drive(cdir, record, config, ours, child)
    except ChildError as err:
        raise SetupError(f"unable to start container process: {err}") from None
    except ChannelClosed:
        raise SetupError("unable to start container process: container init exited unexpectedly") from None
    finally:
        ours.close()


def _drive(cdir: ContainerDir, record: Record, config: Config, chan: Channel, child: int) -> None:
    """The runtime's half of the create conversation with the intermediate and init processes."""
    try:
        message = chan.recv()
        if message["t"] == "userns":
            namespaces.write_id_maps(child, config.linux)
            chan.send("mapped")
            message = chan.recv()
        if message["t"] == "error":
            raise ChildError(message["msg"])
        record.pid = message["pid"]
        record.pid_start = process_start_time(record.pid) or 0
    finally:
        os.waitpid(child, 0)
    cdir.write(record)
    chan.expect("hooks")
    state = _state_json(record, "creating")
    hooks.run_hooks("prestart", config.hooks.get("prestart", []), state)
    hooks.run_hooks("createRuntime", config.hooks.get("createRuntime", []), state)
    chan.send("go", state=state.decode())
    chan.expect("ready")
    record.status = "created"
    cdir.write(record)


def _listen_fds() -> tuple[list[str], int]:
    # Socket activation passes through as runc does it: the fds and LISTEN_FDS, with LISTEN_PID=1.
    count = os.environ.get("LISTEN_FDS", "")
    if not count.isdigit() or int(count) == 0:
        return [], 0
    return [f"LISTEN_FDS={count}", "LISTEN_PID=1"], int(count)


def _occupy_preserved(count: int) -> None:
    # A preserved fd number that is not open must not be taken by one of our own pipes.
    for fd in range(3, 3 + count):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open("/dev/null", os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def _write_pid_file(path: str, pid: int) -> None:
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def _destroy(cdir: ContainerDir, record: Record) -> None:
    """Undo create (runtime.md lifecycle step 12): kill init, drop the state directory."""
    if record.pid and process_start_time(record.pid) == record.pid_start:
        try:
            os.kill(record.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(record.pid)
    cdir.remove()


def _reap(pid: int) -> None:
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
        status = cdir.status(record)
        if status == "running":
            raise InvalidState("cannot start an already running container")
        if status == "stopped":
            raise InvalidState("cannot start a container that has stopped")
        if status != "created":
            raise InvalidState(f"cannot start a container in the {status} state")
        config = parse_config(record.config)
        _signal_start(cdir, _state_json(record, "running"))
        record.status = "running"
        cdir.write(record)
    _run_poststart(config, _state_json(record, "running"))


def _signal_start(cdir: ContainerDir, state: bytes) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    here = os.open(".", os.O_PATH | os.O_CLOEXEC)
    try:
        os.chdir(cdir.path)
        sock.connect(os.path.basename(cdir.start_socket))
    finally:
        os.fchdir(here)
        os.close(here)
    with sock:
        sock.sendall(b"start" + state)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    if reply.startswith(b"error "):
        raise SetupError(f"unable to start container process: {reply[6:].decode(errors='replace')}")


def _run_poststart(config: Config, state: bytes) -> None:
    try:
        hooks.run_hooks("poststart", config.hooks.get("poststart", []), state)
    except HookError as err:
        # runtime.md lifecycle step 9: a failing poststart hook is only a warning.
        warn(str(err))


def warn(message: str) -> None:
    os.write(2, f"hull-runtime: warning: {message}\n".encode())


def state(store: Store, container_id: str) -> State:
    with store.open(container_id) as cdir:
        record = cdir.read()
        return to_state(record, cdir.status(record))


def list_states(store: Store) -> list[State]:
    states = []
    for container_id in store.ids():
        try:
            states.append(state(store, container_id))
        except ContainerNotFound:
            continue
    return states


def kill(store: Store, container_id: str, signum: int, all_processes: bool = False) -> None:
    with store.open(container_id) as cdir:
        record = cdir.read()
        status = cdir.status(record)
        if status not in ("created", "running"):
            raise InvalidState("container not running")
        if all_processes:
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
    config = parse_config(record.config)
    pid_ns = config.linux.namespace("pid")
    if pid_ns is None or pid_ns.path:
        return [record.pid]
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit() and namespaces.same_namespace(int(name), "pid", record.pid):
            pids.append(int(name))
    return pids


def delete(store: Store, container_id: str, force: bool = False) -> None:
    try:
        cdir = store.open(container_id)
    except ContainerNotFound:
        raise
    with cdir:
        try:
            record = cdir.read()
        except ContainerNotFound:
            cdir.remove()  # a create killed before it wrote any state
            return
        status = cdir.status(record)
        if status in ("running", "creating") and not force:
            raise InvalidState(f"cannot delete container {container_id} that is not stopped: {status}")
        if status != "stopped" or force:
            for pid in _container_processes(record) if status in ("created", "running") else []:
                _signal(pid, signal.SIGKILL)
            if record.pid and status != "stopped":
                _reap(record.pid)
            if status == "creating":
                _signal(record.creator_pid, signal.SIGKILL)
        cdir.remove()
    config = parse_config(record.config)
    try:
        hooks.run_hooks("poststop", config.hooks.get("poststop", []), _state_json(record, "stopped"))
    except HookError as err:
        # runtime.md lifecycle step 13: a failing poststop hook is only a warning.
        warn(str(err))
