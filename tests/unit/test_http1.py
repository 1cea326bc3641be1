"""hull.distribution.http1 against scripted answers from a raw socket on loopback: the body framings
of RFC 9112 (Content-Length, chunked with extensions and trailers, until the connection closes),
keep-alive and Connection: close, 100 Continue, HEAD, folded header lines, and what a cut answer
gives (``length`` left over, HTTPException for a chunked body, RemoteDisconnected before any status)."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from hull.distribution import http1

Script = Callable[[socket.socket, bytes], None]  # (connection, the request head and body as read) -> answers


class RawServer:
    """Accepts connections; for each request head read, calls the next script of ``scripts``."""

    def __init__(self, scripts: list[Script]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.netloc = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.scripts = list(scripts)
        self.requests: list[bytes] = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.scripts:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                buf = b""
                while self.scripts:
                    while b"\r\n\r\n" not in buf:
                        data = conn.recv(65536)
                        if not data:
                            break
                        buf += data
                    if b"\r\n\r\n" not in buf:
                        break
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    body, buf = buf[:length], buf[length:]
                    self.requests.append(head + b"\r\n\r\n" + body)
                    script = self.scripts.pop(0)
                    script(conn, head)
                    if getattr(script, "closes", False):
                        break

    def close(self) -> None:
        self.sock.close()


def answer(raw: bytes, closes: bool = False) -> Script:
    def script(conn: socket.socket, _head: bytes) -> None:
        conn.sendall(raw)
        if closes:
            conn.shutdown(socket.SHUT_RDWR)

    script.closes = closes  # type: ignore[attr-defined]
    return script


@pytest.fixture
def server() -> Iterator[Callable[[list[Script]], RawServer]]:
    made: list[RawServer] = []

    def start(scripts: list[Script]) -> RawServer:
        made.append(RawServer(scripts))
        return made[-1]

    yield start
    for s in made:
        s.close()


def body(resp: http1.Response, n: int = 3) -> bytes:
    out = b""
    while piece := resp.read(n):
        out += piece
    return out


def test_keep_alive_with_content_length_and_chunked_bodies(server: Callable[[list[Script]], RawServer]) -> None:
    srv = server(
        [
            answer(b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: "x"\r\n\r\nhello'),
            answer(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"4;ext=1\r\nwiki\r\n6\r\npedia!\r\n0\r\nT: 1\r\n\r\n"
            ),
            answer(b"HTTP/1.1 204 No Content\r\n\r\n"),
        ]
    )
    conn = http1.Connection(srv.netloc, timeout=5)
    conn.request("GET", "/a", headers={"Accept": "x"})
    resp = conn.getresponse()
    assert (resp.status, resp.reason, resp.getheader("etag")) == (200, "OK", '"x"')
    assert body(resp) == b"hello" and resp.isclosed() and resp.length == 0
    conn.request("GET", "/b")
    resp = conn.getresponse()
    assert resp.read(100) == b"wikipedia!"  # across chunk boundaries, as http.client's read(n)
    assert resp.read(100) == b"" and resp.isclosed()
    conn.request("DELETE", "/c")
    assert conn.getresponse().status == 204
    assert srv.connections == 1  # one connection for the three
    assert srv.requests[0].startswith(b"GET /a HTTP/1.1\r\nHost: " + srv.netloc.encode())
    assert b"Accept: x\r\n" in srv.requests[0] and b"Accept-Encoding: identity\r\n" in srv.requests[0]


def test_request_bodies_bytes_file_and_empty_post(server: Callable[[list[Script]], RawServer]) -> None:
    ok = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    srv = server([answer(ok), answer(ok), answer(ok)])
    conn = http1.Connection(srv.netloc, timeout=5)
    conn.request("PUT", "/m", body=b"{}", headers={"Content-Type": "application/json"})
    assert conn.getresponse().status == 201
    conn.request("PATCH", "/u", body=io.BytesIO(b"x" * 3000), headers={"Content-Length": "3000"})
    assert conn.getresponse().status == 201
    conn.request("POST", "/start")
    assert conn.getresponse().status == 201
    assert srv.requests[0].endswith(b"Content-Length: 2\r\n\r\n{}")
    assert srv.requests[1].endswith(b"\r\n\r\n" + b"x" * 3000)
    assert b"Content-Length: 0\r\n" in srv.requests[2]


def test_connection_close_head_continue_and_folded_headers(server: Callable[[list[Script]], RawServer]) -> None:
    srv = server(
        [
            answer(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-A: one\r\n  two\r\nX-A: three\r\n"
                b"Content-Length: 2\r\n\r\nok"
            ),  # fmt: skip
            answer(b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"),  # HEAD: no body whatever the length
            answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nby", closes=True),
            answer(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", closes=True),
        ]
    )
    conn = http1.Connection(srv.netloc, timeout=5)
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("x-a") == "one two, three" and body(resp) == b"ok"
    conn.request("HEAD", "/")
    resp = conn.getresponse()
    assert resp.read(10) == b"" and resp.isclosed() and conn.sock is not None
    conn.request("GET", "/")
    assert body(conn.getresponse()) == b"by"
    assert conn.sock is None  # Connection: close: the next request opens a new one
    conn.request("GET", "/")
    assert body(conn.getresponse()) == b"until the end"
    assert srv.connections == 2


def test_cut_answers(server: Callable[[list[Script]], RawServer]) -> None:
    srv = server(
        [
            answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", closes=True),
            answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", closes=True),
            answer(b"", closes=True),
        ]
    )
    conn = http1.Connection(srv.netloc, timeout=5)
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert body(resp) == b"abc" and resp.length == 7  # the caller sees 7 bytes missing
    conn.request("GET", "/")
    resp = conn.getresponse()
    with pytest.raises(http1.HTTPException, match="cut short"):
        body(resp)
    conn.request("GET", "/")
    with pytest.raises(http1.RemoteDisconnected):
        conn.getresponse()


def test_split_netloc() -> None:
    assert http1.split_netloc("example.com", 443) == ("example.com", 443)
    assert http1.split_netloc("localhost:5000", 80) == ("localhost", 5000)
    assert http1.split_netloc("[::1]:5000", 80) == ("::1", 5000)
    assert http1.split_netloc("[::1]", 443) == ("::1", 443)
    with pytest.raises(http1.HTTPException, match="nonnumeric port"):
        http1.split_netloc("host:x", 80)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5000/v2/a/blobs/sha256:ab?x=1",
        "HTTPS://registry.example/v2/",
        "https://[::1]:5000/v2/a/manifests/1#frag",
        "http://host:1?q=only",
        "http://host",
        "/v2/a/blobs/uploads/uuid?_state=abc&digest=sha256%3A00",
    ],
)
def test_split_url_is_urlsplits(url: str) -> None:
    from urllib.parse import urlsplit

    from hull.distribution.client import split_url

    parts = urlsplit(url)
    assert split_url(url) == (parts.scheme, parts.netloc, parts.path, parts.query)


@pytest.mark.parametrize(
    "ref",
    [
        "https://s3.example/bucket/blob?sig=1",
        "//cdn.example/x",
        "/v2/a/blobs/uploads/uuid?_state=1",
        "/v2/a/../b/tags/list",
        "uploads/next",
        "?n=2&last=x",
    ],
)
def test_join_url_is_urljoins(ref: str) -> None:
    from urllib.parse import urljoin

    from hull.distribution.client import join_url

    base = "http://127.0.0.1:5000/v2/a/tags/list?n=1"
    assert join_url(base, ref) == urljoin(base, ref)
