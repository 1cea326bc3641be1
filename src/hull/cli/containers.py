"""``hull run``, ``create``, ``start``, ``stop``, ``kill``, ``restart``, ``rm``, ``ps``, ``logs``, ``wait``,
``inspect``, ``pause``/``unpause``: docker's names, flags and output shapes over hull.engine.

Exit status as docker's: a container command's own failure is 125; ``run``
exits with the container's status, 126 when its program cannot be executed,
127 when it is not found.
"""

from __future__ import annotations

import os
import sys

from hull.engine.errors import EngineError
from hull.engine.paths import EnginePaths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

EXIT_ENGINE = 125

# Docker's column headers for `ps --format 'table ...'`.
PS_HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "State": "STATE",
    "Labels": "LABELS", "Mounts": "MOUNTS", "Size": "SIZE", "Networks": "NETWORKS",
}  # fmt: skip


# ---------------------------------------------------------------- parsers


def run_args(p: Any) -> None:
    """The flags ``run`` and ``create`` share (docker's names)."""
    p.add_argument("--help", action="help", help="show this help message and exit")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("cmd", nargs="...", metavar="COMMAND")
    p.add_argument("--name", default="")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-w", "--workdir", default="")
    p.add_argument("-u", "--user", default="")
    p.add_argument("--entrypoint", default=None)
    p.add_argument("-v", "--volume", action="append", default=[])
    p.add_argument("--mount", action="append", default=[])
    p.add_argument("--tmpfs", action="append", default=[])
    p.add_argument("--read-only", action="store_true")
    p.add_argument("-h", "--hostname", default="")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--rm", action="store_true")
    p.add_argument("-m", "--memory", default="")
    p.add_argument("--memory-swap", default="")
    p.add_argument("--cpus", default="")
    p.add_argument("-c", "--cpu-shares", default="")
    p.add_argument("--pids-limit", default="")
    p.add_argument("--cap-add", action="append", default=[])
    p.add_argument("--cap-drop", action="append", default=[])
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--security-opt", action="append", default=[])
    p.add_argument("--network", "--net", default="hull")
    p.add_argument("-p", "--publish", action="append", default=[])
    p.add_argument("-P", "--publish-all", action="store_true")
    p.add_argument("--ip", default="")
    p.add_argument("--restart", default="no")
    p.add_argument("--init", action="store_true")
    p.add_argument("--stop-signal", default="")
    p.add_argument("--stop-timeout", default="")
    p.add_argument("-l", "--label", action="append", default=[])
    p.add_argument("--pull", default="missing")
    p.add_argument("--platform", default="")
    p.add_argument("--runtime", default="")
    p.add_argument("--add-host", action="append", default=[])
    p.add_argument("--dns", action="append", default=[])
    p.add_argument("--ulimit", action="append", default=[])
    p.add_argument("--sysctl", action="append", default=[])
    p.add_argument("--log-opt", action="append", default=[])
    p.add_argument("-q", "--quiet", action="store_true", help="no pull progress")


def add_parsers(add: Any, _sub: str | None = None) -> None:
    # add_help=False: -h is --hostname, as docker's
    p = add("run", "create and start a container from an image", add_help=False)
    run_args(p)
    p.add_argument("-d", "--detach", action="store_true")
    p = add("create", "create a container from an image", add_help=False)
    run_args(p)
    p = add("start", "start containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-a", "--attach", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    for name, help in (("stop", "stop containers"), ("restart", "restart containers")):
        p = add(name, help)
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
        p.add_argument("-t", "--time", type=int, default=None, help="seconds before SIGKILL")
        p.add_argument("-s", "--signal", default="", help="signal to stop with")
    p = add("kill", "send a signal to containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-s", "--signal", default="KILL")
    p = add("rm", "remove containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-v", "--volumes", action="store_true")
    p = add("ps", "list containers")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format", default="")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-n", "--last", type=int, default=-1)
    p.add_argument("-l", "--latest", action="store_true")
    p = add("logs", "show a container's output")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-n", "--tail", default="all")
    p.add_argument("--since", default="")
    p.add_argument("--until", default="")
    p.add_argument("-t", "--timestamps", action="store_true")
    p = add("wait", "wait for containers to exit; print their exit codes")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p = add("inspect", "show containers (or images) as JSON")
    p.add_argument("refs", nargs="+", metavar="NAME")
    p.add_argument("-f", "--format", default="")
    p.add_argument("--type", default="", help="container or image")
    p.add_argument("-s", "--size", action="store_true")
    for name, help in (("pause", "freeze containers"), ("unpause", "thaw containers")):
        p = add(name, help)
        p.add_argument("containers", nargs="+", metavar="CONTAINER")


