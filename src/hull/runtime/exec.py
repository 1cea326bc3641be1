"""``exec``: run another process in a created or running container (runc 1.1's ``runc exec``).

The process is the one of ``--process`` (a process.json), or the container's
own ``process`` with the command-line overrides runc applies (exec.go
getProcess). It joins every namespace the container's config lists, through
the container init's /proc/<pid>/ns/* (the user namespace first, then runc's
order: ipc, uts, net, mnt, cgroup); it enters the cgroup, and then takes the
same last steps as init (privileges.finalize) before execve.

PID and time namespaces only apply to children (setns(2)), so the runtime
joins those two for its children only, then forks the process straight into
them: the process is the runtime's child (runc's nsexec uses CLONE_PARENT for
the same result), which ``exec`` waits for in the foreground.

Three container-breakout classes are defended here:

* CVE-2019-5736, the race: a process that appears in the container's PID
  namespace while it is still the runtime's interpreter could have its
  /proc/<pid>/exe (or map_files, or mem) opened from inside. The runtime makes
  itself non-dumpable before it forks, so the child is never dumpable in the
  container: /proc/<pid>/* then needs CAP_SYS_PTRACE in the host's user
  namespace (runc's nsexec does the same).
* CVE-2019-5736, "#!/proc/self/exe": a container program naming
  /proc/self/exe as its interpreter would have the kernel run the host's
  interpreter in the container. The last execve goes through a sealed memfd
  trampoline (exec_trampoline.py), as runc runs from a sealed memfd copy of
  itself. (init's last execve does not yet.)
* CVE-2024-21626: every fd not asked for is closed before the first path
  lookup in the container (the cwd, the executable), and the cwd is verified
  to lie inside the container's root.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]
import errno
import os

from hull.oci import jsonfast
from hull.oci._parse import SpecError
from hull.oci.records import field, record
from hull.oci.runtime_config import Config, Process, User, parse_config, parse_process
from hull.runtime import (
    cgroups,
    container,
    exec_trampoline,
    forwarding,
    namespaces,
    privileges,
    process,
    seccomp,
    unixsock,
)
from hull.runtime import linux as L
from hull.runtime.errors import ConfigError, InvalidState, RuntimeFailure, SetupError, Unsupported
from hull.runtime.store import Record, Store, is_alive
from hull.runtime.sync import Channel, ChannelClosed, pair

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PR_SET_DUMPABLE = 4
TRAMPOLINE_TIMEOUT = 5.0  # seconds for the trampoline's one execve to report

# runc's orderNamespacePaths (configs.NamespaceTypes): user first. pid and time
# are joined by the runtime for its child; the child joins the others in order.
CHILD_ORDER = ("user", "ipc", "uts", "network", "mount", "cgroup")
FOR_CHILDREN = ("pid", "time")


@record
class ExecOptions:
    """``runc exec``'s flags; user and gids as given, parsed (with runc's errors) after the state checks."""

    args: list[str] = field(default_factory=list)
    process_path: str = ""
    tty: bool | None = None
    console_socket: str = ""
    detach: bool = False
    pid_file: str = ""
    cwd: str = ""
    env: list[str] = field(default_factory=list)
    user: str = ""
    additional_gids: list[int] = field(default_factory=list)
    caps: list[str] = field(default_factory=list)
    no_new_privs: bool | None = None
    preserve_fds: int = 0
    process_label: str = ""
    apparmor: str = ""
    ignore_paused: bool = False
    cgroup: list[str] = field(default_factory=list)


def exec_process(store: Store, container_id: str, opts: ExecOptions) -> int:
    """Run the process; its exit status in the foreground (128+N if killed by signal N), 0 detached."""
    with store.open(container_id) as cdir:
        record = cdir.read()
        status = container.status_of(cdir, record)
        if status == "stopped":
            raise InvalidState("cannot exec in a stopped container")
        if status == "paused" and not opts.ignore_paused:
            raise InvalidState("cannot exec in a paused container (use --ignore-paused to override)")
        if status not in ("created", "running", "paused"):
            raise InvalidState(f"cannot exec in a {status} container")
        if not opts.process_path and not opts.args:
            raise RuntimeFailure("process args cannot be empty")
        config = parse_config(record.config)
        proc = load_process(config, opts)
        _check_terminal(proc, opts)
        if opts.cgroup:
            raise Unsupported("--cgroup is not supported by hull-runtime yet")
        _check_preserved(opts.preserve_fds)
        tty_relay = None
        if proc.terminal and not opts.console_socket:
            # A foreground exec with a tty: the pty master comes back to us over
            # a socket pair and is relayed to our own terminal (runc's recvtty).
            from hull.runtime import exec_tty

            tty_relay = exec_tty.Relay()
        ns_fds = _open_namespaces(record, config)
        console: unixsock.Socket | None
        if tty_relay is not None:
            console = tty_relay.child_end
        else:
            console = unixsock.connect(opts.console_socket) if opts.console_socket else None
        program = None
        if config.linux.seccomp is not None:
            from hull.runtime import seccomp_cache

            program = seccomp_cache.program_for(config.linux.seccomp, store.root)
        pid = _spawn(record, config, proc, opts, ns_fds, container.state_json(record, status), console, program)
    if opts.pid_file:
        try:
            forwarding.write_pid_file(opts.pid_file, pid)
        except BaseException:
            # runc's runner.terminate: no process left running that its caller cannot know of.
            os.kill(pid, _signal.SIGKILL)
            _reap(pid)
            raise
    if opts.detach:
        return 0
    if tty_relay is not None:
        return tty_relay.run(pid)
    with forwarding.forwarding_to(pid):
        _, wait_status = os.waitpid(pid, 0)
    return forwarding.exit_code(wait_status)


# ---------------------------------------------------------------- the process


def load_process(config: Config, opts: ExecOptions) -> Process:
    """The process to run: process.json's, or the config's with runc's overrides (exec.go getProcess)."""
    if opts.process_path:
        proc = _read_process_json(opts.process_path)
        # What process.json leaves out comes from the container, as runc's
        # newInitConfig and finalizeNamespace fall back to it.
        base = config.process
        if base is not None:
            if proc.capabilities is None:
                proc.capabilities = base.capabilities
            if not proc.rlimits:
                proc.rlimits = base.rlimits
            if not proc.apparmor_profile:
                proc.apparmor_profile = base.apparmor_profile
        _check_labels(proc)
        return proc
    if config.process is None:
        raise ConfigError("process property must not be empty")
    # A shallow copy (the lists replaced below are new ones): the config stays as recorded.
    proc = Process(**{name: getattr(config.process, name) for name in Process.__record_fields__})  # type: ignore[attr-defined]
    proc.args = list(opts.args)
    if opts.cwd:
        proc.cwd = opts.cwd
    if opts.apparmor:
        proc.apparmor_profile = opts.apparmor
    if opts.process_label:
        proc.selinux_label = opts.process_label
    if opts.caps:
        # runc adds each to the bounding, effective, permitted and ambient sets (not inheritable).
        caps = {k: list(v) for k, v in (proc.capabilities or {}).items()}
        for name in ("bounding", "effective", "permitted", "ambient"):
            caps.setdefault(name, []).extend(opts.caps)
        proc.capabilities = caps
    proc.env = [*proc.env, *opts.env]
    proc.terminal = bool(opts.tty)
    if opts.no_new_privs is not None:
        proc.no_new_privileges = opts.no_new_privs
    user = config.process.user
    uid, gid = user.uid, user.gid
    if opts.user:
        text_uid, _, text_gid = opts.user.partition(":")
        if ":" in opts.user:
            gid = _go_atoi(text_gid, "gid")
        uid = _go_atoi(text_uid, "uid")
    gids = list(user.additional_gids)
    for extra in opts.additional_gids:
        if extra < 0:
            raise RuntimeFailure(f"additional-gids must be a positive number {extra}")
        gids.append(extra)
    proc.user = User(uid=uid, gid=gid, umask=user.umask, additional_gids=gids)
    # runc's validateProcessSpec, in its words.
    if not proc.cwd:
        raise RuntimeFailure("Cwd property must not be empty")
    if not proc.cwd.startswith("/"):
        raise RuntimeFailure("Cwd must be an absolute path")
    _check_labels(proc)
    return proc


