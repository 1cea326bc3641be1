"""Snapshotters: filesystem trees for layers and containers, in containerd's sense.

A snapshot is *committed* (read-only, named — for an image layer by its
ChainID, config.md "Layer ChainID", so every image with the same layer stack
shares one directory), *active* (writable, made by ``prepare`` on top of a
committed parent) or a *view* (read-only, made by ``view``). ``commit`` turns
an active snapshot into a committed one; ``remove`` deletes a snapshot without
children. Snapshotters only *describe* the tree as ``Mount``s; mounts.py
performs them.

Two implementations share the metadata handling:

- ``OverlaySnapshotter``: a committed snapshot is one directory holding the
  changes of its layer only; an active snapshot is an overlay of its parents'
  directories (``lowerdir=``, top layer first, overlayfs.rst "Multiple lower
  layers") plus its own ``upperdir`` and ``workdir``; with no parent it is a
  plain directory (bind mount), and a view of one layer is that layer's
  directory mounted read-only (an overlay needs two layers without an upper).
- ``CopySnapshotter``: where overlayfs is unavailable (containerd's "native"
  snapshotter): ``prepare`` copies the parent's whole tree with ``cp -a``
  (owners, modes, xattrs, hard links, devices, times), a view is the parent
  itself mounted read-only.

Metadata is one JSON file rewritten atomically (temporary file, fsync,
rename) under an exclusive ``flock``; the directory of a snapshot is created
before its record and deleted after it, so a crash leaves at worst an orphan
directory (``cleanup`` removes those), never a record without its tree. An
interrupted unpack leaves an *active* snapshot, which nothing mistakes for a
committed layer.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager

from hull.image.errors import ImageError, NotFound
from hull.image.mounts import Mount
from hull.oci.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any, BinaryIO

    from hull.image.changeset import CreateOptions, LayerDigests

KIND_ACTIVE = "active"
KIND_VIEW = "view"
KIND_COMMITTED = "committed"
_METADATA = "metadata.json"
_VERSION = 1


class SnapshotError(ImageError):
    """A snapshot operation is not possible in the snapshot's current state."""


class SnapshotNotFound(NotFound, SnapshotError):
    def __init__(self, key: str) -> None:
        super().__init__(f"snapshot {key!r}: not found")
        self.key = key


class SnapshotExists(SnapshotError):
    def __init__(self, key: str) -> None:
        super().__init__(f"snapshot {key!r}: already exists")
        self.key = key


@record
class Info:
    """What ``stat`` says of a snapshot (containerd's snapshots.Info)."""

    name: str
    kind: str
    parent: str = ""
    id: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    created: float = 0.0


@record
class Usage:
    """Disk use of the snapshot's own tree (for overlay: its layer's changes only)."""

    size: int
    inodes: int


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_tree(path: str) -> None:
    if os.path.lexists(path):
        from hull.image.trees import remove_tree

        remove_tree(path)


def tree_usage(path: str) -> Usage:
    """Bytes (allocated blocks, as du(1)) and inodes under ``path``; hard links counted once."""
    seen: set[tuple[int, int]] = set()
    size = inodes = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        inodes += 1
        size += st.st_blocks * 512
        if os.path.isdir(current) and not os.path.islink(current):
            with os.scandir(current) as it:
                stack.extend(e.path for e in it)
    return Usage(size, inodes)


