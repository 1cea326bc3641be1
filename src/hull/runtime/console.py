"""The container's terminal: a pty from its own devpts, its master sent to the caller.

runc's protocol, which conmon, containerd and podman speak: the runtime
connects to the AF_UNIX ``--console-socket`` and sends the pty master in one
SCM_RIGHTS message whose data is the master's name.
"""

from __future__ import annotations

import array
import fcntl
import os
import socket
import struct
import termios

from hull.runtime import linux as L

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def open_pty() -> tuple[int, str]:
    """Open a new pty in the current mount namespace: (master fd, slave path)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = array.array("i", [0])
    fcntl.ioctl(master, TIOCGPTN, number, True)
    return master, f"/dev/pts/{number[0]}"


def set_size(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def send_master(sock: socket.socket, master: int) -> None:
    fds = array.array("i", [master])
    sock.sendmsg([b"/dev/ptmx"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])


def receive_master(sock: socket.socket) -> int:
    """The receiving side, for the foreground ``run`` and for tests."""
    fds = array.array("i")
    _, ancdata, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if not fds:
        raise OSError("no file descriptor received on the console socket")
    return fds[0]


def attach_slave(slave_path: str, mount_console: bool) -> None:
    """Make the slave the process's controlling terminal and stdio, and /dev/console."""
    slave = os.open(slave_path, os.O_RDWR)
    if mount_console:
        if not os.path.exists("/dev/console"):
            os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY, 0o600))
        L.mount(slave_path, "/dev/console", None, L.MS_BIND)
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
