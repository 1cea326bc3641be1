"""Creating a layer: the changeset of a tree as a reproducible, compressed tar.

image-spec layer.md "Creating" / "Determining Changes" / "Representing
Changes": compare a lower and an upper tree; added and modified entries go in
whole, removed ones become whiteouts ``.wh.NAME``. Or take an overlayfs upper
directory, whose deletions overlayfs already recorded in its own format
(kernel Documentation/filesystems/overlayfs.rst "whiteouts and opaque
directories": a 0/0 character device, and the ``trusted.overlay.opaque=y``
xattr), converted to OCI whiteouts and opaque whiteouts as containerd's
overlay differ does.

The tar is reproducible: entries sorted bytewise inside each directory (its
whiteouts first: "whiteout files appear before sibling directory entries"),
each directory before its children, parent directories of every change
included, no uname/gname/atime/ctime, optional fixed mtime and owner
(SOURCE_DATE_EPOCH style), hard links as type ``1`` to the first path of the
inode (layer.md "Hardlinks"), gzip with a zero mtime in its header.
Returns the blob digest and size and the diff_id (config.md rootfs.diff_ids).
"""

from __future__ import annotations

import hashlib
import os
import queue
import stat
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from hull.image import tarformat as tf
from hull.image.layer import OPAQUE_WHITEOUT, WHITEOUT_PREFIX
from hull.image.layer_errors import LayerError

_OVERLAY_OPAQUE = (b"trusted.overlay.opaque", b"user.overlay.opaque")
_OVERLAY_XATTR = (b"trusted.overlay.", b"user.overlay.")
_FLUSH = 1 << 20


@dataclass(frozen=True)
class CreateOptions:
    compression: str = "gzip"  # "", "gzip" or "zstd"
    level: int | None = None  # gzip 1-9 (default 6, as gzip(1)); zstd level (default 3)
    mtime: int | None = None  # every entry's mtime (reproducible builds); None: the file's own, in seconds
    uid: int | None = None  # every entry's owner; None: the file's own
    gid: int | None = None
    xattrs: bool = True
    algorithm: str = "sha256"


@dataclass(frozen=True)
class LayerDigests:
    digest: str  # of the compressed blob (the descriptor's digest)
    size: int  # of the compressed blob
    diff_id: str  # of the uncompressed tar


class _Sink:
    """Hash the tar (diff_id), compress it, hash and count the blob, write it out; buffered in 1 MiB pieces."""

    def __init__(self, out: BinaryIO, o: CreateOptions) -> None:
        self.out = out
        self.diff = hashlib.new(o.algorithm)
        self.blob = hashlib.new(o.algorithm)
        self.size = 0
        self.pending: list[bytes] = []
        self.pending_len = 0
        self.compress: Callable[[bytes], bytes] | None = None
        self.flush_compressor: Callable[[], bytes] | None = None
        self.queue: queue.Queue[bytes | None] = queue.Queue(8)
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        if o.compression == "gzip":
            # wbits 31: a gzip member whose header has mtime 0 and no name: byte-reproducible.
            z = zlib.compressobj(6 if o.level is None else o.level, zlib.DEFLATED, 31)
            self.compress, self.flush_compressor = z.compress, z.flush
        elif o.compression == "zstd":
            import zstandard

            c = zstandard.ZstdCompressor(level=3 if o.level is None else o.level).compressobj()
            self.compress, self.flush_compressor = c.compress, c.flush
        elif o.compression != "":
            raise LayerError(f"unknown layer compression {o.compression!r}")

    def write(self, data: bytes) -> None:
        self.pending.append(data)
        self.pending_len += len(data)
        if self.pending_len >= _FLUSH:
            self._flush()

    def _emit(self, data: bytes) -> None:
        if data:
            self.blob.update(data)
            self.size += len(data)
            self.out.write(data)

    def _flush(self) -> None:
        data = b"".join(self.pending)
        self.pending.clear()
        self.pending_len = 0
        if self.thread is None:
            self.thread = threading.Thread(target=self._work, name="layer-compress", daemon=True)
            self.thread.start()
        if self.error is not None:
            raise self.error
        self.queue.put(data)

    def _work(self) -> None:
        # Hashing and compressing in a second thread (both release the GIL on big buffers): reading
        # files overlaps compressing them, as `tar -czf` overlaps with its gzip child.
        try:
            while (data := self.queue.get()) is not None:
                self.diff.update(data)
                self._emit(self.compress(data) if self.compress else data)
            if self.flush_compressor is not None:
                self._emit(self.flush_compressor())
        except BaseException as e:  # noqa: BLE001 - re-raised in the writing thread
            self.error = e
            while self.queue.get() is not None:
                pass

    def close(self) -> LayerDigests:
        self._flush()
        self.queue.put(None)
        assert self.thread is not None
        self.thread.join()
        if self.error is not None:
            raise self.error
        name = self.blob.name
        return LayerDigests(f"{name}:{self.blob.hexdigest()}", self.size, f"{name}:{self.diff.hexdigest()}")


