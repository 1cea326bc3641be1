"""The monitor: one small process per container, what conmon is to podman.

Forked by the ``hull`` command that creates or starts a container, detached
into its own session, it outlives that command. It creates the container
through the OCI runtime with pipes (or a pty) as the process's stdio and makes
itself a child subreaper (prctl(2) PR_SET_CHILD_SUBREAPER), so that the
container's init — whose parent, the runtime, exits — becomes its child and
its exit status reaches it. Meanwhile it writes the output into the
container's json-file log, serves the attach socket (engine.attach), records
the exit code, tears the container down (runtime delete, rootfs unmounted),
applies the restart policy and, for ``--rm``, removes the container.

The command that forked it learns the outcome of create/start from a pipe:
one line, ``created``, ``started PID`` or ``error MESSAGE``.
"""

from __future__ import annotations

import os
import select
import time

from hull.engine import attach, lifecycle
from hull.engine.containers import CREATED, EXITED, RESTARTING, RUNNING, Container, ContainerStore, now_ns
from hull.engine.errors import EngineError
from hull.engine.paths import EnginePaths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from hull.engine.runtimes import OCIRuntime

# Docker's restart back-off: 100 ms doubling, at most a minute, reset after 10 s of running.
BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
BACKOFF_RESET = 10.0


class StartRequested(Exception):
    pass


def spawn(paths: EnginePaths, store: ContainerStore, container: Container, *, start: bool) -> int:
    """Fork ``container``'s monitor; return once the container is created (and, with ``start``,
    started): the init PID for a started container, else 0. Raises EngineError with the runtime's
    message when that failed."""
    return prefork(paths).go(container, start=start)


def prefork(paths: EnginePaths) -> Preforked:
    """Fork a monitor before the container exists, so that its imports (hull's runtime) overlap the
    work the command still does to make the container (``go`` hands it over); ``cancel`` if that fails.

    Call it before any thread is started: only the forking thread exists in the child.
    """
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    cgroups = sys.modules.get("hull.runtime.cgroups")
    if cgroups is not None:
        # Its thread would not exist in the child, whose create would wait for it forever.
        cgroups.await_migration_grace_period()
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked monitor, measured by the integration tests
        code = 1
        try:
            os.close(go_w)
            os.close(sync_r)
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):  # not the command's pipes: its caller may wait for their end
                os.dup2(null, fd)
            os.close(null)
            # What the monitor will need, imported while the parent makes the container.
            import shutil  # noqa: F401 - removal
            import subprocess  # noqa: F401 - CNI plugins, at the removal of a container on a network

            import hull.image.mounts  # noqa: F401
            import hull.image.snapshot  # noqa: F401
            import hull.network.cni  # noqa: F401
            import hull.runtime.container  # noqa: F401
            import hull.runtime.create  # noqa: F401
            import hull.runtime.forwarding  # noqa: F401
            from hull.engine import events, logfile  # noqa: F401

            order = b""
            while chunk := os.read(go_r, 4096):
                order += chunk
            os.close(go_r)
            if order:
                container_id, _, how = order.decode().partition(" ")
                store = ContainerStore(paths.containers)
                code = Monitor(paths, store, container_id, sync_w, how == "start").main()
            else:
                code = 0  # cancelled
        except BaseException:  # noqa: BLE001 - nothing may escape into the parent's code after fork
            try:
                import traceback

                traceback.print_exc()
            except BaseException:  # noqa: BLE001, S110
                pass
        finally:
            os._exit(code)
    os.close(go_r)
    os.close(sync_w)
    return Preforked(pid, go_w, sync_r)