def _read_process_json(path: str) -> Process:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise RuntimeFailure(f"open {path}: {(err.strerror or str(err)).lower()}") from None
    try:
        doc = jsonfast.loads(raw)
    except ValueError as err:
        raise ConfigError(f"{path}: invalid JSON: {err}") from None
    try:
        return parse_process(doc, "")
    except SpecError as err:
        raise ConfigError(f"{path}: {err}") from None


def _go_atoi(text: str, what: str) -> int:
    """strconv.Atoi as runc calls it for --user, with its error; the value cast to uint32 as runc does."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise RuntimeFailure(f'parsing {text} as int for {what} failed: strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if not -(1 << 63) <= value < 1 << 63:
        raise RuntimeFailure(
            f'parsing {text} as int for {what} failed: strconv.Atoi: parsing "{text}": value out of range'
        )
    return value % (1 << 32)


def _check_labels(proc: Process) -> None:
    if not proc.selinux_label:
        return
    from hull.runtime.lsm import selinux_enabled

    if not selinux_enabled():
        raise RuntimeFailure("selinux label is specified in config, but selinux is disabled or not supported")


def _check_terminal(proc: Process, opts: ExecOptions) -> None:
    # runc's checkTerminal.
    if opts.detach and proc.terminal and not opts.console_socket:
        raise RuntimeFailure("cannot allocate tty if runc will detach without setting console socket")
    if (not opts.detach or not proc.terminal) and opts.console_socket:
        raise RuntimeFailure("cannot use console socket if runc will not detach or allocate tty")


def _check_preserved(count: int) -> None:
    for fd in range(3, 3 + count):
        try:
            os.stat(f"/proc/self/fd/{fd}")
        except OSError as err:
            raise RuntimeFailure(
                f"unable to stat preserved-fd {fd - 3} (of {count}): stat /proc/self/fd/{fd}: "
                f"{(err.strerror or str(err)).lower()}"
            ) from None


# ---------------------------------------------------------------- namespaces


def _open_namespaces(record: Record, config: Config) -> dict[str, int]:
    """fds of the init's namespaces of every type the config lists, opened while init is verified alive.

    They are opened first and init's identity (PID and start time) checked
    after: a PID recycled meanwhile is never mistaken for the container's.
    """
    kinds = {ns.type for ns in config.linux.namespaces}
    fds: dict[str, int] = {}
    try:
        for kind in (*CHILD_ORDER, *FOR_CHILDREN):
            if kind in kinds:
                path = f"/proc/{record.pid}/ns/{namespaces.PROC_NAMES[kind]}"
                fds[kind] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        if not is_alive(record.pid, record.pid_start):
            raise InvalidState("cannot exec in a stopped container")
        user = fds.get("user")
        if user is not None and os.fstat(user).st_ino == os.stat("/proc/self/ns/user").st_ino:
            # Listed with a path to the runtime's own user namespace: setns(2)
            # refuses to re-enter the current one (EINVAL), and there is nothing to join.
            os.close(fds.pop("user"))
    except OSError as err:
        _close_all(fds)
        if err.errno in (errno.ENOENT, errno.ESRCH):
            raise InvalidState("cannot exec in a stopped container") from None
        raise
    except BaseException:
        _close_all(fds)
        raise
    return fds


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        os.close(fd)


# ---------------------------------------------------------------- the fork


@record
class _Handoff:
    """What the forked child keeps of the runtime's: every other fd is closed before it enters the container."""

    chan: Channel
    console: unixsock.Socket | None
    notify_relay: unixsock.Socket | None
    trampoline: int  # sealed memfd of exec_trampoline, or -1
    status_w: int  # where the trampoline reports a failed execve
    seccomp_program: bytes | None = None  # linux.seccomp compiled on the host (seccomp_cache)

    def fds(self) -> tuple[int, ...]:
        socks = [s.fileno() for s in (self.console, self.notify_relay) if s is not None]
        return (self.chan.read_fd, self.chan.write_fd, self.trampoline, self.status_w, *socks)


