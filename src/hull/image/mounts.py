"""Performing the mounts that snapshotters describe; the one place the image layer mounts.

A snapshotter only *describes* a rootfs as a list of ``Mount`` (type, source,
options), as containerd's ``mount.Mount`` does, so that the engine, a test or
the runtime can decide where and when it is mounted. ``mount_all`` performs
such a list on a target and ``unmount`` undoes it.

overlayfs takes its layers in the mount data string, which the kernel copies
from user space as one page (fs/namespace.c ``copy_mount_options``): with a
few dozen layers ``lowerdir=`` no longer fits. As containerd does
(mount/mount_linux.go "compactLowerdirOption"), the directories are then
named relative to their longest common parent and the mount is made by a
forked child that ``chdir``s there first; the child shares the mount
namespace, so the mount is the parent's. Changing the working directory of
this (possibly threaded) process instead would race its other threads.
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager

from hull.image.errors import ImageError
from hull.oci.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

_PATH_OPTIONS = ("lowerdir=", "upperdir=", "workdir=")


class MountError(ImageError):
    """A described mount could not be performed."""


@record
class Mount:
    """One mount, in the words of runtime-spec config.md ``mounts`` (without the destination)."""

    type: str
    source: str
    options: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "source": self.source, "options": list(self.options)}

    @property
    def is_bind(self) -> bool:
        return self.type == "bind" or "bind" in self.options or "rbind" in self.options

    @property
    def readonly(self) -> bool:
        return "ro" in self.options


def page_size() -> int:
    return os.sysconf("SC_PAGESIZE")


def _split_data(m: Mount) -> tuple[int, str, int]:
    from hull.runtime.mount_options import parse_options

    parsed = parse_options(list(m.options))
    return parsed.flags, parsed.data_string, sum(parsed.propagation)


def _common_parent(paths: list[str]) -> str:
    common = os.path.commonpath(paths)
    # The common path of one directory is itself; its parent keeps every name non-empty.
    return os.path.dirname(common) if common in paths else common


def compact_overlay_data(data: str) -> tuple[str, str]:
    """(directory, data) with every overlay path relative to ``directory``, their common parent."""
    opts = data.split(",")
    paths: list[str] = []
    for opt in opts:
        for key in _PATH_OPTIONS:
            if opt.startswith(key):
                paths.extend(opt[len(key) :].split(":"))
    if not paths or not all(os.path.isabs(p) for p in paths):
        return "", data
    base = _common_parent(paths)
    out = []
    for opt in opts:
        for key in _PATH_OPTIONS:
            if opt.startswith(key):
                rel = [os.path.relpath(p, base) for p in opt[len(key) :].split(":")]
                opt = key + ":".join(rel)
                break
        out.append(opt)
    return base, ",".join(out)


def _mount_in(directory: str, source: str, target: str, fstype: str, flags: int, data: str) -> None:
    """mount(2) from a child whose working directory is ``directory`` (relative overlay paths)."""
    from hull.runtime import linux

    target = os.path.abspath(target)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.chdir(directory)
            linux.mount(source, target, fstype, flags, data)
        except OSError as err:
            code = err.errno or 1
        except BaseException:  # noqa: BLE001 - whatever happens, the forked child must not return
            code = 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise OSError(code, os.strerror(code) if 0 < code < 255 else "mount helper failed", target)


def mount_one(m: Mount, target: str) -> None:
    """Perform one described mount on ``target`` (which must exist)."""
    from hull.runtime import linux

    flags, data, propagation = _split_data(m)
    try:
        if m.is_bind:
            linux.mount(m.source, target, None, flags & (linux.MS_BIND | linux.MS_REC))
            if flags & ~(linux.MS_BIND | linux.MS_REC):
                # A bind mount ignores every other flag: they take a remount (mount(8) does the same).
                linux.mount(None, target, None, flags | linux.MS_REMOUNT | linux.MS_BIND)
        elif len(data) < page_size():
            linux.mount(m.source, target, m.type, flags, data or None)
        else:
            directory, short = compact_overlay_data(data) if m.type == "overlay" else ("", data)
            if not directory or len(short) >= page_size():
                raise MountError(
                    f"{m.type} mount on {target}: options are {len(data)} bytes, over the {page_size()}-byte "
                    "limit of mount(2), even with paths relative to their common parent"
                )
            _mount_in(directory, m.source, target, m.type, flags, short)
        if propagation:
            linux.mount(None, target, None, propagation)
    except OSError as err:
        raise MountError(f"mounting {m.type} {m.source} on {target}: {err.strerror}") from None


def mount_all(mounts: Sequence[Mount], target: str) -> None:
    """Perform ``mounts`` in order on ``target``; on a failure, undo those already made."""
    done = 0
    try:
        for m in mounts:
            mount_one(m, target)
            done += 1
    except BaseException:
        for _ in range(done):
            unmount(target)
        raise


def unmount(target: str, detach: bool = False) -> None:
    """Unmount ``target``; not being a mount point is not an error (idempotent cleanup)."""
    from hull.runtime import linux

    try:
        linux.umount2(target, linux.MNT_DETACH if detach else 0)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOENT):
            raise MountError(f"unmounting {target}: {err.strerror}") from None


def unmount_all(target: str) -> None:
    """Unmount every mount stacked on ``target`` (until umount2 says EINVAL: not a mount point).

    ``os.path.ismount`` cannot tell: a bind mount from the same filesystem has its parent's st_dev.
    """
    from hull.runtime import linux

    for _ in range(256):
        try:
            linux.umount2(target, 0)
        except OSError as err:
            if err.errno in (errno.EINVAL, errno.ENOENT):
                return
            raise MountError(f"unmounting {target}: {err.strerror}") from None
    raise MountError(f"unmounting {target}: still a mount point after 256 unmounts")


def direct_path(mounts: Sequence[Mount]) -> str | None:
    """The directory itself when ``mounts`` is one writable bind mount: no mount is needed to write to it."""
    if len(mounts) == 1 and mounts[0].is_bind and not mounts[0].readonly:
        return mounts[0].source
    return None


@contextmanager
def mounted(mounts: Sequence[Mount], target: str) -> Iterator[str]:
    """The tree ``mounts`` describe, as a directory, for the duration of the block.

    A single writable bind mount is used in place (no privilege needed);
    anything else is mounted on ``target``, created if missing, then unmounted.
    """
    path = direct_path(mounts)
    if path is not None:
        yield path
        return
    os.makedirs(target, exist_ok=True)
    mount_all(mounts, target)
    try:
        yield target
    finally:
        unmount_all(target)