class Snapshotter:
    """The interface and the metadata both implementations share (containerd's snapshots.Snapshotter)."""

    kind_name = ""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._snapshots = os.path.join(self.root, "snapshots")
        os.makedirs(self._snapshots, exist_ok=True)
        os.makedirs(os.path.join(self.root, "locks"), exist_ok=True)

    # ------------------------------------------------------------ metadata

    @contextmanager
    def _locked(self, shared: bool = False) -> Iterator[None]:
        fd = os.open(os.path.join(self.root, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _load(self) -> dict[str, Any]:
        try:
            with open(os.path.join(self.root, _METADATA), "rb") as f:
                doc: dict[str, Any] = json.load(f)
        except FileNotFoundError:
            return {"version": _VERSION, "next": 1, "snapshots": {}}
        except ValueError as err:
            raise SnapshotError(f"{self.root}/{_METADATA}: corrupt snapshot metadata: {err}") from None
        if doc.get("version") != _VERSION:
            raise SnapshotError(f"{self.root}/{_METADATA}: unsupported metadata version {doc.get('version')!r}")
        return doc

    def _save(self, doc: dict[str, Any]) -> None:
        path = os.path.join(self.root, _METADATA)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(doc, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
        _fsync_dir(self.root)

    @staticmethod
    def _info(name: str, rec: dict[str, Any]) -> Info:
        return Info(name, rec["kind"], rec.get("parent", ""), rec["id"], dict(rec.get("labels", {})),
                    rec.get("created", 0.0))  # fmt: skip

    @staticmethod
    def _get(doc: dict[str, Any], key: str) -> dict[str, Any]:
        rec: dict[str, Any] | None = doc["snapshots"].get(key)
        if rec is None:
            raise SnapshotNotFound(key)
        return rec

    def dir(self, snapshot_id: str) -> str:
        """The directory of a snapshot id (not key): ``snapshots/ID``."""
        return os.path.join(self._snapshots, snapshot_id)

    def fs_dir(self, snapshot_id: str) -> str:
        return os.path.join(self.dir(snapshot_id), "fs")

    def _chain(self, doc: dict[str, Any], parent: str) -> list[str]:
        """Ids of ``parent`` and its ancestors, nearest first (the overlay lowerdir order)."""
        ids: list[str] = []
        while parent:
            rec = self._get(doc, parent)
            ids.append(rec["id"])
            parent = rec.get("parent", "")
        return ids

    # ------------------------------------------------------------ the interface

    def stat(self, key: str) -> Info:
        with self._locked(shared=True):
            return self._info(key, self._get(self._load(), key))

    def exists(self, key: str, kind: str | None = None) -> bool:
        with self._locked(shared=True):
            rec = self._load()["snapshots"].get(key)
        return rec is not None and (kind is None or rec["kind"] == kind)

    def all_exist(self, keys: Sequence[str], kind: str) -> bool:
        """Whether every one of ``keys`` is a snapshot of ``kind`` (one read of the metadata)."""
        with self._locked(shared=True):
            snapshots = self._load()["snapshots"]
        return all(k in snapshots and snapshots[k]["kind"] == kind for k in keys)

    def walk(self) -> list[Info]:
        """Every snapshot, by name."""
        with self._locked(shared=True):
            doc = self._load()
        return [self._info(k, v) for k, v in sorted(doc["snapshots"].items())]

    def prepare(self, key: str, parent: str = "", labels: dict[str, str] | None = None) -> list[Mount]:
        """A new writable snapshot ``key`` on top of committed ``parent``; its mounts."""
        return self._create(KIND_ACTIVE, key, parent, labels)

    def view(self, key: str, parent: str = "", labels: dict[str, str] | None = None) -> list[Mount]:
        """A new read-only snapshot ``key`` of committed ``parent``; its mounts."""
        return self._create(KIND_VIEW, key, parent, labels)

    def _create(self, kind: str, key: str, parent: str, labels: dict[str, str] | None) -> list[Mount]:
        if not key:
            raise SnapshotError("a snapshot key must not be empty")
        with self._locked():
            doc = self._load()
            if key in doc["snapshots"]:
                raise SnapshotExists(key)
            if parent and self._get(doc, parent)["kind"] != KIND_COMMITTED:
                raise SnapshotError(f"parent {parent!r} of snapshot {key!r} is not committed")
            snapshot_id = str(doc["next"])
            doc["next"] += 1
            path = self.dir(snapshot_id)
            _remove_tree(path)  # an orphan of a crash before its record was written
            os.mkdir(path, 0o700)
            try:
                self._make_tree(kind, snapshot_id, self._chain(doc, parent))
                rec = {"id": snapshot_id, "kind": kind, "parent": parent, "labels": dict(labels or {}),
                       "created": time.time()}  # fmt: skip
                doc["snapshots"][key] = rec
                self._save(doc)
            except BaseException:
                _remove_tree(path)
                raise
            return self._mounts(kind, snapshot_id, self._chain(doc, parent))

    def mounts(self, key: str) -> list[Mount]:
        """The mounts of an active snapshot or view (again, e.g. after a restart)."""
        with self._locked(shared=True):
            doc = self._load()
            rec = self._get(doc, key)
            if rec["kind"] == KIND_COMMITTED:
                raise SnapshotError(f"snapshot {key!r} is committed: make a view or prepare on it")
            return self._mounts(rec["kind"], rec["id"], self._chain(doc, rec.get("parent", "")))

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        """Make active snapshot ``key`` the committed snapshot ``name`` (``key`` is gone afterwards)."""
        with self._locked():
            doc = self._load()
            rec = self._get(doc, key)
            if rec["kind"] != KIND_ACTIVE:
                raise SnapshotError(f"snapshot {key!r} is {rec['kind']}, only an active snapshot can be committed")
            if name in doc["snapshots"]:
                raise SnapshotExists(name)
            self._seal(rec["id"])
            del doc["snapshots"][key]
            labels = {**rec.get("labels", {}), **(labels or {})}
            doc["snapshots"][name] = {**rec, "kind": KIND_COMMITTED, "labels": labels, "created": time.time()}
            self._save(doc)

    def remove(self, key: str) -> None:
        """Remove snapshot ``key``; refused while another snapshot has it as parent."""
        with self._locked():
            doc = self._load()
            rec = self._get(doc, key)
            children = sorted(k for k, v in doc["snapshots"].items() if v.get("parent") == key)
            if children:
                raise SnapshotError(f"snapshot {key!r} is the parent of {', '.join(children)}")
            del doc["snapshots"][key]
            self._save(doc)  # the record goes first: a crash leaves an orphan directory, not a broken record
            _remove_tree(self.dir(rec["id"]))

    def usage(self, key: str) -> Usage:
        with self._locked(shared=True):
            rec = self._get(self._load(), key)
        return tree_usage(self.fs_dir(rec["id"]))

    def cleanup(self) -> list[str]:
        """Remove snapshot directories no record names (left by a crash); returns their paths."""
        removed = []
        with self._locked():
            known = {v["id"] for v in self._load()["snapshots"].values()}
            for name in os.listdir(self._snapshots):
                if name not in known:
                    path = self.dir(name)
                    _remove_tree(path)
                    removed.append(path)
        return removed

    @contextmanager
    def key_lock(self, name: str) -> Iterator[None]:
        """An exclusive lock on ``name`` (a chain ID being unpacked), held for the block."""
        fd = self._open_key_lock(name)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def key_locked(self, name: str) -> bool:
        """Whether a live process holds ``key_lock(name)``."""
        fd = self._open_key_lock(name)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _open_key_lock(self, name: str) -> int:
        safe = name.replace("/", "_").replace(":", "_")
        return os.open(os.path.join(self.root, "locks", safe), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def writable_dir(self, key: str) -> str:
        """Where the changes of active snapshot ``key`` are written (the overlay upper, the copy's tree)."""
        with self._locked(shared=True):
            return self.fs_dir(self._get(self._load(), key)["id"])

    def parent_dirs(self, key: str) -> list[str]:
        """The committed directories below ``key``, nearest first."""
        with self._locked(shared=True):
            doc = self._load()
            return [self.fs_dir(i) for i in self._chain(doc, self._get(doc, key).get("parent", ""))]

    def create_layer(self, key: str, out: BinaryIO, options: CreateOptions | None = None) -> LayerDigests:
        """Write the changes of active snapshot ``key`` over its parent as a layer blob to ``out``."""
        raise NotImplementedError

    # ------------------------------------------------------------ what an implementation provides

    def _make_tree(self, kind: str, snapshot_id: str, parents: list[str]) -> None:
        raise NotImplementedError

    def _mounts(self, kind: str, snapshot_id: str, parents: list[str]) -> list[Mount]:
        raise NotImplementedError

    def _seal(self, snapshot_id: str) -> None:
        """Called under the lock before an active snapshot becomes committed."""


def overlay_supported() -> bool:
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1:] == ["overlay"] for line in f)
    except OSError:
        return False


def _overlay_index_option() -> list[str]:
    # overlayfs.rst "Inode index": with index=on a lower directory may be used by one overlay only
    # at a time (EBUSY); layers are shared by many containers, so containerd turns it off too.
    return ["index=off"] if os.path.exists("/sys/module/overlay/parameters/index") else []


class OverlaySnapshotter(Snapshotter):
    kind_name = "overlayfs"

    def _make_tree(self, kind: str, snapshot_id: str, parents: list[str]) -> None:
        os.mkdir(self.fs_dir(snapshot_id), 0o755)
        if kind == KIND_ACTIVE and parents:
            os.mkdir(os.path.join(self.dir(snapshot_id), "work"), 0o700)

    def _mounts(self, kind: str, snapshot_id: str, parents: list[str]) -> list[Mount]:
        lower = [self.fs_dir(p) for p in parents]
        if kind == KIND_ACTIVE:
            if not lower:
                return [Mount("bind", self.fs_dir(snapshot_id), ("rbind", "rw"))]
            upper = self.fs_dir(snapshot_id)
            work = os.path.join(self.dir(snapshot_id), "work")
            opts = [*_overlay_index_option(), f"workdir={work}", f"upperdir={upper}", f"lowerdir={':'.join(lower)}"]
            return [Mount("overlay", "overlay", tuple(opts))]
        if not lower:
            return [Mount("bind", self.fs_dir(snapshot_id), ("rbind", "ro"))]
        if len(lower) == 1:
            return [Mount("bind", lower[0], ("rbind", "ro"))]
        return [Mount("overlay", "overlay", (*_overlay_index_option(), f"lowerdir={':'.join(lower)}", "ro"))]

    def _seal(self, snapshot_id: str) -> None:
        _remove_tree(os.path.join(self.dir(snapshot_id), "work"))

    def create_layer(self, key: str, out: BinaryIO, options: CreateOptions | None = None) -> LayerDigests:
        from hull.image.changeset import create_layer, create_layer_from_overlay

        info = self.stat(key)
        upper = self.writable_dir(key)
        if not info.parent:
            return create_layer(out, upper, None, options)
        # The upper holds exactly the changes, deletions in overlayfs's format (converted by changeset.py).
        return create_layer_from_overlay(out, upper, options)


class CopySnapshotter(Snapshotter):
    kind_name = "copy"

    def _make_tree(self, kind: str, snapshot_id: str, parents: list[str]) -> None:
        target = self.fs_dir(snapshot_id)
        if kind == KIND_ACTIVE and parents:
            # cp -a: -dR --preserve=all (mode, ownership, timestamps, links, xattrs), devices and fifos
            # recreated, hard links kept as links; --no-target-directory copies the tree itself.
            import subprocess

            result = subprocess.run(["cp", "-a", "--no-target-directory", self.fs_dir(parents[0]), target],
                                    capture_output=True, text=True)  # fmt: skip
            if result.returncode != 0:
                raise SnapshotError(f"copying snapshot tree: {result.stderr.strip()}")
        elif kind == KIND_ACTIVE or not parents:
            os.mkdir(target, 0o755)

    def _mounts(self, kind: str, snapshot_id: str, parents: list[str]) -> list[Mount]:
        if kind == KIND_VIEW:
            return [Mount("bind", self.fs_dir(parents[0]) if parents else self.fs_dir(snapshot_id), ("rbind", "ro"))]
        return [Mount("bind", self.fs_dir(snapshot_id), ("rbind", "rw"))]

    def usage(self, key: str) -> Usage:
        info = self.stat(key)
        if info.kind == KIND_VIEW and info.parent:
            return Usage(0, 0)  # a view is its parent's tree
        return tree_usage(self.fs_dir(info.id))

    def create_layer(self, key: str, out: BinaryIO, options: CreateOptions | None = None) -> LayerDigests:
        from hull.image.changeset import create_layer

        parents = self.parent_dirs(key)
        return create_layer(out, self.writable_dir(key), parents[0] if parents else None, options)


def open_snapshotter(root: str, name: str = "") -> Snapshotter:
    """The snapshotter ``name`` ("overlayfs", "copy"; "" picks overlayfs where the kernel has it) at ``root``.

    Each kind keeps its own directory under ``root``, as containerd's
    ``io.containerd.snapshotter.v1.<name>`` roots, since their trees differ.
    """
    if not name:
        name = "overlayfs" if overlay_supported() and os.geteuid() == 0 else "copy"
    if name == "overlayfs":
        return OverlaySnapshotter(os.path.join(root, "overlayfs"))
    if name in ("copy", "native"):
        return CopySnapshotter(os.path.join(root, "copy"))
    raise SnapshotError(f"unknown snapshotter {name!r} (overlayfs, copy)")