def _xattrs(path: bytes) -> dict[bytes, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for n in names:
        key = os.fsencode(n)
        if key.startswith(_OVERLAY_XATTR):
            continue  # overlayfs bookkeeping, never part of a layer
        try:
            out[key] = os.getxattr(path, n, follow_symlinks=False)
        except OSError:
            continue
    return out


class _Writer:
    def __init__(self, sink: _Sink, o: CreateOptions) -> None:
        self.sink = sink
        self.o = o
        self.links: dict[tuple[int, int], bytes] = {}

    def whiteout(self, rel: bytes) -> None:
        mtime = self.o.mtime or 0
        self.sink.write(tf.build_header(rel, 0, 0, 0, 0, mtime, tf.REG))

    def entry(self, host: bytes, rel: bytes, st: os.stat_result) -> None:
        o = self.o
        mode = st.st_mode
        uid = st.st_uid if o.uid is None else o.uid
        gid = st.st_gid if o.gid is None else o.gid
        mtime = int(st.st_mtime) if o.mtime is None else o.mtime
        xattrs = _xattrs(host) if o.xattrs else None
        perm = stat.S_IMODE(mode)
        write = self.sink.write
        if stat.S_ISREG(mode):
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = self.links.get(key)
                if first is not None:
                    write(tf.build_header(rel, perm, uid, gid, 0, mtime, tf.LNK, first, xattrs=xattrs))
                    return
                self.links[key] = rel
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                size = st.st_size
                write(tf.build_header(rel, perm, uid, gid, size, mtime, tf.REG, xattrs=xattrs))
                left = size
                while left:
                    data = os.read(fd, min(left, _FLUSH))
                    if not data:
                        raise LayerError("file shrank while the layer was written", rel)
                    write(data)
                    left -= len(data)
                if size % 512:
                    write(bytes(512 - size % 512))
            finally:
                os.close(fd)
        elif stat.S_ISDIR(mode):
            write(tf.build_header(rel + b"/", perm, uid, gid, 0, mtime, tf.DIR, xattrs=xattrs))
        elif stat.S_ISLNK(mode):
            write(tf.build_header(rel, perm, uid, gid, 0, mtime, tf.SYM, os.readlink(host), xattrs=xattrs))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = tf.CHR if stat.S_ISCHR(mode) else tf.BLK
            major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
            write(tf.build_header(rel, perm, uid, gid, 0, mtime, kind, b"", major, minor, xattrs=xattrs))
        elif stat.S_ISFIFO(mode):
            write(tf.build_header(rel, perm, uid, gid, 0, mtime, tf.FIFO, xattrs=xattrs))
        # sockets are not archived (GNU tar, containerd: "socket ignored")

    def finish(self) -> LayerDigests:
        self.sink.write(bytes(1024))  # end-of-archive: two zero blocks
        return self.sink.close()


def _listdir(path: bytes) -> list[bytes]:
    names = os.listdir(path)
    names.sort()
    return names


def _same(upper: bytes, lower: bytes, su: os.stat_result, sl: os.stat_result, xattrs: bool) -> bool:
    """Whether an upper entry is unchanged from the lower one (containerd's fs.Changes "sameFile")."""
    if (su.st_mode, su.st_uid, su.st_gid) != (sl.st_mode, sl.st_uid, sl.st_gid):
        return False
    mode = su.st_mode
    if stat.S_ISDIR(mode):
        if su.st_mtime_ns != sl.st_mtime_ns:
            return False
    elif stat.S_ISLNK(mode):
        if os.readlink(upper) != os.readlink(lower):
            return False
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        if su.st_rdev != sl.st_rdev:
            return False
    elif stat.S_ISREG(mode):
        if su.st_size != sl.st_size or su.st_mtime_ns != sl.st_mtime_ns:
            return False
        if su.st_mtime_ns % 1_000_000_000 == 0 and not _same_content(upper, lower):
            return False  # a filesystem without sub-second times: equal mtimes prove little
    if xattrs and _xattrs(upper) != _xattrs(lower):
        return False
    return True


def _same_content(a: bytes, b: bytes) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x = fa.read(_FLUSH)
            if x != fb.read(_FLUSH):
                return False
            if not x:
                return True


def _diff(upper: bytes, lower: bytes | None, rel: bytes, out: list[tuple[bytes, bytes | None]], xattrs: bool) -> None:
    """Append (rel, host path or None for a whiteout) of the changes under directory ``rel``, in tar order."""
    up = upper + b"/" + rel if rel else upper
    names = _listdir(up)
    lower_names: set[bytes] = set()
    low = None
    if lower is not None:
        low = lower + b"/" + rel if rel else lower
        lower_names = set(_listdir(low))
    prefix = rel + b"/" if rel else b""
    for gone in sorted(lower_names.difference(names)):
        out.append((prefix + WHITEOUT_PREFIX + gone, None))
    for name in names:
        if name.startswith(WHITEOUT_PREFIX):
            raise LayerError("a file named .wh.* cannot be represented in a layer (layer.md)", prefix + name)
        host = up + b"/" + name
        st = os.lstat(host)
        sl = None
        if low is not None and name in lower_names:
            sl = os.lstat(low + b"/" + name)
        if stat.S_ISDIR(st.st_mode):
            lower_is_dir = sl is not None and stat.S_ISDIR(sl.st_mode)
            mark = len(out)
            out.append((prefix + name, host))
            _diff(upper, lower if lower_is_dir else None, prefix + name, out, xattrs)
            if len(out) == mark + 1 and low is not None and sl is not None and lower_is_dir:
                if _same(host, low + b"/" + name, st, sl, xattrs):
                    out.pop()  # unchanged directory with no changes below it
        elif sl is None or low is None or not _same(host, low + b"/" + name, st, sl, xattrs):
            out.append((prefix + name, host))


def _overlay(upper: bytes, rel: bytes, out: list[tuple[bytes, bytes | None]]) -> None:
    up = upper + b"/" + rel if rel else upper
    prefix = rel + b"/" if rel else b""
    entries = []
    whiteouts = []
    for name in _listdir(up):
        host = up + b"/" + name
        st = os.lstat(host)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            whiteouts.append(prefix + WHITEOUT_PREFIX + name)  # overlayfs whiteout: 0/0 char device
        else:
            entries.append((name, host, st))
    out.extend((w, None) for w in whiteouts)
    for name, host, st in entries:
        out.append((prefix + name, host))
        if stat.S_ISDIR(st.st_mode):
            for key in _OVERLAY_OPAQUE:
                try:
                    opaque = os.getxattr(host, key, follow_symlinks=False) == b"y"
                except OSError:
                    continue
                if opaque:
                    out.append((prefix + name + b"/" + OPAQUE_WHITEOUT, None))
                    break
            _overlay(upper, prefix + name, out)


def _write(out: BinaryIO, changes: list[tuple[bytes, bytes | None]], o: CreateOptions) -> LayerDigests:
    w = _Writer(_Sink(out, o), o)
    for rel, host in changes:
        if host is None:
            w.whiteout(rel)
        else:
            w.entry(host, rel, os.lstat(host))
    return w.finish()


def create_layer(out: BinaryIO, upper: str, lower: str | None = None,
                 options: CreateOptions | None = None) -> LayerDigests:  # fmt: skip
    """Write the changeset from ``lower`` (None: an empty tree) to ``upper`` as a layer blob to ``out``."""
    o = options or CreateOptions()
    changes: list[tuple[bytes, bytes | None]] = []
    low = os.fsencode(os.path.abspath(lower)) if lower else None
    _diff(os.fsencode(os.path.abspath(upper)), low, b"", changes, o.xattrs)
    return _write(out, changes, o)


def create_layer_from_overlay(out: BinaryIO, upper: str, options: CreateOptions | None = None) -> LayerDigests:
    """Write an overlayfs upper directory as a layer, its whiteouts and opaque dirs converted to OCI's."""
    o = options or CreateOptions()
    changes: list[tuple[bytes, bytes | None]] = []
    _overlay(os.fsencode(os.path.abspath(upper)), b"", changes)
    return _write(out, changes, o)
