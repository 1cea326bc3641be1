"""Resolving a container path inside a rootfs without leaving it.

A mount destination, device path or cwd names a path *inside* the container.
The rootfs is untrusted (it comes from an image), so a symlink in it must be
resolved as if the rootfs were ``/``: an absolute link target restarts at the
rootfs, and ``..`` stops at it. This is the class of bug behind
CVE-2021-30465 (runc mount destination symlink escape) and CVE-2019-19921.
"""

from __future__ import annotations

import os
import stat

MAX_SYMLINKS = 255


class PathEscapeError(OSError):
    pass


def secure_join(root: str, unsafe: str) -> str:
    """Host path for container path ``unsafe`` under ``root``, symlinks followed inside root.

    Missing components are fine: the result is where they would be created.
    """
    root = os.path.abspath(root)
    pending = [c for c in unsafe.split("/") if c]
    pending.reverse()
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            mode = os.lstat(candidate).st_mode
        except FileNotFoundError:
            resolved.append(part)
            continue
        except NotADirectoryError:
            resolved.append(part)
            continue
        if not stat.S_ISLNK(mode):
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise PathEscapeError(40, "too many levels of symbolic links", os.path.join("/", unsafe))
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved.clear()
        pending.extend(reversed([c for c in target.split("/") if c]))
    return os.path.join(root, *resolved)


def is_within(root: str, path: str) -> bool:
    root = os.path.abspath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def mkdir_all_in(root: str, path: str, mode: int = 0o755) -> str:
    """Create container path ``path`` as a directory inside ``root``; return the host path.

    Every component is resolved again after creating its parent, so a symlink
    that appears mid-way still cannot lead outside ``root``.
    """
    current = "/"
    host = root
    for part in [c for c in path.split("/") if c]:
        current = os.path.join(current, part)
        host = secure_join(root, current)
        if os.path.isdir(host):
            continue
        if os.path.lexists(host):
            raise NotADirectoryError(20, "not a directory", current)
        # A dangling symlink may point at several missing levels (/data -> /var/lib/data
        # in an image without /var); secure_join already placed them all inside root.
        os.makedirs(host, mode, exist_ok=True)
    return secure_join(root, path)


def ensure_file_in(root: str, path: str, mode: int = 0o644) -> str:
    """Create container path ``path`` as an empty file (parents as directories)."""
    parent = path.rstrip("/").rpartition("/")[0]
    mkdir_all_in(root, parent or "/")
    host = secure_join(root, path)
    # The resolved parent can differ from the one just made when path's last
    # component is a dangling symlink; it is inside root all the same.
    os.makedirs(os.path.dirname(host), 0o755, exist_ok=True)
    if not os.path.lexists(host):
        fd = os.open(host, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        os.close(fd)
    return host
