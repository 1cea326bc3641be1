"""A foreground ``exec -t`` without ``--console-socket``: the runtime relays the pty itself.

As runc's tty.go (recvtty and the epoll copy): the process's pty master comes
back to the runtime over a socket pair, the runtime's own terminal is put in
raw mode, and bytes are copied both ways until the process has exited; the
window size follows the runtime's terminal (SIGWINCH).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]
import _socket
import fcntl
import os
import select
import termios

from hull.runtime import forwarding
from hull.runtime.errors import RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TIOCGWINSZ = termios.TIOCGWINSZ
TIOCSWINSZ = termios.TIOCSWINSZ


class Relay:
    def __init__(self) -> None:
        # runc's initHostConsole: the first of stderr, stdout, stdin that is a
        # terminal, else /dev/tty; with none, fail as runc does.
        self.host = next((fd for fd in (2, 1, 0) if os.isatty(fd)), -1)
        self._own_host = False
        if self.host < 0:
            try:
                self.host = os.open("/dev/tty", os.O_RDWR | os.O_CLOEXEC)
            except OSError as err:
                raise RuntimeFailure(f"open /dev/tty: {(err.strerror or str(err)).lower()}") from None
            self._own_host = True
        self._ours, self.child_end = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        self._master = -1

    def receive(self) -> int:
        """The pty master, sized as our terminal; before the process starts, so it never sees a 0x0 terminal."""
        if self._master < 0:
            self.child_end.close()
            self._master = _receive_fd(self._ours)
            self._ours.close()
            _resize(self.host, self._master)
        return self._master

    def run(self, pid: int) -> int:
        """Relay until ``pid`` exits; its exit status (128+N if killed by signal N)."""
        master = self.receive()
        saved = termios.tcgetattr(self.host)
        resize = {_signal.SIGWINCH: lambda _s, _f: _resize(self.host, master)}
        try:
            with forwarding.forwarding_to(pid, resize):
                _set_raw(self.host, saved)
                _copy(master, pid)
        finally:
            termios.tcsetattr(self.host, termios.TCSADRAIN, saved)
            os.close(master)
            if self._own_host:
                os.close(self.host)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code


def _receive_fd(sock: _socket.socket) -> int:
    _, ancillary, _, _ = sock.recvmsg(4096, _socket.CMSG_SPACE(4))
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fd = int.from_bytes(data[:4], "little", signed=True)
            os.set_inheritable(fd, False)
            return fd
    raise RuntimeFailure("exec: the container did not send its console")


def _set_raw(fd: int, saved: list[Any]) -> None:
    # cfmakeraw(3), as runc's console.SetRaw.
    mode = list(saved)
    mode[0] = int(mode[0]) & ~(
        termios.IGNBRK
        | termios.BRKINT
        | termios.PARMRK
        | termios.ISTRIP
        | termios.INLCR
        | termios.IGNCR
        | termios.ICRNL
        | termios.IXON
    )
    mode[1] = int(mode[1]) & ~termios.OPOST
    mode[2] = (int(mode[2]) & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    mode[3] = int(mode[3]) & ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    termios.tcsetattr(fd, termios.TCSADRAIN, mode)


def _resize(host: int, master: int) -> None:
    try:
        fcntl.ioctl(master, TIOCSWINSZ, fcntl.ioctl(host, TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass


def _copy(master: int, pid: int) -> None:
    """stdin to the pty and the pty to stdout, until the pty's last slave is closed (EIO)."""
    reading = [0, master]
    while True:
        ready, _, _ = select.select(reading, [], [])
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""  # EIO: the process and everything it left on the pty are gone
            if not data:
                return
            _write_all(1, data)
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                reading.remove(0)
            else:
                _write_all(master, data)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]
