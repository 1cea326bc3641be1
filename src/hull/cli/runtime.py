"""``hull-runtime``: an OCI runtime with runc's command line.

Each command parses its flags and calls the runtime library; errors become one
line, logged as runc logs them (logrus text or JSON, to --log or stderr) so
engines that parse runc's output read ours the same way. Modules are imported
per command to keep start-up, the fixed cost of every container operation, low.
"""

from __future__ import annotations

import os
import sys
import time

from hull.cli.args import Flag, Parsed, UsageError, parse, usage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from hull.oci.state import State
    from hull.runtime.create import CreateOptions
    from hull.runtime.store import Store

PROG = "hull-runtime"

GLOBAL_FLAGS = [
    Flag("root", True, help="root directory for storage of container state"),
    Flag("log", True, help="set the log file to write hull-runtime logs to (default is stderr)"),
    Flag("log-format", True, help="set the log format ('text' (default), or 'json')"),
    Flag("debug", help="enable debug logging"),
    Flag("systemd-cgroup", help="enable systemd cgroup support"),
    Flag("rootless", True, help="ignore cgroup permission errors ('true', 'false', or 'auto')"),
    Flag("criu", True, help="path to the criu binary (unused)"),
    Flag("version", aliases=("v",), help="print the version"),
    Flag("help", aliases=("h",), help="show help"),
]

CREATE_FLAGS = [
    Flag("bundle", True, ("b",), "path to the root of the bundle directory, defaults to the current directory"),
    Flag("console-socket", True, help="path to an AF_UNIX socket which will receive the pty master"),
    Flag("pid-file", True, help="specify the file to write the process id to"),
    Flag("no-pivot", help="do not use pivot root to jail process inside rootfs"),
    Flag("no-new-keyring", help="do not create a new session keyring for the container"),
    Flag("preserve-fds", True, help="pass N additional file descriptors to the container"),
]

RUN_FLAGS = [
    *CREATE_FLAGS,
    Flag("detach", aliases=("d",), help="detach from the container's process"),
    Flag("keep", help="do not delete the container after it exits"),
    Flag("no-subreaper", help="disable the use of the subreaper used to reap reparented processes"),
]

EXEC_FLAGS = [
    Flag("console-socket", True, help="path to an AF_UNIX socket which will receive the pty master"),
    Flag("cwd", True, help="current working directory in the container"),
    Flag("env", True, ("e",), "set environment variables", repeated=True),
    Flag("tty", aliases=("t",), help="allocate a pseudo-TTY"),
    Flag("user", True, ("u",), "UID (format: <uid>[:<gid>])"),
    Flag("additional-gids", True, ("g",), "additional gids", repeated=True),
    Flag("process", True, ("p",), "path to the process.json"),
    Flag("detach", aliases=("d",), help="detach from the container's process"),
    Flag("pid-file", True, help="specify the file to write the process id to"),
    Flag("process-label", True, help="set the asm process label for the process commonly used with selinux"),
    Flag("apparmor", True, help="set the apparmor profile for the process"),
    Flag("no-new-privs", help="set the no new privileges value for the process"),
    Flag("cap", True, ("c",), "add a capability to the bounding set for the process", repeated=True),
    Flag("preserve-fds", True, help="pass N additional file descriptors to the container"),
    Flag("cgroup", True, help="run the process in an (existing) sub-cgroup(s)", repeated=True),
    Flag("ignore-paused", help="allow exec in a paused container"),
]


class Context:
    def __init__(self, opts: Parsed) -> None:
        self.root = opts.value("root", _default_root())
        self.log_path = opts.value("log")
        self.log_format = opts.value("log-format", "text")
        self.debug = opts.flag("debug")

    def store(self) -> Store:
        from hull.runtime.store import Store

        return Store(self.root)


def _default_root() -> str:
    # As runc: an unprivileged user's state lives in its own runtime directory.
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if os.geteuid() != 0 and runtime_dir:
        return os.path.join(runtime_dir, "hull-runtime")
    return "/run/hull-runtime"


def _one_id(args: list[str], command: str) -> str:
    if len(args) != 1:
        raise UsageError(
            f'"{command}" requires exactly 1 argument(s)' if args else f'"{command}" requires a container id'
        )
    return args[0]


