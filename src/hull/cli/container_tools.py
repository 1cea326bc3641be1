"""``hull exec``, ``attach``, ``top``, ``stats``, ``cp``, ``port``: docker's names, flags and output shapes.

The work is in hull.engine.exec, .stats and .copy; this module parses,
picks the containers and prints as docker's CLI does (tabwriter tables,
go-units sizes, ``Error: ...`` lines with exit status 1).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hull.engine.errors import EngineError, InvalidContainerState
from hull.engine.paths import EnginePaths

STATS_HEADERS = {
    "ID": "CONTAINER ID", "Name": "NAME", "Container": "CONTAINER", "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}  # fmt: skip
STATS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
STATS_INTERVAL = 1.0  # seconds between the two samples of a CPU % (dockerd collects every second)


def _bool(value: str) -> bool:
    if value.lower() in ("true", "1", "t", "yes"):
        return True
    if value.lower() in ("false", "0", "f", "no"):
        return False
    raise EngineError(f"invalid boolean value {value!r}")


def add_parsers(add: Any, _sub: str | None = None) -> None:
    p = add("exec", "run a command in a running container")
    p.add_argument("-i", "--interactive", action="store_true", help="keep STDIN open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-d", "--detach", action="store_true", help="run the command in the background")
    p.add_argument("-u", "--user", default="", help="USER[:GROUP] (name or ID)")
    p.add_argument("-w", "--workdir", default="", help="working directory inside the container")
    p.add_argument("-e", "--env", action="append", default=[], help="set an environment variable")
    p.add_argument("--env-file", action="append", default=[], help="read environment variables from a file")
    p.add_argument("--privileged", action="store_true", help="every capability for the command")
    p.add_argument("--detach-keys", default="", help="accepted; ctrl-p ctrl-q is the only sequence")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("cmd", nargs="...", metavar="COMMAND")
    p = add("attach", "attach to a running container's input and output")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--no-stdin", action="store_true", help="do not attach STDIN")
    p.add_argument("--sig-proxy", default="true", nargs="?", const="true", help="proxy signals (default true)")
    p.add_argument("--detach-keys", default="", help="accepted; ctrl-p ctrl-q is the only sequence")
    p = add("top", "show the processes of a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_args", nargs="...", metavar="PS_OPTIONS")
    p = add("stats", "show containers' resource usage")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("-a", "--all", action="store_true", help="all containers (default: running ones)")
    p.add_argument("--no-stream", action="store_true", help="print once instead of refreshing")
    p.add_argument("--no-trunc", action="store_true", help="full container IDs")
    p.add_argument("--format", default="", help="Go template, table or json")
    p = add("cp", "copy files between a container and the host")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DEST")
    p.add_argument("-a", "--archive", action="store_true", help="keep owners (uid/gid)")
    p.add_argument("-L", "--follow-link", action="store_true", help="follow a symlink SRC")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    p = add("port", "list a container's published ports")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("private", nargs="?", default="", metavar="PRIVATE_PORT[/PROTO]")


def _find(paths: EnginePaths, ref: str) -> Any:
    from hull.engine import lifecycle

    return lifecycle.current(paths, lifecycle.container_store(paths).find(ref))


# ---------------------------------------------------------------- exec / attach


def cmd_exec(paths: EnginePaths, args: Any) -> int:
    from hull.engine import exec as engine_exec
    from hull.engine import parse

    if not args.cmd:
        raise EngineError('"exec" requires at least 2 arguments: CONTAINER COMMAND [ARG...]')
    container = _find(paths, args.container)
    engine_exec.check_running(container)
    env: list[str] = []
    for path in args.env_file:
        env += parse.parse_env_file(path)
    env += parse.resolve_env(args.env, os.environ)
    if args.tty and args.interactive and not args.detach and not os.isatty(0):
        raise EngineError("the input device is not a TTY")
    request = engine_exec.ExecRequest(list(args.cmd), env=env, user=args.user, workdir=args.workdir, tty=args.tty,
                                      privileged=args.privileged)  # fmt: skip
    return engine_exec.run(paths, container, request, interactive=args.interactive, detach=args.detach)


def cmd_attach(paths: EnginePaths, args: Any) -> int:
    from hull.cli.containers import attach_and_start

    sig_proxy = _bool(args.sig_proxy)
    container = _find(paths, args.container)
    if container.status == "paused":
        raise InvalidContainerState("You cannot attach to a paused container, unpause it first")
    if container.status not in ("running", "restarting"):
        raise InvalidContainerState("You cannot attach to a stopped container, start it first")
    stdin = container.options.interactive and not args.no_stdin
    return int(attach_and_start(paths, container, stdin=stdin, tty=container.options.tty, start=False,
                                sig_proxy=sig_proxy))  # fmt: skip


# ---------------------------------------------------------------- top


def cmd_top(paths: EnginePaths, args: Any) -> int:
    import subprocess

    from hull.cli.table import tabwrite
    from hull.engine import stats

    container = _find(paths, args.container)
    if container.status not in ("running", "paused"):
        raise InvalidContainerState(f"container {container.short_id} is not running")
    pids = set(stats.processes(paths, container))
    ps_args = list(args.ps_args) or ["-ef"]
    proc = subprocess.run(["ps", *ps_args], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EngineError(f"ps: {(proc.stderr or proc.stdout).strip()}")
    rows = process_rows(proc.stdout, pids)
    sys.stdout.write(tabwrite("".join("\t".join(r) + "\n" for r in rows), minwidth=20, tabwidth=1, padding=3))
    return 0


def process_rows(ps_output: str, pids: set[int]) -> list[list[str]]:
    """moby's parsePSOutput: the title line and the lines of ``pids`` (thread lines "-" after them),
    the fields past the last title joined into it (the command's arguments)."""
    lines = ps_output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise EngineError("Couldn't find PID field in ps output")
    index = titles.index("PID")
    rows = [titles]
    kept = False
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        if fields[index] == "-":
            if kept:
                rows.append(_fit(fields, len(titles)))
            continue
        try:
            pid = int(fields[index])
        except ValueError:
            raise EngineError(f"Unexpected pid '{fields[index]}'") from None
        kept = pid in pids
        if kept:
            rows.append(_fit(fields, len(titles)))
    return rows


def _fit(fields: list[str], count: int) -> list[str]:
    return [*fields[: count - 1], " ".join(fields[count - 1 :])]


# ---------------------------------------------------------------- stats


def stats_row(container: Any, before: Any, now: Any, no_trunc: bool) -> dict[str, str]:
    """One line of ``docker stats`` (its formatter's fields); "--" for a container not running."""
    from hull.cli.humanize import bytes_size, human_size
    from hull.engine.stats import cpu_percent

    ident = container.id if no_trunc else container.short_id
    if now is None:
        return {"BlockIO": "--", "CPUPerc": "--", "Container": container.name, "ID": ident, "MemPerc": "--",
                "MemUsage": "-- / --", "Name": container.name, "NetIO": "--", "PIDs": "--"}  # fmt: skip
    mem_perc = now.mem_usage / now.mem_limit * 100.0 if now.mem_limit else 0.0
    # keys in the order docker's --format json prints them (a Go map: sorted)
    return {
        "BlockIO": f"{human_size(now.blk_read, 3)} / {human_size(now.blk_write, 3)}",
        "CPUPerc": f"{cpu_percent(before, now):.2f}%",
        "Container": container.name,
        "ID": ident,
        "MemPerc": f"{mem_perc:.2f}%",
        "MemUsage": f"{bytes_size(now.mem_usage)} / {bytes_size(now.mem_limit)}",
        "Name": container.name,
        "NetIO": f"{human_size(now.net_rx, 3)} / {human_size(now.net_tx, 3)}",
        "PIDs": str(now.pids),
    }


def cmd_stats(paths: EnginePaths, args: Any) -> int:
    import time

    from hull.cli.gotemplate import render
    from hull.engine import lifecycle, stats

    store = lifecycle.container_store(paths)
    named = [store.find(ref) for ref in args.containers]  # an unknown name fails before anything is shown
    fmt = args.format or "table"
    if fmt == "json":
        fmt = "{{json .}}"
    terminal = sys.stdout.isatty()

    def targets() -> list[Any]:
        if named:
            return [lifecycle.current(paths, c) for c in named]
        every = [lifecycle.current(paths, c) for c in store.all()]
        return [c for c in every if args.all or c.status in ("running", "paused", "restarting")]

    def take(containers: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for c in containers:
            if c.status in ("running", "paused"):
                try:
                    out[c.id] = stats.sample(paths, c)
                except (EngineError, OSError):
                    out[c.id] = None
        return out

    try:
        containers = targets()
        before = take(containers)
        while True:
            time.sleep(STATS_INTERVAL)
            containers = targets()
            now = take(containers)
            rows = [stats_row(c, before.get(c.id), now.get(c.id), args.no_trunc) for c in containers]
            text = render(fmt, rows, STATS_HEADERS, table_default=STATS_TABLE)
            if terminal and not args.no_stream:
                text = "\033[2J\033[H" + text  # docker's redraw: clear the screen, cursor home
            sys.stdout.write(text)
            sys.stdout.flush()
            if args.no_stream:
                return 0
            before = now
    except KeyboardInterrupt:
        return 0


# ---------------------------------------------------------------- cp


def split_cp_arg(arg: str) -> tuple[str, str]:
    """docker's splitCpArg: (container, path); an absolute path, or one starting with "." before its
    colon, is the host's (write ./a:b for a local file named a:b)."""
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def cmd_cp(paths: EnginePaths, args: Any) -> int:
    from hull.engine import copy, lifecycle

    src_ref, src_path = split_cp_arg(args.src)
    dst_ref, dst_path = split_cp_arg(args.dst)
    if src_ref and dst_ref:
        raise EngineError("copying between containers is not supported")
    if not src_ref and not dst_ref:
        raise EngineError("must specify at least one container source")
    store = lifecycle.container_store(paths)
    host = copy.Side(None, "")
    if src_ref:
        container = store.find(src_ref)
        with copy.container_root(paths, container) as root:
            side = copy.Side(root, f"container {src_ref}")
            src = copy.open_source(side, copy.normalize(src_path), args.follow_link)
            try:
                if dst_path == "-":
                    copy.write_tar(src, sys.stdout.buffer)
                    sys.stdout.buffer.flush()
                    return 0
                fd, top = copy.destination(host, dst_path, src)
                copied = _copy(src, fd, top, copy.OWNER_KEEP if args.archive else copy.OWNER_NONE)
            finally:
                if src.fd >= 0:
                    os.close(src.fd)
    else:
        container = store.find(dst_ref)
        source = None if src_path == "-" else copy.open_source(host, src_path, args.follow_link)
        owner = copy.OWNER_KEEP if args.archive else copy.OWNER_ROOT
        try:
            with copy.container_root(paths, container) as root:
                side = copy.Side(root, f"container {dst_ref}")
                if source is None:
                    copied = _extract(side, copy.normalize(dst_path), args.dst, owner)
                else:
                    fd, top = copy.destination(side, copy.normalize(dst_path), source)
                    copied = _copy(source, fd, top, owner)
        finally:
            if source is not None and source.fd >= 0:
                os.close(source.fd)
    if not args.quiet and sys.stderr.isatty():
        from hull.cli.humanize import human_size

        sys.stderr.write(f"Successfully copied {human_size(copied)} to {args.dst}\n")
    return 0


def _copy(src: Any, fd: int, top: str | None, owner: str) -> int:
    from hull.engine import copy

    writer = copy.Writer(fd, owner)
    try:
        copy.copy_tree(src, writer, top)
    finally:
        writer.close()
        os.close(fd)
    return writer.copied


def _extract(side: Any, path: str, shown: str, owner: str) -> int:
    import stat

    from hull.engine import copy

    parent, name, st = side.resolve_last(path)
    try:
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise EngineError(f'destination "{shown}" must be a directory')
        fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    finally:
        os.close(parent)
    writer = copy.Writer(fd, owner)
    try:
        copy.extract_tar(sys.stdin.buffer, writer)
    finally:
        writer.close()
        os.close(fd)
    return writer.copied


# ---------------------------------------------------------------- port


def cmd_port(paths: EnginePaths, args: Any) -> int:
    """docker port: ``80/tcp -> 0.0.0.0:8080`` per published port (or the host side of one)."""
    from hull.engine.networking import ports_text

    container = _find(paths, args.container)
    lines = ports_text(container)
    if args.private:
        port, _, proto = args.private.partition("/")
        want = f"{port}/{proto or 'tcp'} -> "
        lines = [line.removeprefix(want) for line in lines if line.startswith(want)]
        if not lines:
            raise EngineError(f"No public port '{port}/{proto or 'tcp'}' published for {container.name}")
    for line in lines:
        print(line)
    return 0
