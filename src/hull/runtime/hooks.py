"""Running lifecycle hooks (config.md "POSIX-platform Hooks").

Each hook gets the container state as JSON on stdin, runs with exactly its own
``args`` and ``env``, and is killed when its ``timeout`` passes.
"""

from __future__ import annotations

import os
import select
import signal
import time

from hull.oci.runtime_config import Hook
from hull.runtime.errors import HookError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def run_hooks(kind: str, hooks: list[Hook], state_json: bytes, warn: Callable[[str], None] | None = None) -> None:
    """Run ``hooks`` in order; the first failure is raised, or with ``warn`` passed to it.

    ``warn`` is for poststart and poststop hooks, whose failures are only
    warnings: "the remaining hooks and lifecycle continue as if the hook had
    succeeded" (runtime.md lifecycle steps 9 and 13).
    """
    for i, hook in enumerate(hooks):
        try:
            run_hook(f"{kind}[{i}]", hook, state_json)
        except HookError as err:
            if warn is None:
                raise
            warn(str(err))


def run_hook(name: str, hook: Hook, state_json: bytes) -> None:
    bad = [e for e in hook.env if "=" not in e]
    if bad:
        raise HookError(f"hook {name} ({hook.path}): env entry {bad[0]!r} is not KEY=VALUE")
    env = dict(e.split("=", 1) for e in hook.env)
    stdin = _state_file(state_json)
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - replaced by execve
        try:
            os.dup2(stdin, 0)
            os.dup2(err_w, 2)
            os.closerange(3, 1 << 16)
            os.execve(hook.path, hook.args or [hook.path], env)
        except OSError as err:
            os.write(2, f"{hook.path}: {err.strerror}".encode())
        finally:
            # Whatever happened, this fork must never return into the runtime's code.
            os._exit(127)
    os.close(stdin)
    os.close(err_w)
    try:
        status, stderr = _wait(pid, err_r, hook.timeout)
    finally:
        os.close(err_r)
    if status is None:
        raise HookError(f"hook {name} ({hook.path}) timed out after {hook.timeout}s")
    if status != 0:
        detail = stderr.decode(errors="replace").strip().splitlines()
        why = f": {detail[-1]}" if detail else ""
        raise HookError(f"hook {name} ({hook.path}) failed with exit status {status}{why}")


def _state_file(data: bytes) -> int:
    """The state as an in-memory file for the hook's stdin.

    A file, not a pipe: the whole state arrives however large it is, and a hook
    that never reads stdin cannot make the runtime block or die of SIGPIPE.
    """
    fd = os.memfd_create("hull-hook-state", os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _wait(pid: int, err_fd: int, timeout: int | None) -> tuple[int | None, bytes]:
    deadline = None if timeout is None else time.monotonic() + timeout
    stderr = b""
    open_ = True
    while True:
        waited, status = os.waitpid(pid, os.WNOHANG)
        if waited:
            if open_:
                stderr += _drain(err_fd)
            return os.waitstatus_to_exitcode(status), stderr[-4096:]
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None, stderr
        if open_:
            ready, _, _ = select.select([err_fd], [], [], min(left, 0.05) if left is not None else 0.05)
            if ready:
                chunk = os.read(err_fd, 65536)
                open_ = bool(chunk)
                stderr += chunk
        else:
            time.sleep(0.005)


def _drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return b""
