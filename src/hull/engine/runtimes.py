"""The OCI runtime a container runs on: hull's own, in-process, or any runc-compatible binary.

hull's runtime is called as a library (hull.runtime's create/start/kill/delete),
which spares every container operation an interpreter start — the main cost
of a ``hull-runtime`` command. ``--runtime runc|crun|PATH`` runs that binary
with runc's command line (runtime.md's operations), ``--root`` under hull's
run root and ``--log`` in JSON so that its error can be shown as one line, as
podman does.
"""

from __future__ import annotations

import os

from hull.engine.errors import ContainerStartError, EngineError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object  # the interface is for the type checker; typing's import costs `hull run` 2 ms


class OCIRuntime(Protocol):
    name: str

    def create(self, container_id: str, bundle: str, stdio: tuple[int, int, int], tty: bool) -> tuple[int, int]:
        """Create the container with ``stdio`` as its process's 0, 1, 2 (unused with ``tty``);
        return its init PID and, with ``tty``, the pty master (else -1)."""
        ...

    def start(self, container_id: str) -> None: ...

    def kill(self, container_id: str, signum: int, all_processes: bool = False) -> None: ...

    def delete(self, container_id: str, force: bool = False) -> None: ...

    def state(self, container_id: str) -> dict[str, Any] | None:
        """runtime.md's state document, or None when the runtime does not know the container."""
        ...

    def pause(self, container_id: str) -> None: ...

    def resume(self, container_id: str) -> None: ...

    def exec_argv(self, container_id: str, process_json: str, tty: bool, detach: bool, pid_file: str) -> list[str]:
        """The command line that runs ``process_json`` in the container (``runc exec --process``)."""
        ...


def open_runtime(name: str, root: str) -> OCIRuntime:
    """``name``: "" for hull's own (in-process), else "runc", "crun", "hull-runtime" or a path."""
    if not name:
        return HullRuntime(root)
    import shutil

    path = name if os.sep in name else shutil.which(name)
    if path is None or not os.access(path, os.X_OK):
        raise EngineError(f"OCI runtime {name!r} not found (give a name on $PATH or a path)")
    return ExternalRuntime(os.path.basename(name), os.path.abspath(path), root)


def _hull_runtime_binary() -> str:
    import shutil
    import sys

    here = os.path.join(os.path.dirname(sys.executable), "hull-runtime")
    return here if os.access(here, os.X_OK) else (shutil.which("hull-runtime") or "hull-runtime")


class HullRuntime:
    name = "hull-runtime"

    def __init__(self, root: str) -> None:
        from hull.runtime.store import Store

        self.root = root
        self.store = Store(root)

    def create(self, container_id: str, bundle: str, stdio: tuple[int, int, int], tty: bool) -> tuple[int, int]:
        import _socket

        from hull.runtime import create as runtime_create
        from hull.runtime.errors import RuntimeFailure

        opts = runtime_create.CreateOptions(bundle=bundle)
        ours = theirs = None
        if tty:
            ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            opts.console_fd = theirs.fileno()
        # The container's process inherits the runtime's 0, 1 and 2, as with a runtime binary.
        saved = [os.dup(fd) for fd in (0, 1, 2)]
        try:
            for fd, target in zip(stdio, (0, 1, 2), strict=True):
                os.dup2(fd, target)
            pid = runtime_create.create(self.store, container_id, opts)
        except RuntimeFailure as err:
            raise ContainerStartError(str(err)) from None
        finally:
            for fd, target in zip(saved, (0, 1, 2), strict=True):
                os.dup2(fd, target)
                os.close(fd)
            if theirs is not None:
                theirs.close()
        master = -1
        if ours is not None:
            from hull.runtime import unixsock

            try:
                _, fds = unixsock.recv_fds(ours)
            finally:
                ours.close()
            if not fds:
                raise ContainerStartError("the runtime sent no pty master")
            master = fds[0]
        return pid, master

    def start(self, container_id: str) -> None:
        from hull.runtime import container
        from hull.runtime.errors import RuntimeFailure

        try:
            container.start(self.store, container_id)
        except RuntimeFailure as err:
            raise ContainerStartError(str(err)) from None

    def kill(self, container_id: str, signum: int, all_processes: bool = False) -> None:
        from hull.runtime import container
        from hull.runtime.errors import RuntimeFailure

        try:
            container.kill(self.store, container_id, signum, all_processes)
        except RuntimeFailure as err:
            raise EngineError(f"kill {container_id[:12]}: {err}") from None

    def delete(self, container_id: str, force: bool = False) -> None:
        from hull.runtime import container
        from hull.runtime.errors import ContainerNotFound, RuntimeFailure

        try:
            container.delete(self.store, container_id, force)
        except ContainerNotFound:
            pass
        except RuntimeFailure as err:
            raise EngineError(f"delete {container_id[:12]}: {err}") from None

    def state(self, container_id: str) -> dict[str, Any] | None:
        from hull.runtime import container
        from hull.runtime.errors import RuntimeFailure

        try:
            st = container.state(self.store, container_id)
        except RuntimeFailure:
            return None
        return {"status": st.status, "pid": st.pid}

    def pause(self, container_id: str) -> None:
        from hull.runtime import cgroup_ops
        from hull.runtime.errors import RuntimeFailure

        try:
            cgroup_ops.pause(self.store, container_id)
        except RuntimeFailure as err:
            raise EngineError(f"pause {container_id[:12]}: {err}") from None

    def resume(self, container_id: str) -> None:
        from hull.runtime import cgroup_ops
        from hull.runtime.errors import RuntimeFailure

        try:
            cgroup_ops.resume(self.store, container_id)
        except RuntimeFailure as err:
            raise EngineError(f"unpause {container_id[:12]}: {err}") from None

    def exec_argv(self, container_id: str, process_json: str, tty: bool, detach: bool, pid_file: str) -> list[str]:
        return _exec_argv(_hull_runtime_binary(), self.root, container_id, process_json, tty, detach, pid_file)


