"""The container's terminal: a pty from its own devpts, its master sent to the caller.

runc's protocol, which conmon, containerd and podman speak: the runtime
connects to the AF_UNIX ``--console-socket`` and sends the pty master in one
SCM_RIGHTS message whose data is the master's name.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios

from hull.runtime import linux as L
from hull.runtime import unixsock

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430


def open_pty() -> tuple[int, str]:
    """Open a new pty in the current mount namespace: (master fd, slave path)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
    return master, f"/dev/pts/{number}"


def set_size(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def send_master(sock: unixsock.Socket, master: int) -> None:
    unixsock.send_fd(sock, master, b"/dev/ptmx")


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
