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


class Context:
    def __init__(self, opts: Parsed) -> None:
        self.root = opts.value("root", "/run/hull-runtime")
        self.log_path = opts.value("log")
        self.log_format = opts.value("log-format", "text")
        self.debug = opts.flag("debug")

    def store(self) -> Store:
        from hull.runtime.store import Store

        return Store(self.root)


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
    from hull.runtime import create

    opts = parse(argv, CREATE_FLAGS)
    create.create(ctx.store(), _one_id(opts.args, "create"), _create_options(opts))
    return 0


def cmd_run(ctx: Context, argv: list[str]) -> int:
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
    # runc's text/tabwriter layout (minwidth 12, padding 3); the last column is not padded.
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += [[s.id, str(s.pid), s.status, s.bundle, s.created, s.owner] for s in states]
    widths = [max(12, *(len(r[i]) + 3 for r in rows)) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + row[-1])


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


def cmd_unsupported(name: str) -> Callable[[Context, list[str]], int]:
    def command(ctx: Context, argv: list[str]) -> int:
        from hull.runtime.errors import Unsupported

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
    **{
        name: cmd_unsupported(name)
        for name in ("exec", "pause", "resume", "ps", "events", "update", "checkpoint", "restore")
    },
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
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    fmt = ctx.log_format if ctx else "text"
    if fmt == "json":
        from hull.oci.jsonfast import dumps

        line = dumps({"level": "error", "msg": message, "time": stamp})
    else:
        escaped = message.replace("\\", "\\\\").replace('"', '\\"')
        line = f'time="{stamp}" level=error msg="{escaped}"'
    if ctx and ctx.log_path:
        try:
            with open(ctx.log_path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass
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
