"""Preparing and executing the container process (config.md "Process")."""

from __future__ import annotations

import errno
import os

from hull.oci.runtime_config import Process, Rlimit
from hull.runtime import linux as L
from hull.runtime.errors import SetupError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def set_rlimits(rlimits: list[Rlimit]) -> None:
    for limit in rlimits:
        which = L.RLIMIT[limit.type]
        try:
            L.prlimit(which, (limit.soft, limit.hard))
        except OSError as err:
            _, current_hard = L.prlimit(which)
            if err.errno == errno.EPERM and limit.hard > current_hard:
                raise SetupError(
                    f"process.rlimits: cannot raise the hard limit of {limit.type} to {limit.hard} "
                    f"(now {current_hard}): raising a hard limit needs CAP_SYS_RESOURCE, which this runtime lacks"
                ) from None
            raise SetupError(f"process.rlimits: setting {limit.type}: {err.strerror}") from None


def set_oom_score_adj(value: int) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except PermissionError:
        with open("/proc/self/oom_score_adj") as f:
            current = f.read().strip()
        raise SetupError(
            f"process.oomScoreAdj: cannot lower oom_score_adj to {value} (now {current}): "
            "lowering it needs CAP_SYS_RESOURCE, which this runtime lacks"
        ) from None


def switch_user(process: Process) -> None:
    user = process.user
    try:
        os.setgroups(user.additional_gids)
    except PermissionError:
        # In a user namespace whose setgroups is "deny", only an empty list is possible.
        if user.additional_gids:
            raise
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    if user.umask is not None:
        os.umask(user.umask)


def with_home(env: list[str], uid: int, passwd: str = "/etc/passwd") -> list[str]:
    """``env`` plus HOME when it has none (or an empty one), as runc's init does.

    runc (libcontainer setupUser) sets HOME to the user's home directory in
    the container's /etc/passwd, or "/" if the UID has no entry; programs and
    shells expect it, and engines rely on runc for it. Read as root, after
    pivot_root, so it is the container's file whatever its permissions.
    """
    home = ""
    for entry in env:
        if entry.startswith("HOME="):
            home = entry[5:]
    if home:
        return env
    return [*env, "HOME=" + _passwd_home(uid, passwd)]


def _passwd_home(uid: int, path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def env_path(env: list[str]) -> str:
    for entry in env:
        if entry.startswith("PATH="):
            return entry[5:]
    return DEFAULT_PATH


def lookup_executable(arg0: str, env: list[str]) -> str:
    """The path execve(2) will run, found as execvp(3) would; raised in runc's words if missing."""
    if "/" in arg0:
        return _check_executable(arg0, arg0)
    for directory in env_path(env).split(":"):
        candidate = os.path.join(directory or ".", arg0)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SetupError(f'exec: "{arg0}": executable file not found in $PATH')


def _check_executable(path: str, arg0: str) -> str:
    try:
        st = os.stat(path)
    except OSError as err:
        # Go's exec.LookPath, as runc reports it: the stat error with its path.
        raise SetupError(f'exec: "{arg0}": stat {path}: {(err.strerror or str(err)).lower()}') from None
    if not os.path.isfile(path) or not st.st_mode & 0o111:
        raise SetupError(f'exec: "{arg0}": permission denied')
    return path


def close_fds_from(first: int, keep: tuple[int, ...] = ()) -> None:
    """Close every fd >= first but those in ``keep``, so nothing of the runtime's leaks in.

    Marking them close-on-exec is not enough: until execve(2) closes them, an
    open fd can be named as the process's cwd or executable through
    /proc/self/fd/N and lead to the host (CVE-2024-21626). runc's init never
    inherits its caller's fds and closes its own before exec (UnsafeCloseFrom);
    init here is forked from the runtime, so it closes everything it has not
    been asked to pass.
    """
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(first, 1024))
    for fd in fds:
        if fd >= first and fd not in keep:
            try:
                os.close(fd)
            except OSError as err:
                # listdir's own fd is in the list, closed already.
                if err.errno != errno.EBADF:
                    raise


def check_cwd_inside() -> None:
    """Fail unless the working directory is reachable from the container's root (runc's verifyCwd).

    getcwd(2) marks a directory outside the root "(unreachable)" and libc's
    getcwd then fails with ENOENT: the symptom of a cwd reached through a
    leaked host fd (CVE-2024-21626).
    """
    try:
        cwd = os.getcwd()
    except FileNotFoundError:
        cwd = ""
    if not cwd.startswith("/"):
        raise SetupError(
            "process.cwd: current working directory is outside of container mount namespace root"
            " -- possible container breakout detected"
        )


def execute(path: str, args: list[str], env: list[str]) -> None:
    environ = dict(e.split("=", 1) for e in env)
    os.execve(path, args, environ)