def cmd_pause(paths: EnginePaths, args: Any) -> int:
    return _pause(paths, args, True)


def cmd_unpause(paths: EnginePaths, args: Any) -> int:
    return _pause(paths, args, False)


# ---------------------------------------------------------------- run / create


def options_from(args: Any) -> Any:
    """RunOptions from run/create's flags (each value checked by hull.engine.parse)."""
    from hull.engine import parse
    from hull.engine.options import RunOptions

    env: list[str] = []
    for path in args.env_file:
        env += parse.parse_env_file(path)
    env += parse.resolve_env(args.env, os.environ)
    mounts = [parse.parse_volume(v) for v in args.volume]
    mounts += [parse.parse_mount(v) for v in args.mount]
    mounts += [parse.parse_tmpfs(v) for v in args.tmpfs]
    log_max_size, log_max_file = _log_opts(args.log_opt)
    from hull.engine.etcfiles import check_options

    check_options(args.add_host, args.dns)
    entrypoint = None
    if args.entrypoint is not None:
        entrypoint = [args.entrypoint] if args.entrypoint else []
    return RunOptions(
        image=args.image,
        command=list(args.cmd) or None,
        entrypoint=entrypoint,
        name=args.name,
        env=env,
        workdir=args.workdir,
        user=args.user,
        hostname=parse.parse_hostname(args.hostname) if args.hostname else "",
        tty=args.tty,
        interactive=args.interactive,
        detach=getattr(args, "detach", False),
        remove=args.rm,
        mounts=mounts,
        read_only=args.read_only,
        memory=parse.parse_memory(args.memory) if args.memory else None,
        memory_swap=parse.parse_memory_swap(args.memory_swap) if args.memory_swap else None,
        cpus=parse.parse_cpus(args.cpus) if args.cpus else None,
        cpu_shares=parse.parse_int(args.cpu_shares, "--cpu-shares") if args.cpu_shares else None,
        pids_limit=parse.parse_int(args.pids_limit, "--pids-limit") if args.pids_limit else None,
        cap_add=args.cap_add,
        cap_drop=args.cap_drop,
        privileged=args.privileged,
        security_opt=args.security_opt,
        network=_network(args.network),
        publish=args.publish,
        publish_all=args.publish_all,
        ip=args.ip,
        restart=parse.parse_restart(args.restart),
        init=args.init,
        stop_signal=args.stop_signal,
        stop_timeout=parse.parse_int(args.stop_timeout, "--stop-timeout") if args.stop_timeout else None,
        labels=parse.parse_labels(args.label),
        pull=args.pull,
        platform=args.platform,
        runtime=args.runtime,
        add_hosts=args.add_host,
        dns=args.dns,
        ulimits=args.ulimit,
        sysctls=parse.parse_key_values(args.sysctl, "--sysctl"),
        log_max_size=log_max_size,
        log_max_file=log_max_file,
    )


def _network(value: str) -> str:
    """none, host, container:ID or a network's name; docker's "bridge" and "default" mean hull's default."""
    if value in ("bridge", "default"):
        return "hull"
    if value.startswith("container:") and len(value) == len("container:"):
        raise EngineError("--network container: needs a container's name or ID")
    return value


