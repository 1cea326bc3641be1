"""HTTP/1.1 client connections (RFC 9112), the part of http.client the registry client uses.

Why not http.client: importing it costs a pull a sixth of its start-up. It parses
headers with the ``email`` package (email.parser, email.message, email.utils,
datetime, calendar, base64mime, quoprimime...) and imports ``ssl`` whether or not
the registry speaks TLS; together ~13 ms of every ``hull pull``'s ~60 ms before the
first request. What a registry needs is small: a request line and headers, a body
from bytes or a file object, and a response read as a status line, headers and a
body framed by Content-Length, chunked transfer coding (RFC 9112 7.1) or the end
of the connection (RFC 9112 6.3), over a connection kept alive between requests.
``ssl`` is imported for https connections only.

The interface is http.client's, as far as hull.distribution.client uses it:
``Connection.request``/``getresponse``/``close``/``sock``; ``Response.status``,
``reason``, ``getheader``, ``getheaders``, ``read(n)`` (``b""`` at the end;
``length`` the Content-Length bytes still missing when the peer closed early),
``isclosed``/``close``. Errors: OSError from the socket, ``RemoteDisconnected``
(a ConnectionResetError) when a kept-alive connection was closed before any
answer, ``HTTPException`` for a malformed answer or a chunked body cut short.
"""

from __future__ import annotations

import _socket
import io

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    import ssl
    from collections.abc import Iterator, Mapping
    from typing import BinaryIO

MAX_LINE = 65536  # http.client's _MAXLINE: a header or status line longer than this is refused
MAX_HEADERS = 100  # http.client's _MAXHEADERS
BODY_METHODS = ("POST", "PUT", "PATCH")  # http.client sends Content-Length: 0 for these without a body
SEND_CHUNK = 1 << 20


class HTTPException(Exception):
    """A malformed answer, or a body that ended before its framing said."""


class RemoteDisconnected(ConnectionResetError):
    """The server closed the connection before sending a status line."""


