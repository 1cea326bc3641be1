"""Registry authentication: anonymous, Basic, and distribution's Bearer token flow.

The registry client's seam::

    auth = Authenticator()                       # credentials from credentials.lookup
    headers["Authorization"] = auth.authorization(method, url)   # when not None
    ... response 401 ...
    if auth.challenge(401, response.headers["WWW-Authenticate"], url, scope):
        retry once with a fresh auth.authorization(method, url, scope)
    still 401: raise auth.refused(url, www_authenticate)

or, as hull.distribution.client's Authenticator protocol, ``auth.authorize(host, scopes, challenge)``
(challenge None before a request, the WWW-Authenticate value after a 401).

Bearer (distribution docs/spec/auth/token.md): the 401 names a realm, service and scope; a token
is fetched from the realm with GET (Basic credentials, or none for anonymous pulls) or, when an
identity token (OAuth2 refresh token) is configured, with the OAuth2 POST form (oauth.md,
``grant_type=refresh_token``). Tokens are cached per host and scope set until ``expires_in``
(60 s when absent, as token.md says) and a cached token that covers a request's scope is reused.
Once a host has shown its realm, tokens for new scopes are fetched before the request, saving
the anonymous round trip (containerd's docker authorizer does the same).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from hull.distribution import Unauthorized  # urllib.parse: imported in the functions, off the anonymous path
from hull.oci import jsonfast  # json's C scanner without json's import (re, enum)
from hull.oci.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl

    from hull.distribution.credentials import Credentials

DEFAULT_EXPIRES_IN = 60  # token.md: "defaults to 60 seconds" when the server omits expires_in
MIN_EXPIRES_IN = 60  # token.md: clients should treat shorter lifetimes as 60 s
EXPIRY_MARGIN = 5.0  # refresh a little early so a token does not expire in flight
CLIENT_ID = "hull"


class AuthError(Unauthorized):
    """Authentication failed; the message names the registry and the reason, on one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 401)


@record
class FetchResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


# fetch(method, url, headers, body) -> FetchResponse: the one place a token request touches the
# network; tests pass their own.
Fetch = Callable[[str, str, Mapping[str, str], bytes | None], FetchResponse]


def http_fetch(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    context_for: Callable[[str], ssl.SSLContext] | None = None,
) -> FetchResponse:
    """A token request over hull.distribution.http1: no redirects followed (a redirect must not
    carry the credentials elsewhere), 30 s timeout. ``context_for(host)`` gives the TLS settings
    of a realm's host (registries.ssl_context for certs.d CAs); bind it with functools.partial."""
    from urllib.parse import urlsplit

    from hull.distribution import http1

    parts = urlsplit(url)
    if parts.scheme == "https":
        ctx = context_for(parts.netloc) if context_for else None
        conn = http1.Connection(parts.netloc, timeout=30, context=ctx, tls=True)
    elif parts.scheme == "http":
        conn = http1.Connection(parts.netloc, timeout=30)
    else:
        raise AuthError(f"token realm {url!r}: not an http or https URL")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn.request(method, path, body=body, headers=dict(headers))
        resp = conn.getresponse()
        data = resp.read(1 << 20)  # a token response is small; do not buffer a hostile one
        return FetchResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    except http1.HTTPException as err:
        raise AuthError(f"token server {url}: {err}") from None
    finally:
        conn.close()


@record
class Challenge:
    scheme: str  # lower case: "basic", "bearer"
    params: dict[str, str]  # keys lower case


