"""``create`` (runtime-spec runtime.md "Operations", lifecycle steps 1-5).

create forks the container (init.py), runs prestart and createRuntime hooks
while init waits before pivot_root, records the state and returns with init
waiting for start. Any failure on the way kills what was forked and removes
the state directory: a failed create leaves nothing behind.
"""

from __future__ import annotations

import os
import time

from hull.oci.records import record
from hull.oci.runtime_config import Config
from hull.runtime import bundle as bundle_mod
from hull.runtime import cgroups, forwarding, namespaces, unixsock
from hull.runtime.container import SIGKILL, reap, run_hooks, state_json, warn
from hull.runtime.errors import RuntimeFailure, SetupError
from hull.runtime.init import InitContext, intermediate
from hull.runtime.store import ContainerDir, Record, Store, process_start_time
from hull.runtime.sync import Channel, ChannelClosed, ChildError, pair


def _now() -> str:
    """RFC 3339 UTC with nanoseconds, as runc writes ``created``."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


@record
class CreateOptions:
    bundle: str
    console_socket: str = ""
    # A connected socket the pty master goes to instead of --console-socket:
    # a foreground ``run`` with a terminal relays the pty itself (run.py).
    console_fd: int = -1
    pid_file: str = ""
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0


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
        status="creating",
        config=doc,
        creator_pid=os.getpid(),
        creator_start=process_start_time(os.getpid()) or 0,
        annotations=config.annotations,
        cgroup_paths=cgroups.resolve(config.linux.cgroups_path, container_id),
    )
    try:
        # Recorded before the directories exist, so that ``delete`` finds
        # them after a create killed half-way.
        cdir.write(record)
        _setup_cgroups(record, config)
        _spawn(cdir, record, config, opts)
    except BaseException:
        _destroy(cdir, record)
        raise
    if opts.pid_file:
        forwarding.write_pid_file(opts.pid_file, record.pid)
    cdir.close()
    return record.pid


def _setup_cgroups(record: Record, config: Config) -> None:
    """Make the container's cgroups and write linux.resources, before anything joins them."""
    from hull.runtime.cgroup_resources import warnings

    for message in warnings(config.linux.resources):
        warn(message)
    present = cgroups.pids(record.cgroup_paths)
    if present:
        # runc 1.1's words; it goes on too (1.2 refuses).
        warn(f"container's cgroup is not empty: {len(present)} process(es) found")
    # runc's rootless mode (--rootless auto: not root on the host).
    rootless = os.geteuid() != 0 and not config.linux.cgroups_path
    record.cgroup_paths = paths = cgroups.create(record.cgroup_paths, rootless)
    devices = frozenset(d.path for d in config.linux.devices)
    cgroups.apply(paths, config.linux.resources, devices, rootless)


def _check_console_flags(config: Config, opts: CreateOptions) -> None:
    assert config.process is not None
    if opts.console_socket and not config.process.terminal:
        raise RuntimeFailure("cannot use console socket if runc will not detach or allocate tty")
    if config.process.terminal and not opts.console_socket and opts.console_fd < 0:
        raise RuntimeFailure("cannot allocate tty if runc will detach without setting console socket")


def _spawn(cdir: ContainerDir, record: Record, config: Config, opts: CreateOptions) -> None:
    extra_env, preserved = _listen_fds()
    preserved += opts.preserve_fds
    _occupy_preserved(preserved)
    if opts.console_fd >= 0:
        console_sock: unixsock.Socket | None = unixsock.Socket(fileno=os.dup(opts.console_fd))
    else:
        console_sock = unixsock.connect(opts.console_socket) if opts.console_socket else None
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
        cgroup_paths=record.cgroup_paths,
    )
    if config.linux.seccomp is not None:
        from hull.runtime import seccomp_cache

        # On the host, before the fork: init only installs it, and the cache stays out of the container's reach.
        ctx.seccomp_program = seccomp_cache.program_for(config.linux.seccomp, os.path.dirname(cdir.path))
    ours, theirs = pair()
    cgroups.await_migration_grace_period()
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
        early = []
        while (message := chan.recv())["t"] != "pid":
            if message["t"] == "userns":
                namespaces.write_id_maps(child, config.linux)
                chan.send("mapped")
            elif message["t"] == "error":
                raise ChildError(message["msg"])
            else:
                # Init shares the pipe with the intermediate and may speak
                # (its "hooks") before the intermediate reports init's PID.
                early.append(message)
        for queued in early:
            chan.unread(queued)
        record.pid = message["pid"]
        record.pid_start = process_start_time(record.pid) or 0
    except BaseException:
        # The intermediate may be blocked on the channel waiting for an answer
        # (say "mapped", after writing the ID maps failed) that will not come.
        try:
            os.kill(child, SIGKILL)
        except ProcessLookupError:
            pass
        raise
    finally:
        os.waitpid(child, 0)
    cdir.write(record)
    chan.expect("hooks")
    state = state_json(record, "creating")
    try:
        run_hooks("prestart", config, state)
        run_hooks("createRuntime", config, state)
        chan.send("go", state=state.decode())
        chan.expect("ready")
    except BaseException:
        # runtime.md lifecycle steps 3-5: a failing prestart, createRuntime or
        # createContainer hook means "stop the container, and continue the
        # lifecycle at step 12": destroy it, then run the poststop hooks (step
        # 13), as runc's destroy does. Init is killed before the channel
        # closes, which it would otherwise report as an error of its own.
        _destroy(cdir, record)
        run_hooks("poststop", config, state_json(record, "stopped"))
        raise
    record.status = "created"
    cdir.write(record)


def _listen_fds() -> tuple[list[str], int]:
    # Socket activation passes through as runc does it: the fds and LISTEN_FDS, with LISTEN_PID=1.
    # Only fds meant for this process (sd_listen_fds(3): LISTEN_PID is ours), as go-systemd's
    # activation.Files, which runc uses, checks.
    count = os.environ.get("LISTEN_FDS", "")
    if not count.isdigit() or int(count) == 0 or os.environ.get("LISTEN_PID") != str(os.getpid()):
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


def _destroy(cdir: ContainerDir, record: Record) -> None:
    """Undo create (runtime.md lifecycle step 12): kill init, drop the state directory."""
    if record.pid and process_start_time(record.pid) == record.pid_start:
        try:
            os.kill(record.pid, SIGKILL)
        except ProcessLookupError:
            pass
        reap(record.pid)
    try:
        cgroups.remove(record.cgroup_paths)
    except SetupError as err:
        # A process the config let outlive init (no PID namespace) holds it;
        # ``delete --force`` kills what is left in the cgroup and retries.
        warn(str(err))
    cdir.remove()
