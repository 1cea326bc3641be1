"""The registry client's protocol details against small HTTP servers on loopback: what a registry or a
storage backend sees (headers, ranges, locations) and what the client does with edge answers that the real
registry of tests/integration/test_registry.py never gives (redirects to another host, challenges,
oversized manifests, Link pagination)."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hull.distribution import NotFoundError, Unauthorized
from hull.distribution.client import MAX_MANIFEST, Registry
from hull.image.errors import DigestMismatch, SizeLimitExceeded
from hull.oci import media_types as mt

Answer = tuple[int, dict[str, str], bytes]


class Seen:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes, peer: int) -> None:
        self.method, self.path, self.headers, self.body, self.peer = method, path, headers, body, peer


class Server:
    """An HTTP/1.1 server whose answers come from ``handle``; records every request."""

    def __init__(self, handle: Callable[[Seen], Answer], hang_up: bool = False) -> None:
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Seen(self.command, self.path, dict(self.headers.items()), body, self.client_address[1])
                outer.seen.append(req)
                status, headers, payload = handle(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                # hang_up: close the connection after the answer without saying so, as a registry's
                # idle timeout does between two requests of a client
                self.close_connection = hang_up

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[Seen], Answer]], Server]]:
    servers: list[Server] = []

    def start(handle: Callable[[Seen], Answer], hang_up: bool = False) -> Server:
        servers.append(Server(handle, hang_up))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


class Token:
    """An authenticator that answers a challenge with a fixed bearer token, and records the challenges."""

    def __init__(self) -> None:
        self.challenges: list[str] = []
        self.scopes: list[tuple[str, ...]] = []

    def authorize(self, host: str, scopes: Any, challenge: str | None) -> str | None:
        self.scopes.append(tuple(scopes))
        if challenge is not None:
            self.challenges.append(challenge)
        return "Bearer secret" if self.challenges else None


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_blob_redirect_to_another_host_does_not_carry_credentials(serve: Any) -> None:
    blob = b"layer bytes" * 1000
    storage = serve(lambda req: (200, {}, blob))

    def registry(req: Seen) -> Answer:
        if "Authorization" not in req.headers:
            return 401, {"WWW-Authenticate": 'Bearer realm="http://auth/token",service="reg"'}, b""
        return 307, {"Location": f"http://{storage.host}/bucket/object?sig=1"}, b""

    reg = serve(registry)
    auth = Token()
    client = Registry(reg.host, authenticator=auth)
    data = b"".join(client.open_blob("lib/app", sha(blob)).chunks())
    assert data == blob
    assert auth.challenges == ['Bearer realm="http://auth/token",service="reg"']
    assert auth.scopes[-1] == ("repository:lib/app:pull",)
    assert reg.seen[-1].headers["Authorization"] == "Bearer secret"
    assert storage.seen[0].path == "/bucket/object?sig=1"
    assert "Authorization" not in storage.seen[0].headers


def test_a_challenge_without_credentials_is_one_clear_error(serve: Any) -> None:
    body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}).encode()
    reg = serve(lambda req: (401, {"WWW-Authenticate": 'Basic realm="r"'}, body))
    with pytest.raises(Unauthorized) as info:
        Registry(reg.host).get_manifest("app", "latest")
    assert str(info.value) == (
        f"{reg.host}: GET /v2/app/manifests/latest: 401 Unauthorized (UNAUTHORIZED: authentication required)"
    )


def test_manifest_get_sends_accept_and_verifies_the_digest(serve: Any) -> None:
    doc = json.dumps({"schemaVersion": 2, "mediaType": mt.INDEX, "manifests": []}).encode()
    reg = serve(lambda req: (200, {"Content-Type": mt.INDEX, "Docker-Content-Digest": sha(doc)}, doc))
    client = Registry(reg.host)
    desc, data = client.get_manifest("app", "v1")
    assert (desc.media_type, desc.digest, desc.size, data) == (mt.INDEX, sha(doc), len(doc), doc)
    accept = reg.seen[0].headers["Accept"]
    for media_type in (mt.INDEX, mt.MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST):
        assert media_type in accept
    # asked by digest, served something else: refused
    with pytest.raises(DigestMismatch):
        client.get_manifest("app", sha(b"other"))


def test_manifests_over_4_mib_are_refused(serve: Any) -> None:
    big = b" " * (MAX_MANIFEST + 1)
    reg = serve(lambda req: (200, {"Content-Type": mt.MANIFEST}, big))
    with pytest.raises(SizeLimitExceeded):
        Registry(reg.host).get_manifest("app", "v1")


def test_requests_reuse_one_kept_alive_connection(serve: Any) -> None:
    reg = serve(lambda req: (200, {}, b"{}") if req.path == "/v2/" else (404, {}, b""))
    client = Registry(reg.host)
    client.ping()
    assert client.blob_exists("app", sha(b"x")) is None
    with pytest.raises(NotFoundError):
        client.get_manifest("app", "v1")
    client.ping()
    assert len(reg.seen) == 4
    assert len({req.peer for req in reg.seen}) == 1


def test_a_connection_the_registry_closed_is_replaced_and_the_request_sent_again(serve: Any) -> None:
    blob = b"content"
    reg = serve(lambda req: (201, {}, b"") if req.method == "PUT" else (200, {}, b"{}"), hang_up=True)
    client = Registry(reg.host)
    client.ping()
    client.ping()
    url = "/v2/app/blobs/uploads/x?digest=" + sha(blob)
    headers = {"Content-Length": str(len(blob))}
    client.request("PUT", url, headers=headers, body=io.BytesIO(blob), ok=(201,)).drain()
    assert [r.method for r in reg.seen] == ["GET", "GET", "PUT"]
    assert reg.seen[-1].body == blob  # the file body was sent again from its start
    assert len({r.peer for r in reg.seen}) == 3


def test_tag_list_follows_link_pagination(serve: Any) -> None:
    tags = [f"t{i}" for i in range(5)]

    def registry(req: Seen) -> Answer:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(req.path).query)
        n = int(query["n"][0])
        start = tags.index(query["last"][0]) + 1 if "last" in query else 0
        page = tags[start : start + n]
        headers = {"Content-Type": "application/json"}
        if start + n < len(tags):
            headers["Link"] = f'</v2/app/tags/list?n={n}&last={page[-1]}>; rel="next"'
        return 200, headers, json.dumps({"name": "app", "tags": page}).encode()

    reg = serve(registry)
    assert list(Registry(reg.host).tags("app", page_size=2)) == tags
    assert [r.path for r in reg.seen] == [
        "/v2/app/tags/list?n=2",
        "/v2/app/tags/list?n=2&last=t1",
        "/v2/app/tags/list?n=2&last=t3",
    ]


def test_chunked_upload_sends_content_ranges_to_each_new_location(serve: Any) -> None:
    blob = bytes(range(256)) * 10  # 2560 bytes in chunks of 1000
    state = {"n": 0}

    def registry(req: Seen) -> Answer:
        if req.method == "POST":
            return 202, {"Location": "/v2/app/blobs/uploads/u0?_state=a"}, b""
        if req.method == "PATCH":
            state["n"] += 1
            return 202, {"Location": f"/v2/app/blobs/uploads/u{state['n']}?_state=b"}, b""
        return 201, {"Docker-Content-Digest": sha(blob)}, b""

    reg = serve(registry)
    how = Registry(reg.host).upload_blob("app", io.BytesIO(blob), sha(blob), len(blob), chunk_size=1000)
    assert how == "uploaded"
    patches = [r for r in reg.seen if r.method == "PATCH"]
    assert [r.path for r in patches] == [
        f"/v2/app/blobs/uploads/u{i}?_state={'a' if i == 0 else 'b'}" for i in range(3)
    ]
    assert [r.headers["Content-Range"] for r in patches] == ["0-999", "1000-1999", "2000-2559"]
    assert b"".join(r.body for r in patches) == blob
    put = reg.seen[-1]
    assert (
        put.method == "PUT" and put.path == f"/v2/app/blobs/uploads/u3?_state=b&digest={sha(blob).replace(':', '%3A')}"
    )


def test_mount_falls_back_to_an_upload_when_the_registry_starts_a_session(serve: Any) -> None:
    blob = b"config"

    def registry(req: Seen) -> Answer:
        if req.method == "POST":
            return 202, {"Location": "/v2/app/blobs/uploads/s1"}, b""
        return 201, {}, b""

    reg = serve(registry)
    auth = Token()
    auth.challenges.append("preset")
    how = Registry(reg.host, authenticator=auth).upload_blob(
        "app", io.BytesIO(blob), sha(blob), len(blob), mount_from="other/repo"
    )
    assert how == "uploaded"
    assert reg.seen[0].path == f"/v2/app/blobs/uploads/?mount={sha(blob)}&from=other/repo"
    assert auth.scopes[0] == ("repository:app:pull,push", "repository:other/repo:pull")
    assert reg.seen[1].method == "PUT" and reg.seen[1].body == blob


def test_pull_downloads_layers_concurrently_but_bounded(serve: Any, tmp_path: Any) -> None:
    import time

    from hull.distribution.pull import pull
    from hull.distribution.reference import parse
    from hull.image.store import LayoutStore
    from hull.oci import image as im

    layers = [bytes([i]) * 50_000 for i in range(6)]
    config = im.encode(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(b) for b in layers]}}
    )
    manifest = im.encode(
        {
            "schemaVersion": 2,
            "mediaType": mt.MANIFEST,
            "config": {"mediaType": mt.CONFIG, "digest": sha(config), "size": len(config)},
            "layers": [{"mediaType": mt.LAYER, "digest": sha(b), "size": len(b)} for b in layers],
        }
    )
    blobs = {sha(b): b for b in [config, *layers]}
    lock = threading.Lock()
    flight = {"now": 0, "max": 0}

    def registry(req: Seen) -> Answer:
        if "/manifests/" in req.path:
            return 200, {"Content-Type": mt.MANIFEST}, manifest
        with lock:
            flight["now"] += 1
            flight["max"] = max(flight["max"], flight["now"])
        time.sleep(0.1)
        with lock:
            flight["now"] -= 1
        return 200, {}, blobs[req.path.rsplit("/", 1)[1]]

    reg = serve(registry)
    store = LayoutStore(str(tmp_path / "store"))
    result = pull(store, parse(f"{reg.host}/app:1"), concurrency=2)
    assert flight["max"] == 2
    assert sorted(result.fetched) == sorted(blobs)
    assert store.resolve(f"{reg.host}/app:1").digest == sha(manifest)
    assert all(store.read(d, 1 << 20) == b for d, b in blobs.items())