def _log_opts(values: list[str]) -> tuple[int, int]:
    from hull.engine import parse

    size, files = 0, 1
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise EngineError(f"--log-opt {item}: expected KEY=VALUE")
        if key == "max-size":
            size = parse.parse_size(value, "--log-opt max-size")
        elif key == "max-file":
            files = parse.parse_int(value, "--log-opt max-file")
            if files < 1:
                raise EngineError("--log-opt max-file: must be at least 1")
        else:
            raise EngineError(f"--log-opt {key}: unknown log option for the json-file driver")
    return size, files


def _start_exit_code(message: str) -> int:
    """docker run's status for a container that could not start: 127 not found, 126 not executable."""
    from hull.engine.errors import start_failure_status

    return start_failure_status(message, EXIT_ENGINE)


def _prime_cgroups(runtime: str) -> None:
    if not runtime:
        from hull.runtime import cgroups

        cgroups.start_migration_grace_period()


def cmd_run(paths: EnginePaths, args: Any) -> int:
    from hull.engine import lifecycle, monitor

    opts = options_from(args)
    waiting = monitor.prefork(paths)  # its imports overlap the container's making
    _prime_cgroups(opts.runtime)
    try:
        # A network's ADD may still run in a thread: it overlaps the runtime's create, and is waited
        # for before the start (finish_network).
        container, pending = lifecycle.create_deferred(paths, opts, quiet=args.quiet)
    except BaseException:
        waiting.cancel()
        raise
    if opts.detach or pending is None:
        try:
            lifecycle.finish_network(paths, container, pending)
        except BaseException:
            waiting.cancel()
            raise
    if opts.detach:
        try:
            waiting.go(container, start=True)
        except EngineError as err:
            lifecycle.wait_exit(paths, container, 10)  # the monitor's clean-up (and --rm) done first
            sys.stderr.write(f"Error: {err}\n")
            return _start_exit_code(str(err))
        print(container.id)
        return 0
    try:
        waiting.go(container, start=False)
    except EngineError as err:
        if pending is not None:
            try:
                pending.wait()
            except BaseException:  # noqa: BLE001, S110 - the runtime's failure is the one to report
                pass
        lifecycle.wait_exit(paths, container, 10)  # the monitor's clean-up (and --rm) done first
        sys.stderr.write(f"Error: {err}\n")
        return _start_exit_code(str(err))
    if pending is not None:
        lifecycle.finish_network(paths, container, pending)  # its interface in place before the start
    return _attach_and_start(paths, container, stdin=opts.interactive, tty=opts.tty, start=True)


def _attach_and_start(paths: EnginePaths, container: Any, *, stdin: bool, tty: bool, start: bool,
                      sig_proxy: bool = True) -> int:  # fmt: skip
    """Attach our stdio to the container (a created one is started once attached, so no output is
    lost); return its exit code. Signals we get are passed to it (docker's --sig-proxy)."""
    from hull.engine import attach, lifecycle

    sock = attach.connect(paths.attach_socket(container.id))
    if sock is None:
        raise EngineError(f"container {container.short_id} has no monitor to attach to")
    session = attach.Session(sock, stdin=stdin, stdout=True, stderr=True)
    terminal = tty and os.isatty(0)
    saved = None
    # Raw terminal and signal forwarding before the start, as docker's CLI: a key typed (Ctrl-C) or a
    # signal sent as soon as the container runs reaches it instead of the line discipline or us.
    if terminal:
        session.resize(0)
        saved = _raw(0)
        _on_signal_resize(session)
    elif sig_proxy:
        _proxy_signals(paths, container)
    try:
        if start:
            try:
                session.start()
            except attach.StartFailed as err:
                # The monitor tells of the failure before its clean-up: as docker, return once --rm removed it.
                lifecycle.wait_exit(paths, container, 10)
                if saved is not None:
                    _restore(0, saved)
                    saved = None
                sys.stderr.write(f"Error: {err}\n")
                return _start_exit_code(str(err))
        try:
            code = session.run(detach_keys=terminal)
        except attach.Detached:
            if saved is not None:
                _restore(0, saved)
                saved = None
            sys.stderr.write(f"\nDetached from {container.short_id}\n" if terminal else "")
            return 0
    finally:
        if saved is not None:
            _restore(0, saved)
        sock.close()
    if code is None:
        try:
            code = lifecycle.current(paths, lifecycle.container_store(paths).load(container.id)).exit_code
        except EngineError:
            code = EXIT_ENGINE
    return code


