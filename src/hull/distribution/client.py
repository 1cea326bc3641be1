"""A registry client: the HTTP API of the OCI Distribution Spec v1.1 (spec.md), over http.client.

Why http.client and not httpx: it is in the standard library, it keeps
HTTP/1.1 connections alive (one per thread and host here, so concurrent
layer downloads each reuse their own), streams responses with ``read(n)``
and request bodies from a file object, which is all a registry needs; no
dependency to vet or install.

What it does (spec.md sections in brackets):

- ``/v2/`` check ("Determining support"); 200 or 401 both mean a registry.
- Manifests: GET and HEAD with an Accept list of the OCI and Docker schema 2
  types ("Pulling manifests"); a manifest over 4 MiB is refused before it is
  read whole ("registries SHOULD/MAY ... 4 megabytes"); its digest is
  computed over the bytes received and checked against the digest asked for
  and the registry's ``Docker-Content-Digest``.
- Blobs: GET streamed in chunks, following redirects; a redirect to another
  host never carries the Authorization header (the credentials are the
  registry's, not the storage backend's). HEAD for existence.
- Uploads ("Pushing blobs"): monolithic POST then PUT ``?digest=``; chunked
  PATCHes with ``Content-Range`` following each new ``Location``; a
  cross-repository mount (``?mount=&from=``) that falls back to an upload
  when the registry answers 202.
- Manifest PUT; tag listing with ``n`` and ``last``, following ``Link``.

Plain HTTP is used only for loopback registries (localhost, 127.0.0.0/8,
::1), as docker treats them as insecure by default; other registries are
HTTPS until the registries config (insecure registries) is read.

Authentication goes through one seam, ``Authenticator``: before every
request it may give an Authorization value, and after a 401 it gets the
``WWW-Authenticate`` challenge and may give one to retry with. The default
is anonymous access.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator

from hull.distribution import NotFoundError, RegistryError, TransportError, Unauthorized
from hull.distribution.reference import DEFAULT_DOMAIN
from hull.image.errors import DigestMismatch, SizeLimitExceeded
from hull.oci import digest as _digest
from hull.oci import media_types as mt
from hull.oci.digest import Digest
from hull.oci.image import Descriptor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import BinaryIO, Protocol

    class Authenticator(Protocol):
        """Gives the Authorization header value for a request to ``host`` needing ``scopes``
        (``repository:NAME:pull`` ...). ``challenge`` is None before a request and the
        ``WWW-Authenticate`` value after a 401; None means anonymous (or give up, after a challenge)."""

        def authorize(self, host: str, scopes: Sequence[str], challenge: str | None) -> str | None: ...


MAX_MANIFEST = 4 << 20  # spec.md: registries may refuse manifests over 4 MiB; hull refuses to read them
CHUNK = 1 << 20
DOCKER_HUB_HOST = "registry-1.docker.io"
MAX_REDIRECTS = 5
MANIFEST_ACCEPT = (mt.INDEX, mt.MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST)
_LOOPBACK = ("localhost", "127.", "[::1]", "::1")


class Anonymous:
    """No credentials: requests go unauthenticated and a 401 is final."""

    def authorize(self, host: str, scopes: Sequence[str], challenge: str | None) -> str | None:
        return None


def endpoint(domain: str) -> str:
    """The host a reference's domain is served from (docker.io's API lives elsewhere)."""
    return DOCKER_HUB_HOST if domain == DEFAULT_DOMAIN else domain


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name == "localhost" or name.startswith(_LOOPBACK)


class Response:
    """A response whose body is read once, in chunks or whole; closes (returns the connection) at the end."""

    def __init__(self, raw: http.client.HTTPResponse, url: str, conn: http.client.HTTPConnection) -> None:
        self.raw = raw
        self.url = url
        self.conn = conn
        self.status = raw.status
        self.headers = raw.headers

    def header(self, name: str) -> str:
        return self.raw.getheader(name) or ""

    @property
    def length(self) -> int | None:
        value = self.header("Content-Length")
        return int(value) if value.isdigit() else None

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        try:
            while chunk := self.raw.read(size):
                yield chunk
        except (OSError, http.client.HTTPException) as err:
            raise TransportError(f"{self.url}: connection lost while reading: {err}") from None
        finally:
            self.abort()

    def abort(self) -> None:
        """Done with the body: a body left unread makes the connection unusable for the next request."""
        if not self.raw.isclosed():
            self.raw.close()
            self.conn.close()

    def read(self, limit: int) -> bytes:
        """The whole body; more than ``limit`` bytes is refused without reading the rest."""
        return b"".join(self._bounded(limit))

    def _bounded(self, limit: int) -> Iterator[bytes]:
        total = 0
        for chunk in self.chunks():
            total += len(chunk)
            if total > limit:
                self.abort()
                raise SizeLimitExceeded(limit)
            yield chunk

    def drain(self) -> None:
        for _ in self.chunks():
            pass


class Registry:
    """One registry host; thread-safe (each thread keeps its own keep-alive connections)."""

    def __init__(
        self,
        domain: str,
        *,
        authenticator: Authenticator | None = None,
        insecure: bool | None = None,
        timeout: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.domain = domain
        self.host = endpoint(domain)
        # Loopback registries are spoken to in plain HTTP until the registries config says more.
        self.scheme = "http" if (insecure if insecure is not None else is_loopback(self.host)) else "https"
        self.base = f"{self.scheme}://{self.host}"
        self.auth: Authenticator = authenticator or Anonymous()
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._local = threading.local()

    # ------------------------------------------------------------ transport

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        pool: dict[tuple[str, str], http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        conn = pool.get((scheme, netloc))
        if conn is None:
            if scheme == "https":
                context = self.ssl_context or ssl.create_default_context()
                conn = http.client.HTTPSConnection(netloc, timeout=self.timeout, context=context, blocksize=CHUNK)
            else:
                conn = http.client.HTTPConnection(netloc, timeout=self.timeout, blocksize=CHUNK)
            pool[(scheme, netloc)] = conn
        return conn

    def _drop(self, scheme: str, netloc: str) -> None:
        pool = self._local.__dict__.get("pool", {})
        conn = pool.pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for conn in self._local.__dict__.get("pool", {}).values():
            conn.close()
        self._local.__dict__["pool"] = {}

    def _send(self, method: str, url: str, headers: dict[str, str], body: bytes | BinaryIO | None) -> Response:
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        start = body.tell() if body is not None and not isinstance(body, bytes) else 0
        for attempt in (0, 1):
            conn = self._connection(parts.scheme, parts.netloc)
            reused = conn.sock is not None
            try:
                conn.request(method, target, body=body, headers=headers)
                return Response(conn.getresponse(), url, conn)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as err:
                self._drop(parts.scheme, parts.netloc)
                # A kept-alive connection the server closed meanwhile (it answered nothing, so it
                # processed nothing): send again once on a fresh one, a file body from its start.
                if attempt == 0 and reused:
                    if body is not None and not isinstance(body, bytes):
                        body.seek(start)
                    continue
                raise TransportError(f"{method} {url}: {err}") from None
            except (OSError, http.client.HTTPException) as err:
                self._drop(parts.scheme, parts.netloc)
                reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
                if isinstance(err, socket.timeout):
                    reason = "timed out"
                raise TransportError(f"{method} {url}: {reason}") from None
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: Sequence[str] = (),
        headers: dict[str, str] | None = None,
        body: bytes | BinaryIO | None = None,
        ok: Sequence[int] = (200,),
        follow: bool = False,
    ) -> Response:
        """Send one request (authenticated, re-sent once after a 401 challenge), following redirects
        if ``follow``; a status outside ``ok`` raises the registry's error."""
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        base_headers = {"User-Agent": "hull", **(headers or {})}
        challenge: str | None = None
        answer: str | None = None  # the authenticator's answer to the challenge, for the one re-send
        redirects = 0
        start = body.tell() if body is not None and not isinstance(body, bytes) else 0
        while True:
            sent = dict(base_headers)
            same_host = urllib.parse.urlsplit(url).netloc == self.host
            if same_host:
                value = answer if answer is not None else self.auth.authorize(self.host, scopes, None)
                if value:
                    sent["Authorization"] = value
            response = self._send(method, url, sent, body)
            if response.status == 401 and same_host and challenge is None:
                challenge = response.header("WWW-Authenticate")
                answer = self.auth.authorize(self.host, scopes, challenge)
                if answer:
                    response.drain()
                    if body is not None and not isinstance(body, bytes):
                        body.seek(start)  # a streamed body is sent again from where it started
                    continue
            if follow and response.status in (301, 302, 303, 307, 308):
                location = response.header("Location")
                response.drain()
                redirects += 1
                if not location or redirects > MAX_REDIRECTS:
                    raise RegistryError(f"{method} {url}: too many or empty redirects", response.status)
                # Another host (a CDN, S3) gets no Authorization: same_host is re-evaluated above.
                url = urllib.parse.urljoin(url, location)
                challenge = answer = None
                continue
            if response.status not in ok:
                raise self._error(method, url, response)
            return response

    def _error(self, method: str, url: str, response: Response) -> RegistryError:
        """spec.md "Error Codes": ``{"errors": [{"code", "message", "detail"}]}`` as one line."""
        text = ""
        code = ""
        try:
            body = response.read(64 << 10)
            doc = json.loads(body) if body else {}
            errors = doc.get("errors") if isinstance(doc, dict) else None
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                code = str(errors[0].get("code", ""))
                text = "; ".join(
                    f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict)
                )
        except (ValueError, SizeLimitExceeded, TransportError):
            pass
        where = urllib.parse.urlsplit(url)
        message = f"{self.domain}: {method} {where.path}: {response.status} {response.raw.reason}"
        if text:
            message += f" ({text})"
        cls = RegistryError
        if response.status in (401, 403):
            cls = Unauthorized
        elif response.status == 404:
            cls = NotFoundError
        return cls(message, response.status, code)

    # ------------------------------------------------------------ API

    def ping(self) -> None:
        """GET /v2/: a registry answers 200, or 401 when it wants credentials first."""
        self.request("GET", "/v2/", ok=(200, 401)).drain()

    def get_manifest(
        self, repo: str, reference: str, accept: Sequence[str] = MANIFEST_ACCEPT
    ) -> tuple[Descriptor, bytes]:
        """A manifest or index and its descriptor; verified against ``reference`` when it is a digest."""
        response = self.request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            scopes=(f"repository:{repo}:pull",),
            headers={"Accept": ", ".join(accept)},
        )
        if (response.length or 0) > MAX_MANIFEST:
            response.abort()
            raise SizeLimitExceeded(MAX_MANIFEST)
        data = response.read(MAX_MANIFEST)
        media_type = response.header("Content-Type").split(";")[0].strip()
        if media_type not in mt.MANIFESTS and media_type not in mt.INDEXES:
            media_type = _sniff_media_type(data) or media_type
        expected = _digest_or_none(reference) or _digest_or_none(response.header("Docker-Content-Digest"))
        algorithm = expected.algorithm if expected is not None and expected.verifiable else _digest.CANONICAL
        actual = _digest.of(data, algorithm)
        if expected is not None and expected.verifiable and actual != expected:
            raise DigestMismatch(expected, actual)
        return Descriptor(media_type, actual, len(data)), data

    def head_manifest(self, repo: str, reference: str) -> Descriptor | None:
        """The manifest's descriptor from a HEAD, None when the registry does not have it."""
        try:
            response = self.request(
                "HEAD",
                f"/v2/{repo}/manifests/{reference}",
                scopes=(f"repository:{repo}:pull",),
                headers={"Accept": ", ".join(MANIFEST_ACCEPT)},
            )
        except NotFoundError:
            return None
        response.drain()
        found = _digest_or_none(response.header("Docker-Content-Digest")) or _digest_or_none(reference)
        if found is None:
            raise RegistryError(f"{self.domain}: HEAD {repo}:{reference}: no Docker-Content-Digest header")
        media_type = response.header("Content-Type").split(";")[0].strip()
        return Descriptor(media_type, found, response.length or 0)

    def open_blob(self, repo: str, digest: str) -> Response:
        """A streaming GET of a blob (redirects followed); the caller verifies what it reads."""
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", scopes=(f"repository:{repo}:pull",), follow=True)

    def blob_exists(self, repo: str, digest: str) -> int | None:
        """The blob's size if the repository has it (HEAD), else None."""
        try:
            response = self.request(
                "HEAD", f"/v2/{repo}/blobs/{digest}", scopes=(f"repository:{repo}:pull",), follow=True
            )
        except NotFoundError:
            return None
        response.drain()
        return response.length if response.length is not None else 0

    def _push_scopes(self, repo: str, mount_from: str = "") -> tuple[str, ...]:
        scopes = (f"repository:{repo}:pull,push",)
        return (*scopes, f"repository:{mount_from}:pull") if mount_from else scopes

    def _location(self, response: Response, what: str) -> str:
        location = response.header("Location")
        response.drain()
        if not location:
            raise RegistryError(f"{self.domain}: {what}: no Location in the answer", response.status)
        return urllib.parse.urljoin(response.url, location)

    def start_upload(self, repo: str, digest: str = "", mount_from: str = "") -> str | None:
        """POST an upload session; with ``mount_from``, ask for a cross-repository mount first.

        Returns the session's Location, or None when the blob was mounted (201)."""
        query = f"?mount={digest}&from={mount_from}" if mount_from else ""
        response = self.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/{query}",
            scopes=self._push_scopes(repo, mount_from),
            headers={"Content-Length": "0"},
            ok=(201, 202),
        )
        if response.status == 201:
            response.drain()
            return None
        return self._location(response, "start upload")

    def upload_blob(
        self,
        repo: str,
        source: BinaryIO,
        digest: str,
        size: int,
        *,
        chunk_size: int = 0,
        mount_from: str = "",
    ) -> str:
        """Push one blob: mounted from ``mount_from`` if the registry can, else uploaded monolithically
        (POST + PUT) or, with ``chunk_size``, in PATCHes of that size. Returns how ("mounted",
        "uploaded")."""
        location = self.start_upload(repo, digest, mount_from)
        if location is None:
            return "mounted"
        scopes = self._push_scopes(repo)
        if chunk_size > 0:
            offset = 0
            while offset < size:
                piece = source.read(min(chunk_size, size - offset))
                if not piece:
                    raise RegistryError(f"blob {digest}: source ended at {offset} of {size} bytes")
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(len(piece)),
                    "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                }
                response = self.request("PATCH", location, scopes=scopes, headers=headers, body=piece, ok=(202,))
                location = self._location(response, "upload chunk")
                offset += len(piece)
            final = self.request(
                "PUT", _with_digest(location, digest), scopes=scopes, headers={"Content-Length": "0"}, ok=(201,)
            )
        else:
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            final = self.request(
                "PUT", _with_digest(location, digest), scopes=scopes, headers=headers, body=source, ok=(201,)
            )
        final.drain()
        return "uploaded"

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> Digest:
        """PUT a manifest or index under a tag or its digest; returns its digest."""
        response = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            scopes=self._push_scopes(repo),
            headers={"Content-Type": media_type, "Content-Length": str(len(data))},
            body=data,
            ok=(201,),
        )
        response.drain()
        actual = _digest.of(data)
        returned = _digest_or_none(response.header("Docker-Content-Digest"))
        if returned is not None and returned.algorithm == actual.algorithm and returned != actual:
            raise DigestMismatch(actual, returned)
        return actual

    def tags(self, repo: str, page_size: int = 0) -> Iterator[str]:
        """Every tag of ``repo`` in the registry's order, page by page (``n``, ``last``, ``Link``)."""
        url = f"/v2/{repo}/tags/list" + (f"?n={page_size}" if page_size else "")
        while url:
            response = self.request("GET", url, scopes=(f"repository:{repo}:pull",))
            body = response.read(MAX_MANIFEST)
            try:
                doc = json.loads(body)
            except ValueError:
                raise RegistryError(f"{self.domain}: tag list of {repo}: not JSON") from None
            tags = doc.get("tags") if isinstance(doc, dict) else None
            page = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
            yield from page
            url = _next_link(response.header("Link"))
            if url:
                url = urllib.parse.urljoin(response.url, url)
            elif page_size and len(page) == page_size:
                # No Link header: ask for what follows the last tag seen (spec.md "Listing Tags").
                url = f"/v2/{repo}/tags/list?n={page_size}&last={urllib.parse.quote(page[-1])}"


def _digest_or_none(text: str) -> Digest | None:
    try:
        return _digest.parse(text)
    except Exception:  # noqa: BLE001 - any unparsable value is "no digest"
        return None


def _sniff_media_type(data: bytes) -> str:
    try:
        doc = json.loads(data)
    except ValueError:
        return ""
    if not isinstance(doc, dict):
        return ""
    value = doc.get("mediaType")
    if isinstance(value, str) and value:
        return value
    return mt.INDEX if "manifests" in doc else mt.MANIFEST if "config" in doc else ""


def _with_digest(location: str, digest: str) -> str:
    sep = "&" if urllib.parse.urlsplit(location).query else "?"
    return f"{location}{sep}digest={urllib.parse.quote(digest)}"


def _next_link(header: str) -> str:
    """RFC 5988 ``Link: </v2/...>; rel="next"`` -> the URL, or ""."""
    for part in header.split(","):
        url, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            return url.strip().strip("<>")
    return ""
