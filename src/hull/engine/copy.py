"""``hull cp``: files between a container's filesystem and the host (or a tar stream), as ``docker cp``.

The container's side is hostile: its image and its running processes choose
what every path in it is, and may change it while we copy. Two breakout
classes are defended here:

* CVE-2018-15664 (a symlink, or one swapped in mid-copy, that makes the
  engine read or write outside the rootfs) — the container path the user
  gives is resolved by the kernel with openat2(2) RESOLVE_IN_ROOT on a
  descriptor of the rootfs (an absolute symlink restarts at the rootfs, ".."
  stops at it, atomically), and below that point every entry is reached by
  name from a held directory descriptor with O_NOFOLLOW: a symlink met on the
  way is copied as a symlink, never followed, and a directory swapped for a
  symlink fails the open instead of leading out.
* CVE-2019-14271 (the copying code loading the container's libraries) — no
  chroot and no name-service lookup: nothing is ever loaded from the rootfs.

The same rule holds for what we write: a symlink that the copy itself
created (or an archive entry like ``a -> /etc`` followed by ``a/passwd``) is
never followed by a later entry, on the host side too, and names with ".."
from a tar stream are refused.

docker's path rules (cli/command/container/cp.go and pkg/archive/copy.go):
a source ending in "/." copies the directory's contents; a directory lands
inside an existing destination directory under its own name, or becomes the
destination when that does not exist (its parent must); a file overwrites an
existing file or is created under the destination's name; a destination
ending in "/" must be an existing directory. Without ``-a`` files copied into
a container belong to its root user and files copied out to the invoking
user; with ``-a`` they keep their owners.

A running container is copied from and to as its processes see it, through
``/proc/PID/root`` (its mount namespace: volumes, tmpfs, the engine's /etc
files); a stopped one through its rootfs, mounted for the copy.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

from hull.engine.errors import EngineError
from hull.runtime import linux

if TYPE_CHECKING:
    from hull.engine.containers import Container
    from hull.engine.paths import EnginePaths

_IN_ROOT = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS
_MAX_LINKS = 40  # as the kernel's and Go's filepath.EvalSymlinks' limits


class CopyError(EngineError):
    pass


class Entry:
    """One file of a copy: ``rel`` is its name in the copy (``base`` or ``base/sub/name``)."""

    __slots__ = ("rel", "kind", "mode", "uid", "gid", "mtime_ns", "size", "linkname", "rdev", "fd", "reader")

    def __init__(self, rel: str, kind: str, st: os.stat_result, linkname: str = "", fd: int = -1) -> None:
        self.rel = rel
        self.kind = kind  # file, dir, symlink, hardlink, fifo, char, block
        self.mode = stat.S_IMODE(st.st_mode)
        self.uid = st.st_uid
        self.gid = st.st_gid
        self.mtime_ns = st.st_mtime_ns
        self.size = st.st_size if kind == "file" else 0
        self.linkname = linkname
        self.rdev = st.st_rdev
        self.fd = fd  # file content (regular files)
        self.reader: IO[bytes] | None = None  # or content from a tar stream


# ---------------------------------------------------------------- resolving paths


class Side:
    """One side's filesystem: the container's (``root_fd``: every path resolved inside it) or the host's."""

    def __init__(self, root_fd: int | None, label: str) -> None:
        self.root_fd = root_fd
        self.label = label  # for messages: "container c1" or ""

    def open(self, path: str, flags: int) -> int:
        flags |= os.O_CLOEXEC
        if self.root_fd is None:
            return os.open(path, flags)
        return linux.openat2(self.root_fd, path, flags, 0, _IN_ROOT)

    def missing(self, path: str) -> CopyError:
        if self.root_fd is None:
            return CopyError(f"lstat {path}: no such file or directory")
        return CopyError(f"Could not find the file {path} in {self.label}")

    def parent(self, path: str) -> tuple[int, str]:
        """An O_PATH descriptor of the directory holding ``path``'s last component, and that component."""
        head, _, base = path.rstrip("/").rpartition("/")
        if not base:
            head, base = "/", "."
        try:
            fd = self.open(head or ("/" if path.startswith("/") else "."), os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            raise self.missing(path) from None
        except NotADirectoryError:
            raise CopyError(f"{head}: not a directory") from None
        return fd, base

    def resolve_last(self, path: str) -> tuple[int, str, os.stat_result | None]:
        """``path`` with symlinks in its last component followed (inside the root): the parent
        descriptor, the final name and its lstat (None when it does not exist)."""
        for _ in range(_MAX_LINKS):
            fd, base = self.parent(path)
            if base in (".", ".."):
                return fd, base, os.stat(base, dir_fd=fd)
            try:
                st = os.stat(base, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return fd, base, None
            if not stat.S_ISLNK(st.st_mode):
                return fd, base, st
            target = os.readlink(base, dir_fd=fd)
            os.close(fd)
            head = path.rstrip("/").rpartition("/")[0]
            path = target if target.startswith("/") else f"{head}/{target}"
        raise CopyError(f"{path}: too many levels of symbolic links")


def normalize(path: str) -> str:
    """A container path as docker takes it: relative to "/" (the leading slash is optional)."""
    return "/" + path.lstrip("/") if path != "" else "/"


def split_source(path: str) -> tuple[str, str, bool]:
    """docker's SplitPathDirEntry with its "/." rule: (directory, base, asserts a directory).
    "/etc/." gives ("/etc", ".", True): the directory's contents."""
    asserts_dir = path.endswith("/") or path.endswith("/.") or path == "."
    clean = os.path.normpath(path) if path else "."
    if path.endswith("/.") or path == ".":
        return clean, ".", True
    head, base = os.path.split(clean)
    if not base:  # "/"
        return clean, ".", True
    return head or ".", base, asserts_dir


# ---------------------------------------------------------------- reading a tree


def _entry_at(dir_fd: int, name: str, rel: str, links: dict[tuple[int, int], str]) -> Entry | None:
    """The entry ``name`` in ``dir_fd``, never followed if a symlink; None for a socket (tar has none)."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return Entry(rel, "symlink", st, os.readlink(name, dir_fd=dir_fd))
    if stat.S_ISDIR(mode):
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        return _checked(Entry(rel, "dir", st, fd=fd), st, fd)
    if stat.S_ISREG(mode):
        if st.st_nlink > 1:
            first = links.setdefault((st.st_dev, st.st_ino), rel)
            if first != rel:
                return Entry(rel, "hardlink", st, first)
        # O_NONBLOCK: a fifo swapped in after the lstat must not hang us; the fstat check catches it.
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        return _checked(Entry(rel, "file", st, fd=fd), st, fd)
    return _special(rel, st)


def _entry_of_fd(fd: int, rel: str) -> Entry | None:
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        return Entry(rel, "dir", st, fd=fd)
    if stat.S_ISREG(st.st_mode):
        return Entry(rel, "file", st, fd=fd)
    os.close(fd)
    return _special(rel, st)


def _special(rel: str, st: os.stat_result) -> Entry | None:
    kinds = ((stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "char"), (stat.S_ISBLK, "block"))
    for test, kind in kinds:
        if test(st.st_mode):
            return Entry(rel, kind, st)
    return None


def _checked(entry: Entry, st: os.stat_result, fd: int) -> Entry:
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise CopyError(f"{entry.rel}: changed while being copied")
    return entry


def walk(entry: Entry, links: dict[tuple[int, int], str] | None = None) -> Iterator[Entry]:
    """``entry`` and, for a directory, everything below it (each directory before its contents,
    names sorted). Descriptors are closed once the consumer moved past the entry."""
    links = {} if links is None else links
    try:
        yield entry
        if entry.kind == "dir":
            for name in sorted(os.listdir(entry.fd)):
                child = _entry_at(entry.fd, name, f"{entry.rel}/{name}", links)
                if child is not None:
                    yield from walk(child, links)
    finally:
        if entry.fd >= 0:
            os.close(entry.fd)
            entry.fd = -1


def open_source(side: Side, path: str, follow: bool) -> Entry:
    """The top entry of a copy from ``path`` on ``side``, named by docker's rules (its base name,
    or "." for a directory's contents). ``follow``: a symlink source is copied as its target (-L)."""
    directory, base, asserts_dir = split_source(path)
    if base == "." or follow or path.endswith("/"):
        whole = directory if base == "." else f"{directory}/{base}"
        try:
            fd = side.open(whole, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except FileNotFoundError:
            raise side.missing(path) from None
        entry = _entry_of_fd(fd, base)
    else:
        parent, _ = side.parent(f"{directory}/{base}")
        try:
            entry = _entry_at(parent, base, base, {})
        except FileNotFoundError:
            raise side.missing(path) from None
        finally:
            os.close(parent)
    if entry is None:
        raise CopyError(f"{path}: a socket cannot be copied")
    if asserts_dir and entry.kind != "dir":
        if entry.fd >= 0:
            os.close(entry.fd)
        raise CopyError(f"{path}: not a directory")
    return entry


# ---------------------------------------------------------------- writing a tree


OWNER_KEEP = "keep"  # -a: the source's owners
OWNER_ROOT = "root"  # into a container: its root user
OWNER_NONE = "none"  # out to the host: whoever runs hull


class Writer:
    """Creates entries below ``base_fd``: every component reached by name with O_NOFOLLOW, so that no
    symlink (already there, or made by this copy) leads a write elsewhere."""

    def __init__(self, base_fd: int, owner: str) -> None:
        self.base_fd = base_fd
        self.owner = owner
        self.dirs: dict[tuple[str, ...], int] = {(): base_fd}
        self.dir_times: list[tuple[tuple[str, ...], str, int]] = []
        self.copied = 0

    def close(self) -> None:
        for parts, name, mtime in reversed(self.dir_times):  # deepest first: children no longer touch them
            try:
                os.utime(name, ns=(mtime, mtime), dir_fd=self._dir(parts), follow_symlinks=False)
            except OSError:
                pass
        for parts, fd in self.dirs.items():
            if parts:
                os.close(fd)
        self.dirs = {(): self.base_fd}

    def _dir(self, parts: tuple[str, ...]) -> int:
        """The directory ``parts`` below the base, made (0755, as docker's untar) where missing."""
        fd = self.dirs.get(parts)
        if fd is not None:
            return fd
        parent = self._dir(parts[:-1])
        name = parts[-1]
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=parent)
        except FileNotFoundError:
            os.mkdir(name, 0o755, dir_fd=parent)
            fd = os.open(name, flags, dir_fd=parent)
        except (NotADirectoryError, OSError) as err:
            raise CopyError(f"{'/'.join(parts)}: not a directory (or a symlink, which is not followed): "
                            f"{err.strerror}") from None  # fmt: skip
        self.dirs[parts] = fd
        return fd

    def put(self, rel: str, entry: Entry) -> None:
        parts = split_rel(rel)
        if not parts:
            return  # the "." of a directory's contents merged into an existing directory
        parent = self._dir(parts[:-1])
        name = parts[-1]
        existing = _lstat(name, parent)
        if entry.kind == "dir":
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                raise CopyError(f'cannot overwrite non-directory "{rel}" with directory "{entry.rel}"')
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=parent)
            fd = self._dir(parts)
            self._own(fd, None, entry)
            os.chmod(fd, entry.mode)
            self.dir_times.append((parts[:-1], name, entry.mtime_ns))
            return
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                raise CopyError(f'cannot overwrite directory "{rel}" with non-directory "{entry.rel}"')
            os.unlink(name, dir_fd=parent)
        if entry.kind == "file":
            self._file(parent, name, entry)
            return
        if entry.kind == "symlink":
            os.symlink(entry.linkname, name, dir_fd=parent)
        elif entry.kind == "hardlink":
            target = split_rel(entry.linkname)
            if not target:
                raise CopyError(f"{rel}: invalid hard link target {entry.linkname!r}")
            os.link(target[-1], name, src_dir_fd=self._dir(target[:-1]), dst_dir_fd=parent, follow_symlinks=False)
            return
        else:
            kind = {"fifo": stat.S_IFIFO, "char": stat.S_IFCHR, "block": stat.S_IFBLK}[entry.kind]
            os.mknod(name, kind | entry.mode, entry.rdev, dir_fd=parent)
        self._own(None, (parent, name), entry)
        os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=parent, follow_symlinks=False)

    def _file(self, parent: int, name: str, entry: Entry) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
        try:
            if entry.fd >= 0:
                _copy_fd(entry.fd, fd, entry.size)
            elif entry.reader is not None:
                while chunk := entry.reader.read(1 << 20):
                    os.write(fd, chunk)
            self.copied += entry.size
            self._own(fd, None, entry)
            os.chmod(fd, entry.mode)  # after chown, which clears setuid/setgid
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
        finally:
            os.close(fd)

    def _own(self, fd: int | None, at: tuple[int, str] | None, entry: Entry) -> None:
        if self.owner == OWNER_NONE:
            return
        uid, gid = (entry.uid, entry.gid) if self.owner == OWNER_KEEP else (0, 0)
        if fd is not None:
            os.chown(fd, uid, gid)
        elif at is not None:
            os.chown(at[1], uid, gid, dir_fd=at[0], follow_symlinks=False)


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def split_rel(rel: str) -> tuple[str, ...]:
    """The components of a name in a copy or archive; ".." anywhere is refused (a tar-slip)."""
    parts = tuple(p for p in rel.split("/") if p and p != ".")
    if ".." in parts:
        raise CopyError(f"{rel}: a path with '..' is not allowed in a copy")
    return parts