@record
class _Relay:
    """The runtime's end of the seccomp notify relay: the child's filter fd comes back over ``sock``."""

    sock: unixsock.Socket
    seccomp: dict[str, Any]
    pid: int
    state: bytes


def _spawn(
    record: Record,
    config: Config,
    proc: Process,
    opts: ExecOptions,
    ns_fds: dict[str, int],
    state: bytes,
    console_sock: unixsock.Socket | None,
    seccomp_program: bytes | None = None,
) -> int:
    """Fork the process into the container; its PID once it has exec'd."""
    relay: _Relay | None = None
    relay_child: unixsock.Socket | None = None
    seccomp_config = config.linux.seccomp
    if seccomp_config is not None and seccomp.uses_notify(seccomp_config):
        # As init's, the notify fd comes to the runtime, which sends it to the
        # agent at listenerPath: a path of the host, out of the process's reach.
        import _socket

        ours_sock, relay_child = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        relay = _Relay(ours_sock, seccomp_config, record.pid, state)
    _import_what_runs_after_setns(config, proc)
    # Before the fork (CVE-2019-5736): the child is created non-dumpable, so
    # from its first instant in the container's PID namespace nothing there
    # can open its /proc/<pid>/exe, map_files or mem.
    L.prctl(PR_SET_DUMPABLE, 0)
    try:
        _join(ns_fds, FOR_CHILDREN, "joining {} namespace")
        # CVE-2019-5736, "#!/proc/self/exe": see exec_trampoline.
        trampoline = exec_trampoline.sealed_memfd()
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        ours, theirs = pair()
        child = os.fork()
        if child == 0:
            ours.close()
            os.close(status_r)
            handoff = _Handoff(theirs, console_sock, relay_child, trampoline, status_w, seccomp_program)
            _child(record, config, proc, opts, ns_fds, state, handoff)
    finally:
        _close_all(ns_fds)
    theirs.close()
    os.close(status_w)
    if trampoline >= 0:
        os.close(trampoline)
    for sock in (console_sock, relay_child):
        if sock is not None:
            sock.close()
    try:
        path = _await_exec(ours, child, relay)
        _await_trampoline(status_r, path)
    finally:
        ours.close()
        os.close(status_r)
        if relay is not None:
            relay.sock.close()
    return child


