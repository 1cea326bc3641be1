"""Building crafted layer tarballs in the tests themselves (no binary fixtures) and comparing trees."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    info.mode = attrs.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    info.mtime = attrs.pop("mtime", 1_600_000_000)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def snapshot(root: Path, owners: bool = True, xattrs: bool = True) -> dict[str, tuple[Any, ...]]:
    """What a user compares between two trees: type, mode, owner, mtime (s), content/link, xattrs, link groups."""
    out: dict[str, tuple[Any, ...]] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            extra: Any = None
            if stat.S_ISREG(st.st_mode):
                extra = Path(path).read_bytes()
                if st.st_nlink > 1:
                    extra = ("link-group", inodes.setdefault(st.st_ino, rel), extra)
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = st.st_rdev
            xa: Any = None
            if xattrs and not stat.S_ISLNK(st.st_mode):
                xa = sorted(
                    (k, os.getxattr(path, k)) for k in os.listxattr(path) if not k.startswith("security.selinux")
                )
            mtime = None if stat.S_ISLNK(st.st_mode) else int(st.st_mtime)
            owner = (st.st_uid, st.st_gid) if owners else None
            out[rel] = (kind, stat.S_IMODE(st.st_mode), owner, mtime, extra, xa)
    return out