def parse_www_authenticate(header: str) -> list[Challenge]:
    """RFC 7235 challenges: ``Bearer realm="https://a",service="b",scope="repository:x:pull,push"``,
    several separated by commas. Quoted values may hold commas and backslash escapes."""
    out: list[Challenge] = []
    i, n = 0, len(header)

    def skip(chars: str) -> None:
        nonlocal i
        while i < n and header[i] in chars:
            i += 1

    def token() -> str:
        nonlocal i
        start = i
        while i < n and header[i] not in ' \t,="':
            i += 1
        return header[start:i]

    while i < n:
        skip(" \t,")
        scheme = token()
        if not scheme:
            break
        params: dict[str, str] = {}
        while i < n:
            skip(" \t")
            save = i
            name = token()
            skip(" \t")
            if not name or i >= n or header[i] != "=":
                i = save  # not a parameter: the next challenge's scheme
                break
            i += 1
            skip(" \t")
            if i < n and header[i] == '"':
                i += 1
                value = []
                while i < n and header[i] != '"':
                    if header[i] == "\\" and i + 1 < n:
                        i += 1
                    value.append(header[i])
                    i += 1
                i += 1
                params[name.lower()] = "".join(value)
            else:
                params[name.lower()] = token()
            skip(" \t")
            if i < n and header[i] == ",":
                i += 1
        out.append(Challenge(scheme.lower(), params))
    return out


# Scopes (token.md "Requesting a Token"): "repository:samalba/my-app:pull,push".
def _parse_scopes(scopes: Iterable[str]) -> dict[tuple[str, str], frozenset[str]]:
    out: dict[tuple[str, str], frozenset[str]] = {}
    for scope in scopes:
        for one in scope.split():
            kind, _, rest = one.partition(":")
            name, _, actions = rest.rpartition(":")  # a name may hold a port: registry.io:5000/x
            if not name:
                continue
            key = (kind, name)
            out[key] = out.get(key, frozenset()) | frozenset(a for a in actions.split(",") if a)
    return out


def _format_scopes(parsed: Mapping[tuple[str, str], frozenset[str]]) -> list[str]:
    return [f"{k}:{n}:{','.join(sorted(a))}" for (k, n), a in sorted(parsed.items())]


def _covers(have: Mapping[tuple[str, str], frozenset[str]], want: Mapping[tuple[str, str], frozenset[str]]) -> bool:
    return all(key in have and (acts <= have[key] or "*" in have[key]) for key, acts in want.items())


_REPO_MARKERS = ("/manifests/", "/blobs/", "/tags/list", "/referrers/")