def _await_trampoline(status_r: int, path: str) -> None:
    """Until the container's program is exec'd (EOF), or the trampoline's execve failed (an errno byte).

    runc 1.1 reports a failed last execve as its init's last words on the
    process's stderr, "exec <path>: <reason>", and the process exits 1: a
    foreground exec returns 1, a detached one 0. So does this.
    """
    import select

    # Bounded: the trampoline is exec'd and dumpable, so a process of the
    # container could open its status fd through /proc and hold it; that must
    # not keep exec (and the container's lock) waiting.
    ready, _, _ = select.select([status_r], [], [], TRAMPOLINE_TIMEOUT)
    data = os.read(status_r, 1) if ready else b""
    if data:
        reason = os.strerror(data[0]).lower()
        os.write(2, f"exec {path}: {reason}\n".encode())


def _import_what_runs_after_setns(config: Config, proc: Process) -> None:
    # Once in the container's mount namespace the runtime's own files are out
    # of reach: a module first imported there fails to load (as after init's pivot_root).
    if proc.terminal:
        import hull.runtime.console  # noqa: F401
    if proc.apparmor_profile or proc.selinux_label:
        import hull.runtime.lsm  # noqa: F401
    if config.linux.seccomp is not None:
        # Also dlopens libseccomp.so.2 from the host while it is reachable.
        import hull.runtime.libseccomp  # noqa: F401


def _await_exec(chan: Channel, child: int, relay: _Relay | None) -> str:
    """Until the child has exec'd: its "exec" message (with the path), then the pipe closing on execve; or its error.

    A seccomp notify fd is passed on to the agent as soon as it comes: the
    child's next syscalls may wait on the agent.
    """
    path = ""
    try:
        while True:
            if relay is not None and _relay_ready(chan, relay):
                data, fds = unixsock.recv_fds(relay.sock)
                try:
                    if fds:
                        seccomp.send_process_state(relay.seccomp, fds[0], relay.pid, relay.state)
                finally:
                    for fd in fds:
                        os.close(fd)
                if not fds and not data:
                    relay = None
                continue
            message = chan.recv()
            if message["t"] == "error":
                raise SetupError(f"unable to start container process: {message['msg']}")
            path = message.get("path", "") if message["t"] == "exec" else ""
    except ChannelClosed:
        if path:
            return path  # execve(2) closed the child's end
        _reap(child)
        raise SetupError("unable to start container process: exec process exited unexpectedly") from None
    except BaseException:
        _reap(child)
        raise