def _create_options(opts: Parsed) -> CreateOptions:
    from hull.runtime.create import CreateOptions

    fds = opts.value("preserve-fds", "0")
    if not fds.isdigit():
        raise UsageError(f'invalid value "{fds}" for flag -preserve-fds: parse error')
    return CreateOptions(
        bundle=opts.value("bundle", "") or os.getcwd(),
        console_socket=opts.value("console-socket"),
        pid_file=opts.value("pid-file"),
        no_pivot=opts.flag("no-pivot"),
        no_new_keyring=opts.flag("no-new-keyring"),
        preserve_fds=int(fds),
    )


def cmd_create(ctx: Context, argv: list[str]) -> int:
    from hull.runtime import cgroups

    cgroups.start_migration_grace_period()
    from hull.runtime import create

    opts = parse(argv, CREATE_FLAGS)
    create.create(ctx.store(), _one_id(opts.args, "create"), _create_options(opts))
    return 0


def cmd_run(ctx: Context, argv: list[str]) -> int:
    from hull.runtime import cgroups

    cgroups.start_migration_grace_period()
    from hull.runtime import run

    opts = parse(argv, RUN_FLAGS)
    return run.run(ctx.store(), _one_id(opts.args, "run"), _create_options(opts), opts.flag("detach"))


def cmd_start(ctx: Context, argv: list[str]) -> int:
    from hull.runtime import container

    container.start(ctx.store(), _one_id(parse(argv, []).args, "start"))
    return 0


def cmd_state(ctx: Context, argv: list[str]) -> int:
    from hull.oci.jsonfast import dumps_indented
    from hull.runtime import container

    state = container.state(ctx.store(), _one_id(parse(argv, []).args, "state"))
    print(dumps_indented(state.to_dict()))
    return 0


def cmd_kill(ctx: Context, argv: list[str]) -> int:
    from hull.runtime import container
    from hull.runtime.signals import parse_signal

    opts = parse(argv, [Flag("all", aliases=("a",), help="send the signal to all processes in the container")])
    if not 1 <= len(opts.args) <= 2:
        raise UsageError('"kill" requires a minimum of 1 and a maximum of 2 arguments')
    signum = parse_signal(opts.args[1] if len(opts.args) == 2 else "SIGTERM")
    container.kill(ctx.store(), opts.args[0], signum, opts.flag("all"))
    return 0


def cmd_delete(ctx: Context, argv: list[str]) -> int:
    from hull.runtime import container
    from hull.runtime.errors import ContainerNotFound

    opts = parse(argv, [Flag("force", aliases=("f",), help="forcibly delete the container if it is still running")])
    try:
        container.delete(ctx.store(), _one_id(opts.args, "delete"), opts.flag("force"))
    except ContainerNotFound:
        if not opts.flag("force"):
            raise
    return 0


def cmd_list(ctx: Context, argv: list[str]) -> int:
    from hull.oci.jsonfast import dumps
    from hull.runtime import container

    opts = parse(
        argv,
        [
            Flag("format", True, ("f",), "select one of: table or json (default: table)"),
            Flag("quiet", aliases=("q",), help="display only container IDs"),
        ],
    )
    states = container.list_states(ctx.store())
    fmt = opts.value("format", "table")
    if opts.flag("quiet"):
        for s in states:
            print(s.id)
    elif fmt == "json":
        # runc marshals an empty Go slice that was never appended to: null.
        print(dumps([s.to_dict() for s in states]) if states else "null")
    elif fmt == "table":
        _print_table(states)
    else:
        raise UsageError(f'invalid format option "{fmt}"')
    return 0


def _print_table(states: list[State]) -> None:
    from hull.cli.table import tabulate

    # runc's text/tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0); the last column is not padded.
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += [[s.id, str(s.pid), s.status, s.bundle, s.created, s.owner] for s in states]
    sys.stdout.write(tabulate(rows, minwidth=12, tabwidth=1, padding=3))


def cmd_spec(ctx: Context, argv: list[str]) -> int:
    from hull.oci.jsonfast import dumps_indented
    from hull.runtime.spec_template import default_spec

    opts = parse(
        argv,
        [
            Flag("bundle", True, ("b",), "path to the root of the bundle directory"),
            Flag("rootless", help="generate a configuration for a rootless container"),
        ],
    )
    bundle = opts.value("bundle") or "."
    path = os.path.join(bundle, "config.json")
    if not os.path.isdir(bundle):
        raise UsageError(f"chdir {bundle}: no such file or directory")
    if os.path.exists(path):
        raise UsageError("File config.json exists. Remove it first")
    with open(path, "w") as f:
        f.write(dumps_indented(default_spec(rootless=opts.flag("rootless")), indent="\t"))
    return 0