def _exec_argv(binary: str, root: str, container_id: str, process_json: str, tty: bool, detach: bool,
               pid_file: str) -> list[str]:  # fmt: skip
    argv = [binary, "--root", root, "exec", "--process", process_json]
    if tty:
        argv.append("--tty")
    if detach:
        argv.append("--detach")
    if pid_file:
        argv += ["--pid-file", pid_file]
    return [*argv, container_id]


def runtime_log_error(path: str) -> str | None:
    """The last error or fatal message of a runtime's ``--log-format json`` log (logrus lines)."""
    import json

    message = None
    try:
        with open(path, "rb") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") in ("error", "fatal"):
                    message = str(entry.get("msg", ""))
    except OSError:
        return None
    return message


class ExternalRuntime:
    """A runtime binary with runc's command line (runc, crun, hull-runtime, youki)."""

    def __init__(self, name: str, path: str, root: str) -> None:
        self.name = name
        self.path = path
        self.root = root

    def _log(self, container_id: str) -> str:
        return os.path.join(self.root, f"{container_id}.log")

    def _argv(self, container_id: str, *args: str) -> list[str]:
        return [self.path, "--root", self.root, "--log", self._log(container_id), "--log-format", "json", *args]

    def _error(self, container_id: str, what: str, fallback: bytes) -> str:
        """The runtime's last error from its JSON log (logrus lines), else its stderr."""
        message = runtime_log_error(self._log(container_id)) or ""
        if not message:
            lines = fallback.decode(errors="replace").strip().splitlines()
            message = lines[-1] if lines else ""
        return f"{self.name} {what}: {message or 'failed'}"

    def _run(self, container_id: str, *args: str, what: str) -> bytes:
        import subprocess

        proc = subprocess.run(self._argv(container_id, *args), stdin=subprocess.DEVNULL, capture_output=True)
        if proc.returncode != 0:
            raise EngineError(self._error(container_id, what, proc.stderr))
        return proc.stdout

    def create(self, container_id: str, bundle: str, stdio: tuple[int, int, int], tty: bool) -> tuple[int, int]:
        import subprocess

        os.makedirs(self.root, exist_ok=True)
        pid_file = os.path.join(self.root, f"{container_id}.pid")
        argv = ["create", "--bundle", bundle, "--pid-file", pid_file]
        listener = None
        sock_dir = os.path.join(self.root, "console")
        if tty:
            from hull.runtime import unixsock

            os.makedirs(sock_dir, exist_ok=True)
            sock_name = f"{container_id[:12]}-{os.getpid()}.sock"
            sock_path = os.path.join(sock_dir, sock_name)
            if os.path.exists(sock_path):
                os.unlink(sock_path)
            listener = unixsock.listen(sock_dir, sock_name)
            argv += ["--console-socket", sock_path]
        try:
            proc = subprocess.Popen(self._argv(container_id, *argv, container_id), stdin=stdio[0], stdout=stdio[1],
                                    stderr=subprocess.PIPE if tty else stdio[2], close_fds=True)  # fmt: skip
            master = -1
            if listener is not None:
                master = self._receive_console(listener, proc)
            _, err = proc.communicate()
            if proc.returncode != 0:
                if master >= 0:
                    os.close(master)
                raise ContainerStartError(self._error(container_id, "create", err or b""))
        finally:
            if listener is not None:
                listener.close()
                os.unlink(sock_path)
        with open(pid_file) as f:
            pid = int(f.read().strip())
        os.unlink(pid_file)
        return pid, master

    @staticmethod
    def _receive_console(listener: Any, proc: Any) -> int:
        import select

        from hull.runtime import unixsock

        while True:
            ready, _, _ = select.select([listener], [], [], 0.1)
            if ready:
                conn = unixsock.accept(listener)
                try:
                    _, fds = unixsock.recv_fds(conn)
                finally:
                    conn.close()
                return fds[0] if fds else -1
            if proc.poll() is not None:
                return -1

    def start(self, container_id: str) -> None:
        try:
            self._run(container_id, "start", container_id, what="start")
        except EngineError as err:
            raise ContainerStartError(str(err)) from None

    def kill(self, container_id: str, signum: int, all_processes: bool = False) -> None:
        self._run(container_id, "kill", *(["--all"] if all_processes else []), container_id, str(signum), what="kill")

    def delete(self, container_id: str, force: bool = False) -> None:
        try:
            self._run(container_id, "delete", *(["--force"] if force else []), container_id, what="delete")
        except EngineError:
            if self.state(container_id) is not None:  # not "unknown to the runtime", which is no error here
                raise
        try:  # also after a failed create, which the runtime does not know but logged
            os.unlink(self._log(container_id))
        except FileNotFoundError:
            pass

    def state(self, container_id: str) -> dict[str, Any] | None:
        import json
        import subprocess

        proc = subprocess.run([self.path, "--root", self.root, "state", container_id], stdin=subprocess.DEVNULL,
                              capture_output=True)  # fmt: skip
        if proc.returncode != 0:
            return None
        doc: dict[str, Any] = json.loads(proc.stdout)
        return doc

    def pause(self, container_id: str) -> None:
        self._run(container_id, "pause", container_id, what="pause")

    def resume(self, container_id: str) -> None:
        self._run(container_id, "resume", container_id, what="resume")

    def exec_argv(self, container_id: str, process_json: str, tty: bool, detach: bool, pid_file: str) -> list[str]:
        return _exec_argv(self.path, self.root, container_id, process_json, tty, detach, pid_file)