def _relay_ready(chan: Channel, relay: _Relay) -> bool:
    """Whether the relay socket has something before the channel does (which always ends: EOF at exit or exec)."""
    import select

    ready, _, _ = select.select([relay.sock.fileno(), chan.read_fd], [], [])
    return relay.sock.fileno() in ready


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _child(
    record: Record,
    config: Config,
    proc: Process,
    opts: ExecOptions,
    ns_fds: dict[str, int],
    state: bytes,
    handoff: _Handoff,
) -> None:
    """In the forked process, already in the container's PID (and time) namespace; never returns."""
    chan, console_sock, relay = handoff.chan, handoff.console, handoff.notify_relay
    try:
        first_closed = 3 + opts.preserve_fds
        # CVE-2024-21626: nothing of the runtime's caller beyond what it asked
        # to pass, before any path is looked up in the container.
        process.close_fds_from(first_closed, keep=(*handoff.fds(), *ns_fds.values()))
        # Before the cgroup namespace is joined, while the paths are the host's.
        cgroups.join(record.cgroup_paths)
        _join(ns_fds, CHILD_ORDER, "failed to setns into {} namespace")
        # setns(CLONE_NEWNS) put root and cwd at the container's root; be explicit about cwd.
        os.chdir("/")
        os.setsid()
        _join_keyring(record.id)
        if proc.terminal:
            assert console_sock is not None
            _setup_console(proc, console_sock)
        if console_sock is not None:
            console_sock.close()
        process.set_rlimits(proc.rlimits)
        env = process.with_home(proc.env, proc.user.uid)
        path = process.lookup_executable(proc.args[0], env)
        if proc.apparmor_profile or proc.selinux_label:
            from hull.runtime import lsm

            lsm.apply(proc)
        if relay is not None:
            seccomp.relay_notify_fd_through(relay)
        privileges.finalize(proc, config.linux.seccomp, state, lambda: _enter_cwd(proc.cwd), handoff.seccomp_program)
        for fd in range(3, first_closed):
            os.set_inheritable(fd, True)
        chan.send("exec", path=path)
        if handoff.trampoline >= 0 and handoff.status_w < 128:
            os.set_inheritable(handoff.status_w, True)
            exec_trampoline.execute(handoff.trampoline, handoff.status_w, path, proc.args, env)
        process.execute(path, proc.args, env)
    except BaseException as err:  # noqa: BLE001 - every failure must reach the runtime
        try:
            chan.send("error", msg=_message(err))
        except OSError:
            pass
    os._exit(1)


def _join_keyring(container_id: str) -> None:
    try:
        L.join_session_keyring(container_id)
    except OSError:
        # As init and runc's setns init: no keyring support is not an error.
        pass


def _setup_console(proc: Process, sock: unixsock.Socket) -> None:
    from hull.runtime import console

    master, slave = console.open_pty()
    try:
        if proc.console_height or proc.console_width:
            console.set_size(master, proc.console_height, proc.console_width)
        console.send_master(sock, master)
    finally:
        os.close(master)
    # runc's setns init: no /dev/console bind for an exec'd process.
    console.attach_slave(slave, mount_console=False)


def _enter_cwd(cwd: str) -> None:
    # As the container's user (runc's finalizeNamespace), then runc's verifyCwd
    # (CVE-2024-21626): a cwd reached through a leaked fd lies outside the root.
    try:
        os.chdir(cwd)
    except OSError as err:
        reason = (err.strerror or str(err)).lower()
        raise SetupError(f'chdir to cwd ("{cwd}") set in config.json failed: {reason}') from None
    process.check_cwd_inside()


def _message(err: BaseException) -> str:
    if isinstance(err, (RuntimeFailure, ValueError)):
        return str(err)
    if isinstance(err, OSError):
        where = f": {err.filename}" if err.filename else ""
        return f"{err.strerror or err}{where}"
    return f"{type(err).__name__}: {err}"


# ---------------------------------------------------------------- foreground


def _join(ns_fds: dict[str, int], order: tuple[str, ...], what: str) -> None:
    """Join the namespaces of ``order`` that ``ns_fds`` holds (taking their fds out of it), in that order."""
    try:
        namespaces.join([(kind, ns_fds.pop(kind)) for kind in order if kind in ns_fds], what)
    except OSError as err:
        raise SetupError(err.strerror or str(err)) from None
