"""AF_UNIX stream sockets through the C ``_socket`` module.

``import socket`` builds several IntEnum classes at import time; for the few
calls the runtime makes (the start socket, the console socket) the C module
is enough and keeps that cost off every hull-runtime invocation.
"""

from __future__ import annotations

import _socket
import os

Socket = _socket.socket


def _new() -> Socket:
    return _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)


def _in_dir(directory: str, action: str, sock: Socket, name: str) -> None:
    # By relative name, from inside the directory: the full path may exceed sun_path's 108 bytes.
    here = os.open(".", os.O_PATH | os.O_CLOEXEC)
    try:
        os.chdir(directory)
        getattr(sock, action)(name)
    finally:
        os.fchdir(here)
        os.close(here)


def listen(directory: str, name: str) -> Socket:
    sock = _new()
    try:
        _in_dir(directory, "bind", sock, name)
        sock.listen(1)
    except OSError:
        sock.close()
        raise
    return sock


def connect(path: str) -> Socket:
    sock = _new()
    try:
        _in_dir(os.path.dirname(path) or ".", "connect", sock, os.path.basename(path))
    except OSError:
        sock.close()
        raise
    return sock


def accept(listener: Socket) -> Socket:
    fd, _ = listener._accept()  # type: ignore[attr-defined]
    conn = _socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    return conn


def read_all(sock: Socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def shutdown_write(sock: Socket) -> None:
    sock.shutdown(_socket.SHUT_WR)


def send_fd(sock: Socket, fd: int, name: bytes) -> None:
    """One SCM_RIGHTS message carrying ``fd``, with ``name`` as its data (runc's console protocol)."""
    sock.sendmsg([name], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, "little", signed=True))])


def recv_fds(sock: Socket, bufsize: int = 65536, max_fds: int = 4) -> tuple[bytes, list[int]]:
    """One recvmsg: its data and the fds of its SCM_RIGHTS (close-on-exec), empty data at EOF."""
    data, ancdata, _flags, _addr = sock.recvmsg(bufsize, _socket.CMSG_SPACE(4 * max_fds), _socket.MSG_CMSG_CLOEXEC)
    fds = []
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += [int.from_bytes(payload[i : i + 4], "little", signed=True) for i in range(0, usable, 4)]
    return data, fds