class Preforked:
    """A monitor waiting for its container (see ``prefork``)."""

    def __init__(self, pid: int, go_w: int, sync_r: int) -> None:
        self.pid = pid
        self._go = go_w
        self._sync = sync_r

    def go(self, container: Container, *, start: bool) -> int:
        """Hand ``container`` over; as ``spawn``."""
        os.write(self._go, f"{container.id} {'start' if start else 'create'}".encode())
        os.close(self._go)
        with os.fdopen(self._sync, "rb") as f:
            line = f.readline().decode(errors="replace").rstrip("\n")
        word, _, rest = line.partition(" ")
        if word == "started":
            return int(rest)
        if word == "created":
            return 0
        if word == "error":
            raise EngineError(rest)
        raise EngineError(f"the monitor of container {container.short_id} exited before it reported")

    def cancel(self) -> None:
        os.close(self._go)
        os.close(self._sync)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


class _Client:
    __slots__ = ("sock", "streams", "stdin", "hello")

    def __init__(self, sock: attach.Socket) -> None:
        self.sock = sock
        self.streams = b""
        self.stdin = False
        self.hello = False


class Monitor:
    def __init__(self, paths: EnginePaths, store: ContainerStore, container_id: str, sync_fd: int,
                 start: bool) -> None:  # fmt: skip
        self.paths = paths
        self.store = store
        self.id = container_id
        self.sync_fd = sync_fd
        self.start_now = start
        self.clients: list[_Client] = []
        self.listener: attach.Socket | None = None
        self.poller = select.poll()
        self.fd_role: dict[int, Any] = {}
        self.stdin_w = -1
        self.master = -1
        self.pidfd = -1
        self.pid = 0
        self.log: Any = None
        self.waiting_start: _Client | None = None

    # ------------------------------------------------------------ set-up

    def _report(self, line: str) -> None:
        if self.sync_fd >= 0:
            try:
                os.write(self.sync_fd, line.replace("\n", " ").encode() + b"\n")
            except OSError:
                pass
            os.close(self.sync_fd)
            self.sync_fd = -1

    def _stdio_to_log(self) -> None:
        run_dir = self.paths.run_dir(self.id)
        os.makedirs(run_dir, exist_ok=True)
        null = os.open(os.devnull, os.O_RDWR)
        log = os.open(os.path.join(run_dir, "monitor.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)

    def main(self) -> int:
        try:
            return self._main()
        except BaseException as err:
            # Said to the waiting command too, not only in monitor.log (which --rm's removal takes away).
            self._report(f"error the container's monitor failed: {err}")
            raise

    def _main(self) -> int:
        self._stdio_to_log()
        from hull.runtime import linux as L

        L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
        container = self.store.load(self.id)
        self.opts = container.options
        self.runtime: OCIRuntime = lifecycle.runtime_for(self.paths, container)
        self.listener = attach.listen(self.paths.attach_socket(self.id))
        self._watch(self.listener.fileno(), "listener")
        from hull.runtime.store import process_start_time

        me = os.getpid()

        def mark_monitor(c: Container) -> None:
            c.monitor_pid = me
            c.monitor_start = process_start_time(me) or 0

        self.store.update(self.id, mark_monitor)
        from hull.engine.logfile import LogWriter

        self.log = LogWriter(self.paths.log(self.id), self.opts.log_max_size, self.opts.log_max_file)
        code = self._loop()
        self._finish(code)
        return 0

    def _loop(self) -> int:
        backoff = BACKOFF_START
        while True:
            try:
                self._create()
            except EngineError as err:
                self._failed(str(err))
                return -1
            if not self.start_now:
                self._report("created")
                # (no "create" event here: lifecycle.create emitted it, once, as docker does)
                try:
                    self._serve_until_start()
                except _InitExited as gone:
                    # Killed before it started (rm -f of a created container): nothing ran.
                    self._teardown()
                    return gone.code
            try:
                self.runtime.start(self.id)
            except EngineError as err:
                self._failed(str(err))
                return -1
            started = now_ns()
            self.store.update(self.id, _running_at(self.pid, started))
            lifecycle.emit(self.paths, "start", self.store.load(self.id))
            self._report(f"started {self.pid}")
            self._tell_waiting(attach.STARTED + str(self.pid).encode())
            code = self._relay()
            finished = now_ns()
            self.store.update(self.id, _exited_at(code, finished, _oom_killed(self.paths.bundle(self.id))))
            container = self.store.load(self.id)
            lifecycle.emit(self.paths, "die", container, {"exitCode": str(code)})
            final = not _restart_wanted(container, code)
            if final:
                # The code at once: an attached `hull run` stops sending stdin and keeps it, whatever
                # happens to the connection during the teardown and --rm's removal that follow.
                for client in list(self.clients):
                    self._send(client, attach.EXIT_CODE + str(code).encode())
            self._teardown()
            if final:
                return code
            ran = (finished - started) / 1e9
            backoff = BACKOFF_START if ran >= BACKOFF_RESET else min(backoff * 2, BACKOFF_MAX)
            self.store.update(self.id, _restarting)
            self._sleep(backoff)
            container = self.store.load(self.id)
            if container.stopped_by_user:
                self.store.update(self.id, lambda c: setattr(c, "status", EXITED))
                return code
            self.start_now = True

    def _failed(self, message: str) -> None:
        self.store.update(self.id, lambda c: _error(c, message))
        self._report(f"error {message}")
        self._tell_waiting(attach.START_FAILED + message.encode())
        self._teardown()

    def _create(self) -> None:
        container = self.store.load(self.id)
        if container.network.get("name"):
            from hull.engine import networking

            networking.ensure(self.paths, self.store, container)  # a restart: its exit released it
        with self.store.locked(self.id):  # hull cp mounts a stopped container's rootfs under this lock (engine.copy)
            lifecycle.mount_rootfs(self.paths, container)
        opts = self.opts
        tty = opts.tty
        stdin_r = -1
        if opts.interactive and not tty:
            stdin_r, self.stdin_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            stdio = (stdin_r if stdin_r >= 0 else null, out_w, err_w)
            self.pid, self.master = self.runtime.create(self.id, self.paths.bundle(self.id), stdio, tty)
        except BaseException:
            for fd in (out_r, err_r, self.stdin_w):
                if fd >= 0:
                    os.close(fd)
            self.stdin_w = -1
            raise
        finally:
            for fd in (stdin_r, out_w, err_w, null):
                if fd >= 0:
                    os.close(fd)
        if self.master >= 0:
            os.close(out_r)
            os.close(err_r)
            os.set_blocking(self.master, False)
            self._watch(self.master, b"1")
        else:
            for fd, stream in ((out_r, b"1"), (err_r, b"2")):
                os.set_blocking(fd, False)
                self._watch(fd, stream)
        self.pidfd = os.pidfd_open(self.pid)
        self._watch(self.pidfd, "init")

    def _watch(self, fd: int, role: Any) -> None:
        self.fd_role[fd] = role
        self.poller.register(fd, select.POLLIN)

    def _unwatch(self, fd: int) -> None:
        self.fd_role.pop(fd, None)
        try:
            self.poller.unregister(fd)
        except KeyError:
            pass

    # ------------------------------------------------------------ the relay

    def _serve_until_start(self) -> None:
        while True:
            try:
                self._poll_once(None)
            except StartRequested:
                return

    def _relay(self) -> int:
        while True:
            try:
                self._poll_once(None)
            except _InitExited as gone:
                return gone.code
            except StartRequested:
                self._tell_waiting(attach.STARTED + str(self.pid).encode())

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                self._poll_once(left * 1000)
            except (StartRequested, _InitExited):
                pass
            # `hull stop`/`kill`/`rm` marks the record, then connects (waking us): no restart, and the
            # back-off (up to a minute) is not waited out, as docker's stop of a restarting container.
            if self.store.load(self.id).stopped_by_user:
                return

    def _poll_once(self, timeout_ms: float | None) -> None:
        for fd, _event in self.poller.poll(timeout_ms):
            role = self.fd_role.get(fd)
            if role is None:
                continue
            if role == "listener":
                self._accept()
            elif role == "init":
                raise _InitExited(self._reap())
            elif isinstance(role, bytes):
                self._pump(fd, role)
            elif isinstance(role, _Client):
                self._from_client(role)

    def _pump(self, fd: int, stream: bytes) -> bool:
        """Copy what ``fd`` has to the log and the attached clients; False at its end."""
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError:  # EIO: the pty's last holder closed it
            data = b""
        if not data:
            self._unwatch(fd)
            os.close(fd)
            if fd == self.master:
                self.master = -1
            return False
        self.log.write("stdout" if stream == b"1" else "stderr", data)
        frame = stream + data
        for client in list(self.clients):
            if client.hello and (b"o" if stream == b"1" else b"e") in client.streams:
                self._send(client, frame)
        return True

    def _drain(self) -> None:
        for fd, role in list(self.fd_role.items()):
            if isinstance(role, bytes):
                while self._pump(fd, role):
                    pass
        self.log.flush_partial()

    def _reap(self) -> int:
        from hull.runtime.forwarding import exit_code

        try:
            _, status = os.waitpid(self.pid, 0)
            code = exit_code(status)
        except ChildProcessError:
            code = 255  # not our child (no subreaper): the status is lost
        self._unwatch(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = -1
        self._drain()
        if self.stdin_w >= 0:
            os.close(self.stdin_w)
            self.stdin_w = -1
        if self.master >= 0:
            self._unwatch(self.master)
            os.close(self.master)
            self.master = -1
        return code

    # ------------------------------------------------------------ clients

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            sock = attach.accept(self.listener)
        except OSError:
            return
        client = _Client(sock)
        self.clients.append(client)
        self._watch(sock.fileno(), client)

    def _drop(self, client: _Client) -> None:
        if client in self.clients:
            self.clients.remove(client)
        self._unwatch(client.sock.fileno())
        client.sock.close()
        if self.waiting_start is client:
            self.waiting_start = None

    def _send(self, client: _Client, frame: bytes) -> None:
        try:
            client.sock.send(frame)
        except OSError:
            self._drop(client)

    def _from_client(self, client: _Client) -> None:
        try:
            frame = client.sock.recv(attach.FRAME)
        except OSError:
            frame = b""
        if not frame:
            self._drop(client)
            return
        kind, body = frame[:1], frame[1:]
        if kind == attach.HELLO:
            client.hello = True
            client.streams = body
            client.stdin = b"i" in body
        elif kind == attach.START:
            self.waiting_start = client
            raise StartRequested()
        elif kind == attach.STDIN:
            target = self.master if self.master >= 0 else self.stdin_w
            if target >= 0:
                try:
                    os.write(target, body)
                except OSError:
                    pass
        elif kind == attach.STDIN_CLOSED:
            if self.stdin_w >= 0:  # docker's StdinOnce: the first attached stdin closing closes the container's
                os.close(self.stdin_w)
                self.stdin_w = -1
        elif kind == attach.RESIZE and self.master >= 0:
            _resize(self.master, body)

    def _tell_waiting(self, frame: bytes) -> None:
        if self.waiting_start is not None:
            self._send(self.waiting_start, frame)
            self.waiting_start = None

    # ------------------------------------------------------------ the end

    def _teardown(self) -> None:
        """The runtime's container deleted and the rootfs unmounted: nothing of it left running."""
        for fd, role in list(self.fd_role.items()):
            if isinstance(role, bytes) or role == "init":
                self._unwatch(fd)
                os.close(fd)
        self.master = self.pidfd = -1
        if self.stdin_w >= 0:
            os.close(self.stdin_w)
            self.stdin_w = -1
        try:
            self.runtime.delete(self.id, force=True)
        except EngineError as err:
            print(f"monitor: {err}", flush=True)
        lifecycle.unmount_rootfs(self.paths, self.id)
        container = self.store.load(self.id)
        if container.network.get("attached"):
            from hull.engine import networking

            networking.release(self.paths, self.store, container)  # as docker: a stopped container holds none

    def _finish(self, code: int) -> None:
        self.log.close()
        container = self.store.load(self.id)
        if container.options.remove:
            lifecycle.remove_files(self.paths, self.store, container, volumes=True)
            lifecycle.emit(self.paths, "destroy", container)
        if self.listener is not None:
            # Connections still waiting to be accepted (a `hull stop` waiting for the exit, say)
            # get the final frame too; closing the listener would reset them.
            self.listener.setblocking(False)
            while True:
                try:
                    sock = attach.accept(self.listener)
                except OSError:
                    break
                self.clients.append(_Client(sock))
            self.listener.close()
            try:
                os.unlink(self.paths.attach_socket(self.id))
            except FileNotFoundError:
                pass
        final = attach.EXITED + str(code).encode()
        for client in list(self.clients):
            self._send(client, final)
            _drain_and_close(client.sock)
        self.clients.clear()
        if not container.options.remove:
            self.store.update(self.id, lambda c: setattr(c, "monitor_pid", 0))


def _drain_and_close(sock: attach.Socket) -> None:
    """Close after reading what the client sent last (its stdin's end, say): closing a unix socket with
    unread data resets the connection, and the client would lose the exit frame."""
    sock.setblocking(False)
    try:
        while sock.recv(attach.FRAME):
            pass
    except OSError:
        pass
    sock.close()


class _InitExited(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _resize(master: int, body: bytes) -> None:
    import fcntl
    import struct
    import termios

    try:
        rows, cols = (int(x) for x in body.split())
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    except (ValueError, OSError):
        pass


def _oom_killed(bundle: str) -> bool:
    """docker's State.OOMKilled: the kernel's OOM killer killed a process of the container's memory
    cgroup (its oom_kill count, cgroup v1 memory.oom_control or v2 memory.events), read before the
    runtime's delete removes the cgroup."""
    import json

    try:
        with open(os.path.join(bundle, "config.json")) as f:
            rel = str(json.load(f).get("linux", {}).get("cgroupsPath", "")).strip("/")
    except (OSError, ValueError):
        return False
    if not rel or ":" in rel:  # empty, or systemd's slice:prefix:name form
        return False
    for path in (f"/sys/fs/cgroup/memory/{rel}/memory.oom_control", f"/sys/fs/cgroup/{rel}/memory.events",
                 f"/sys/fs/cgroup/unified/{rel}/memory.events"):  # fmt: skip
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value) > 0
        except (OSError, ValueError):
            continue
    return False


def _running_at(pid: int, started: int) -> Callable[[Container], None]:
    def change(c: Container) -> None:
        c.status = RUNNING
        c.pid = pid
        c.started_at = started
        c.error = ""
        c.oom_killed = False

    return change


def _exited_at(code: int, finished: int, oom_killed: bool = False) -> Callable[[Container], None]:
    def change(c: Container) -> None:
        c.status = EXITED
        c.exit_code = code
        c.finished_at = finished
        c.pid = 0
        c.oom_killed = oom_killed

    return change


def _restarting(c: Container) -> None:
    c.status = RESTARTING
    c.restart_count += 1


def _error(c: Container, message: str) -> None:
    c.error = message
    c.exit_code = 128 if c.status == CREATED else c.exit_code
    c.status = EXITED if c.started_at else CREATED
    c.pid = 0


def _restart_wanted(c: Container, code: int) -> bool:
    policy = c.options.restart
    if c.stopped_by_user or c.options.remove:
        return False
    if policy.name in ("always", "unless-stopped"):
        return True
    if policy.name == "on-failure":
        return code != 0 and (policy.maximum_retry_count <= 0 or c.restart_count < policy.maximum_retry_count)
    return False
