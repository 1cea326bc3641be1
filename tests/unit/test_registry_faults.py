"""The registry client under faults, against small HTTP servers on loopback that misbehave on purpose:
5xx and 429 answers, connections dropped mid-blob, stalls, corrupted bytes, servers that ignore Range,
a 416 in a chunked upload. The waits between attempts go through ``Retry.sleep``, recorded instead of
slept, so the tests see the backoff the client chose and stay fast."""

from __future__ import annotations

import email.utils
import hashlib
import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hull.distribution import RegistryError, TransportError
from hull.distribution.client import Registry, Retry, retry_after
from hull.distribution.pull import _fetch
from hull.image.errors import DigestMismatch
from hull.image.store import LayoutStore
from hull.oci import media_types as mt
from hull.oci.image import Descriptor

BLOB = os.urandom(300_000)
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
REPO = "test/faults"

Handler = Callable[[BaseHTTPRequestHandler, int], None]


class Server:
    """Each request goes to ``handle(handler, n)`` (n counts requests from 0), which writes the answer
    itself, so it can stop half-way or stall. ``seen`` keeps (method, path, headers) of each request."""

    def __init__(self, handle: Handler) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.bodies: list[bytes] = []
        outer = self
        lock = threading.Lock()

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with lock:
                    n = len(outer.seen)
                    outer.seen.append((self.command, self.path, dict(self.headers.items())))
                    outer.bodies.append(body)
                handle(self, n)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def answer(h: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
    h.send_response(status)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


def blob_answer(h: BaseHTTPRequestHandler, data: bytes = BLOB, *, cut: int = -1, ranges: bool = True) -> None:
    """The blob, honouring ``Range: bytes=N-`` when ``ranges``; with ``cut`` >= 0, the connection is
    closed after that many body bytes (Content-Length still promises them all)."""
    start = 0
    wanted = h.headers.get("Range", "")
    if ranges and wanted.startswith("bytes=") and wanted.endswith("-"):
        start = int(wanted[6:-1])
    body = data[start:]
    h.send_response(206 if start else 200)
    h.send_header("Content-Length", str(len(body)))
    h.send_header("ETag", '"v1"')
    if start:
        h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
    h.end_headers()
    if cut >= 0:
        h.wfile.write(body[:cut])
        h.wfile.flush()
        h.close_connection = True
        h.connection.shutdown(2)
        return
    h.wfile.write(body)


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Server]]:
    servers: list[Server] = []

    def start(handle: Handler) -> Server:
        servers.append(Server(handle))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def client(server: Server, attempts: int = 4, **kw: Any) -> tuple[Registry, list[float]]:
    waits: list[float] = []
    retry = Retry(attempts=attempts, backoff=0.01, max_retry_after=kw.pop("max_retry_after", 60.0))
    retry.sleep = waits.append
    return Registry(server.host, retry=retry, **kw), waits


def fetch(store: LayoutStore, registry: Registry) -> None:
    with store.lease() as lease:
        _fetch(registry, store, REPO, Descriptor(mt.LAYER_GZIP, DIGEST, len(BLOB)), lease)


def partials(store: LayoutStore) -> list[str]:
    folder = Path(store.root) / ".hull" / "ingest"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# ------------------------------------------------------------ retries


def test_5xx_answers_are_retried_with_growing_jittered_backoff(serve: Callable[[Handler], Server]) -> None:
    codes = [503, 502, 500]

    def handle(h: BaseHTTPRequestHandler, n: int) -> None:
        if n < len(codes):
            answer(h, codes[n], b'{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}')
        else:
            answer(h, 200, b"{}")

    server = serve(handle)
    registry, waits = client(server)
    registry.ping()
    assert len(server.seen) == 4
    # backoff 0.01 * 2**n with equal jitter: each wait within [step/2, step]
    assert len(waits) == 3
    for n, wait in enumerate(waits):
        step = 0.01 * 2**n
        assert step / 2 <= wait <= step