attach_and_start = _attach_and_start  # public: `hull attach` (cli/container_tools.py) attaches through it


def _raw(fd: int) -> Any:
    import termios
    import tty as _tty

    saved = termios.tcgetattr(fd)
    _tty.setraw(fd, termios.TCSANOW)
    return saved


def _restore(fd: int, saved: Any) -> None:
    import termios

    termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _on_signal_resize(session: Any) -> None:
    import signal

    signal.signal(signal.SIGWINCH, lambda _s, _f: session.resize(0))


def _proxy_signals(paths: EnginePaths, container: Any) -> None:
    import signal

    from hull.engine import lifecycle

    def forward(signum: int, _frame: Any) -> None:
        try:
            lifecycle.runtime_for(paths, container).kill(container.id, signum)
        except EngineError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, forward)


def cmd_create(paths: EnginePaths, args: Any) -> int:
    from hull.engine import lifecycle, monitor

    opts = options_from(args)
    _prime_cgroups(opts.runtime)
    container = lifecycle.create(paths, opts, quiet=args.quiet)
    try:
        monitor.spawn(paths, lifecycle.container_store(paths), container, start=False)
    except EngineError:
        lifecycle.remove(paths, container, force=True, volumes=True)
        raise
    print(container.id)
    return 0


# ---------------------------------------------------------------- start / stop / kill / rm


def _each(paths: EnginePaths, refs: list[str], action: Any, echo: bool = True) -> int:
    """Apply ``action`` to each container, as docker: errors said per container, status 1 if any."""
    from hull.engine import lifecycle

    store = lifecycle.container_store(paths)
    status = 0
    for ref in refs:
        try:
            action(store.find(ref))
            if echo:
                print(ref)
        except EngineError as err:
            sys.stderr.write(f"Error: {err}\n")
            status = 1
    return status


def cmd_start(paths: EnginePaths, args: Any) -> int:
    from hull.engine import lifecycle, monitor

    if args.attach or args.interactive:
        if len(args.containers) != 1:
            raise EngineError("you cannot start and attach multiple containers at once")
        store = lifecycle.container_store(paths)
        container = lifecycle.current(paths, store.find(args.containers[0]))
        if container.status in ("running", "paused"):
            return _attach_and_start(paths, container, stdin=args.interactive, tty=container.options.tty,
                                     start=False)  # fmt: skip
        if not (container.status == "created" and lifecycle.monitor_alive(container)):
            monitor.spawn(paths, store, container, start=False)
        return _attach_and_start(paths, container, stdin=args.interactive, tty=container.options.tty, start=True)
    _prime_cgroups("")
    return _each(paths, args.containers, lambda c: lifecycle.start(paths, c))


def cmd_stop(paths: EnginePaths, args: Any) -> int:
    from hull.engine import lifecycle

    def stop(c: Any) -> None:
        if args.signal:
            c.options.stop_signal = args.signal
        lifecycle.stop(paths, c, args.time)

    return _each(paths, args.containers, stop)


def cmd_restart(paths: EnginePaths, args: Any) -> int:
    from hull.engine import lifecycle

    def restart(c: Any) -> None:
        lifecycle.stop(paths, c, args.time)
        lifecycle.start(paths, lifecycle.container_store(paths).load(c.id))
        lifecycle.emit(paths, "restart", c)  # docker: kill, die, stop, start, restart

    return _each(paths, args.containers, restart)


def cmd_kill(paths: EnginePaths, args: Any) -> int:
    from hull.engine import lifecycle

    try:
        signum = lifecycle.signal_number(args.signal)
    except Exception:  # noqa: BLE001 - the runtime's signal parser raises its own error
        raise EngineError(f"invalid signal: {args.signal}") from None
    return _each(paths, args.containers, lambda c: lifecycle.kill(paths, c, signum))


