"""Container state on disk under ``--root``, one directory per container.

``<root>/<id>/state.json`` is written atomically (a rename), and every command
that reads-then-acts holds ``flock`` on ``<root>/<id>/lock`` so concurrent
commands on one container serialise while different containers never wait;
``state`` only reads, without the lock. A container directory appears and
goes by a rename too, so it never exists without its lock file.
Whether the init process is alive is read from /proc, with its start time
recorded at create so a recycled PID is never mistaken for the container.
"""

from __future__ import annotations

import errno
import fcntl
import os

from hull.oci import jsonfast
from hull.oci.records import as_dict, field, record
from hull.runtime.errors import ContainerExists, ContainerNotFound, InvalidContainerID

DEFAULT_ROOT = "/run/hull-runtime"
START_SOCKET = "start.sock"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# runc's rule for container IDs (libcontainer/factory_linux.go: ^[\w+-\.]+$).
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


@record
class Record:
    """What hull-runtime remembers about one container between invocations."""

    id: str
    bundle: str
    rootfs: str
    created: str
    status: str
    config: dict[str, Any]
    pid: int = 0
    pid_start: int = 0
    creator_pid: int = 0
    creator_start: int = 0
    annotations: dict[str, str] = field(default_factory=dict)
    # Subsystem ("memory", "name=systemd", "" for cgroup v2) -> absolute cgroup
    # directory, recorded before the directories are made (cgroups.py).
    cgroup_paths: dict[str, str] = field(default_factory=dict)


def validate_id(container_id: str) -> None:
    if container_id in (".", "..") or not container_id or not _ID_CHARS.issuperset(container_id):
        raise InvalidContainerID(container_id)


def process_start_time(pid: int) -> int | None:
    """The process's start time (proc(5) stat field 22), or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def is_alive(pid: int, start: int) -> bool:
    return pid > 0 and process_start_time(pid) == start


class ContainerDir:
    """One container's state directory, locked for as long as it is open."""

    def __init__(self, path: str, lock_fd: int) -> None:
        self.path = path
        self._lock_fd = lock_fd

    @property
    def start_socket(self) -> str:
        return os.path.join(self.path, START_SOCKET)

    def read(self) -> Record:
        try:
            with open(os.path.join(self.path, "state.json"), "rb") as f:
                return Record(**jsonfast.loads(f.read()))
        except FileNotFoundError:
            raise ContainerNotFound() from None

    def write(self, record: Record) -> None:
        tmp = os.path.join(self.path, ".state.json.tmp")
        with open(tmp, "w") as f:
            f.write(jsonfast.dumps(as_dict(record)))
        os.replace(tmp, os.path.join(self.path, "state.json"))

    def status(self, record: Record) -> str:
        if record.status == "creating":
            return "creating" if is_alive(record.creator_pid, record.creator_start) else "stopped"
        if not is_alive(record.pid, record.pid_start):
            return "stopped"
        return "created" if os.path.exists(self.start_socket) else "running"

    def remove(self) -> None:
        # Only while holding the lock: once it is released, a new container
        # may already have been created under the same ID.
        if self._lock_fd < 0:
            return
        # Renamed away under a name no container ID can have, then emptied: a
        # create of the same ID meanwhile never meets a half-removed directory.
        parent, name = os.path.split(self.path)
        doomed = os.path.join(parent, f"~{name}.{os.getpid()}.rm")
        _remove_tree(doomed)
        try:
            os.rename(self.path, doomed)
        except FileNotFoundError:
            pass
        _remove_tree(doomed)
        self.close()

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> ContainerDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Store:
    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = os.path.abspath(root)

    def _path(self, container_id: str) -> str:
        validate_id(container_id)
        return os.path.join(self.root, container_id)

    def create(self, container_id: str) -> ContainerDir:
        """A new container directory, locked; ContainerExists if the ID is taken.

        It is made complete, lock file included, under a name no container ID
        can have and then renamed into place, so a container directory always
        holds its lock file and ``open`` never creates one: that would race a
        concurrent delete, whose rmdir would then find the directory not empty.
        """
        path = self._path(container_id)
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        tmp = os.path.join(self.root, f"~{container_id}.{os.getpid()}")
        _remove_tree(tmp)  # left by a create with this PID that was killed
        os.mkdir(tmp, 0o711)
        fd = _lock(tmp, create=True)
        try:
            # rename(2) fails on a non-empty target (it has a lock file): one
            # create of an ID wins however many run at once.
            os.rename(tmp, path)
        except OSError as err:
            os.close(fd)
            _remove_tree(tmp)
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise ContainerExists() from None
            raise
        return ContainerDir(path, fd)

    def open(self, container_id: str) -> ContainerDir:
        path = self._path(container_id)
        try:
            fd = _lock(path)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerNotFound() from None
        return ContainerDir(path, fd)

    def peek(self, container_id: str) -> ContainerDir:
        """The directory without taking its lock, for reading the state only.

        state.json is replaced atomically, so an unlocked reader sees one whole
        version; and ``state`` must answer ("creating") while a create holds the
        lock for as long as its hooks run, hooks that may themselves ask for it.
        """
        path = self._path(container_id)
        if not os.path.isdir(path):
            raise ContainerNotFound()
        return ContainerDir(path, -1)

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if os.path.exists(os.path.join(self.root, n, "state.json")))


def _lock(path: str, create: bool = False) -> int:
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    fd = os.open(os.path.join(path, "lock"), flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink == 0:
            # Deleted while we waited for the lock: the container is gone.
            raise FileNotFoundError(path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _remove_tree(path: str) -> None:
    """``shutil.rmtree`` without importing shutil; a state directory is one level deep."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(path, name))
        except IsADirectoryError:
            _remove_tree(os.path.join(path, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
