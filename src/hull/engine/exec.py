"""``hull exec``: another process in a running container, as ``docker exec``.

The process is built as moby's daemon builds it (daemon/exec.go): the
container's own ``process`` from its config.json — user, cwd, capabilities,
rlimits, AppArmor/SELinux labels, no_new_privileges — with the command, its
environment, and the ``-u``/``-w``/``-t``/``--privileged`` overrides. The
environment is the container's with ``-e`` values replacing same-named ones
(and ``TERM=xterm`` with ``-t``, docker's CreateDaemonEnvironment). It is
handed to the container's OCI runtime as ``exec --process FILE`` (runtime.md
has no exec; runc's command line is the de-facto one), whose stdio we pass
through, so ``-i``/``-t`` ride on the runtime's own foreground pty relay.

Exit status as docker's: the process's own; 126 when the runtime could not
start it, 127 when its program was not found (moby's translateContainerdStartErr).
"""

from __future__ import annotations

import json
import os
from typing import Any

from hull.engine.containers import Container
from hull.engine.errors import EXIT_CANNOT_EXECUTE, EngineError, InvalidContainerState
from hull.engine.paths import EnginePaths
from hull.engine.runtimes import runtime_log_error


class ExecRequest:
    def __init__(self, args: list[str], *, env: list[str] | None = None, user: str = "", workdir: str = "",
                 tty: bool = False, privileged: bool = False) -> None:  # fmt: skip
        self.args = args
        self.env = env or []
        self.user = user
        self.workdir = workdir
        self.tty = tty
        self.privileged = privileged


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """docker's ReplaceOrAppendEnvValues: ``extra`` replaces same-named entries of ``base``, in place."""
    out = list(base)
    index = {item.partition("=")[0]: i for i, item in enumerate(out)}
    for item in extra:
        name = item.partition("=")[0]
        if name in index:
            out[index[name]] = item
        else:
            index[name] = len(out)
            out.append(item)
    return out


def build_process(config: dict[str, Any], request: ExecRequest, rootfs: str) -> dict[str, Any]:
    """The runtime-spec process (config.md "process") to exec, from the container's config.json."""
    proc: dict[str, Any] = json.loads(json.dumps(config.get("process") or {}))
    proc["args"] = list(request.args)
    base_env = list(proc.get("env") or [])
    if request.tty:
        base_env = merge_env(base_env, [] if any(e.startswith("TERM=") for e in base_env) else ["TERM=xterm"])
    proc["env"] = merge_env(base_env, request.env)
    proc["terminal"] = request.tty
    proc.pop("consoleSize", None)
    if request.workdir:
        proc["cwd"] = request.workdir if request.workdir.startswith("/") else "/" + request.workdir
    if request.user:
        from hull.image.bundle import resolve_user_in

        try:
            user = resolve_user_in(request.user, rootfs)
        except Exception as err:  # noqa: BLE001 - UserNotFound and friends: one line, as docker's
            raise EngineError(f"unable to find user {request.user}: {err}") from None
        proc["user"] = {"uid": user.uid, "gid": user.gid}
        if user.additional_gids:
            proc["user"]["additionalGids"] = list(user.additional_gids)
    if request.privileged:
        from hull.engine.spec import all_capabilities

        caps = all_capabilities()
        proc["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    return proc


def check_running(container: Container) -> None:
    if container.status == "paused":
        raise InvalidContainerState(f"container {container.short_id} is paused, unpause the container before exec")
    if container.status != "running":
        raise InvalidContainerState(f"container {container.short_id} is not running")


def run(paths: EnginePaths, container: Container, request: ExecRequest, *, interactive: bool,
        detach: bool) -> int:  # fmt: skip
    """Run the process through the container's runtime with our stdio; its exit status (0 detached)."""
    import subprocess
    import tempfile

    from hull.engine import lifecycle

    config_path = os.path.join(paths.bundle(container.id), "config.json")
    try:
        with open(config_path) as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise EngineError(f"reading {config_path}: {err}") from None
    rootfs = os.path.join(paths.bundle(container.id), "rootfs")
    tty = request.tty and not detach
    request.tty = tty
    proc = build_process(config, request, rootfs)
    runtime = lifecycle.runtime_for(paths, container)
    work = paths.run_dir(container.id)
    os.makedirs(work, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="exec-", dir=work) as tmp:
        process_json = os.path.join(tmp, "process.json")
        with open(process_json, "w") as f:
            json.dump(proc, f)
        log = os.path.join(tmp, "runtime.log")
        # No terminal of ours for the runtime's own relay (output piped, say): the runtime detaches,
        # the pty master comes to us over --console-socket and we copy it, as docker's CLI does.
        console = tty and not any(os.isatty(fd) for fd in (0, 1, 2))
        pid_file = os.path.join(tmp, "pid") if console else ""
        argv = runtime.exec_argv(container.id, process_json, tty, detach or console, pid_file)
        # The runtime's error goes to its log as well as to stderr (as runc's): the log tells a runtime
        # failure from a process that exited non-zero.
        argv = [argv[0], "--log", log, "--log-format", "json", *argv[1:]]
        if console:
            code = _run_console(argv, tmp, interactive)
        else:
            null = subprocess.DEVNULL
            stdin: Any = None if interactive and not detach else null
            out: Any = null if detach else None
            child = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=out, close_fds=True)
            code = _wait(child)
        failure = runtime_log_error(log)
    if failure is not None:
        return _start_exit_code(failure)
    return code


