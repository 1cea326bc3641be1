"""The engine's record of each container, crash-safe, with locking.

One directory per container under ``<root>/containers/<id>``; its record is
``container.json``, replaced atomically (written aside, then renamed), so a
reader sees the old record or the new one and a kill at any instant never
leaves a half-written one. Changes are made under a per-container ``flock``
so that the CLI and the monitor (see engine.monitor) never lose each
other's updates. Names are symlinks ``<root>/containers/.names/<name>`` ->
``<id>``: creating one is atomic, so two ``hull run --name x`` at once
cannot both win.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager

from hull.engine.errors import AmbiguousContainer, ContainerNotFound, NameInUse
from hull.engine.options import ResolvedMount, RunOptions
from hull.oci.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

RECORD = "container.json"
NAMES = ".names"

# Docker's State.Status values.
CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
RESTARTING = "restarting"
EXITED = "exited"
DEAD = "dead"
REMOVING = "removing"


@record
class Container:
    id: str
    name: str
    image: str  # as the user named it
    image_id: str  # the config's digest (docker's .Image)
    image_digest: str  # the manifest's digest the rootfs was made from
    created: int  # ns since the epoch
    options: RunOptions
    args: list[str]  # process.args as created (docker's Path + Args)
    snapshot: str  # the snapshotter's key of the rootfs
    snapshotter: str
    mounts: list[ResolvedMount] = field(default_factory=list)
    status: str = CREATED
    pid: int = 0
    exit_code: int = 0
    started_at: int = 0
    finished_at: int = 0
    restart_count: int = 0
    monitor_pid: int = 0
    monitor_start: int = 0  # the monitor's start time (proc stat field 22): a reused PID is not it
    error: str = ""
    oom_killed: bool = False
    stopped_by_user: bool = False  # `hull stop`/`kill`: no restart, unless-stopped stays down
    # The network attachment (engine.networking): netns path, network, addresses, published ports.
    network: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in type(self).__annotations__:
            value = getattr(self, name)
            if name == "options":
                value = value.to_json()
            elif name == "mounts":
                value = [dict(vars(m)) for m in value]
            out[name] = value
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Container:
        known = {k: v for k, v in doc.items() if k in cls.__annotations__}
        known["options"] = RunOptions.from_json(known["options"])
        known["mounts"] = [ResolvedMount(**m) for m in known.get("mounts", [])]
        return cls(**known)

    @property
    def short_id(self) -> str:
        return self.id[:12]


def now_ns() -> int:
    return time.time_ns()


class ContainerStore:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._names = os.path.join(directory, NAMES)

    def _dir(self, container_id: str) -> str:
        return os.path.join(self.directory, container_id)

    # ------------------------------------------------------------ create / remove

    def add(self, container: Container) -> None:
        """Record a new container; its name must be free (NameInUse otherwise)."""
        os.makedirs(self._names, exist_ok=True)
        cdir = self._dir(container.id)
        os.makedirs(cdir, mode=0o700)
        self._write(container)
        link = os.path.join(self._names, container.name)
        for _ in range(2):
            try:
                os.symlink(container.id, link)
                return
            except FileExistsError:
                holder = self._name_holder(container.name)
                if holder is not None:
                    self._remove_dir(cdir)
                    raise NameInUse(container.name, holder) from None
                try:
                    os.unlink(link)  # left by a container whose directory is gone
                except FileNotFoundError:
                    pass
        self._remove_dir(cdir)
        raise NameInUse(container.name, "")

    def remove(self, container: Container) -> None:
        link = os.path.join(self._names, container.name)
        if self._name_holder(container.name) == container.id:
            os.unlink(link)
        self._remove_dir(self._dir(container.id))

    @staticmethod
    def _remove_dir(path: str) -> None:
        import shutil

        # Renamed first, so that a half-removed directory is never read as a container.
        trash = os.path.join(os.path.dirname(path), f".removing-{os.path.basename(path)}")
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def _name_holder(self, name: str) -> str | None:
        try:
            target = os.readlink(os.path.join(self._names, name))
        except OSError:
            return None
        return target if os.path.exists(os.path.join(self._dir(target), RECORD)) else None

    def name_taken(self, name: str) -> bool:
        return self._name_holder(name) is not None

    # ------------------------------------------------------------ read / write

    def _write(self, container: Container) -> None:
        path = os.path.join(self._dir(container.id), RECORD)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(container.to_json(), f, separators=(",", ":"))
        os.rename(tmp, path)

    def load(self, container_id: str) -> Container:
        try:
            with open(os.path.join(self._dir(container_id), RECORD)) as f:
                return Container.from_json(json.load(f))
        except FileNotFoundError:
            raise ContainerNotFound(container_id) from None

    @contextmanager
    def locked(self, container_id: str) -> Iterator[None]:
        """The container's lock, held while its record is read, changed and written back."""
        try:
            fd = os.open(os.path.join(self._dir(container_id), "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise ContainerNotFound(container_id) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update(self, container_id: str, change: Callable[[Container], None]) -> Container:
        """Apply ``change`` to the current record under the lock and store it."""
        with self.locked(container_id):
            container = self.load(container_id)
            change(container)
            self._write(container)
            return container

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return [n for n in names if not n.startswith(".") and os.path.exists(os.path.join(self.directory, n, RECORD))]

    def all(self) -> list[Container]:
        out = []
        for container_id in self.ids():
            try:
                out.append(self.load(container_id))
            except ContainerNotFound:
                continue  # removed meanwhile
        out.sort(key=lambda c: c.created, reverse=True)
        return out

    def find(self, ref: str) -> Container:
        """By full ID, name, or unique ID prefix (docker's order)."""
        if len(ref) == 64 and os.path.exists(os.path.join(self._dir(ref), RECORD)):
            return self.load(ref)
        holder = self._name_holder(ref.lstrip("/")) if ref else None
        if holder is not None:
            return self.load(holder)
        matches = (
            [i for i in self.ids() if ref and i.startswith(ref)] if all(c in "0123456789abcdef" for c in ref) else []
        )
        if len(matches) == 1:
            return self.load(matches[0])
        if len(matches) > 1:
            raise AmbiguousContainer(ref)
        raise ContainerNotFound(ref)
