"""hull's Authenticator against a real registry: Debian's docker-registry (distribution 2.8.2) on
127.0.0.1, (1) with htpasswd Basic auth (the bcrypt line made by ``htpasswd -B`` from apache2-utils)
and (2) with token auth, the token server a small http.server in this file signing RS256 JWTs with a
key whose certificate (made with the openssl CLI) is the registry's ``rootcertbundle``. Also ``hull
login`` / ``hull logout`` against both.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from hull.distribution.auth import Authenticator, AuthError
from hull.distribution.credentials import Credentials
from hull.testing.registry import REGISTRY_BIN, RegistryServer, htpasswd_auth, token_auth

HULL = os.path.join(os.path.dirname(sys.executable), "hull")
USER, PASSWORD = "alice", "wonderland"
REFRESH_TOKEN = "rt-" + "alice"
SERVICE, ISSUER = "hull-test-registry", "hull-test-issuer"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def run(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, input=input)
    if check:
        assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
    return proc


def need_tools() -> None:
    missing = [t for t in (REGISTRY_BIN, "htpasswd", "openssl") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed (scripts/setup.sh installs docker-registry, apache2-utils)")


@pytest.fixture
def basic_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    need_tools()
    base = tmp_path / "basic"
    base.mkdir()
    line = run("htpasswd", "-Bbn", USER, PASSWORD).stdout.strip()
    (base / "htpasswd").write_text(line + "\n")
    with RegistryServer(base, htpasswd_auth(base / "htpasswd")) as reg:
        yield reg


class TokenServer:
    """distribution's token.md server: GET with Basic credentials (or anonymous) and oauth.md's POST
    with a refresh token. Grants what is asked to alice; anonymous callers get a token without access."""

    def __init__(self, base: Path) -> None:
        self.key = base / "token.key"
        run("openssl", "genrsa", "-out", str(self.key), "2048")
        self.cert = base / "token.crt"
        run("openssl", "req", "-x509", "-new", "-key", str(self.key), "-subj", "/CN=hull-token", "-days", "1",
            "-out", str(self.cert))  # fmt: skip
        der = subprocess.run(["openssl", "pkey", "-in", str(self.key), "-pubout", "-outform", "DER"],
                             capture_output=True, check=True).stdout  # fmt: skip
        # libtrust's key ID, which distribution matches a JWT's "kid" against: base32 of the first
        # 240 bits of sha256(DER SubjectPublicKeyInfo), in groups of four joined by ':'.
        b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
        self.kid = ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                q = parse_qs(urlsplit(self.path).query)
                who = self.headers.get("Authorization")
                server.requests.append(("GET", q, who))
                user: str | None = None
                if who:
                    plain = base64.b64decode(who.split(" ", 1)[1]).decode()
                    if plain != f"{USER}:{PASSWORD}":
                        return self.answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                    user = USER
                self.answer(200, server.token(user, q.get("scope", [])))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                form = parse_qs(body)
                server.requests.append(("POST", form, None))
                if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token") != [REFRESH_TOKEN]:
                    return self.answer(401, {"error": "invalid_grant", "error_description": "unknown refresh token"})
                doc = server.token(USER, form.get("scope", [""])[0].split())
                self.answer(200, {"access_token": doc["token"], "expires_in": 300, "refresh_token": REFRESH_TOKEN})

            def answer(self, status: int, doc: dict[str, object]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def token(self, user: str | None, scopes: list[str]) -> dict[str, object]:
        access = []
        for scope in scopes if user else []:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": uuid.uuid4().hex, "access": access}  # fmt: skip
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=signing_input.encode(),
                             capture_output=True, check=True).stdout  # fmt: skip
        return {"token": f"{signing_input}.{b64url(sig)}", "expires_in": 300}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[RegistryServer, TokenServer]]:
    need_tools()
    base = tmp_path / "token"
    base.mkdir()
    ts = TokenServer(base)
    with RegistryServer(base, token_auth(ts.realm, SERVICE, ISSUER, ts.cert)) as reg:
        yield reg, ts
    ts.stop()


def send(auth: Authenticator, method: str, url: str, body: bytes = b"", scope: str | None = None,
         headers: dict[str, str] | None = None) -> http.client.HTTPResponse:  # fmt: skip
    """One request the way the registry client uses the seam: authorization, and after a 401
    challenge and one retry; a second 401 is auth.refused()."""
    parts = urlsplit(url)
    for attempt in (0, 1):
        h = dict(headers or {})
        value = auth.authorization(method, url, scope)
        if value:
            h["Authorization"] = value
        conn = http.client.HTTPConnection(parts.netloc, timeout=10)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=body or None, headers=h)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        if resp.status != 401:
            return resp
        challenge = resp.getheader("WWW-Authenticate")
        if attempt == 1 or not auth.challenge(401, challenge, url, scope or ""):
            raise auth.refused(url, challenge)
    raise AssertionError("unreachable")


def push_image(auth: Authenticator, host: str, repo: str, tag: str) -> str:
    """A one-layer OCI image uploaded blob by blob (POST + PUT), then its manifest; its digest."""

    def blob(data: bytes) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        resp = send(auth, "POST", f"http://{host}/v2/{repo}/blobs/uploads/")
        assert resp.status == 202, resp.status
        location = resp.getheader("Location") or ""
        sep = "&" if "?" in location else "?"
        put = send(auth, "PUT", f"{location}{sep}digest={digest}", data,
                   headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        assert put.status == 201, put.status
        return {"digest": digest, "size": len(data)}

    config = {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(b"{}")}
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", **blob(b"\0" * 1024)}
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": config, "layers": [layer]}).encode()  # fmt: skip
    resp = send(auth, "PUT", f"http://{host}/v2/{repo}/manifests/{tag}", manifest,
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})  # fmt: skip
    assert resp.status == 201, resp.status
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def head_manifest(auth: Authenticator, host: str, repo: str, tag: str) -> str:
    resp = send(auth, "HEAD", f"http://{host}/v2/{repo}/manifests/{tag}",
                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})  # fmt: skip
    assert resp.status == 200, resp.status
    return resp.getheader("Docker-Content-Digest") or ""


def authenticator(creds: Credentials | None) -> Authenticator:
    return Authenticator(lambda host: creds)


def test_basic_auth(basic_registry: RegistryServer) -> None:
    host = basic_registry.host
    auth = authenticator(Credentials(USER, PASSWORD))
    assert send(auth, "GET", f"http://{host}/v2/").status == 200
    digest = push_image(auth, host, "lib/app", "1.0")
    assert head_manifest(auth, host, "lib/app", "1.0") == digest


def test_basic_auth_wrong_password_is_one_clear_line(basic_registry: RegistryServer) -> None:
    host = basic_registry.host
    with pytest.raises(AuthError) as err:
        send(authenticator(Credentials(USER, "nope")), "GET", f"http://{host}/v2/")
    assert str(err.value) == f"registry {host}: access as 'alice' refused: username or password not accepted"
    with pytest.raises(AuthError, match=rf"^registry {host}: authentication required and no credentials for it"):
        send(authenticator(None), "GET", f"http://{host}/v2/")


def test_token_auth(token_registry: tuple[RegistryServer, TokenServer]) -> None:
    reg, ts = token_registry
    auth = authenticator(Credentials(USER, PASSWORD))
    assert send(auth, "GET", f"http://{reg.host}/v2/").status == 200
    digest = push_image(auth, reg.host, "lib/app", "1.0")
    assert head_manifest(auth, reg.host, "lib/app", "1.0") == digest
    # One token per scope set: /v2/, the push scope; the pull for the HEAD is covered by the push token.
    gets = [q for method, q, _ in ts.requests if method == "GET"]
    assert [q.get("scope") for q in gets] == [None, ["repository:lib/app:pull,push"]]
    assert all(q["service"] == [SERVICE] and q["account"] == [USER] for q in gets)
    assert all(who is not None and who.startswith("Basic ") for _, _, who in ts.requests)


def test_token_auth_with_identity_token_uses_oauth2_post(token_registry: tuple[RegistryServer, TokenServer]) -> None:
    reg, ts = token_registry
    digest = push_image(authenticator(Credentials(USER, PASSWORD)), reg.host, "lib/app", "2")
    ts.requests.clear()
    auth = authenticator(Credentials(identity_token=REFRESH_TOKEN))
    assert head_manifest(auth, reg.host, "lib/app", "2") == digest
    assert [(m, q.get("grant_type"), q.get("scope")) for m, q, _ in ts.requests] == [
        ("POST", ["refresh_token"], ["repository:lib/app:pull"])
    ]


def test_token_auth_refusals_are_one_clear_line(token_registry: tuple[RegistryServer, TokenServer]) -> None:
    reg, ts = token_registry
    with pytest.raises(AuthError) as err:
        send(authenticator(Credentials(USER, "nope")), "GET", f"http://{reg.host}/v2/")
    assert str(err.value) == f"registry {reg.host}: token server {ts.realm} refused user 'alice' (401): bad credentials"
    # Anonymous: the token server hands out a token without access; the registry refuses the scope.
    with pytest.raises(AuthError) as err:
        send(authenticator(None), "HEAD", f"http://{reg.host}/v2/lib/app/manifests/1")
    assert str(err.value) == (
        f"registry {reg.host}: access anonymously refused: insufficient_scope for repository:lib/app:pull"
    )


def test_client_seam(token_registry: tuple[RegistryServer, TokenServer]) -> None:
    """The registry client (hull.distribution.client) drives the Authenticator through ``authorize``."""
    from hull.distribution.client import Registry

    reg, ts = token_registry
    digest = push_image(authenticator(Credentials(USER, PASSWORD)), reg.host, "lib/app", "3")
    ts.requests.clear()
    client = Registry(reg.host, authenticator=authenticator(Credentials(USER, PASSWORD)))
    resp = client.request("HEAD", "/v2/lib/app/manifests/3", scopes=["repository:lib/app:pull"],
                          headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})  # fmt: skip
    assert resp.header("Docker-Content-Digest") == digest
    assert len(ts.requests) == 1


def hull(*args: str, env: dict[str, str], input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HULL, *args], capture_output=True, text=True, timeout=60, input=input, env=env)


@pytest.mark.parametrize("kind", ["basic", "token"])
def test_hull_login_logout(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if kind == "basic":
        host = request.getfixturevalue("basic_registry").host
    else:
        host = request.getfixturevalue("token_registry")[0].host
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    env.pop("REGISTRY_AUTH_FILE", None)
    authfile = tmp_path / "run" / "containers" / "auth.json"
    bad = hull("login", "-u", USER, "-p", "nope", host, env=env)
    assert bad.returncode == 1
    assert bad.stderr.startswith(f"Error: registry {host}: ") and bad.stderr.count("\n") == 1, bad.stderr
    assert not authfile.exists()
    ok = hull("login", "-u", USER, "--password-stdin", host, env=env, input=PASSWORD + "\n")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "Login Succeeded!\n"
    assert stat.S_IMODE(authfile.stat().st_mode) == 0o600
    entry = json.loads(authfile.read_text())["auths"][host]
    assert base64.b64decode(entry["auth"]).decode() == f"{USER}:{PASSWORD}"
    # What login stored is what a later Authenticator finds by default.
    from hull.distribution.credentials import lookup

    assert lookup(host, [authfile]) == Credentials(USER, PASSWORD, "", str(authfile))
    docker_cfg = tmp_path / "docker" / "config.json"
    assert hull("login", "--authfile", str(docker_cfg), "-u", USER, "-p", PASSWORD, host, env=env).returncode == 0
    assert host in json.loads(docker_cfg.read_text())["auths"]
    out = hull("logout", host, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"Removed login credentials for {host}\n"
    assert json.loads(authfile.read_text())["auths"] == {}
    again = hull("logout", host, env=env)
    assert (again.returncode, again.stderr) == (1, f"Error: not logged into {host}\n")