def scope_for(method: str, url: str) -> str:
    """The scope a distribution API request needs (distribution registry/handlers/app.go:
    GET/HEAD pull, POST/PUT/PATCH pull,push, DELETE delete; a cross-repository mount also
    pulls from its ``from=``). Empty for ``/v2/``."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    path = parts.path
    if not path.startswith("/v2/"):
        return ""
    if path.rstrip("/") == "/v2/_catalog":
        return "registry:catalog:*"
    rest = path[len("/v2/") :]
    cut = min((rest.find(m) for m in _REPO_MARKERS if rest.find(m) > 0), default=-1)
    if cut < 0:
        return ""
    name = rest[:cut]
    method = method.upper()
    actions = "pull" if method in ("GET", "HEAD") else "delete" if method == "DELETE" else "pull,push"
    scopes = [f"repository:{name}:{actions}"]
    for other in parse_qs(parts.query).get("from", []):
        if other != name:
            scopes.append(f"repository:{other}:pull")
    return " ".join(scopes)


@record
class _Token:
    value: str
    scopes: dict[tuple[str, str], frozenset[str]]
    expires: float


class _Host:
    """What a registry host told us: its scheme, and for Bearer its realm and service."""

    def __init__(self) -> None:
        self.scheme = ""  # "", "basic", "bearer"
        self.realm = ""
        self.service = ""
        self.tokens: list[_Token] = []
        self.refresh_token = ""  # an OAuth2 refresh token the token server handed back


def _lookup(host: str) -> Credentials | None:
    """credentials.lookup, imported on the first registry that asks (an anonymous pull never does)."""
    from hull.distribution import credentials

    return credentials.lookup(host)


class Authenticator:
    """Authorization headers for registry requests, per host; thread-safe (layers download
    concurrently)."""

    def __init__(
        self,
        lookup: Callable[[str], Credentials | None] | None = None,
        fetch: Fetch = http_fetch,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = _lookup if lookup is None else lookup
        self._fetch = fetch
        self._clock = clock
        self._hosts: dict[str, _Host] = {}
        self._creds: dict[str, Credentials | None] = {}
        self._lock = threading.RLock()
        self._answered = threading.local()  # per thread: host -> ((challenge, scope), value)

    def credentials(self, host: str) -> Credentials | None:
        with self._lock:
            if host not in self._creds:
                self._creds[host] = self._lookup(host)
            return self._creds[host]

    def authorization(self, method: str, url: str, scope: str | None = None) -> str | None:
        """The Authorization header value for a request, or None to go anonymous. ``scope``
        defaults to what the URL needs (scope_for)."""
        from urllib.parse import urlsplit

        return self._authorization(urlsplit(url).netloc, scope_for(method, url) if scope is None else scope)

    def challenge(self, response_status: int, www_authenticate_header: str | None, url: str, scope: str = "") -> bool:
        """Handle a registry's 401: learn the scheme, fetch a token for ``scope`` plus the
        challenge's own scope, cache it. True when a retry makes sense (False for Basic without
        credentials: build the error with refused()). Raises AuthError when the token server
        refuses the credentials or cannot be reached."""
        from urllib.parse import urlsplit

        if response_status != 401 or not www_authenticate_header:
            return False
        return self._challenge(urlsplit(url).netloc, www_authenticate_header, scope)

    def authorize(self, host: str, scopes: Sequence[str], challenge: str | None) -> str | None:
        """hull.distribution.client's Authenticator protocol: ``challenge`` None before a request,
        the WWW-Authenticate value after a 401; the header value to send, or None."""
        scope = " ".join(scopes)
        memo = self._answered.__dict__
        if challenge is None:
            memo.pop(host, None)
            return self._authorization(host, scope)
        # The client asks twice per 401 (whether to retry, then what to send): answer the second
        # from the first instead of fetching another token.
        previous = memo.pop(host, None)
        if previous is not None and previous[0] == (challenge, scope):
            answered: str | None = previous[1]
            return answered
        if not self._challenge(host, challenge, scope):
            return None
        value = self._authorization(host, scope)
        memo[host] = ((challenge, scope), value)
        return value

    def _authorization(self, host: str, scope: str) -> str | None:
        with self._lock:
            h = self._hosts.get(host)
            if h is None or not h.scheme:
                return None
            if h.scheme == "basic":
                return self._basic(host)
            want = _parse_scopes([scope])
            token = self._cached(h, want)
            if token is None:
                token = self._fetch_token(host, h, want)
            return f"Bearer {token.value}"

    def _challenge(self, host: str, header: str, scope: str) -> bool:
        challenges = {c.scheme: c for c in parse_www_authenticate(header)}
        with self._lock:
            h = self._hosts.setdefault(host, _Host())
            if "bearer" in challenges:
                c = challenges["bearer"]
                realm = c.params.get("realm", "")
                if not realm:
                    raise AuthError(f"registry {host}: Bearer challenge without a realm")
                h.scheme, h.realm, h.service = "bearer", realm, c.params.get("service", "")
                want = _parse_scopes([scope, c.params.get("scope", "")])
                # The server refused what we sent: drop every cached token that would be sent again.
                h.tokens = [t for t in h.tokens if not _covers(t.scopes, want)]
                self._fetch_token(host, h, want)
                return True
            if "basic" in challenges and self._basic(host) is not None:
                h.scheme = "basic"
                return True
            return False  # no usable scheme, or Basic without credentials: the same request would fail again

    def refused(self, url: str, www_authenticate_header: str | None = None) -> AuthError:
        """The error for a request still refused after challenge() and a retry."""
        from urllib.parse import urlsplit

        host = urlsplit(url).netloc
        cred = self.credentials(host)
        who = f"as {cred.username!r}" if cred and cred.username else "with an identity token" if cred else "anonymously"
        reason = "unauthorized"
        for c in parse_www_authenticate(www_authenticate_header or ""):
            if "error" in c.params:
                reason = c.params["error"]
                if c.params.get("scope"):
                    reason += f" for {c.params['scope']}"
        if cred and self._hosts.get(host, _Host()).scheme == "basic":
            reason = "username or password not accepted"
        elif cred is None and self._hosts.get(host, _Host()).scheme != "bearer":
            return AuthError(f"registry {host}: authentication required and no credentials for it (hull login {host})")
        return AuthError(f"registry {host}: access {who} refused: {reason}")

    def forget(self, host: str) -> None:
        """Drop what is known about ``host`` (after login/logout changed its credentials)."""
        with self._lock:
            self._hosts.pop(host, None)
            self._creds.pop(host, None)

    # --- internals -------------------------------------------------------------------------

    def _basic(self, host: str) -> str | None:
        cred = self.credentials(host)
        if cred is None or not cred.username:
            return None
        return "Basic " + base64.b64encode(f"{cred.username}:{cred.password}".encode()).decode()

    def _cached(self, h: _Host, want: Mapping[tuple[str, str], frozenset[str]]) -> _Token | None:
        now = self._clock()
        h.tokens = [t for t in h.tokens if t.expires > now]
        for t in h.tokens:
            if _covers(t.scopes, want):
                return t
        return None

    def _fetch_token(self, host: str, h: _Host, want: Mapping[tuple[str, str], frozenset[str]]) -> _Token:
        cred = self.credentials(host)
        scopes = _format_scopes(want)
        refresh = h.refresh_token or (cred.identity_token if cred else "")
        if refresh:
            resp = self._oauth_post(h, scopes, refresh)
        else:
            resp = self._token_get(h, scopes, cred)
        what = f"registry {host}: token server {h.realm}"
        if resp.status in (401, 403):
            who = (
                f"user {cred.username!r}"
                if cred and cred.username
                else "the identity token"
                if cred
                else "anonymous access"
            )
            raise AuthError(f"{what} refused {who} ({resp.status}){_server_says(resp.body)}")
        if resp.status != 200:
            raise AuthError(f"{what} answered {resp.status}{_server_says(resp.body)}")
        try:
            doc = jsonfast.loads(resp.body)
            value = doc.get("token") or doc.get("access_token")
            expires_in = int(doc.get("expires_in") or DEFAULT_EXPIRES_IN)
        except (ValueError, AttributeError, TypeError):
            raise AuthError(f"{what} answered something other than a token document") from None
        if not isinstance(value, str) or not value:
            raise AuthError(f"{what} answered without a token")
        if isinstance(doc.get("refresh_token"), str) and doc["refresh_token"]:
            h.refresh_token = doc["refresh_token"]
        expires = self._clock() + max(expires_in, MIN_EXPIRES_IN) - EXPIRY_MARGIN
        token = _Token(value, dict(want), expires)
        h.tokens.append(token)
        return token

    def _token_get(self, h: _Host, scopes: list[str], cred: Credentials | None) -> FetchResponse:
        query: list[tuple[str, str]] = []
        if h.service:
            query.append(("service", h.service))
        query += [("scope", s) for s in scopes]
        headers = {"User-Agent": "hull"}
        if cred and cred.username:
            query.append(("account", cred.username))
            headers["Authorization"] = "Basic " + base64.b64encode(f"{cred.username}:{cred.password}".encode()).decode()
        sep = "&" if "?" in h.realm else "?"
        from urllib.parse import urlencode

        url = h.realm + (sep + urlencode(query) if query else "")
        return self._call("GET", url, headers, None, h)

    def _oauth_post(self, h: _Host, scopes: list[str], refresh: str) -> FetchResponse:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": CLIENT_ID,
            "scope": " ".join(scopes),
        }
        if h.service:
            form["service"] = h.service
        from urllib.parse import urlencode

        headers = {"User-Agent": "hull", "Content-Type": "application/x-www-form-urlencoded"}
        return self._call("POST", h.realm, headers, urlencode(form).encode(), h)

    def _call(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, h: _Host) -> FetchResponse:
        try:
            return self._fetch(method, url, headers, body)
        except AuthError:
            raise
        except OSError as err:
            raise AuthError(f"token server {h.realm}: {err.strerror or err}") from None


def _server_says(body: bytes) -> str:
    """The token server's own reason, if it gave one (oauth.md error / distribution's errors list)."""
    try:
        doc = jsonfast.loads(body)
    except ValueError:
        return ""
    if isinstance(doc, dict):
        if isinstance(doc.get("error"), str):
            return f": {doc.get('error_description') or doc['error']}"
        errors = doc.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return f": {errors[0].get('message') or errors[0].get('code')}"
    return ""