def _copy_fd(src: int, dst: int, size: int) -> None:
    import fcntl

    flags = fcntl.fcntl(src, fcntl.F_GETFL)
    fcntl.fcntl(src, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    left = size
    while left > 0:
        try:
            n = os.copy_file_range(src, dst, left)
        except OSError:
            n = os.sendfile(dst, src, None, left)
        if n == 0:
            raise CopyError("a file shrank while being copied")
        left -= n


# ---------------------------------------------------------------- planning the destination


def destination(side: Side, path: str, src: Entry) -> tuple[int, str | None]:
    """docker's PrepareArchiveCopy: the directory to extract into (a descriptor), and how the copy's
    top name is renamed there: (fd, new top name) or (fd, None) to merge a "." copy into it."""
    asserts_dir = path.endswith("/") or path.endswith("/.")
    parent, name, st = side.resolve_last(path)
    if st is not None and stat.S_ISDIR(st.st_mode):
        try:
            fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        finally:
            os.close(parent)
        return fd, (None if src.rel == "." else src.rel)
    if st is not None:
        if src.kind == "dir":
            os.close(parent)
            raise CopyError(f"cannot copy a directory to a file: {path}")
        if asserts_dir:
            os.close(parent)
            raise CopyError(f"{path}: not a directory")
        return parent, name
    if asserts_dir and src.kind != "dir":
        os.close(parent)
        raise CopyError(f"{path}: no such directory (the destination directory must exist)")
    return parent, name


def renamed(rel: str, top: str, new_top: str | None) -> str:
    """``rel`` (under ``top``) placed under ``new_top`` (None: merged into the destination itself)."""
    rest = rel[len(top) :] if rel.startswith(top) else rel
    if new_top is None:
        return rest.lstrip("/")
    return new_top + rest


def copy_tree(src: Entry, writer: Writer, new_top: str | None) -> None:
    top = src.rel
    for entry in walk(src):
        if entry.kind == "hardlink":
            entry.linkname = renamed(entry.linkname, top, new_top)
        writer.put(renamed(entry.rel, top, new_top), entry)


# ---------------------------------------------------------------- tar streams


def write_tar(src: Entry, out: IO[bytes]) -> None:
    """The copy as a tar stream (docker cp SRC -): names under the source's base name, owners kept."""
    import tarfile

    kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
             "fifo": tarfile.FIFOTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE}  # fmt: skip
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for entry in walk(src):
            info = tarfile.TarInfo(entry.rel + ("/" if entry.kind == "dir" else ""))
            info.type = kinds[entry.kind]
            info.mode = entry.mode
            info.uid, info.gid = entry.uid, entry.gid
            info.uname = info.gname = ""  # no name-service lookup (CVE-2019-14271)
            info.mtime = entry.mtime_ns // 1_000_000_000
            info.linkname = entry.linkname
            info.size = entry.size
            if entry.kind in ("char", "block"):
                info.devmajor, info.devminor = os.major(entry.rdev), os.minor(entry.rdev)
            if entry.kind == "file":
                import fcntl

                flags = fcntl.fcntl(entry.fd, fcntl.F_GETFL)
                fcntl.fcntl(entry.fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
                with os.fdopen(os.dup(entry.fd), "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def extract_tar(stream: IO[bytes], writer: Writer) -> None:
    """A tar stream (docker cp - DEST) into the writer's directory: names as they are, none with ".."."""
    import tarfile

    kinds = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file", tarfile.DIRTYPE: "dir",
             tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.FIFOTYPE: "fifo",
             tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block"}  # fmt: skip
    try:
        tar = tarfile.open(fileobj=stream, mode="r|*")
    except tarfile.TarError as err:
        raise CopyError(f"reading the archive: {err}") from None
    with tar:
        for info in tar:
            kind = kinds.get(info.type)
            if kind is None:
                continue
            st = os.stat_result((info.mode, 0, 0, 1, info.uid, info.gid, info.size, 0, int(info.mtime), 0))
            entry = Entry(info.name, kind, st, info.linkname)
            entry.mtime_ns = int(info.mtime * 1_000_000_000)
            if kind in ("char", "block"):
                entry.rdev = os.makedev(info.devmajor, info.devminor)
            if kind == "file":
                entry.reader = tar.extractfile(info)
            writer.put(info.name, entry)


# ---------------------------------------------------------------- the container's rootfs


@contextmanager
def container_root(paths: EnginePaths, container: Container) -> Iterator[int]:
    """An O_PATH descriptor of the container's rootfs, mounted for the time of the copy if it was not.

    The container's lock is held throughout: the monitor takes it to record a start or an exit
    (and to mount the rootfs), so the rootfs cannot be mounted or unmounted under the copy, and a
    rootfs we mounted for a stopped container is unmounted before a start can mount it.
    """
    from hull.engine import lifecycle

    store = lifecycle.container_store(paths)
    rootfs = os.path.join(paths.bundle(container.id), "rootfs")
    with store.locked(container.id):
        current = store.load(container.id)
        live = _live_root(current, rootfs)
        if live >= 0:
            try:
                yield live
            finally:
                os.close(live)
            return
        mounted_here = False
        if not os.path.ismount(rootfs):
            lifecycle.mount_rootfs(paths, current)
            mounted_here = True
        try:
            fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                yield fd
            finally:
                os.close(fd)
        finally:
            if mounted_here:
                lifecycle.unmount_rootfs(paths, container.id)


def _live_root(container: Container, rootfs: str) -> int:
    """A running container's root as its processes see it (``/proc/PID/root``: its mount namespace, so
    volumes, tmpfs and the engine's /etc/hosts, /etc/hostname, /etc/resolv.conf binds are where the
    container has them, as docker cp shows them), or -1. The descriptor must be the bundle's rootfs
    itself: a PID reused by another process since the record was read is not the container."""
    if container.status not in ("running", "paused") or container.pid <= 0:
        return -1
    try:
        fd = os.open(f"/proc/{container.pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return -1
    try:
        mine, theirs = os.fstat(fd), os.stat(rootfs)
    except OSError:
        os.close(fd)
        return -1
    if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
        os.close(fd)
        return -1
    return fd
