"""The Authenticator against a scripted token server (its one network seam is ``fetch``)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

import pytest

from hull.distribution.auth import (
    Authenticator,
    AuthError,
    FetchResponse,
    parse_www_authenticate,
    scope_for,
)
from hull.distribution.credentials import Credentials

REG = "https://reg.example:5000"
BEARER = 'Bearer realm="https://auth.example/token",service="reg.example",scope="repository:lib/app:pull"'


class TokenServer:
    """Records requests; answers tokens numbered in order."""

    def __init__(self, status: int = 200, expires_in: int | None = 300, extra: dict[str, str] | None = None) -> None:
        self.calls: list[tuple[str, str, dict[str, str], bytes | None]] = []
        self.status = status
        self.expires_in = expires_in
        self.extra = extra or {}

    def __call__(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> FetchResponse:
        self.calls.append((method, url, dict(headers), body))
        if self.status != 200:
            return FetchResponse(self.status, {}, json.dumps({"errors": [{"message": "bad password"}]}).encode())
        doc: dict[str, object] = {"token": f"tok{len(self.calls)}", **self.extra}
        if self.expires_in is not None:
            doc["expires_in"] = self.expires_in
        return FetchResponse(200, {}, json.dumps(doc).encode())

    def query(self, n: int = -1) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.calls[n][1]).query)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    creds: Credentials | None = None, server: TokenServer | None = None
) -> tuple[Authenticator, TokenServer, Clock]:
    server = server or TokenServer()
    clock = Clock()
    return Authenticator(lambda host: creds, fetch=server, clock=clock), server, clock


def test_parse_challenges_with_commas_inside_quotes() -> None:
    header = 'Basic realm="Registry Realm", Bearer realm="https://a/t",service="s",scope="repository:x:pull,push"'
    got = parse_www_authenticate(header)
    assert [c.scheme for c in got] == ["basic", "bearer"]
    assert got[0].params == {"realm": "Registry Realm"}
    assert got[1].params == {"realm": "https://a/t", "service": "s", "scope": "repository:x:pull,push"}
    assert parse_www_authenticate('Bearer realm="a\\"b", error=insufficient_scope')[0].params == {
        "realm": 'a"b',
        "error": "insufficient_scope",
    }


def test_scope_for_each_api_path() -> None:
    assert scope_for("GET", f"{REG}/v2/") == ""
    assert scope_for("HEAD", f"{REG}/v2/lib/app/manifests/1.0") == "repository:lib/app:pull"
    assert scope_for("GET", f"{REG}/v2/a/b/c/blobs/sha256:00") == "repository:a/b/c:pull"
    assert scope_for("PUT", f"{REG}/v2/x/manifests/t") == "repository:x:pull,push"
    assert scope_for("DELETE", f"{REG}/v2/x/manifests/sha256:00") == "repository:x:delete"
    assert scope_for("GET", f"{REG}/v2/x/tags/list?n=10") == "repository:x:pull"
    assert scope_for("POST", f"{REG}/v2/x/blobs/uploads/?mount=sha256:00&from=y") == (
        "repository:x:pull,push repository:y:pull"
    )
    # A repository named like an API word is cut at the last marker, not the first.
    assert scope_for("GET", f"{REG}/v2/blobs/manifests/latest") == "repository:blobs:pull"


def test_anonymous_bearer_flow_and_token_reuse() -> None:
    auth, server, _ = make()
    url = f"{REG}/v2/lib/app/manifests/1.0"
    assert auth.authorization("HEAD", url) is None  # nothing known yet: go anonymous
    assert auth.challenge(401, BEARER, url, "repository:lib/app:pull") is True
    assert server.calls[0][0] == "GET"
    assert "Authorization" not in server.calls[0][2]
    assert server.query(0) == {"service": ["reg.example"], "scope": ["repository:lib/app:pull"]}
    assert auth.authorization("HEAD", url) == "Bearer tok1"
    assert auth.authorization("GET", f"{REG}/v2/lib/app/blobs/sha256:00") == "Bearer tok1"
    assert len(server.calls) == 1


def test_new_scope_fetched_up_front_and_push_token_covers_pull() -> None:
    auth, server, _ = make(Credentials("alice", "s3cret"))
    auth.challenge(401, BEARER, f"{REG}/v2/lib/app/manifests/1", "repository:lib/app:pull")
    # The realm is known now: a push to another repository gets its token before the request.
    assert auth.authorization("PUT", f"{REG}/v2/other/manifests/1") == "Bearer tok2"
    assert server.query() == {
        "service": ["reg.example"],
        "scope": ["repository:other:pull,push"],
        "account": ["alice"],
    }
    assert server.calls[-1][2]["Authorization"] == "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert auth.authorization("GET", f"{REG}/v2/other/blobs/sha256:00") == "Bearer tok2"
    assert len(server.calls) == 2


def test_expired_token_is_refetched() -> None:
    auth, server, clock = make(server=TokenServer(expires_in=None))  # token.md: default 60 s
    url = f"{REG}/v2/lib/app/manifests/1"
    auth.challenge(401, BEARER, url, "")
    assert auth.authorization("GET", url) == "Bearer tok1"
    clock.now += 50
    assert auth.authorization("GET", url) == "Bearer tok1"
    clock.now += 10
    assert auth.authorization("GET", url) == "Bearer tok2"


def test_401_with_a_cached_token_refreshes_it() -> None:
    auth, server, _ = make()
    url = f"{REG}/v2/lib/app/manifests/1"
    auth.challenge(401, BEARER, url, "")
    assert auth.authorization("GET", url) == "Bearer tok1"
    # The registry no longer accepts tok1 (revoked, clock skew): the next 401 replaces it.
    assert auth.challenge(401, BEARER, url, "repository:lib/app:pull") is True
    assert auth.authorization("GET", url) == "Bearer tok2"


def test_identity_token_uses_oauth2_post_and_keeps_refresh_token() -> None:
    server = TokenServer(extra={"refresh_token": "rt-new"})
    auth, server, _ = make(Credentials(identity_token="rt-old"), server)
    auth.challenge(401, BEARER, f"{REG}/v2/lib/app/manifests/1", "")
    method, url, headers, body = server.calls[0]
    assert (method, url) == ("POST", "https://auth.example/token")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs((body or b"").decode())
    assert form == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["rt-old"],
        "client_id": ["hull"],
        "scope": ["repository:lib/app:pull"],
        "service": ["reg.example"],
    }
    auth.authorization("PUT", f"{REG}/v2/lib/app/manifests/1")
    assert parse_qs((server.calls[1][3] or b"").decode())["refresh_token"] == ["rt-new"]


def test_token_server_refusal_is_one_line_naming_registry_user_and_reason() -> None:
    auth, _, _ = make(Credentials("alice", "wrong"), TokenServer(status=401))
    with pytest.raises(AuthError) as err:
        auth.challenge(401, BEARER, f"{REG}/v2/lib/app/manifests/1", "")
    msg = str(err.value)
    assert (
        msg
        == "registry reg.example:5000: token server https://auth.example/token refused user 'alice' (401): bad password"
    )


def test_basic_flow() -> None:
    auth, server, _ = make(Credentials("bob", "pw"))
    url = f"{REG}/v2/"
    assert auth.authorization("GET", url) is None
    assert auth.challenge(401, 'Basic realm="Registry Realm"', url) is True
    expected = "Basic " + base64.b64encode(b"bob:pw").decode()
    assert auth.authorization("GET", url) == expected
    assert auth.authorization("PUT", f"{REG}/v2/x/manifests/1") == expected  # sent up front from now on
    assert server.calls == []
    assert str(auth.refused(url, 'Basic realm="Registry Realm"')) == (
        "registry reg.example:5000: access as 'bob' refused: username or password not accepted"
    )


def test_basic_without_credentials_is_no_retry_and_says_to_log_in() -> None:
    auth, _, _ = make()
    assert auth.challenge(401, 'Basic realm="x"', f"{REG}/v2/") is False
    assert str(auth.refused(f"{REG}/v2/", 'Basic realm="x"')) == (
        "registry reg.example:5000: authentication required and no credentials for it (hull login reg.example:5000)"
    )


def test_not_a_401_or_no_challenge_is_no_retry() -> None:
    auth, server, _ = make()
    assert auth.challenge(403, BEARER, f"{REG}/v2/", "") is False
    assert auth.challenge(401, None, f"{REG}/v2/", "") is False
    assert auth.challenge(401, "Negotiate abc", f"{REG}/v2/", "") is False
    assert server.calls == []


def test_hosts_are_separate() -> None:
    auth, _, _ = make()
    auth.challenge(401, BEARER, f"{REG}/v2/lib/app/manifests/1", "")
    assert auth.authorization("GET", "https://other.example/v2/lib/app/manifests/1") is None


def test_client_protocol_asks_twice_per_401_fetches_once() -> None:
    auth, server, _ = make()
    scopes = ["repository:lib/app:pull"]
    assert auth.authorize("reg.example:5000", scopes, None) is None
    assert auth.authorize("reg.example:5000", scopes, BEARER) == "Bearer tok1"
    assert auth.authorize("reg.example:5000", scopes, BEARER) == "Bearer tok1"
    assert len(server.calls) == 1
    assert auth.authorize("reg.example:5000", scopes, None) == "Bearer tok1"
    # A later 401 with the same challenge is a real refusal: a fresh token.
    assert auth.authorize("reg.example:5000", scopes, BEARER) == "Bearer tok2"