def test_retries_are_bounded_and_the_last_error_is_the_registrys(serve: Callable[[Handler], Server]) -> None:
    server = serve(lambda h, n: answer(h, 500, b'{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}'))
    registry, waits = client(server, attempts=2)
    with pytest.raises(RegistryError, match=r"500 Internal Server Error \(UNKNOWN: disk on fire\)"):
        registry.ping()
    assert len(server.seen) == 3 and len(waits) == 2


def test_a_4xx_other_than_429_is_not_retried(serve: Callable[[Handler], Server]) -> None:
    server = serve(lambda h, n: answer(h, 404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"x"}]}'))
    registry, waits = client(server)
    assert registry.blob_exists(REPO, DIGEST) is None
    assert len(server.seen) == 1 and waits == []


def test_429_waits_what_retry_after_says_in_seconds(serve: Callable[[Handler], Server]) -> None:
    server = serve(lambda h, n: answer(h, 429, headers={"Retry-After": "7"}) if n == 0 else answer(h, 200))
    registry, waits = client(server)
    registry.ping()
    assert waits == [7.0]


def test_429_with_an_http_date_waits_until_then(serve: Callable[[Handler], Server]) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    server = serve(lambda h, n: answer(h, 429, headers={"Retry-After": when}) if n == 0 else answer(h, 200))
    registry, waits = client(server)
    registry.ping()
    assert len(waits) == 1 and 28 <= waits[0] <= 31


def test_retry_after_parses_both_forms_and_rejects_nonsense() -> None:
    now = 1_700_000_000.0
    assert retry_after("120", now) == 120.0
    assert retry_after(email.utils.formatdate(now + 90, usegmt=True), now) == pytest.approx(90, abs=1)
    assert retry_after(email.utils.formatdate(now - 90, usegmt=True), now) == 0.0  # in the past: now
    assert retry_after("soon", now) is None
    assert retry_after("", now) is None


def test_429_asking_for_longer_than_the_bound_fails_at_once_naming_it(serve: Callable[[Handler], Server]) -> None:
    server = serve(lambda h, n: answer(h, 429, headers={"Retry-After": "3600"}))
    registry, waits = client(server, max_retry_after=30)
    with pytest.raises(RegistryError, match=r"429 Too Many Requests, retry after 3600 s \(more than the 30 s"):
        registry.ping()
    assert len(server.seen) == 1 and waits == []


def test_a_refused_connection_is_retried_then_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    retry = Retry(attempts=2, backoff=0.01)
    waits: list[float] = []
    retry.sleep = waits.append
    registry = Registry(f"127.0.0.1:{port}", retry=retry)
    with pytest.raises(TransportError, match="Connection refused"):
        registry.ping()
    assert len(waits) == 2


def test_a_stalled_answer_times_out_and_is_retried(serve: Callable[[Handler], Server]) -> None:
    def handle(h: BaseHTTPRequestHandler, n: int) -> None:
        if n == 0:
            time.sleep(0.5)  # longer than the client's timeout
        answer(h, 200)

    server = serve(handle)
    registry, waits = client(server, timeout=0.15)
    registry.ping()
    assert len(server.seen) == 2 and len(waits) == 1


# ------------------------------------------------------------ resumed downloads


def test_a_blob_cut_mid_body_resumes_with_range_from_the_byte_reached(
    tmp_path: Path, serve: Callable[[Handler], Server]
) -> None:
    server = serve(lambda h, n: blob_answer(h, cut=100_000 if n == 0 else -1))
    registry, _waits = client(server)
    store = LayoutStore(str(tmp_path / "store"))
    fetch(store, registry)
    assert store.read(DIGEST, 1 << 20) == BLOB
    second = server.seen[1][2]
    assert second["Range"] == "bytes=100000-"
    assert second["If-Range"] == '"v1"'  # the first answer's validator
    assert partials(store) == []


