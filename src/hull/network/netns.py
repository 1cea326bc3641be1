"""Persistent network namespaces: a namespace kept alive by a bind mount of its nsfs file.

``create(path)`` does what ``ip netns add`` does without the ``ip`` program:
a short-lived thread unshares a new network namespace for itself alone
(unshare(2) with CLONE_NEWNET affects the calling thread only, so the rest of
the process stays where it was) and bind-mounts its own
``/proc/thread-self/ns/net`` onto an empty file at ``path``. The mount holds a
reference to the namespace, so it outlives the thread; ``nsenter --net=PATH``,
setns(2) and a config.json ``linux.namespaces`` entry with that path join it.
Its loopback device is brought up right there (what the CNI loopback plugin
does, without another program's start: ~7 ms of every container).

Unlike iproute2 (for /run/netns) and podman, the directory holding the files
is not made a shared mount of itself. That self bind mount would outlive every
container and turn ``rm -r`` of the run root into EBUSY; what it guards
against, a copy of the netns mount kept alive in another mount namespace,
does not arise from hull's containers, whose runtime drops its copy of the
host's mount table (pivot_root and a detached unmount of the old root), and a
copy held elsewhere only keeps the namespace alive, it does not fail
``remove``, which falls back to a lazy unmount.
"""

from __future__ import annotations

import errno
import os
import threading

from hull.network.errors import NetworkError
from hull.runtime import linux

NSFS_MAGIC = 0x6E736673  # linux/magic.h: the filesystem of /proc/*/ns/* files


def exists(path: str) -> bool:
    """Whether ``path`` is a live network namespace (an nsfs file, mounted there or a /proc link)."""
    if not path:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return linux.fstatfs_type(fd) == NSFS_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def create(path: str) -> None:
    """A new, empty network namespace (only a ``lo``, up) persisted at ``path``.

    The parent directory must exist; a file already at ``path`` is an error (as ``ip netns add``:
    an existing namespace is never replaced)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    except FileExistsError:
        raise NetworkError(f"network namespace {path}: a file already exists there") from None
    except OSError as err:
        raise NetworkError(f"network namespace {path}: {err.strerror}") from None
    os.close(fd)
    failure: list[OSError] = []

    def make() -> None:
        # In this thread only: the namespace is this thread's until it exits; the mount keeps it.
        try:
            linux.unshare(linux.CLONE_NEWNET)
            _loopback_up()
            linux.mount("/proc/thread-self/ns/net", path, None, linux.MS_BIND)
        except OSError as err:
            failure.append(err)

    thread = threading.Thread(target=make, name="hull-netns")
    thread.start()
    thread.join()
    if failure:
        try:
            os.unlink(path)
        except OSError:
            pass
        first = failure[0]
        raise NetworkError(f"network namespace {path}: {first.strerror or first}") from None


SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def _loopback_up() -> None:
    """``ip link set lo up`` in the calling thread's network namespace, through SIOCSIFFLAGS."""
    import _socket
    import fcntl
    import struct

    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        ifreq = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sh14x", b"lo", flags | IFF_UP))
    finally:
        sock.close()


def remove(path: str) -> None:
    """Unmount (lazily if the mount is busy) and unlink ``path``; nothing there is fine."""
    if not path:
        return
    try:
        linux.umount2(path, 0)
    except OSError as err:
        if err.errno == errno.EBUSY:
            linux.umount2(path, linux.MNT_DETACH)
        elif err.errno not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not a mount point
            raise NetworkError(f"network namespace {path}: unmount: {err.strerror}") from None
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise NetworkError(f"network namespace {path}: {err.strerror}") from None
