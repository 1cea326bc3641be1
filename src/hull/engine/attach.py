"""The attach protocol between a container's monitor and ``hull`` commands, and its client side.

The monitor (engine.monitor) listens on ``<runroot>/c/<id>/attach``, an
AF_UNIX SOCK_SEQPACKET socket, so that each message is one frame whose first
byte says what it is (as conmon's attach socket, whose first byte names the
stream):

    client -> monitor   H<flags>  hello: "i" stdin, "o" stdout, "e" stderr ("" only waits)
                        S         start the created container
                        0<data>   stdin      C  stdin closed      R<rows> <cols>  terminal size
    monitor -> client   1<data>   stdout     2<data>  stderr
                        s<pid>    started    E<message>  start failed
                        x<code>   the container exited with code (its teardown and --rm's removal follow)
                        X<code>   the container exited and the monitor is done (after --rm's removal)
"""

from __future__ import annotations

import _socket
import os
import select
from collections.abc import Callable

HELLO = b"H"
START = b"S"
STDIN = b"0"
STDIN_CLOSED = b"C"
RESIZE = b"R"
STDOUT = b"1"
STDERR = b"2"
STARTED = b"s"
START_FAILED = b"E"
EXIT_CODE = b"x"
EXITED = b"X"

FRAME = 65536 + 1
# ctrl-p ctrl-q, docker's default detach keys.
DETACH_KEYS = b"\x10\x11"


def _short(path: str, call: Callable[[str], None]) -> None:
    """``call`` with a name for ``path`` that fits sun_path (107 bytes): through an O_PATH descriptor
    of its directory, since a --runroot plus a 64-hex ID may be longer."""
    if len(path) < 100:
        call(path)
        return
    fd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        call(f"/proc/self/fd/{fd}/{os.path.basename(path)}")
    finally:
        os.close(fd)


# The C module: ``import socket`` builds enums that cost a `hull run` more than its socket calls.
Socket = _socket.socket
_SEQPACKET = _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC


def listen(path: str) -> Socket:
    sock = Socket(_socket.AF_UNIX, _SEQPACKET)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    _short(path, sock.bind)
    os.chmod(path, 0o600)
    sock.listen(16)
    return sock


def accept(listener: Socket) -> Socket:
    fd, _ = listener._accept()  # type: ignore[attr-defined]
    os.set_inheritable(fd, False)
    return Socket(fileno=fd)


def connect(path: str) -> Socket | None:
    """A connection to the monitor, or None when there is no monitor (it exited or died)."""
    sock = Socket(_socket.AF_UNIX, _SEQPACKET)
    try:
        _short(path, sock.connect)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    return sock


class Detached(Exception):
    """The user typed the detach keys."""


class Session:
    """One attached client: streams the container's output to our fds, our stdin to it."""

    def __init__(self, sock: Socket, *, stdin: bool, stdout: bool, stderr: bool) -> None:
        self.sock = sock
        self.stdin = stdin
        flags = ("i" if stdin else "") + ("o" if stdout else "") + ("e" if stderr else "")
        sock.send(HELLO + flags.encode())

    def start(self) -> int:
        """Ask the monitor to start the container; its PID (ContainerStartError-worthy text raised as OSError)."""
        self.sock.send(START)
        while True:
            frame = self.sock.recv(FRAME)
            if not frame:
                raise ConnectionError("the container's monitor exited before the container started")
            kind = frame[:1]
            if kind == STARTED:
                return int(frame[1:])
            if kind == START_FAILED:
                raise StartFailed(frame[1:].decode(errors="replace"))
            if kind == EXITED:
                raise StartFailed("the container exited before it started")
            self._output(frame)

    def resize(self, fd: int) -> None:
        import fcntl
        import struct
        import termios

        try:
            rows, cols = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))[:2]
        except OSError:
            return
        self.sock.send(RESIZE + f"{rows} {cols}".encode())

    def _output(self, frame: bytes) -> None:
        kind = frame[:1]
        if kind == STDOUT:
            _write_all(1, frame[1:])
        elif kind == STDERR:
            _write_all(2, frame[1:])

    def run(self, detach_keys: bool = False) -> int | None:
        """Relay until the container exits: its exit code; None when the monitor went away first."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        if self.stdin:
            poller.register(0, select.POLLIN)
        self._code: int | None = None
        try:
            return self._relay(poller, detach_keys)
        except (ConnectionResetError, BrokenPipeError):
            return self._code  # the monitor went away: its early word, else the record, tells

    def _relay(self, poller: select.poll, detach_keys: bool) -> int | None:
        reading_stdin = self.stdin
        while True:
            for fd, _event in poller.poll():
                if fd == 0:
                    data = _read(0)
                    if detach_keys and DETACH_KEYS in data:
                        raise Detached()
                    if data:
                        self.sock.send(STDIN + data)
                    else:
                        self.sock.send(STDIN_CLOSED)
                        poller.unregister(0)
                        reading_stdin = False
                    continue
                frame = self.sock.recv(FRAME)
                if not frame:
                    return self._code
                if frame[:1] == EXITED:
                    return int(frame[1:])
                if frame[:1] == EXIT_CODE:
                    self._code = int(frame[1:])
                    if reading_stdin:  # nothing reads it any more
                        poller.unregister(0)
                        reading_stdin = False
                    continue
                self._output(frame)


class StartFailed(Exception):
    pass


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        except BrokenPipeError:
            return
        view = view[n:]