def _create_connection(host: str, port: int, timeout: float | None) -> _socket.socket:
    """socket.create_connection on the C module: ``import socket`` (its enums) costs a pull ~3 ms."""
    # An ASCII host name goes to getaddrinfo as bytes: a str would be encoded with the "idna"
    # codec, whose import (encodings.idna, stringprep, unicodedata) costs a millisecond.
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    error: OSError | None = None
    for family, kind, proto, _canon, address in _socket.getaddrinfo(name, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind | _socket.SOCK_CLOEXEC, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as err:
            sock.close()
            error = err
    raise error or OSError(f"getaddrinfo returned no address for {host}")


class _SocketIO(io.RawIOBase):
    """The raw stream under the buffered reader of a plain socket (socket.SocketIO's part we use)."""

    def __init__(self, sock: _socket.socket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._sock.recv_into(buffer)


def split_netloc(netloc: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` (``[v6]:port`` for IPv6) -> (host without brackets, port)."""
    host, port = netloc, default_port
    colon = netloc.rfind(":")
    if colon > netloc.rfind("]"):
        text = netloc[colon + 1 :]
        if text:
            if not text.isdigit():
                raise HTTPException(f"nonnumeric port: {text!r}")
            port = int(text)
        host = netloc[:colon]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


class Response:
    """One answer; its body is read with ``read(n)``. Closing it before the body's end makes the
    connection unusable (``Connection`` then opens a new one)."""

    def __init__(self, conn: Connection, method: str) -> None:
        self._conn = conn
        fp = conn.fp
        assert fp is not None
        while True:
            line = fp.readline(MAX_LINE + 1)
            if not line:
                raise RemoteDisconnected("Remote end closed connection without response")
            if len(line) > MAX_LINE:
                raise HTTPException("status line too long")
            version, _, rest = line.decode("iso-8859-1").rstrip("\r\n").partition(" ")
            code, _, reason = rest.partition(" ")
            if not version.startswith("HTTP/") or len(code) != 3 or not code.isdigit():
                raise HTTPException(f"bad status line: {line[:80]!r}")
            self.status = int(code)
            self.reason = reason.strip()
            self.version = version
            self._headers = self._read_headers()
            if self.status != 100:  # 100 Continue is followed by the real answer (RFC 9110 15.2.1)
                break
        self._chunked = "chunked" in self._field("Transfer-Encoding").lower()
        self.length: int | None = None
        self._chunk_left: int | None = None
        self._closed = False
        self.will_close = self.version == "HTTP/1.0" or "close" in self._field("Connection").lower()
        if method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200:
            self.length = 0
        elif not self._chunked:
            value = self._field("Content-Length")
            if value:
                try:
                    self.length = int(value)
                except ValueError:
                    raise HTTPException(f"bad Content-Length: {value!r}") from None
                if self.length < 0:
                    raise HTTPException(f"bad Content-Length: {value!r}")
            else:
                self.will_close = True  # the body ends with the connection (RFC 9112 6.3, item 8)
        if self.length == 0:
            self._done()

    def _read_headers(self) -> list[tuple[str, str]]:
        fp = self._conn.fp
        assert fp is not None
        headers: list[tuple[str, str]] = []
        while True:
            line = fp.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE:
                raise HTTPException("header line too long")
            if line in (b"\r\n", b"\n", b""):
                return headers
            if len(headers) >= MAX_HEADERS:
                raise HTTPException(f"more than {MAX_HEADERS} headers")
            text = line.decode("iso-8859-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and headers:  # obsolete line folding (RFC 9112 5.2)
                name, value = headers[-1]
                headers[-1] = (name, f"{value} {text.strip()}")
                continue
            name, colon, value = text.partition(":")
            if not colon:
                raise HTTPException(f"bad header line: {text[:80]!r}")
            headers.append((name.strip(), value.strip()))

    def getheader(self, name: str, default: str | None = None) -> str | None:
        """The field's value, several lines of one name joined with ", " as http.client does."""
        lower = name.lower()
        values = [v for k, v in self._headers if k.lower() == lower]
        return ", ".join(values) if values else default

    def _field(self, name: str) -> str:
        return self.getheader(name) or ""

    def getheaders(self) -> list[tuple[str, str]]:
        return list(self._headers)

    @property
    def headers(self) -> Mapping[str, str]:
        return {k: v for k, v in self._headers}

    def isclosed(self) -> bool:
        return self._closed

    def read(self, amt: int) -> bytes:
        """Up to ``amt`` bytes of the body; ``b""`` at its end (or when the peer closed early, with
        ``length`` left at what is missing)."""
        if self._closed or amt <= 0:
            return b""
        fp = self._conn.fp
        assert fp is not None
        if self._chunked:
            parts = []  # as http.client: up to ``amt`` across chunk boundaries, short only at the end
            while amt > 0 and (piece := self._read_chunked(amt)):
                parts.append(piece)
                amt -= len(piece)
            return b"".join(parts)
        if self.length is not None:
            amt = min(amt, self.length)
        data = fp.read(amt)
        if self.length is not None:
            self.length -= len(data)
            if self.length == 0:
                self._done()
            elif not data:
                self._lost()
        elif not data:
            self._done()
        return data

    def _read_chunked(self, amt: int) -> bytes:
        fp = self._conn.fp
        assert fp is not None
        if not self._chunk_left:
            line = fp.readline(MAX_LINE + 1)
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                self._lost()
                raise HTTPException("chunked body cut short or malformed") from None
            if size == 0:
                self._read_headers()  # the trailer section, ignored
                self._done()
                return b""
            self._chunk_left = size
        data = fp.read(min(amt, self._chunk_left))
        if not data:
            self._lost()
            raise HTTPException("chunked body cut short")
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and fp.read(2) != b"\r\n":
            self._lost()
            raise HTTPException("chunked body: no CRLF after a chunk")
        return data

    def _done(self) -> None:
        self._closed = True
        if self.will_close:
            self._conn.close()
        else:
            self._conn.response_done()

    def _lost(self) -> None:
        self._closed = True
        self._conn.close()

    def close(self) -> None:
        """Done with it; a body not read to its end leaves the connection unusable, so it is closed."""
        if not self._closed:
            self._lost()


class Connection:
    """One HTTP/1.1 connection to ``netloc`` (``host[:port]``), opened on the first request and kept
    alive between requests; TLS with ``context`` when given."""

    def __init__(
        self, netloc: str, *, timeout: float | None = None, context: ssl.SSLContext | None = None, tls: bool = False
    ) -> None:
        self.netloc = netloc
        self.tls = tls or context is not None
        self.host, self.port = split_netloc(netloc, 443 if self.tls else 80)
        self.timeout = timeout
        self.context = context
        self.sock: _socket.socket | socket.socket | None = None
        self.fp: BinaryIO | None = None
        self._busy = False
        self._method = "GET"

    def connect(self) -> None:
        raw = _create_connection(self.host, self.port, self.timeout)
        try:
            raw.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if not self.tls:
                self.sock = raw
                self.fp = io.BufferedReader(_SocketIO(raw), 65536)
                return
            import socket
            import ssl

            context = self.context or ssl.create_default_context()
            sock = context.wrap_socket(socket.socket(fileno=raw.detach()), server_hostname=self.host)
        except BaseException:
            raw.close()
            raise
        self.sock = sock
        self.fp = sock.makefile("rb")

    def close(self) -> None:
        self._busy = False
        fp, sock = self.fp, self.sock
        self.fp = self.sock = None
        if fp is not None:
            fp.close()
        if sock is not None:
            sock.close()

    def response_done(self) -> None:
        self._busy = False

    def request(
        self, method: str, target: str, body: bytes | BinaryIO | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        if self._busy:
            self.close()  # the previous answer was not read to its end: its bytes would come next
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        fields = dict(headers or {})
        names = {k.lower() for k in fields}
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.netloc}"]
        if "accept-encoding" not in names:
            lines.append("Accept-Encoding: identity")  # as http.client: no compressed answers to undo
        chunked = False
        if "content-length" not in names and "transfer-encoding" not in names:
            if isinstance(body, bytes):
                fields["Content-Length"] = str(len(body))
            elif body is not None:
                fields["Transfer-Encoding"] = "chunked"
                chunked = True
            elif method in BODY_METHODS:
                fields["Content-Length"] = "0"
        lines.extend(f"{k}: {v}" for k, v in fields.items())
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1")
        self._busy = True
        self._method = method
        if isinstance(body, bytes) and len(body) <= SEND_CHUNK:
            self.sock.sendall(head + body)
            return
        self.sock.sendall(head)
        if isinstance(body, bytes):
            self.sock.sendall(body)
        elif body is not None:
            for piece in _pieces(body):
                self.sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                self.sock.sendall(b"0\r\n\r\n")

    def getresponse(self) -> Response:
        if self.fp is None:
            raise HTTPException("no request was sent")
        try:
            return Response(self, self._method)
        except BaseException:
            self.close()
            raise


def _pieces(body: BinaryIO) -> Iterator[bytes]:
    while piece := body.read(SEND_CHUNK):
        yield piece