def _run_console(argv: list[str], tmp: str, interactive: bool) -> int:
    """Run the detaching runtime with a console socket; relay the pty; the process's exit status.
    We are the child subreaper, so the process, orphaned when the runtime exits, is ours to wait for."""
    import select
    import subprocess

    from hull.runtime import linux, unixsock

    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    listener = unixsock.listen(tmp, "console.sock")
    argv = [*argv[:-1], "--console-socket", os.path.join(tmp, "console.sock"), argv[-1]]
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, close_fds=True)
    master = -1
    try:
        while master < 0 and child.poll() is None:
            if select.select([listener], [], [], 0.1)[0]:
                conn = unixsock.accept(listener)
                try:
                    _, fds = unixsock.recv_fds(conn)
                finally:
                    conn.close()
                master = fds[0] if fds else -1
        if child.wait() != 0 or master < 0:
            return EXIT_CANNOT_EXECUTE
        with open(os.path.join(tmp, "pid")) as f:
            pid = int(f.read().strip())
        _copy_pty(master, interactive)
    finally:
        listener.close()
        if master >= 0:
            os.close(master)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _copy_pty(master: int, interactive: bool) -> None:
    """The pty's output to our stdout (and our stdin to it with -i) until its last slave closes (EIO)."""
    import select

    reading = [master, 0] if interactive else [master]
    while True:
        ready, _, _ = select.select(reading, [], [])
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                return
            _write_all(1, data)
        if 0 in ready:
            data = os.read(0, 65536)
            if data:
                _write_all(master, data)
            else:
                reading.remove(0)
                _write_all(master, b"\x04")  # end of input, as a terminal's ^D


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _wait(child: Any) -> int:
    """The runtime's exit status; signals we get go to it (it forwards them to the process)."""
    import signal

    def forward(signum: int, _frame: Any) -> None:
        try:
            child.send_signal(signum)
        except OSError:
            pass

    saved = {}
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        saved[signum] = signal.signal(signum, forward)
    # ctrl-c reaches the runtime too (our process group), which passes it on: not twice.
    saved[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code: int = child.wait()
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def _start_exit_code(message: str) -> int:
    from hull.engine.errors import start_failure_status

    return start_failure_status(message, EXIT_CANNOT_EXECUTE)
