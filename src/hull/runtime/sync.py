"""Messages between the runtime and the container's init while it is set up.

One JSON object per line over a pair of pipes. The runtime end of a pipe
closing is how init learns the runtime died (killed mid-create): it then
exits, and its mount namespace with everything mounted in it goes too.
"""

from __future__ import annotations

import os

from hull.oci import jsonfast

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class ChannelClosed(Exception):
    pass


class Channel:
    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._buffer = b""
        self._unread: list[dict[str, Any]] = []

    def send(self, kind: str, **fields: Any) -> None:
        data = jsonfast.dumps({"t": kind, **fields}).encode() + b"\n"
        while data:
            data = data[os.write(self.write_fd, data) :]

    def recv(self) -> dict[str, Any]:
        if self._unread:
            return self._unread.pop(0)
        while b"\n" not in self._buffer:
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                raise ChannelClosed()
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = jsonfast.loads(line)
        return message

    def unread(self, message: dict[str, Any]) -> None:
        """Queue ``message`` to be received again, after any queued before it."""
        self._unread.append(message)

    def expect(self, kind: str) -> dict[str, Any]:
        """The next message, which must be ``kind``; an ``error`` message is re-raised."""
        message = self.recv()
        if message["t"] == "error":
            raise ChildError(message["msg"])
        if message["t"] != kind:
            raise ChildError(f"internal: expected {kind!r} from container init, got {message['t']!r}")
        return message

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class ChildError(Exception):
    """The container's init reported a failure; the message is for the user."""


def pair() -> tuple[Channel, Channel]:
    """(runtime end, init end); every fd close-on-exec so none leaks into the container."""
    to_child_r, to_child_w = os.pipe2(os.O_CLOEXEC)
    to_parent_r, to_parent_w = os.pipe2(os.O_CLOEXEC)
    return Channel(to_parent_r, to_child_w), Channel(to_child_r, to_parent_w)