def cmd_features(ctx: Context, argv: list[str]) -> int:
    from hull.oci.jsonfast import dumps_indented
    from hull.runtime.features import features

    parse(argv, [])
    print(dumps_indented(features(), indent="    "))
    return 0


def cmd_exec(ctx: Context, argv: list[str]) -> int:
    from hull.runtime.errors import RuntimeFailure
    from hull.runtime.exec import ExecOptions, exec_process

    # runc's exec stops at the container ID (SkipArgReorder): what follows is the command.
    opts = parse(argv, EXEC_FLAGS)
    if not opts.args:
        raise UsageError('"exec" requires a minimum of 1 argument(s)')
    gids = []
    for value in opts.all_values("additional-gids"):
        try:
            gids.append(int(value))
        except ValueError:
            reason = f'strconv.ParseInt: parsing "{value}": invalid syntax'
            raise UsageError(f'invalid value "{value}" for flag -additional-gids: {reason}') from None
    fds = opts.value("preserve-fds", "0")
    if not fds.isdigit():
        raise UsageError(f'invalid value "{fds}" for flag -preserve-fds: parse error')
    options = ExecOptions(
        args=opts.args[1:],
        process_path=opts.value("process"),
        tty=opts.flag("tty") if "tty" in opts.values else None,
        console_socket=opts.value("console-socket"),
        detach=opts.flag("detach"),
        pid_file=os.path.abspath(opts.value("pid-file")) if opts.value("pid-file") else "",
        cwd=opts.value("cwd"),
        env=opts.all_values("env"),
        user=opts.value("user"),
        additional_gids=gids,
        caps=opts.all_values("cap"),
        no_new_privs=opts.flag("no-new-privs") if "no-new-privs" in opts.values else None,
        preserve_fds=int(fds),
        process_label=opts.value("process-label"),
        apparmor=opts.value("apparmor"),
        ignore_paused=opts.flag("ignore-paused"),
        cgroup=opts.all_values("cgroup"),
    )
    try:
        return exec_process(ctx.store(), opts.args[0], options)
    except (RuntimeFailure, OSError) as err:
        # runc: every failure of exec is "exec failed: ..." with exit status 255.
        if isinstance(err, OSError):
            where = f": {err.filename}" if err.filename else ""
            message = f"{err.strerror}{where}"
        else:
            message = str(err)
        _log_error(ctx, f"exec failed: {message}")
        return 255


def cmd_pause(ctx: Context, argv: list[str]) -> int:
    from hull.runtime import cgroup_ops

    cgroup_ops.pause(ctx.store(), _one_id(parse(argv, []).args, "pause"))
    return 0


def cmd_resume(ctx: Context, argv: list[str]) -> int:
    from hull.runtime import cgroup_ops

    cgroup_ops.resume(ctx.store(), _one_id(parse(argv, []).args, "resume"))
    return 0


def cmd_ps(ctx: Context, argv: list[str]) -> int:
    from hull.runtime import cgroup_ops

    opts = parse(argv, [Flag("format", True, ("f",), "select one of: table or json (default: table)")])
    if not opts.args:
        raise UsageError('"ps" requires a minimum of 1 argument(s)')
    fmt = opts.value("format", "table")
    if fmt not in ("table", "json"):
        raise UsageError("invalid format option")
    pids = cgroup_ops.processes(ctx.store(), opts.args[0])
    if fmt == "json":
        # Go's encoding of the PID slice: compact, and null when there is none.
        print("[" + ",".join(map(str, pids)) + "]" if pids else "null")
        return 0
    for line in cgroup_ops.ps_table(pids, opts.args[1:]):
        print(line)
    return 0


