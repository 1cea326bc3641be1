"""Named volumes as docker's ``local`` driver keeps them: ``<root>/volumes/<name>/_data``.

Each volume's metadata is ``<root>/volumes/<name>/volume.json``, the document
``docker volume inspect`` prints (Name, Driver, Mountpoint, CreatedAt, Labels,
Options, Scope), replaced atomically (written aside, then renamed). A volume
exists once its volume.json does: a create killed half-way leaves a directory
without one, which ``list`` ignores and the next ``create`` of that name
completes. Creating, removing, pruning and copying up are done under one
``flock`` on ``<root>/volumes/.lock`` so concurrent hull commands never
interleave; reading (``get``, ``list``) takes no lock. A volume is removed by
first renaming its directory out of the way (``.removing-*``), so a reader sees
it whole or not at all.

Names follow docker's rule (``[a-zA-Z0-9][a-zA-Z0-9_.-]+``: at least two
characters); a volume created without a name gets 64 random hex digits, as
docker's anonymous volumes. Errors carry docker's messages without the
``Error response from daemon:`` prefix; the CLI prints them after ``Error:``
(podman's form).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hull.engine.errors import InvalidVolumeName, VolumeError, VolumeInUse, VolumeNotFound
from hull.oci.records import field, record

VOLUMES = "volumes"
DATA = "_data"
METADATA = "volume.json"
LOCK = ".lock"
REMOVING = ".removing-"
DRIVER = "local"
SCOPE = "local"
# The label docker (23+) puts on the anonymous volumes it creates for a container's `-v /path`.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"

_VALID_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")  # moby daemon/names RestrictedNamePattern

# IDs of the containers using a volume (empty: none); the engine answers from its container records.
InUse = Callable[[str], list[str]]
_Names = list[str]  # (inside VolumeStore, "list" is its method)


@record
class Volume:
    name: str
    mountpoint: str  # the _data directory
    created_at: str  # RFC 3339, local time with its offset, as docker prints it
    driver: str = DRIVER
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    scope: str = SCOPE

    def inspect(self) -> dict[str, Any]:
        """``docker volume inspect``'s document."""
        return {
            "CreatedAt": self.created_at,
            "Driver": self.driver,
            "Labels": dict(self.labels),
            "Mountpoint": self.mountpoint,
            "Name": self.name,
            "Options": dict(self.options),
            "Scope": self.scope,
        }

    @classmethod
    def from_inspect(cls, doc: dict[str, Any]) -> Volume:
        return cls(
            name=str(doc["Name"]),
            mountpoint=str(doc["Mountpoint"]),
            created_at=str(doc.get("CreatedAt", "")),
            driver=str(doc.get("Driver") or DRIVER),
            labels=dict(doc.get("Labels") or {}),
            options=dict(doc.get("Options") or {}),
            scope=str(doc.get("Scope") or SCOPE),
        )


def rfc3339(seconds: float | None = None) -> str:
    """Go's ``time.RFC3339`` of local time: ``2006-01-02T15:04:05+07:00``, ``Z`` for UTC."""
    from hull.engine.logfile import format_local

    return format_local(int((time.time() if seconds is None else seconds) * 1_000_000_000))


def check_name(name: str) -> None:
    if _VALID_NAME.fullmatch(name) is None:
        raise InvalidVolumeName(name)


