"""Applying a layer changeset to a directory (image-spec layer.md "Applying Changesets").

One streaming pass per layer (layer_stream.py verifies digest, size and diff_id
while it decompresses); entries are applied as they arrive:

- every path is resolved *inside* the target: entry names with ``..`` or an
  absolute path are refused; symlinks met in parent directories are followed
  as the container will see them (an absolute target restarts at the target,
  ``..`` stops there), with O_NOFOLLOW opens relative to verified directory
  fds, so no entry is ever created outside (CVE-2018-15664-style symlink
  races, the "zip slip" class). containerd and umoci resolve the same way.
- "Changeset over existing files": two directories merge (the entry's
  attributes win); anything else is removed and recreated, so a duplicate
  entry means "later wins" as in containerd and umoci, and writing never goes
  through an existing hard link.
- whiteouts ``.wh.NAME`` remove NAME from lower layers only (a path this layer
  created stays: "Whiteout files MUST only apply to resources in lower/parent
  layers"); an opaque ``.wh..wh..opq`` removes every lower child of its
  directory whatever its position in the tar ("applied first ... regardless of
  the ordering"), by keeping what this layer created, as containerd does.
- ownership (plus an optional uid/gid shift for user namespaces), then the mode
  (after chown, which clears setuid/setgid), then xattrs (after chown and
  write, which clear security.capability), then times. Directories get their
  mode and mtime at the end, as GNU tar's delayed set-stat does, since creating
  children changes a directory's mtime and a 0555 directory would stop them.

On any error the target is left half-applied: ``unpack_layers`` therefore
applies into a staging directory next to the destination and renames it into
place only after every layer verified; on failure it removes the staging
directory, so a bad digest never leaves a rootfs that looks valid.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from hull.image import tarformat as tf
from hull.image.layer_errors import LayerError
from hull.image.layer_stream import threaded, verified_chunks
from hull.image.trees import remove_tree as remove_tree  # also this module's API

WHITEOUT_PREFIX = b".wh."
OPAQUE_WHITEOUT = b".wh..wh..opq"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_SYMLINKS = 255
_CACHE_MAX = 1024
_PAX_MAX = 1 << 20  # a pax/GNU long-name header bigger than this is not a real layer


@dataclass(frozen=True)
class ApplyOptions:
    """How a layer is applied; the defaults suit root unpacking a trusted-format, untrusted-content image."""

    chown: bool | None = None  # None: only when running as root (tar's --same-owner default)
    uid_shift: int = 0  # added to every uid (user-namespace remapping), as umoci --uid-map/containerd remap
    gid_shift: int = 0
    allow_devices: bool = True  # False: a char/block device entry is an error (fifos stay allowed)
    max_bytes: int = 1 << 40  # decompression-bomb limit on the uncompressed tar
    max_entries: int = 10_000_000
    threads: bool = True  # decompress in a helper thread


@dataclass
class ApplyStats:
    entries: int = 0
    bytes: int = 0  # file content written
    whiteouts: int = 0


class _ShortRead(Exception):
    pass


class _Reader:
    """The uncompressed tar stream as big chunks, read in place (memoryview slices, no copies)."""

    __slots__ = ("chunks", "buf", "view", "pos")

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buf = b""
        self.view = memoryview(self.buf)
        self.pos = 0

    def _more(self) -> None:
        chunk = next(self.chunks, None)
        if chunk is None:
            raise _ShortRead
        rest = self.buf[self.pos :]
        self.buf = rest + chunk if rest else chunk
        self.view = memoryview(self.buf)
        self.pos = 0

    def take(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n:
            self._more()
        pos = self.pos
        self.pos = pos + n
        return self.buf[pos : pos + n]

    def block(self) -> bytes | None:
        """The next 512-byte block, or None at a clean end of stream (_ShortRead inside a block)."""
        if len(self.buf) - self.pos < 512:
            if len(self.buf) == self.pos:
                chunk = next(self.chunks, None)
                if chunk is None:
                    return None
                self.buf = chunk
                self.view = memoryview(chunk)
                self.pos = 0
            while len(self.buf) - self.pos < 512:
                self._more()
        pos = self.pos
        self.pos = pos + 512
        return self.buf[pos : pos + 512]

    def copy(self, fd: int, n: int) -> None:
        """Write the next ``n`` bytes to ``fd`` and skip the padding to the block boundary."""
        pad = -n % 512
        while n:
            avail = len(self.buf) - self.pos
            if not avail:
                self._more()
                continue
            k = n if n < avail else avail
            pos = self.pos
            written = os.write(fd, self.view[pos : pos + k])
            self.pos = pos + written
            n -= written
        self.skip(pad)

    def skip(self, n: int) -> None:
        while n:
            avail = len(self.buf) - self.pos
            if not avail:
                self._more()
                continue
            k = n if n < avail else avail
            self.pos += k
            n -= k

    def drain(self) -> None:
        for _ in self.chunks:
            pass


def _split(name: bytes, entry: bytes | None = None) -> list[bytes]:
    """Components of an entry name (or of ``entry``'s hardlink target); ``..`` or absolute is hostile."""
    what = "" if entry is None else f"hardlink target {name.decode(errors='replace')!r}: "
    if name[:1] == b"/":
        raise LayerError(f"{what}absolute path is not allowed in a layer", entry or name)
    parts = [p for p in name.split(b"/") if p and p != b"."]
    if b".." in parts:
        raise LayerError(f"{what}a '..' component could leave the root", entry or name)
    return parts


class _Applier:
    def __init__(self, root: str, options: ApplyOptions) -> None:
        self.o = options
        self.root_fd = os.open(root, _DIR_FLAGS)
        self.cache: dict[bytes, int] = {}
        self.retired: list[int] = []
        self.unpacked: set[bytes] = set()
        self.dirs: list[tuple[bytes, int, int, int]] = []  # (path, mode, atime_ns, mtime_ns)
        # Times of the directories this layer changes without an entry of its own, restored at the end
        # (adding or removing a child bumps them; the lower layer's attributes stay, as umoci keeps them).
        self.touched: dict[bytes, tuple[int, int]] = {}
        self.chown = os.geteuid() == 0 if options.chown is None else options.chown
        umask = os.umask(0o022)
        os.umask(umask)
        self.umask = umask
        self.stats = ApplyStats()

    def close(self) -> None:
        self._invalidate()
        self._close_retired()
        os.close(self.root_fd)

    # -- directories, resolved inside the root --------------------------------------------
    def _invalidate(self) -> None:
        """Forget cached directory fds after something was removed (it may have been one of them)."""
        self.retired.extend(self.cache.values())
        self.cache.clear()

    def _close_retired(self) -> None:
        for fd in self.retired:
            os.close(fd)
        self.retired.clear()

    def dir_fd(self, path: bytes, create: bool, entry: bytes) -> int | None:
        """fd of directory ``path`` (already split-safe) inside the root; None if missing and not ``create``."""
        if not path:
            return self.root_fd
        fd = self.cache.get(path)
        if fd is not None:
            return fd
        fd = self._resolve(path.split(b"/"), create, entry)
        if fd is not None:
            if len(self.cache) >= _CACHE_MAX:
                self._invalidate()
            self.cache[path] = fd
        return fd

    def _resolve(self, parts: list[bytes], create: bool, entry: bytes) -> int | None:
        stack: list[int] = []  # fds we opened; the root is implicit below them
        pending = parts[::-1]
        links = 0
        try:
            while pending:
                part = pending.pop()
                if part in (b"", b"."):
                    continue
                if part == b"..":  # only from a symlink target; stops at the root
                    if stack:
                        os.close(stack.pop())
                    continue
                cur = stack[-1] if stack else self.root_fd
                try:
                    stack.append(os.open(part, _DIR_FLAGS, dir_fd=cur))
                    continue
                except FileNotFoundError:
                    if not create:
                        return None
                    try:
                        os.mkdir(part, 0o755, dir_fd=cur)
                    except FileExistsError:
                        pass
                    stack.append(os.open(part, _DIR_FLAGS, dir_fd=cur))
                    continue
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                st = os.lstat(part, dir_fd=cur)
                if not stat.S_ISLNK(st.st_mode):
                    if not create:
                        return None
                    raise LayerError(f"parent {part.decode(errors='replace')!r} is not a directory", entry)
                links += 1
                if links > _MAX_SYMLINKS:
                    raise LayerError("too many levels of symbolic links in its parent path", entry)
                target = os.readlink(part, dir_fd=cur)
                if target.startswith(b"/"):  # absolute: as inside the container, from the root
                    for fd in stack:
                        os.close(fd)
                    stack.clear()
                pending.extend(target.split(b"/")[::-1])
            if not stack:
                return os.dup(self.root_fd)
            fd = stack.pop()
            return fd
        finally:
            for fd in stack:
                os.close(fd)

    def _remove(self, pfd: int, name: bytes) -> None:
        """Remove ``name`` in directory ``pfd`` whatever it is (never following a symlink)."""
        try:
            st = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            import shutil

            self._invalidate()
            shutil.rmtree(name, dir_fd=pfd)  # fd-based, symlink-attack resistant (Python 3.11)
        else:
            if stat.S_ISLNK(st.st_mode):
                self._invalidate()
            os.unlink(name, dir_fd=pfd)

    def _prune(self, dfd: int, prefix: bytes) -> None:
        """Opaque whiteout: remove what lower layers put under ``prefix``; keep this layer's entries."""
        for sname in os.listdir(dfd):
            name = os.fsencode(sname)
            path = prefix + b"/" + name if prefix else name
            if path not in self.unpacked:
                self._remove(dfd, name)
            elif stat.S_ISDIR(os.lstat(name, dir_fd=dfd).st_mode):
                sub = os.open(name, _DIR_FLAGS, dir_fd=dfd)
                try:
                    self._prune(sub, path)
                finally:
                    os.close(sub)

    # -- one layer ----------------------------------------------------------------------
    def apply(self, reader: _Reader) -> None:
        o = self.o
        stats = self.stats
        gpax: dict[bytes, bytes] = {}
        pax: dict[bytes, bytes] | None = None
        longname: bytes | None = None
        longlink: bytes | None = None
        name = b"<start of archive>"
        chown = self.chown
        unpacked = self.unpacked
        touched = self.touched
        umask = self.umask
        entries = 0
        while True:
            if self.retired:
                self._close_retired()
            try:
                block = reader.block()
            except _ShortRead:
                raise LayerError("archive ends inside a header block (truncated tar)", name) from None
            if block is None:
                raise LayerError("archive ends without its end-of-archive marker (truncated tar)")
            if block == tf.ZERO_BLOCK:
                break
            try:
                hdr = tf.parse_header(block)
            except tf.TarFormatError as e:
                where = "first header" if entries == 0 else "header after this entry (size field wrong?)"
                raise LayerError(f"{where}: {e}", name if entries else None) from None
            hname, mode, uid, gid, size, mtime, typeflag, linkname, major, minor = hdr
            entries += 1
            if entries > o.max_entries:
                raise LayerError(f"layer has more than {o.max_entries} entries", hname)
            if typeflag in (tf.PAX_X, tf.PAX_G, tf.GNU_LONGNAME, tf.GNU_LONGLINK):
                if size > _PAX_MAX:
                    raise LayerError(f"extended header of {size} bytes is too large", hname)
                try:
                    data = reader.take(size + (-size % 512))[:size]
                except _ShortRead:
                    raise LayerError("archive ends inside an extended header", hname) from None
                if typeflag == tf.PAX_X:
                    try:
                        pax = tf.parse_pax(data)
                    except tf.TarFormatError as e:
                        raise LayerError(str(e), hname) from None
                elif typeflag == tf.PAX_G:
                    try:
                        gpax.update(tf.parse_pax(data))
                    except tf.TarFormatError as e:
                        raise LayerError(str(e), hname) from None
                elif typeflag == tf.GNU_LONGNAME:
                    longname = data.split(b"\0", 1)[0]
                else:
                    longlink = data.split(b"\0", 1)[0]
                continue
            xattrs: dict[bytes, bytes] | None = None
            atime: int | None = None
            pax_mtime: int | None = None
            if longname is not None:
                hname, longname = longname, None
            if longlink is not None:
                linkname, longlink = longlink, None
            if pax is not None or gpax:
                merged = {**gpax, **pax} if pax else gpax
                pax = None
                try:
                    hname, linkname, size, uid, gid, pax_mtime, atime, xattrs = _apply_pax(
                        merged, hname, linkname, size, uid, gid
                    )
                except (ValueError, LayerError) as e:
                    raise LayerError(f"bad pax header: {e}", hname) from None
            name = hname
            if typeflag == tf.GNU_SPARSE or (xattrs is not None and b"GNU.sparse.major" in xattrs):
                raise LayerError("sparse files are not supported (layer.md: SHOULD NOT be used)", name)
            if typeflag == tf.GNU_VOLHDR:
                reader.skip(size + (-size % 512))
                continue
            parts = _split(hname)
            path = b"/".join(parts)
            parent, _, base = path.rpartition(b"/")
            if chown:
                uid += o.uid_shift
                gid += o.gid_shift
            mtime_ns = mtime * 1_000_000_000 if pax_mtime is None else pax_mtime
            atime_ns = mtime_ns if atime is None else atime

            # Whiteouts (layer.md "Whiteouts"): never created, only applied.
            if base.startswith(WHITEOUT_PREFIX):
                reader.skip(size + (-size % 512))
                stats.whiteouts += 1
                self._whiteout(parent, base, name)
                continue
            if not parts:  # the root itself ("./"): only its attributes
                if typeflag == tf.DIR:
                    if chown:
                        os.chown(self.root_fd, uid, gid)
                    self.dirs.append((b"", mode, atime_ns, mtime_ns))
                reader.skip(size + (-size % 512))
                continue
            pfd = self.dir_fd(parent, True, name)
            assert pfd is not None
            if parent not in touched:
                st = os.fstat(pfd)
                touched[parent] = (st.st_atime_ns, st.st_mtime_ns)
            if parent and parent not in unpacked:
                # Implicit parents belong to this layer too: an opaque whiteout must not remove them.
                prefix = parent
                while prefix and prefix not in unpacked:
                    unpacked.add(prefix)
                    prefix = prefix.rpartition(b"/")[0]
            unpacked.add(path)
            stats.entries += 1

            if typeflag == tf.REG or typeflag == tf.AREG or typeflag == tf.CONT:
                try:
                    fd = os.open(base, _FILE_FLAGS, mode & 0o777, dir_fd=pfd)
                except FileExistsError:
                    self._remove(pfd, base)
                    fd = os.open(base, _FILE_FLAGS, mode & 0o777, dir_fd=pfd)
                try:
                    if size:
                        try:
                            reader.copy(fd, size)
                        except _ShortRead:
                            raise LayerError(f"archive ends inside the file's {size} bytes (truncated)", name) from None
                        stats.bytes += size
                    if chown:
                        os.fchown(fd, uid, gid)
                    if mode & 0o7000 or mode & umask & 0o777:
                        os.fchmod(fd, mode & 0o7777)
                    if xattrs:
                        self._xattrs(fd, xattrs, name)
                    os.utime(fd, ns=(atime_ns, mtime_ns))
                finally:
                    os.close(fd)
                continue
            if size and typeflag != tf.DIR:
                # Only regular files carry data; a link/device with a size is skipped over, as tar does.
                try:
                    reader.skip(size + (-size % 512))
                except _ShortRead:
                    raise LayerError("archive ends inside the entry's data (truncated)", name) from None
            if typeflag == tf.DIR:
                if size:
                    reader.skip(size + (-size % 512))
                self._mkdir(pfd, path, base, name)
                dfd = self.cache.get(path)
                if dfd is None:
                    continue
                if chown:
                    os.fchown(dfd, uid, gid)
                if xattrs:
                    self._xattrs(dfd, xattrs, name)
                self.dirs.append((path, mode, atime_ns, mtime_ns))
            elif typeflag == tf.SYM:
                self._create(pfd, base, os.symlink, linkname, base, dir_fd=pfd)
                self._finish_special(pfd, base, name, uid, gid, None, xattrs, atime_ns, mtime_ns)
            elif typeflag == tf.LNK:
                self._hardlink(pfd, base, linkname, name)
            elif typeflag in (tf.CHR, tf.BLK, tf.FIFO):
                if typeflag != tf.FIFO and not o.allow_devices:
                    raise LayerError("device nodes are not allowed in this layer", name)
                kind = {tf.CHR: stat.S_IFCHR, tf.BLK: stat.S_IFBLK, tf.FIFO: stat.S_IFIFO}[typeflag]
                dev = os.makedev(major, minor)
                try:
                    self._create(pfd, base, os.mknod, base, kind | 0o600, dev, dir_fd=pfd)
                except PermissionError:
                    raise LayerError("cannot create a device node (needs CAP_MKNOD)", name) from None
                self._finish_special(pfd, base, name, uid, gid, mode, xattrs, atime_ns, mtime_ns)
            else:
                raise LayerError(f"unsupported tar entry type {chr(typeflag)!r}", name)
        # End of archive: read the rest, which verifies digest, size and diff_id.
        reader.drain()
        self._finish_dirs()

    def _create(self, pfd: int, base: bytes, make: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        try:
            make(*args, **kwargs)
        except FileExistsError:
            self._remove(pfd, base)
            make(*args, **kwargs)

    def _mkdir(self, pfd: int, path: bytes, base: bytes, entry: bytes) -> None:
        try:
            os.mkdir(base, 0o700, dir_fd=pfd)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(base, dir_fd=pfd).st_mode):
                self._remove(pfd, base)
                os.mkdir(base, 0o700, dir_fd=pfd)
        old = self.cache.pop(path, None)
        if old is not None:
            self.retired.append(old)
        if len(self.cache) >= _CACHE_MAX:
            self._invalidate()
        self.cache[path] = os.open(base, _DIR_FLAGS, dir_fd=pfd)

    def _finish_special(self, pfd: int, base: bytes, entry: bytes, uid: int, gid: int, mode: int | None,
                        xattrs: dict[bytes, bytes] | None, atime_ns: int, mtime_ns: int) -> None:  # fmt: skip
        if self.chown:
            os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
        if mode is not None:
            os.chmod(base, mode & 0o7777, dir_fd=pfd)  # never a symlink: just created by mknod
        if xattrs:
            self._xattrs(f"/proc/self/fd/{pfd}/{os.fsdecode(base)}", xattrs, entry)
        os.utime(base, ns=(atime_ns, mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, pfd: int, base: bytes, linkname: bytes, entry: bytes) -> None:
        lparts = _split(linkname, entry)
        if not lparts:
            raise LayerError("hardlink to the root directory", entry)
        lpath = b"/".join(lparts)
        lparent, _, lbase = lpath.rpartition(b"/")
        lfd = self.dir_fd(lparent, False, entry)
        if lfd is None:
            raise LayerError(f"hardlink target {lpath.decode(errors='replace')!r} does not exist", entry)
        try:
            self._create(pfd, base, os.link, lbase, base, src_dir_fd=lfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            raise LayerError(f"hardlink target {lpath.decode(errors='replace')!r} does not exist", entry) from None
        except PermissionError:
            raise LayerError(f"hardlink target {lpath.decode(errors='replace')!r} is not linkable", entry) from None

    def _whiteout(self, parent: bytes, base: bytes, entry: bytes) -> None:
        pfd = self.dir_fd(parent, False, entry)
        if pfd is not None and parent not in self.touched:
            st = os.fstat(pfd)
            self.touched[parent] = (st.st_atime_ns, st.st_mtime_ns)
        if base == OPAQUE_WHITEOUT:
            if pfd is None:
                return
            self._prune(pfd, parent)
            return
        target = base[len(WHITEOUT_PREFIX) :]
        if target in (b"", b".", b"..") or b"/" in target:
            raise LayerError("whiteout names no entry of its directory", entry)
        if pfd is None:
            return  # its directory is absent: nothing to hide
        path = parent + b"/" + target if parent else target
        if path in self.unpacked:
            return  # layer.md: a whiteout only hides lower layers, not this one
        self._remove(pfd, target)

    def _xattrs(self, where: int | str, xattrs: dict[bytes, bytes], entry: bytes) -> None:
        for key, value in xattrs.items():
            if not key.startswith(tf.XATTR_PREFIX):
                continue
            attr = key[len(tf.XATTR_PREFIX) :]
            if attr.startswith(b"trusted.overlay."):
                # overlayfs would act on these in a snapshot (redirects, opaque dirs): never from an image.
                continue
            try:
                if isinstance(where, int):
                    os.setxattr(where, attr, value)
                else:
                    os.setxattr(where, attr, value, follow_symlinks=False)
            except OSError as e:
                # containerd ignores xattrs the filesystem cannot store; unprivileged, trusted.*/security.*
                # cannot be set (umoci's rootless mode drops them the same way).
                if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP) or (e.errno == errno.EPERM and not self.chown):
                    continue
                raise LayerError(f"cannot set xattr {attr.decode(errors='replace')}: {e.strerror}", entry) from None

    def _finish_dirs(self) -> None:
        for path, (atime_ns, mtime_ns) in self.touched.items():
            fd = self.dir_fd(path, False, path)
            if fd is not None:
                os.utime(fd, ns=(atime_ns, mtime_ns))
        self.touched.clear()
        for path, mode, atime_ns, mtime_ns in self.dirs:
            if not path:
                os.chmod(self.root_fd, mode & 0o7777)
                os.utime(self.root_fd, ns=(atime_ns, mtime_ns))
                continue
            parent, _, base = path.rpartition(b"/")
            pfd = self.dir_fd(parent, False, path)
            if pfd is None:
                continue
            try:
                fd = os.open(base, _DIR_FLAGS, dir_fd=pfd)
            except OSError:
                continue  # replaced or removed later in this layer
            try:
                os.fchmod(fd, mode & 0o7777)
                os.utime(fd, ns=(atime_ns, mtime_ns))
            finally:
                os.close(fd)
        self.dirs.clear()


def _pax_time_ns(value: bytes) -> int:
    """A pax time (decimal seconds, maybe with a fraction) in nanoseconds."""
    sec, _, frac = value.partition(b".")
    ns = int(sec) * 1_000_000_000
    if frac:
        part = int((frac + b"000000000")[:9])
        ns = ns - part if sec.startswith(b"-") else ns + part
    return ns


def _apply_pax(records: dict[bytes, bytes], name: bytes, linkname: bytes, size: int, uid: int, gid: int,
               ) -> tuple[bytes, bytes, int, int, int, int | None, int | None, dict[bytes, bytes] | None]:  # fmt: skip
    mtime: int | None = None
    atime: int | None = None
    xattrs: dict[bytes, bytes] | None = None
    for key, value in records.items():
        if key == b"path":
            name = value
        elif key == b"linkpath":
            linkname = value
        elif key == b"size":
            size = int(value)
        elif key == b"uid":
            uid = int(value)
        elif key == b"gid":
            gid = int(value)
        elif key == b"mtime":
            mtime = _pax_time_ns(value)
        elif key == b"atime":
            atime = _pax_time_ns(value)
        elif key.startswith(tf.XATTR_PREFIX) or key.startswith(b"GNU.sparse."):
            if xattrs is None:
                xattrs = {}
            xattrs[key] = value
    if size < 0 or uid < 0 or gid < 0:
        raise ValueError("negative size or id")
    return name, linkname, size, uid, gid, mtime, atime, xattrs


def apply_layer(
    blob: BinaryIO,
    target: str,
    media_type_compression: str,
    *,
    digest: str | None = None,
    size: int | None = None,
    diff_id: str | None = None,
    options: ApplyOptions | None = None,
) -> ApplyStats:
    """Apply one layer blob onto the existing tree ``target``, in place.

    ``media_type_compression`` is "", "gzip" or "zstd" (see ``compression_of``).
    Raises LayerError (LayerVerificationError for digest/size/diff_id) with the
    tree half-applied: use ``unpack_layers`` for an all-or-nothing result.
    """
    o = options or ApplyOptions()
    chunks = verified_chunks(blob, media_type_compression, digest=digest, size=size, diff_id=diff_id,
                             max_bytes=o.max_bytes)  # fmt: skip
    if o.threads:
        chunks = threaded(chunks)
    applier = _Applier(target, o)
    try:
        applier.apply(_Reader(chunks))
    finally:
        applier.close()
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return applier.stats


def compression_of(media_type: str) -> str:
    """ "", "gzip" or "zstd" for a layer media type (OCI, Docker, non-distributable); LayerError otherwise."""
    from hull.oci.media_types import layer_compression

    compression = layer_compression(media_type)
    if compression is None:
        raise LayerError(f"unsupported layer media type {media_type!r}")
    return compression


@dataclass(frozen=True)
class LayerSource:
    """A layer to unpack: an open blob and what its descriptor and the config's diff_ids say."""

    blob: BinaryIO
    media_type: str
    digest: str | None = None
    size: int | None = None
    diff_id: str | None = None


def unpack_layers(layers: Iterable[LayerSource], dest: str, options: ApplyOptions | None = None) -> list[ApplyStats]:
    """Apply ``layers`` in order into a new directory ``dest``, all or nothing.

    They go into ``dest``'s sibling ``.DEST.partial-PID``, renamed to ``dest``
    once every layer applied and verified; on any error the staging directory
    is removed and ``dest`` is never created.
    """
    dest = os.path.abspath(dest)
    if os.path.lexists(dest):
        raise LayerError(f"unpack destination {dest} already exists")
    head, tail = os.path.split(dest)
    staging = os.path.join(head, f".{tail}.partial-{os.getpid()}")
    os.mkdir(staging, 0o755)
    try:
        stats = [
            apply_layer(
                layer.blob,
                staging,
                compression_of(layer.media_type),
                digest=layer.digest,
                size=layer.size,
                diff_id=layer.diff_id,
                options=options,
            )  # fmt: skip
            for layer in layers
        ]
        os.rename(staging, dest)
    except BaseException:
        remove_tree(staging)
        raise
    return stats