UPDATE_FLAGS = [
    Flag("resources", True, ("r",), "path to the file containing the resources to update or '-' to read from stdin"),
    Flag("blkio-weight", True, help="Specifies per cgroup weight, range is from 10 to 1000"),
    Flag("cpu-period", True, help="CPU CFS period to be used for hardcapping (in usecs). 0 to use system default"),
    Flag("cpu-quota", True, help="CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period"),
    Flag("cpu-share", True, help="CPU shares (relative weight vs. other containers)"),
    Flag("cpu-rt-period", True, help="CPU realtime period to be used for hardcapping (in usecs)"),
    Flag("cpu-rt-runtime", True, help="CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period"),
    Flag("cpuset-cpus", True, help="CPU(s) to use"),
    Flag("cpuset-mems", True, help="Memory node(s) to use"),
    Flag("kernel-memory", True, help="(obsoleted; do not use)"),
    Flag("kernel-memory-tcp", True, help="(obsoleted; do not use)"),
    Flag("memory", True, help="Memory limit (in bytes)"),
    Flag("memory-reservation", True, help="Memory reservation or soft_limit (in bytes)"),
    Flag("memory-swap", True, help="Total memory usage (memory + swap); set '-1' to enable unlimited swap"),
    Flag("pids-limit", True, help="Maximum number of pids allowed in the container"),
    Flag("l3-cache-schema", True, help="The string of Intel RDT/CAT L3 cache schema"),
    Flag("mem-bw-schema", True, help="The string of Intel RDT/MBA memory bandwidth schema"),
]


def _go_int_flag(opts: Parsed, name: str) -> int:
    """A Go flag.Int value (strconv.ParseInt base 0: 0x.., 0o.., a leading 0 for octal), 0 if absent."""
    text = opts.value(name)
    if not text:
        return 0
    digits = text.lstrip("+-")
    try:
        if len(digits) > 1 and digits[0] == "0" and digits[1:].replace("_", "").isdigit():
            value = int(text[: len(text) - len(digits)] + "0o" + digits[1:], 0)
        else:
            value = int(text, 0)
    except ValueError:
        raise UsageError(f'invalid value "{text}" for flag -{name}: parse error') from None
    if not -(1 << 63) <= value < 1 << 63:
        raise UsageError(f'invalid value "{text}" for flag -{name}: value out of range')
    return value


def cmd_update(ctx: Context, argv: list[str]) -> int:
    from hull.runtime.update import UpdateOptions, update

    opts = parse(argv, UPDATE_FLAGS)
    # Flag values are parsed before anything else (urfave/cli), the others by update itself.
    weight, pids = _go_int_flag(opts, "blkio-weight"), _go_int_flag(opts, "pids-limit")
    cid = _one_id(opts.args, "update")
    options = UpdateOptions(
        resources=opts.value("resources"),
        flags={k: v for k, v in opts.values.items() if isinstance(v, str)},
        blkio_weight=weight,
        pids_limit=pids,
        l3_cache_schema=opts.value("l3-cache-schema"),
        mem_bw_schema=opts.value("mem-bw-schema"),
    )
    update(ctx.store(), cid, options, lambda message: _log(ctx, "warning", message))
    return 0


def cmd_events(ctx: Context, argv: list[str]) -> int:
    import json

    from hull.runtime.events import events, parse_duration

    opts = parse(
        argv,
        [
            Flag("interval", True, help="set the stats collection interval (default: 5s)"),
            Flag("stats", help="display the container's stats then exit"),
        ],
    )
    text = opts.value("interval", "5s")
    try:
        interval = parse_duration(text)
    except ValueError:
        raise UsageError(f'invalid value "{text}" for flag -interval: parse error') from None
    cid = _one_id(opts.args, "events")

    def emit(event: dict[str, object]) -> None:
        # One compact JSON document a line, written at once (Go's json.Encoder on stdout).
        os.write(1, (json.dumps(event, separators=(",", ":")) + "\n").encode())

    events(ctx.store(), cid, emit, lambda message: _log(ctx, "error", message), interval, opts.flag("stats"))
    return 0


def cmd_unsupported(name: str) -> Callable[[Context, list[str]], int]:
    def command(ctx: Context, argv: list[str]) -> int:
        from hull.runtime.errors import Unsupported

        if name in ("checkpoint", "restore"):
            # Not built: Debian 12's CRIU 3.17 fails `criu check` on the kernel of the machines hull is
            # tested on (it cannot parse the vDSO), so nothing could prove it. Refused outright.
            raise Unsupported(f'"{name}" is not supported by hull-runtime (no CRIU support)')
        raise Unsupported(f'"{name}" is not supported by hull-runtime yet')

    return command