class VolumeStore:
    """The volumes under one engine data root."""

    def __init__(self, root: str) -> None:
        self.dir = os.path.join(os.path.abspath(root), VOLUMES)
        self._lock_fd = -1
        self._lock_depth = 0

    # ------------------------------------------------------------ locking and files

    @contextmanager
    def lock(self) -> Iterator[None]:
        """The store's exclusive lock, re-entrant within this object (the engine holds it while it
        records a container's volumes, so a concurrent ``rm`` cannot remove one in between)."""
        if self._lock_depth == 0:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            fd = os.open(os.path.join(self.dir, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
            self._lock_fd = fd
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _write_metadata(self, volume: Volume) -> None:
        folder = self.path(volume.name)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{METADATA}.")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(volume.inspect(), f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.rename(tmp, os.path.join(folder, METADATA))
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def _read(self, name: str) -> Volume | None:
        try:
            with open(os.path.join(self.path(name), METADATA)) as f:
                doc = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise VolumeError(f"volume {name}: unreadable {METADATA}: {err}") from None
        return Volume.from_inspect(doc)

    # ------------------------------------------------------------ commands

    def create(
        self, name: str = "", labels: dict[str, str] | None = None, options: dict[str, str] | None = None
    ) -> Volume:
        """A new volume; a name already in use gives the existing volume, as docker does."""
        if name:
            check_name(name)
        if options:
            # The local driver's options (type, device, o) mount a filesystem at use: not supported yet.
            raise VolumeError(f"create {name or '(anonymous)'}: driver options are not supported: {sorted(options)}")
        with self.lock():
            if not name:
                name = secrets.token_hex(32)
                while os.path.lexists(self.path(name)):
                    name = secrets.token_hex(32)
            existing = self._read(name)
            if existing is not None:
                return existing
            folder = self.path(name)
            os.makedirs(folder, mode=0o700, exist_ok=True)
            data = os.path.join(folder, DATA)
            os.makedirs(data, exist_ok=True)
            os.chmod(data, 0o755)
            volume = Volume(name=name, mountpoint=data, created_at=rfc3339(), labels=dict(labels or {}))
            self._write_metadata(volume)
            return volume

    def get(self, name: str) -> Volume:
        if not _VALID_NAME.fullmatch(name):
            raise VolumeNotFound(name)  # also keeps "..", "/x" and ".lock" from naming a path
        volume = self._read(name)
        if volume is None:
            raise VolumeNotFound(name)
        return volume

    def list(self) -> list[Volume]:
        """Every complete volume, sorted by name."""
        try:
            entries = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        out = []
        for entry in entries:
            if _VALID_NAME.fullmatch(entry):
                volume = self._read(entry)
                if volume is not None:
                    out.append(volume)
        return out

    def remove(self, name: str, force: bool = False, in_use: InUse | None = None) -> None:
        """Remove a volume and its data. A volume in use is never removed (docker: not even with
        ``--force``); ``force`` makes a missing volume no error (docker's ``volume rm -f``)."""
        with self.lock():
            try:
                self.get(name)
            except VolumeNotFound:
                if force:
                    return
                raise
            users = in_use(name) if in_use is not None else []
            if users:
                raise VolumeInUse(name, list(users))
            self._remove_locked(name)

    def _remove_locked(self, name: str) -> None:
        doomed = tempfile.mkdtemp(dir=self.dir, prefix=REMOVING)
        os.rename(self.path(name), os.path.join(doomed, name))  # gone for readers at once
        shutil.rmtree(doomed)

    def prune(self, in_use: InUse | None = None, *, anonymous_only: bool = False) -> tuple[_Names, int]:
        """Remove every volume no container uses (podman's ``volume prune``; ``anonymous_only``: only
        those labelled anonymous, docker 23's default). Returns the names removed and the bytes freed."""
        removed: _Names = []
        reclaimed = 0
        with self.lock():
            self._clean_leftovers()
            for volume in self.list():
                if anonymous_only and ANONYMOUS_LABEL not in volume.labels:
                    continue
                if in_use is not None and in_use(volume.name):
                    continue
                size = disk_usage(volume.mountpoint)
                self._remove_locked(volume.name)
                removed.append(volume.name)
                reclaimed += size
        return removed, reclaimed

    def _clean_leftovers(self) -> None:
        """Removals a killed command left half-done (called under the lock)."""
        for entry in os.listdir(self.dir):
            if entry.startswith(REMOVING):
                shutil.rmtree(os.path.join(self.dir, entry), ignore_errors=True)

    def copy_up(self, volume: Volume, source_dir: str) -> bool:
        """Copy the image's content at the mount point into the volume if the volume is empty
        (docker's copy-up at a named volume's first use; the volume takes the owner and mode of the
        image's directory too). Returns whether anything was copied."""
        with self.lock():
            return copy_up(volume, source_dir)


def disk_usage(path: str) -> int:
    """Bytes in the files under ``path``, each inode once (what docker's prune reports as reclaimed)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(top, name))
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


# ---------------------------------------------------------------- copy-up


def copy_up(volume: Volume, source_dir: str) -> bool:
    """``VolumeStore.copy_up`` without the store's lock (for a caller that holds it)."""
    if os.listdir(volume.mountpoint):
        return False
    try:
        st = os.lstat(source_dir)
    except FileNotFoundError:
        return False  # nothing at the mount point in the image: the volume stays empty
    if not stat.S_ISDIR(st.st_mode):
        return False
    # Staged where no container reaches, then moved in entry by entry: a container already using this
    # (empty) volume could swap what is being made in _data for symlinks to host paths, and the copy's
    # next writes would follow them; a rename replaces a name and follows nothing.
    staging = os.path.join(os.path.dirname(volume.mountpoint), ".copy-up")
    if os.path.lexists(staging):
        shutil.rmtree(staging)
    os.mkdir(staging, 0o700)
    try:
        copy_tree(source_dir, staging)
        _move_into(staging, volume.mountpoint)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def _move_into(staging: str, data: str) -> None:
    """Every entry of ``staging`` renamed into ``data`` (through descriptors: no path into ``data`` is
    followed), then ``data`` given ``staging``'s owner, mode and times."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    stage_fd = os.open(staging, flags)
    data_fd = os.open(data, flags)
    try:
        for name in os.listdir(stage_fd):
            try:
                os.rename(name, name, src_dir_fd=stage_fd, dst_dir_fd=data_fd)
            except OSError:
                pass  # the container made that name meanwhile: its entry stays, as docker's copy-up skips
        st = os.fstat(stage_fd)
        os.fchown(data_fd, st.st_uid, st.st_gid)
        os.fchmod(data_fd, stat.S_IMODE(st.st_mode))
        os.utime(data_fd, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.close(stage_fd)
        os.close(data_fd)


def copy_tree(source: str, dest: str) -> None:
    """Copy ``source``'s content into the existing directory ``dest``: owners, modes, times, symlinks
    as symlinks, hard links as links, devices and fifos, xattrs where the target takes them. Then
    ``dest`` takes ``source``'s own owner, mode and times (docker's copyOwnership)."""
    links: dict[tuple[int, int], str] = {}
    _copy_dir(source, dest, links)
    _copy_meta(source, dest, os.lstat(source))


def _copy_dir(src: str, dst: str, links: dict[tuple[int, int], str]) -> None:
    for entry in sorted(os.listdir(src)):
        s = os.path.join(src, entry)
        d = os.path.join(dst, entry)
        st = os.lstat(s)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(d, 0o700)
            _copy_dir(s, d, links)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(s), d)
        elif st.st_nlink > 1 and (st.st_dev, st.st_ino) in links:
            os.link(links[(st.st_dev, st.st_ino)], d)
            continue  # the first copy carries the metadata
        elif stat.S_ISREG(mode):
            _copy_file(s, d)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            os.mknod(d, stat.S_IFMT(mode) | 0o600, st.st_rdev)
        else:
            continue  # sockets are not copied (as tar and docker's copier skip them)
        if st.st_nlink > 1 and not stat.S_ISDIR(mode):
            links[(st.st_dev, st.st_ino)] = d
        _copy_meta(s, d, st)


def _copy_file(src: str, dst: str) -> None:
    fin = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            while os.sendfile(fout, fin, None, 1 << 30):
                pass
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_meta(src: str, dst: str, st: os.stat_result) -> None:
    link = stat.S_ISLNK(st.st_mode)
    for key in _listxattr(src):
        try:
            os.setxattr(dst, key, os.getxattr(src, key, follow_symlinks=False), follow_symlinks=False)
        except OSError:
            pass  # best effort: the volume's filesystem may not take this namespace (trusted.*, security.*)
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not link:
        os.chmod(dst, stat.S_IMODE(st.st_mode))  # after chown, which clears setuid/setgid
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _listxattr(path: str) -> list[str]:
    try:
        return os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