def test_a_server_that_ignores_range_gets_the_whole_blob_again(
    tmp_path: Path, serve: Callable[[Handler], Server]
) -> None:
    server = serve(lambda h, n: blob_answer(h, cut=100_000 if n == 0 else -1, ranges=False))
    registry, _waits = client(server)
    store = LayoutStore(str(tmp_path / "store"))
    fetch(store, registry)
    assert store.read(DIGEST, 1 << 20) == BLOB  # not the first 100000 bytes twice
    assert server.seen[1][2]["Range"] == "bytes=100000-"


def test_a_206_for_another_range_is_not_joined(tmp_path: Path, serve: Callable[[Handler], Server]) -> None:
    def handle(h: BaseHTTPRequestHandler, n: int) -> None:
        if n == 0:
            blob_answer(h, cut=100_000)
        elif n == 1:  # claims 206 but from byte 0
            h.send_response(206)
            h.send_header("Content-Range", f"bytes 0-{len(BLOB) - 1}/{len(BLOB)}")
            h.send_header("Content-Length", str(len(BLOB)))
            h.end_headers()
            h.wfile.write(BLOB)
        else:
            blob_answer(h)

    server = serve(handle)
    registry, _waits = client(server)
    store = LayoutStore(str(tmp_path / "store"))
    fetch(store, registry)
    assert store.read(DIGEST, 1 << 20) == BLOB
    assert "Range" not in server.seen[2][2]


def test_a_pull_that_gave_up_leaves_its_bytes_for_the_next_one(
    tmp_path: Path, serve: Callable[[Handler], Server]
) -> None:
    server = serve(lambda h, n: blob_answer(h, cut=50_000))  # a registry that always dies mid-blob
    registry, _waits = client(server, attempts=1)
    store = LayoutStore(str(tmp_path / "store"))
    with pytest.raises(TransportError, match="connection lost while reading"):
        fetch(store, registry)
    assert not store.has(DIGEST)
    partial = Path(store.root) / ".hull" / "ingest" / f"partial-sha256-{DIGEST[7:]}"
    assert partial.stat().st_size == 100_000  # two answers of 50000, joined

    # A new process: the store reopened (its stale-file cleaning keeps partial downloads).
    store = LayoutStore(str(tmp_path / "store"))
    healthy = serve(lambda h, n: blob_answer(h))
    registry, _waits = client(healthy)
    fetch(store, registry)
    assert store.read(DIGEST, 1 << 20) == BLOB
    assert healthy.seen[0][2]["Range"] == "bytes=100000-"
    assert healthy.seen[0][2]["If-Range"] == '"v1"'  # kept beside the partial file
    assert partials(store) == []


def test_gc_removes_a_partial_download_nobody_is_continuing(tmp_path: Path, serve: Callable[[Handler], Server]) -> None:
    server = serve(lambda h, n: blob_answer(h, cut=50_000))
    registry, _waits = client(server, attempts=0)
    store = LayoutStore(str(tmp_path / "store"))
    with pytest.raises(TransportError):
        fetch(store, registry)
    assert partials(store)
    store.gc()
    assert partials(store) == []


# ------------------------------------------------------------ verification under retries


def test_a_corrupted_blob_is_discarded_and_not_fetched_again(
    tmp_path: Path, serve: Callable[[Handler], Server]
) -> None:
    bad = bytearray(BLOB)
    bad[1234] ^= 0xFF
    server = serve(lambda h, n: blob_answer(h, bytes(bad)))
    registry, _waits = client(server)
    store = LayoutStore(str(tmp_path / "store"))
    with pytest.raises(DigestMismatch, match=f"expected {DIGEST}"):
        fetch(store, registry)
    assert not store.has(DIGEST) and store.blobs() == []
    assert partials(store) == []
    assert len(server.seen) == 1  # one whole answer with wrong bytes: final, no retry hides it