def cmd_rm(paths: EnginePaths, args: Any) -> int:
    from hull.engine import lifecycle

    return _each(paths, args.containers, lambda c: lifecycle.remove(paths, c, force=args.force, volumes=args.volumes))


def _pause(paths: EnginePaths, args: Any, pause: bool) -> int:
    from hull.engine import lifecycle
    from hull.engine.errors import InvalidContainerState

    def act(c: Any) -> None:
        c = lifecycle.current(paths, c)
        if pause and c.status != "running":
            raise InvalidContainerState(f"container {c.short_id} is not running")
        if not pause and c.status != "paused":
            raise InvalidContainerState(f"container {c.short_id} is not paused")
        runtime = lifecycle.runtime_for(paths, c)
        (runtime.pause if pause else runtime.resume)(c.id)
        lifecycle.container_store(paths).update(c.id, lambda r: setattr(r, "status", "paused" if pause else "running"))
        lifecycle.emit(paths, "pause" if pause else "unpause", c)

    return _each(paths, args.containers, act)


def cmd_wait(paths: EnginePaths, args: Any) -> int:
    from hull.engine import lifecycle

    def wait(c: Any) -> None:
        code = lifecycle.wait_exit(paths, c, None)
        print(code if code is not None else c.exit_code)

    return _each(paths, args.containers, wait, echo=False)


# ---------------------------------------------------------------- ps / inspect / logs


def ps_row(container: Any, now: int, no_trunc: bool) -> dict[str, Any]:
    from hull.cli.humanize import created_text, status_text
    from hull.engine.networking import published

    command = " ".join(container.args)
    if not no_trunc and len(command) > 20:
        command = command[:19] + "…"
    return {
        "ID": container.id if no_trunc else container.short_id,
        "Image": container.image,
        "Command": f'"{command}"',
        "CreatedAt": _local_time(container.created),
        "RunningFor": created_text(container.created, now),
        "Status": status_text(
            container.status, container.exit_code, container.started_at, container.finished_at, now
        ),  # fmt: skip
        "State": container.status,
        "Ports": ", ".join(
            f"{m['hostIP'] or '0.0.0.0'}:{m['hostPort']}->{m['containerPort']}/{m['protocol']}"
            for m in published(container)
        ),  # fmt: skip
        "Names": container.name,
        "Labels": ",".join(f"{k}={v}" for k, v in container.options.labels.items()),
        "Mounts": ",".join(m.volume.removeprefix("anon:") or m.source for m in container.mounts),
        "Networks": container.options.network,
        "Size": "",
    }


def _local_time(ns: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(ns / 1e9))


