"""What runs in the forked processes that become the container.

The runtime forks an *intermediate* process that joins and creates the
namespaces; it forks the container's *init* (PID 1 of a new PID namespace,
since unshare(CLONE_NEWPID) and CLONE_NEWTIME only apply to children) and
exits, so init is re-parented away from the runtime as with runc. Init builds
the rootfs, waits for ``start`` on a socket in the state directory, and
execs the user's program. Neither ever returns into the CLI: both end in
``os._exit`` or ``execve``.
"""

from __future__ import annotations

import os

from hull.oci.records import field, record
from hull.oci.runtime_config import Config, Hook
from hull.runtime import cgroups, exec_trampoline, namespaces, privileges, process, rootfs, seccomp, unixsock
from hull.runtime import linux as L
from hull.runtime.errors import RuntimeFailure, SetupError
from hull.runtime.mount_options import PROPAGATION
from hull.runtime.paths import mkdir_all_in
from hull.runtime.store import START_SOCKET
from hull.runtime.sync import Channel

PR_SET_DUMPABLE = 4


@record
class InitContext:
    config: Config
    container_id: str
    bundle: str
    rootfs: str
    state_dir: str
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserved_fds: int = 0  # fds 3 .. 3+n-1 pass into the container
    console_fd: int = -1
    extra_env: list[str] = field(default_factory=list)
    cgroup_paths: dict[str, str] = field(default_factory=dict)
    # linux.seccomp compiled by the runtime on the host (seccomp_cache), or None: init builds it.
    seccomp_program: bytes | None = None