def test_a_bad_join_gets_one_fresh_download_and_only_one(tmp_path: Path, serve: Callable[[Handler], Server]) -> None:
    store = LayoutStore(str(tmp_path / "store"))
    ingest = Path(store.root) / ".hull" / "ingest"
    ingest.mkdir(parents=True, exist_ok=True)
    (ingest / f"partial-sha256-{DIGEST[7:]}").write_bytes(b"\0" * 1000)  # not the blob's first bytes
    server = serve(lambda h, n: blob_answer(h))
    registry, _waits = client(server)
    fetch(store, registry)
    assert store.read(DIGEST, 1 << 20) == BLOB
    assert [s[2].get("Range") for s in server.seen] == ["bytes=1000-", None]

    # The same with a registry whose blob is wrong: the fresh download's mismatch is final.
    bad = bytearray(BLOB)
    bad[-1] ^= 1
    store2 = LayoutStore(str(tmp_path / "store2"))
    ingest2 = Path(store2.root) / ".hull" / "ingest"
    ingest2.mkdir(parents=True, exist_ok=True)
    (ingest2 / f"partial-sha256-{DIGEST[7:]}").write_bytes(BLOB[:1000])
    broken = serve(lambda h, n: blob_answer(h, bytes(bad)))
    registry, _waits = client(broken)
    with pytest.raises(DigestMismatch):
        fetch(store2, registry)
    assert len(broken.seen) == 2 and store2.blobs() == [] and partials(store2) == []


# ------------------------------------------------------------ chunked upload and 416


def test_a_chunked_upload_answered_416_asks_the_status_and_continues(serve: Callable[[Handler], Server]) -> None:
    stored = bytearray()
    patches = 0

    def handle(h: BaseHTTPRequestHandler, n: int) -> None:
        nonlocal patches
        body = server.bodies[n]
        if h.command == "POST":
            answer(h, 202, headers={"Location": "/v2/test/faults/blobs/uploads/u1?_state=0"})
        elif h.command == "PATCH":
            patches += 1
            start = int(h.headers["Content-Range"].split("-")[0])
            if start != len(stored):
                answer(h, 416)
                return
            stored.extend(body)
            if patches == 2:
                # The registry stored the chunk but its answer is lost: the client's next PATCH
                # repeats it and gets 416.
                h.close_connection = True
                h.connection.shutdown(2)
                return
            answer(h, 202, headers={"Location": f"/v2/test/faults/blobs/uploads/u1?_state={len(stored)}"})
        elif h.command == "GET":
            answer(
                h,
                204,
                headers={
                    "Range": f"0-{len(stored) - 1}",
                    "Location": f"/v2/test/faults/blobs/uploads/u1?s={len(stored)}",
                },
            )
        elif h.command == "PUT":
            ok = hashlib.sha256(stored).hexdigest() == DIGEST[7:]
            answer(h, 201 if ok else 400, headers={"Location": f"/v2/test/faults/blobs/{DIGEST}"})

    server = serve(handle)
    registry, _waits = client(server)
    assert registry.upload_blob(REPO, io.BytesIO(BLOB), DIGEST, len(BLOB), chunk_size=100_000) == "uploaded"
    assert bytes(stored) == BLOB
    methods = [s[0] for s in server.seen]
    assert methods == ["POST", "PATCH", "PATCH", "PATCH", "GET", "PATCH", "PUT"]
    assert server.seen[-2][2]["Content-Range"] == "200000-299999"


def test_a_second_writer_of_the_same_blob_does_not_share_the_partial_file(tmp_path: Path) -> None:
    store = LayoutStore(str(tmp_path / "store"))
    with store.resumable(DIGEST, len(BLOB)) as first:
        first.write(BLOB[:1000])
        with store.resumable(DIGEST, len(BLOB)) as second:
            assert second.offset == 0 and second.path != first.path
            second.write(BLOB)
            second.commit()
        first.write(BLOB[1000:])
        first.commit()  # both succeed with the same content, as two ingests of one blob do
    assert store.read(DIGEST, 1 << 20) == BLOB and partials(store) == []