def _matches(container: Any, filters: list[str]) -> bool:
    """docker ps --filter: the same key ORs, different keys AND."""
    by_key: dict[str, list[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep:
            raise EngineError(f'--filter {item}: expected "KEY=VALUE"')
        by_key.setdefault(key, []).append(value)
    for key, values in by_key.items():
        if key == "status":
            ok = container.status in values
        elif key == "name":
            ok = any(v in container.name for v in values)
        elif key == "id":
            ok = any(container.id.startswith(v) for v in values)
        elif key == "label":
            ok = all(_label_match(container.options.labels, v) for v in values)
        elif key == "ancestor":
            ok = any(v in (container.image, container.image_id, container.image_id.removeprefix("sha256:")[:12])
                     for v in values)  # fmt: skip
        elif key == "exited":
            ok = container.status == "exited" and str(container.exit_code) in values
        elif key == "volume":
            ok = any(m.destination in values or m.volume.removeprefix("anon:") in values for m in container.mounts)
        else:
            raise EngineError(f"--filter {key}: unknown filter (status, name, id, label, ancestor, exited, volume)")
        if not ok:
            return False
    return True


def _label_match(labels: dict[str, str], value: str) -> bool:
    key, sep, want = value.partition("=")
    return key in labels and (not sep or labels[key] == want)


def cmd_ps(paths: EnginePaths, args: Any) -> int:
    import time

    from hull.engine import lifecycle

    containers = [lifecycle.current(paths, c) for c in lifecycle.container_store(paths).all()]
    if not (args.all or args.last >= 0 or args.latest) and not any(f.startswith("status=") for f in args.filter):
        containers = [c for c in containers if c.status in ("running", "paused", "restarting")]
    containers = [c for c in containers if _matches(c, args.filter)]
    if args.latest:
        containers = containers[:1]
    elif args.last >= 0:
        containers = containers[: args.last]
    if args.quiet:
        for c in containers:
            print(c.id if args.no_trunc else c.short_id)
        return 0
    now = time.time_ns()
    rows = [ps_row(c, now, args.no_trunc) for c in containers]
    fmt = args.format
    if fmt == "json":
        import json

        for row in rows:
            print(json.dumps(row, separators=(",", ":")))
        return 0
    if not fmt or fmt == "table":
        fmt = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    from hull.cli.gotemplate import render

    sys.stdout.write(render(fmt, rows, PS_HEADERS))
    return 0


def inspect_doc(paths: EnginePaths, container: Any) -> dict[str, Any]:
    """docker inspect's document for a container (the fields tools read)."""
    from hull.engine.logfile import format_time

    opts = container.options

    def when(ns: int) -> str:
        return format_time(ns) if ns else "0001-01-01T00:00:00Z"

    return {
        "Id": container.id,
        "Created": when(container.created),
        "Path": container.args[0] if container.args else "",
        "Args": container.args[1:],
        "State": {
            "Status": container.status,
            "Running": container.status in ("running", "paused", "restarting"),
            "Paused": container.status == "paused",
            "Restarting": container.status == "restarting",
            "OOMKilled": container.oom_killed,
            "Dead": container.status == "dead",
            "Pid": container.pid,
            "ExitCode": container.exit_code,
            "Error": container.error,
            "StartedAt": when(container.started_at),
            "FinishedAt": when(container.finished_at),
        },
        "Image": container.image_id,
        "ResolvConfPath": os.path.join(paths.container(container.id), "resolv.conf"),
        "HostnamePath": os.path.join(paths.container(container.id), "hostname"),
        "HostsPath": os.path.join(paths.container(container.id), "hosts"),
        "LogPath": paths.log(container.id),
        "Name": "/" + container.name,
        "RestartCount": container.restart_count,
        "Driver": container.snapshotter,
        "Platform": "linux",
        "HostConfig": {
            "Binds": [f"{m.source}:{m.destination}" for m in opts.mounts if m.type == "bind"],
            "NetworkMode": opts.network,
            "RestartPolicy": {"Name": opts.restart.name, "MaximumRetryCount": opts.restart.maximum_retry_count},
            "AutoRemove": opts.remove,
            "CapAdd": opts.cap_add or None,
            "CapDrop": opts.cap_drop or None,
            "Privileged": opts.privileged,
            "ReadonlyRootfs": opts.read_only,
            "SecurityOpt": opts.security_opt or None,
            "Memory": opts.memory or 0,
            "NanoCpus": int((opts.cpus or 0) * 1e9),
            "PidsLimit": opts.pids_limit,
            "Init": opts.init,
            "Runtime": opts.runtime or "hull-runtime",
            "LogConfig": {"Type": "json-file", "Config": _log_config(opts)},
        },
        "Mounts": [
            {
                "Type": "volume" if m.volume else m.type,
                **({"Name": m.volume.removeprefix("anon:")} if m.volume else {}),
                "Source": m.source,
                "Destination": m.destination,
                "RW": "ro" not in m.options,
            }
            for m in container.mounts
        ],
        "Config": {
            "Hostname": opts.hostname or container.id[:12],
            "User": opts.user,
            "Tty": opts.tty,
            "OpenStdin": opts.interactive,
            "Env": opts.env,
            "Cmd": opts.command,
            "Image": container.image,
            "WorkingDir": opts.workdir,
            "Entrypoint": opts.entrypoint,
            "Labels": opts.labels,
            "StopSignal": opts.stop_signal or None,
            "StopTimeout": opts.stop_timeout,
        },
        "NetworkSettings": _network_settings(container),
    }


def _network_settings(container: Any) -> dict[str, Any]:
    """docker's NetworkSettings: the attachment's addresses and the published ports."""
    from hull.engine.networking import published

    net = container.network
    ports: dict[str, Any] = {}
    for m in published(container):
        ports.setdefault(f"{m['containerPort']}/{m['protocol']}", []).append(
            {"HostIp": m["hostIP"] or "0.0.0.0", "HostPort": str(m["hostPort"])})  # fmt: skip
    endpoint = {
        "IPAddress": net.get("ipv4", ""), "IPPrefixLen": net.get("ipv4_prefix", 0),
        "Gateway": net.get("ipv4_gateway", ""), "GlobalIPv6Address": net.get("ipv6", ""),
        "GlobalIPv6PrefixLen": net.get("ipv6_prefix", 0), "IPv6Gateway": net.get("ipv6_gateway", ""),
        "MacAddress": net.get("mac", ""),
    }  # fmt: skip
    name = net.get("name") or container.options.network
    return {"SandboxKey": net.get("netns", ""), "Ports": ports, **endpoint, "Networks": {name: endpoint}}


def _log_config(opts: Any) -> dict[str, str]:
    out = {}
    if opts.log_max_size:
        out["max-size"] = str(opts.log_max_size)
    if opts.log_max_file != 1:
        out["max-file"] = str(opts.log_max_file)
    return out


def cmd_inspect(paths: EnginePaths, args: Any, image_inspect: Any) -> int:
    """Containers first, then images, as docker inspect looks a name up."""
    import json

    from hull.engine import lifecycle
    from hull.engine.errors import ContainerNotFound

    store = lifecycle.container_store(paths)
    docs: list[dict[str, Any]] = []
    status = 0
    for ref in args.refs:
        if args.type in ("", "container"):
            try:
                docs.append(inspect_doc(paths, lifecycle.current(paths, store.find(ref))))
                continue
            except ContainerNotFound:
                if args.type == "container":
                    sys.stderr.write(f"Error: no such container: {ref}\n")
                    status = 1
                    continue
        try:
            docs.extend(image_inspect(ref))
        except Exception:  # noqa: BLE001 - not an image either: docker's one line
            sys.stderr.write(f"Error: no such object: {ref}\n")
            status = 1
    if args.format:
        from hull.cli.gotemplate import render

        for doc in docs:
            sys.stdout.write(render(args.format, [doc], None))  # its "\n" per item is docker's one newline
    else:
        print(json.dumps(docs, indent=4))
    return status


def cmd_logs(paths: EnginePaths, args: Any) -> int:
    from hull.engine import lifecycle, logfile

    store = lifecycle.container_store(paths)
    container = store.find(args.container)
    tail = None if args.tail == "all" else _tail(args.tail)
    since = logfile.parse_since(args.since) if args.since else None
    until = logfile.parse_since(args.until) if args.until else None
    path = paths.log(container.id)
    if not os.path.exists(path):
        return 0
    if args.follow:

        def stopped() -> bool:
            try:
                now = lifecycle.current(paths, store.load(container.id))
            except EngineError:
                return True
            return not lifecycle.monitor_alive(now)

        entries = logfile.follow(path, stop=stopped, tail=tail, since_ns=since, until_ns=until,
                                 max_file=container.options.log_max_file)  # fmt: skip
    else:
        entries = logfile.read_logs(path, tail=tail, since_ns=since, until_ns=until,
                                    max_file=container.options.log_max_file)  # fmt: skip
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for entry in entries:
        target = err if entry.stream == "stderr" else out
        target.write(logfile.format_entry(entry, args.timestamps))
        if args.follow:
            target.flush()
    out.flush()
    err.flush()
    return 0


def _tail(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise EngineError(f'--tail {value}: expected a number or "all"') from None