COMMANDS: dict[str, Callable[[Context, list[str]], int]] = {
    "create": cmd_create,
    "run": cmd_run,
    "start": cmd_start,
    "state": cmd_state,
    "kill": cmd_kill,
    "delete": cmd_delete,
    "list": cmd_list,
    "spec": cmd_spec,
    "features": cmd_features,
    "exec": cmd_exec,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "ps": cmd_ps,
    "update": cmd_update,
    "events": cmd_events,
    **{name: cmd_unsupported(name) for name in ("checkpoint", "restore")},
}

DESCRIPTIONS = {
    "create": "create a container",
    "run": "create and run a container",
    "start": "executes the user defined process in a created container",
    "state": "output the state of a container",
    "kill": "kill sends the specified signal (default: SIGTERM) to the container's init process",
    "delete": "delete any resources held by the container often used with detached container",
    "list": "lists containers started by hull-runtime with the given root",
    "spec": "create a new specification file",
    "features": "show the enabled features",
    "exec": "execute new process inside the container",
    "pause": "pause suspends all processes inside the container",
    "resume": "resumes all processes that have been previously paused",
    "ps": "ps displays the processes running inside a container",
    "update": "update container resource constraints",
    "events": "display container events such as OOM notifications, cpu, memory, and IO usage statistics",
}


def _help() -> str:
    cmds = "\n".join(f"   {name}\t{text}" for name, text in DESCRIPTIONS.items())
    return (
        f"NAME:\n   {PROG} - an OCI runtime in Python\n\n"
        f"USAGE:\n   {PROG} [global options] command [command options] [arguments...]\n\n"
        f"COMMANDS:\n{cmds}\n\nGLOBAL OPTIONS:\n{usage(GLOBAL_FLAGS)}"
    )


def _log_error(ctx: Context | None, message: str) -> None:
    """Report as runc does: a logrus record to --log (or stderr), and the bare message to stderr too."""
    _log(ctx, "error", message, echo=True)


def _log(ctx: Context | None, level: str, message: str, echo: bool = False) -> None:
    """A logrus record; ``echo``: a fatal error, which runc also prints bare to stderr when logging to a file."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    fmt = ctx.log_format if ctx else "text"
    if fmt == "json":
        from hull.oci.jsonfast import dumps

        line = dumps({"level": level, "msg": message, "time": stamp})
    else:
        escaped = message.replace("\\", "\\\\").replace('"', '\\"')
        line = f'time="{stamp}" level={level} msg="{escaped}"'
    if ctx and ctx.log_path:
        try:
            with open(ctx.log_path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass
        if echo:
            sys.stderr.write(message + "\n")
    else:
        sys.stderr.write(line + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ctx: Context | None = None
    try:
        opts = parse(argv, GLOBAL_FLAGS)
        if opts.flag("version"):
            from hull import __version__
            from hull.oci.state import OCI_VERSION

            print(f"{PROG} version {__version__}\nspec: {OCI_VERSION}")
            return 0
        if not opts.args or opts.flag("help"):
            print(_help())
            return 0
        ctx = Context(opts)
        if ctx.log_format not in ("text", "json"):
            raise UsageError(f"invalid log-format: {ctx.log_format}")
        if opts.flag("systemd-cgroup"):
            from hull.runtime.errors import Unsupported

            raise Unsupported("--systemd-cgroup is not supported by hull-runtime yet")
        name, rest = opts.args[0], opts.args[1:]
        command = COMMANDS.get(name)
        if command is None:
            raise UsageError(f"No help topic for '{name}'")
        try:
            return command(ctx, rest)
        except Exception as err:
            from hull.runtime.errors import RuntimeFailure

            if isinstance(err, RuntimeFailure) and name in ("create", "run"):
                raise RuntimeFailure(f"{PROG} {name} failed: {err}") from None
            raise
    except UsageError as err:
        _log_error(ctx, str(err))
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        from hull.runtime.errors import RuntimeFailure

        if isinstance(err, RuntimeFailure):
            _log_error(ctx, str(err))
        elif isinstance(err, OSError):
            where = f": {err.filename}" if err.filename else ""
            _log_error(ctx, f"{err.strerror}{where}")
        else:
            raise
        return 1


if __name__ == "__main__":
    sys.exit(main())