def intermediate(ctx: InitContext, chan: Channel) -> None:
    """Runs in the first child: enter namespaces, fork init, report its PID, exit."""
    try:
        # Nothing the runtime's caller left open (beyond the fds it asked to
        # pass) reaches init: runc's init is exec'd with chosen fds only.
        own = (chan.read_fd, chan.write_fd, ctx.console_fd)
        process.close_fds_from(3 + ctx.preserved_fds, keep=tuple(fd for fd in own if fd >= 0))
        # The start socket is bound here, as host root in the host's mount
        # namespace: init may be a user namespace's root mapped to an
        # unprivileged host UID that cannot enter the state directory, and
        # joining a mount namespace by path changes what its path names.
        listener = unixsock.listen(ctx.state_dir, START_SOCKET)
        state_fd = os.open(ctx.state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        plan = namespaces.plan(ctx.config.linux)
        # Into the container's cgroups before any namespace: a new cgroup
        # namespace is rooted at the cgroup of the process that unshares it
        # (runc's init joins them before nsexec unshares too), and every
        # process forked from here on is accounted to the container.
        cgroups.join(ctx.cgroup_paths)
        namespaces.join(namespaces.open_join_fds(plan))
        if plan.new_user:
            L.unshare(L.CLONE_NEWUSER)
            chan.send("userns")
            chan.expect("mapped")
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        if plan.new_flags:
            L.unshare(plan.new_flags)
        if ctx.config.linux.time_offsets:
            with open("/proc/self/timens_offsets", "w") as f:
                f.write(namespaces.format_time_offsets(ctx.config.linux))
        pid = os.fork()
        if pid == 0:
            in_user_ns = plan.new_user or any(k == "user" for k, _ in plan.join)
            container_init(ctx, chan, listener, state_fd, in_user_ns)
        chan.send("pid", pid=pid)
        os._exit(0)
    except BaseException as err:  # noqa: BLE001 - every failure must reach the runtime
        _report(chan, err)
        os._exit(1)


def container_init(ctx: InitContext, chan: Channel, listener: unixsock.Socket, state_fd: int, in_user_ns: bool) -> None:
    try:
        # Made now: after pivot_root the trampoline's module could not be imported.
        trampoline = exec_trampoline.sealed_memfd()
        _prepare(ctx, chan, in_user_ns)
        chan.send("ready")
        chan.close()
        conn, state_json = _wait_for_start(listener, state_fd)
        _finish_and_exec(ctx, conn, state_json, trampoline)
    except SystemExit:
        pass  # already reported to start over its connection
    except BaseException as err:  # noqa: BLE001
        _report(chan, err)
    os._exit(1)


def _prepare(ctx: InitContext, chan: Channel, in_user_ns: bool) -> None:
    config = ctx.config
    proc = config.process
    assert proc is not None
    os.setsid()
    # Keep /proc/<init>/fd (the state directory, the console socket) out of
    # reach of other processes until exec resets this (runc does the same).
    L.prctl(PR_SET_DUMPABLE, 0)
    if not ctx.no_new_keyring:
        _join_keyring(ctx.container_id)
    net = config.linux.namespace("network")
    if net is not None and not net.path:
        try:
            namespaces.bring_up_loopback()
        except OSError as err:
            raise SetupError(f"setting up the loopback interface: {err.strerror}") from None
    rootfs.prepare_root(ctx.rootfs, config.linux.rootfs_propagation)
    rootfs.mount_all(config, ctx.rootfs, ctx.bundle)
    if rootfs.needs_dev_setup(config):
        rootfs.setup_dev(config, ctx.rootfs, in_user_ns)
    _ensure_cwd(ctx.rootfs, proc.cwd)
    chan.send("hooks")
    go = chan.expect("go")
    _run_hooks("createContainer", config.hooks.get("createContainer", []), go["state"].encode())
    _import_what_runs_after_pivot(config)
    rootfs.pivot(ctx.rootfs, ctx.no_pivot)
    if proc.terminal:
        _setup_console(ctx)
    _set_names_and_sysctls(config)
    if proc.apparmor_profile or proc.selinux_label:
        # runc sets both here, during create, for the process's execve(2).
        from hull.runtime import lsm

        lsm.apply(proc)
    rootfs.readonly_paths(config.linux.readonly_paths)
    rootfs.mask_paths(config.linux.masked_paths)
    if config.root.readonly:
        rootfs.readonly_root()
    if config.linux.rootfs_propagation:
        L.mount(None, "/", None, PROPAGATION[config.linux.rootfs_propagation])
    process.set_rlimits(proc.rlimits)
    if proc.oom_score_adj is not None:
        process.set_oom_score_adj(proc.oom_score_adj)
    process.lookup_executable(proc.args[0], proc.env + ctx.extra_env)


def _import_what_runs_after_pivot(config: Config) -> None:
    # pivot_root (or the chroot of --no-pivot) takes the runtime's own Python
    # files out of reach: a module first imported after it fails to load.
    proc = config.process
    if proc is not None and proc.terminal:
        import hull.runtime.console  # noqa: F401
    if config.hooks.get("startContainer"):
        import hull.runtime.hooks  # noqa: F401
    if proc is not None and (proc.apparmor_profile or proc.selinux_label):
        import hull.runtime.lsm  # noqa: F401
    if config.linux.seccomp is not None:
        # Also dlopens libseccomp.so.2 from the host while it is reachable.
        import hull.runtime.libseccomp  # noqa: F401


def _join_keyring(container_id: str) -> None:
    try:
        L.join_session_keyring(container_id)
    except OSError:
        # Keyrings may be unavailable (ENOSYS, or EDQUOT in a user namespace);
        # runc carries on without one too.
        pass


def _ensure_cwd(root: str, cwd: str) -> None:
    # runc creates a missing cwd; images often name a WORKDIR that the rootfs lacks.
    try:
        mkdir_all_in(root, cwd)
    except OSError as err:
        raise SetupError(f"process.cwd: cannot create {cwd}: {err.strerror}") from None


def _run_hooks(kind: str, hooks: list[Hook], state_json: bytes) -> None:
    if hooks:
        from hull.runtime.hooks import run_hooks

        run_hooks(kind, hooks, state_json)


def _setup_console(ctx: InitContext) -> None:
    proc = ctx.config.process
    assert proc is not None
    from hull.runtime import console

    master, slave = console.open_pty()
    if proc.console_height or proc.console_width:
        console.set_size(master, proc.console_height, proc.console_width)
    sock = unixsock.Socket(fileno=ctx.console_fd)
    try:
        console.send_master(sock, master)
    finally:
        sock.close()
        os.close(master)
    console.attach_slave(slave, mount_console=True)


def _set_names_and_sysctls(config: Config) -> None:
    if config.hostname:
        L.sethostname(config.hostname)
    if config.domainname:
        L.setdomainname(config.domainname)
    for key, value in config.linux.sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as err:
            raise SetupError(f"linux.sysctl: setting {key}: {err.strerror}") from None


def _wait_for_start(listener: unixsock.Socket, state_fd: int) -> tuple[unixsock.Socket, bytes]:
    """Block until ``start`` connects and sends b"start" and the state (then shuts down writing)."""
    while True:
        conn = unixsock.accept(listener)
        message = unixsock.read_all(conn)
        if message.startswith(b"start"):
            break
        # A start that died before sending: keep waiting for the next one.
        conn.close()
    listener.close()
    # The socket's absence is what marks the container "running" (store.py).
    try:
        os.unlink(START_SOCKET, dir_fd=state_fd)
    except PermissionError:
        # A user namespace's root mapped to an unprivileged host UID may not
        # write the state directory; ``start`` removes it then (as runc's start
        # removes exec.fifo).
        pass
    os.close(state_fd)
    return conn, message[len(b"start") :]


def _finish_and_exec(ctx: InitContext, conn: unixsock.Socket, state_json: bytes, trampoline: int) -> None:
    proc = ctx.config.process
    assert proc is not None
    first_closed = 3 + ctx.preserved_fds
    try:
        # Before the cwd and the executable are looked up (CVE-2024-21626);
        # conn stays for reporting a failure and closes on exec.
        process.close_fds_from(first_closed, keep=(conn.fileno(), trampoline))
        env = process.with_home(proc.env + ctx.extra_env, proc.user.uid)
        path = process.lookup_executable(proc.args[0], env)
        _run_hooks("startContainer", ctx.config.hooks.get("startContainer", []), state_json)
        # A seccomp notify fd goes to start, which sends it to the agent (seccomp.py).
        seccomp.relay_notify_fd_through(conn)
        privileges.finalize(
            proc, ctx.config.linux.seccomp, state_json, lambda: _enter_cwd(proc.cwd), ctx.seccomp_program
        )
        for fd in range(3, first_closed):
            os.set_inheritable(fd, True)
        if trampoline >= 0 and conn.fileno() < 128:
            # CVE-2019-5736: the program is exec'd by a sealed memfd, never by
            # this copy of the host's interpreter (a "#!/proc/self/exe" script
            # would otherwise run the host's file inside the container). A
            # failed execve comes back on conn as one errno byte.
            os.set_inheritable(conn.fileno(), True)
            exec_trampoline.execute(trampoline, conn.fileno(), path, proc.args, env)
        process.execute(path, proc.args, env)
    except BaseException as err:  # noqa: BLE001
        conn.sendall(b"error " + _message(err).encode())
        raise SystemExit(1) from None


def _enter_cwd(cwd: str) -> None:
    # As the container's user, so its permissions decide (runc's finalizeNamespace).
    os.chdir(cwd)
    process.check_cwd_inside()


def _message(err: BaseException) -> str:
    if isinstance(err, (RuntimeFailure, ValueError)):
        return str(err)
    if isinstance(err, OSError):
        where = f" {err.filename}" if err.filename else ""
        return f"{err.strerror or err}{':' if where else ''}{where}"
    return f"{type(err).__name__}: {err}"


def _report(chan: Channel, err: BaseException) -> None:
    try:
        chan.send("error", msg=_message(err))
    except OSError:
        # The runtime is gone (create returned): stderr is all that is left.
        os.write(2, f"hull-runtime: container init: {_message(err)}\n".encode())
