"""A registry client: the HTTP API of the OCI Distribution Spec v1.1 (spec.md), over hull.distribution.http1.

Why http1 and not httpx or http.client: a registry needs HTTP/1.1
connections kept alive (one per thread and host here, so concurrent layer
downloads each reuse their own), responses streamed with ``read(n)`` and
request bodies from a file object; http1 is that much of http.client
without the ``email`` and ``ssl`` imports that cost every pull's start-up
(see its notes); no dependency to vet or install.

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

Robustness (issue 5 section 4): every request is re-sent, with exponential
backoff and jitter, after a connection refused, reset, dropped or timed out
and after a 500, 502, 503 or 504, a bounded number of times (``Retry``); a
429 waits what ``Retry-After`` says (seconds or an HTTP date, RFC 9110
10.2.3), up to a bound past which it fails at once rather than hang. Blob
downloads (``download_blob``) resume with ``Range: bytes=N-`` from the byte
reached, with ``If-Range`` naming the first answer's validator; a 200 to a
ranged request (Range ignored, or the validator changed) starts the blob
again from byte 0. A chunked upload answered 416 (the registry holds a
different amount than the client thought, typically after a PATCH whose
answer was lost) asks the upload's status (GET on its URL, ``Range: 0-N``)
and continues from there.

Authentication goes through one seam, ``Authenticator``: before every
request it may give an Authorization value, and after a 401 it gets the
``WWW-Authenticate`` challenge and may give one to retry with. The default
is anonymous access.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator

from hull.distribution import NotFoundError, RegistryError, TransportError, Unauthorized, http1
from hull.distribution.reference import DEFAULT_DOMAIN
from hull.image.errors import DigestMismatch, SizeLimitExceeded, SizeMismatch
from hull.oci import digest as _digest
from hull.oci import jsonfast  # json's C scanner without json's import (re, enum)
from hull.oci import media_types as mt
from hull.oci.digest import Digest
from hull.oci.image import Descriptor

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Sequence
    from typing import Any, BinaryIO, Protocol

    class BlobSink(Protocol):
        """Where a resumable download goes (hull.image.store.Partial): ``offset`` bytes are already
        there; ``commit`` verifies and raises DigestMismatch/SizeMismatch after discarding the bytes."""

        offset: int
        resumed: bool
        validator: str

        def write(self, chunk: bytes) -> None: ...
        def restart(self) -> None: ...
        def set_validator(self, value: str) -> None: ...
        def commit(self) -> object: ...

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
RETRY_STATUS = (500, 502, 503, 504)  # a registry or a proxy in front of it failing, maybe for a moment
TOO_MANY_REQUESTS = 429
UPLOAD_GONE = ("BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN")


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, ""))
    except ValueError:
        return default


class UntrustedCertificate(TransportError):
    """The registry's TLS certificate did not verify (no CA in certs.d for it, a wrong name...)."""


class Retry:
    """How failed requests are re-sent: at most ``attempts`` more times, waiting ``backoff * 2**n``
    seconds (capped at ``max_delay``) with "equal jitter" (half fixed, half random) so that the
    clients a registry restart dropped together do not come back together; a 429's Retry-After is
    obeyed up to ``max_retry_after`` seconds. The defaults can be changed in the environment
    (HULL_REGISTRY_RETRIES, HULL_REGISTRY_BACKOFF, HULL_REGISTRY_TIMEOUT for the socket timeout).

    ``fixed_delay``: wait that long before every re-send instead (podman's ``--retry-delay``, which
    c/common's retry package uses as is, without backoff). ``log`` hears one line per re-send."""

    def __init__(
        self,
        attempts: int | None = None,
        backoff: float | None = None,
        max_delay: float = 10.0,
        max_retry_after: float = 60.0,
        fixed_delay: float | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.attempts = attempts if attempts is not None else int(_env_float("HULL_REGISTRY_RETRIES", 5))
        self.backoff = backoff if backoff is not None else _env_float("HULL_REGISTRY_BACKOFF", 0.5)
        self.max_delay = max_delay
        self.max_retry_after = max_retry_after
        self.fixed_delay = fixed_delay
        self.log = log
        self.sleep: Callable[[float], None] = time.sleep  # a seam for tests

    def delay(self, attempt: int) -> float:
        if self.fixed_delay is not None:
            return self.fixed_delay
        step: float = min(self.max_delay, self.backoff * float(2**attempt))
        import random  # only once a request failed

        return step / 2 + random.uniform(0, step / 2)  # noqa: S311 - jitter, not a secret

    def note(self, method: str, url: str, seconds: float, failures: int, reason: str) -> None:
        """The line ``log`` gets before re-send number ``failures + 1``, e.g. ``Retrying GET
        http://h/v2/r/blobs/sha256:0123456789ab… in 0.8 s (retry 1/5): 503 Service Unavailable``."""
        if self.log is None:
            return
        head, sep, tail = url.partition("sha256:")
        if sep and len(tail) > 12:
            url = f"{head}sha256:{tail[:12]}…"  # a digest shortened as docker's short IDs
        self.log(f"Retrying {method} {url} in {seconds:.1f} s (retry {failures + 1}/{self.attempts}): {reason}")


_default_retry: Retry | None = None


def set_default_retry(retry: Retry | None) -> None:
    """The policy of every Registry made from now on without ``retry=`` (the CLI's ``--retry``,
    ``--retry-delay`` and retry log line); None goes back to ``Retry()``."""
    global _default_retry
    _default_retry = retry


def retry_after(value: str, now: float | None = None) -> float | None:
    """RFC 9110 10.2.3: ``Retry-After`` is delay-seconds or an HTTP-date; None when absent or bad."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        import email.utils

        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


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

    def __init__(self, raw: http1.Response, url: str, conn: http1.Connection) -> None:
        self.raw = raw
        self.url = url
        self.conn = conn
        self.status = raw.status

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
            if self.raw.length:
                # read(n) returns b"" when the peer closes before Content-Length bytes: a drop, not an end.
                raise TransportError(f"{self.url}: connection lost while reading: {self.raw.length} bytes missing")
        except (OSError, http1.HTTPException) as err:
            raise TransportError(f"{self.url}: connection lost while reading: {err}") from None
        finally:
            self.abort()

    def abort(self) -> None:
        """Done with the body: a body left unread makes the connection unusable for the next request."""
        if not self.raw.isclosed():
            self.raw.close()  # and the connection with it

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
        timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        retry: Retry | None = None,
    ) -> None:
        self.domain = domain
        self.host = endpoint(domain)
        # Loopback registries are spoken to in plain HTTP until the registries config says more.
        self.scheme = "http" if (insecure if insecure is not None else is_loopback(self.host)) else "https"
        self.base = f"{self.scheme}://{self.host}"
        self.auth: Authenticator = authenticator or Anonymous()
        self.timeout = timeout if timeout is not None else _env_float("HULL_REGISTRY_TIMEOUT", 60.0)
        self.retry = retry or _default_retry or Retry()
        self.ssl_context = ssl_context
        self._local = threading.local()

    # ------------------------------------------------------------ transport

    def _connection(self, scheme: str, netloc: str) -> http1.Connection:
        pool: dict[tuple[str, str], http1.Connection] = self._local.__dict__.setdefault("pool", {})
        conn = pool.get((scheme, netloc))
        if conn is None:
            # https: the registries config's context (certs.d), else the system's (made on connect).
            tls = scheme == "https"
            conn = http1.Connection(netloc, timeout=self.timeout, context=self.ssl_context if tls else None, tls=tls)
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
        scheme, netloc, path, query = split_url(url)
        target = path + (f"?{query}" if query else "")
        start = body.tell() if body is not None and not isinstance(body, bytes) else 0
        for attempt in (0, 1):
            conn = self._connection(scheme, netloc)
            reused = conn.sock is not None
            try:
                conn.request(method, target, body=body, headers=headers)
                return Response(conn.getresponse(), url, conn)
            except (BrokenPipeError, ConnectionResetError) as err:  # http1.RemoteDisconnected is one
                self._drop(scheme, netloc)
                # A kept-alive connection the server closed meanwhile (it answered nothing, so it
                # processed nothing): send again once on a fresh one, a file body from its start.
                if attempt == 0 and reused:
                    if body is not None and not isinstance(body, bytes):
                        body.seek(start)
                    continue
                raise TransportError(f"{method} {url}: {err}") from None
            except (OSError, http1.HTTPException) as err:
                self._drop(scheme, netloc)
                reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
                if isinstance(err, TimeoutError):
                    reason = "timed out"
                ssl = sys.modules.get("ssl")  # loaded only if this registry speaks TLS
                if ssl is not None and isinstance(err, ssl.SSLCertVerificationError):
                    raise UntrustedCertificate(f"{method} {url}: {reason}") from None
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
        if ``follow``, re-sent after transient failures as ``self.retry`` says (see the module notes);
        a status outside ``ok`` raises the registry's error."""
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        base_headers = {"User-Agent": "hull", **(headers or {})}
        challenge: str | None = None
        answer: str | None = None  # the authenticator's answer to the challenge, for the one re-send
        redirects = 0
        failures = 0
        start = body.tell() if body is not None and not isinstance(body, bytes) else 0
        while True:
            sent = dict(base_headers)
            same_host = split_url(url)[1] == self.host
            if same_host:
                value = answer if answer is not None else self.auth.authorize(self.host, scopes, None)
                if value:
                    sent["Authorization"] = value
            try:
                response = self._send(method, url, sent, body)
            except UntrustedCertificate:
                raise  # the same certificate comes back on every re-send
            except TransportError as err:
                if failures >= self.retry.attempts:
                    raise
                backoff = self.retry.delay(failures)
                self.retry.note(method, url, backoff, failures, str(err).removeprefix(f"{method} {url}: "))
                self._pause(backoff, body, start)
                failures += 1
                continue
            if response.status in RETRY_STATUS or response.status == TOO_MANY_REQUESTS:
                wait = self._wait_for(method, url, response, failures)
                if wait is not None and response.status not in ok:
                    response.drain()
                    self.retry.note(method, url, wait, failures, f"{response.status} {response.raw.reason}".strip())
                    self._pause(wait, body, start)
                    failures += 1
                    continue
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
                url = join_url(url, location)
                challenge = answer = None
                continue
            if response.status not in ok:
                raise self._error(method, url, response)
            return response

    def _wait_for(self, method: str, url: str, response: Response, failures: int) -> float | None:
        """How long to wait before re-sending after a 429 or 5xx; None to give up (the caller raises
        the registry's error). A Retry-After past the bound fails at once, naming it."""
        if failures >= self.retry.attempts:
            return None
        if response.status != TOO_MANY_REQUESTS:
            return self.retry.delay(failures)
        asked = retry_after(response.header("Retry-After"))
        if asked is None:
            return self.retry.delay(failures)
        if asked > self.retry.max_retry_after:
            response.drain()
            where = split_url(url)[2]
            raise RegistryError(
                f"{self.domain}: {method} {where}: 429 Too Many Requests, retry after {asked:.0f} s "
                f"(more than the {self.retry.max_retry_after:.0f} s hull waits)",
                TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
            )
        return asked

    def _pause(self, seconds: float, body: bytes | BinaryIO | None, start: int) -> None:
        if body is not None and not isinstance(body, bytes):
            body.seek(start)  # a streamed body is sent again from where it started
        self.retry.sleep(seconds)

    def _error(self, method: str, url: str, response: Response) -> RegistryError:
        """spec.md "Error Codes": ``{"errors": [{"code", "message", "detail"}]}`` as one line."""
        text = ""
        code = ""
        try:
            body = response.read(64 << 10)
            doc = jsonfast.loads(body) if body else {}
            errors = doc.get("errors") if isinstance(doc, dict) else None
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                code = str(errors[0].get("code", ""))
                text = "; ".join(
                    f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict)
                )
        except (ValueError, SizeLimitExceeded, TransportError):
            pass
        message = f"{self.domain}: {method} {split_url(url)[2]}: {response.status} {response.raw.reason}"
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
        desc, data, _etag = self.get_manifest_etag(repo, reference, accept)
        return desc, data

    def get_manifest_etag(
        self, repo: str, reference: str, accept: Sequence[str] = MANIFEST_ACCEPT
    ) -> tuple[Descriptor, bytes, str]:
        """get_manifest, with the answer's ``ETag`` ("" when none): a later PUT to the same tag can
        be made conditional on it (``If-Match``, RFC 9110 13.1.1)."""
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
        return Descriptor(media_type, actual, len(data)), data, response.header("ETag")

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

    def download_blob(
        self, repo: str, digest: str, sink: BlobSink, progress: Callable[[int], None] | None = None
    ) -> None:
        """GET a blob into ``sink``, resuming after a dropped connection from the byte reached.

        A connection lost mid-body counts as one failure of ``self.retry`` (the request itself retries
        its own failures); each new request asks ``Range: bytes=<offset>-``. After a digest
        mismatch the sink has discarded the bytes. The mismatch is final when the blob came whole
        from one answer starting at byte 0: the registry serves wrong content, and fetching it again
        would only hide that. When the bytes were joined from several answers (or from a partial file
        an earlier process left), the join itself may be at fault, so one fresh download from byte 0
        is allowed; its result is then final either way."""
        path = f"/v2/{repo}/blobs/{digest}"
        scopes = (f"repository:{repo}:pull",)
        failures = 0
        fresh_allowed = True
        joined = sink.resumed
        while True:
            offset = sink.offset
            headers: dict[str, str] = {}
            if offset:
                headers["Range"] = f"bytes={offset}-"
                if sink.validator:
                    headers["If-Range"] = sink.validator
            response = self.request("GET", path, scopes=scopes, headers=headers, follow=True, ok=(200, 206, 416))
            if response.status == 416 or (response.status == 206 and _range_start(response) != offset):
                # The partial file is longer than the blob, or the server answered another range:
                # neither can be joined; start again from byte 0.
                response.abort()
                sink.restart()
                failures += 1
                if failures > self.retry.attempts:
                    raise RegistryError(f"{self.domain}: GET {path}: the registry does not honour Range", 416)
                continue
            if response.status == 200:
                if offset:
                    sink.restart()  # Range ignored or the validator changed (If-Range): the whole blob
                    joined = False
                validator = response.header("ETag") or response.header("Last-Modified")
                if validator:
                    sink.set_validator(validator)
            elif offset:
                joined = True
            try:
                for chunk in response.chunks():
                    sink.write(chunk)
                    if progress is not None:
                        progress(len(chunk))
            except TransportError as err:
                if failures >= self.retry.attempts:
                    raise
                wait = self.retry.delay(failures)
                self.retry.note("GET", response.url, wait, failures, str(err).removeprefix(f"{response.url}: "))
                self.retry.sleep(wait)
                failures += 1
                continue
            finally:
                response.abort()
            try:
                sink.commit()
            except (DigestMismatch, SizeMismatch):
                if joined and fresh_allowed:
                    fresh_allowed = False
                    joined = False
                    sink.restart()
                    continue
                raise
            return

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
        return join_url(response.url, location)

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
            base = source.tell()
            recoveries = 0
            while offset < size:
                source.seek(base + offset)
                piece = source.read(min(chunk_size, size - offset))
                if not piece:
                    raise RegistryError(f"blob {digest}: source ended at {offset} of {size} bytes")
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(len(piece)),
                    "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                }
                try:
                    response = self.request(
                        "PATCH", location, scopes=scopes, headers=headers, body=piece, ok=(202, 416)
                    )
                except NotFoundError as err:
                    # docker-registry answers a PATCH sent again with a stale ``_state`` (its first
                    # answer was lost) 404 BLOB_UPLOAD_INVALID and cancels the session: start over.
                    recoveries += 1
                    if err.code not in UPLOAD_GONE or recoveries > self.retry.attempts:
                        raise
                    location, offset = self._restart_upload(repo, location, scopes)
                    continue
                if response.status == 416:
                    # spec.md "Pushing a blob in chunks": out of order; ask where the upload stands
                    # (a PATCH whose answer was lost may have been stored) and go on from there.
                    response.drain()
                    recoveries += 1
                    if recoveries > self.retry.attempts:
                        raise RegistryError(f"{self.domain}: PATCH {digest}: upload keeps answering 416", 416)
                    location, offset = self.upload_status(location, scopes)
                    continue
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

    def _restart_upload(self, repo: str, location: str, scopes: Sequence[str]) -> tuple[str, int]:
        """After the registry gave up an upload session: where it stands if it still exists, else a new
        session from byte 0."""
        try:
            return self.upload_status(location, scopes)
        except NotFoundError:
            fresh = self.start_upload(repo)
            if fresh is None:
                raise RegistryError(f"{self.domain}: a new upload session was answered 201") from None
            return fresh, 0

    def upload_status(self, location: str, scopes: Sequence[str]) -> tuple[str, int]:
        """spec.md "Pushing a blob in chunks": GET the upload URL; 204 with ``Range: 0-<last>`` (the
        bytes the registry holds) and the Location to continue at. Returns (location, next offset)."""
        response = self.request("GET", location, scopes=scopes, ok=(204,))
        held = response.header("Range")
        new_location = self._location(response, "upload status")
        _first, dash, last = held.partition("-")
        if not dash or not last.strip().isdigit():
            return new_location, 0  # nothing stored yet ("0-0" on an empty upload is ambiguous)
        return new_location, int(last) + 1

    def put_manifest(
        self, repo: str, reference: str, data: bytes, media_type: str, conditions: dict[str, str] | None = None
    ) -> Digest:
        """PUT a manifest or index under a tag or its digest; returns its digest. ``conditions``:
        ``If-Match``/``If-None-Match`` headers; a registry that honours them answers 412 when the
        tag changed meanwhile (a RegistryError with that status)."""
        response = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            scopes=self._push_scopes(repo),
            headers={"Content-Type": media_type, "Content-Length": str(len(data)), **(conditions or {})},
            body=data,
            ok=(201,),
        )
        response.drain()
        actual = _digest.of(data)
        returned = _digest_or_none(response.header("Docker-Content-Digest"))
        if returned is not None and returned.algorithm == actual.algorithm and returned != actual:
            raise DigestMismatch(actual, returned)
        if b'"subject"' in data and not response.header("OCI-Subject"):
            # spec.md "Unavailable Referrers API": no OCI-Subject answer means no referrers API;
            # the pusher keeps the subject's referrers tag up to date.
            from hull.distribution import referrers

            referrers.add_to_fallback(self, repo, data, media_type, str(actual))
        return actual

    def referrers(self, repo: str, digest: str, artifact_type: str | None = None) -> dict[str, Any]:
        """The image index of ``repo@digest``'s referrers (hull.distribution.referrers)."""
        from hull.distribution import referrers

        return referrers.list_referrers(self, repo, digest, artifact_type)

    def _delete(self, repo: str, kind: str, digest: str) -> None:
        """spec.md "Deleting Manifests" / "Deleting Blobs": DELETE by digest, 202; a registry with
        deletion disabled answers 405 (or 400 UNSUPPORTED)."""
        try:
            self.request(
                "DELETE", f"/v2/{repo}/{kind}/{digest}", scopes=(f"repository:{repo}:delete",), ok=(202,)
            ).drain()
        except NotFoundError:
            raise NotFoundError(f"{self.domain}/{repo}@{digest}: no such {kind[:-1]} in the registry", 404) from None
        except RegistryError as err:
            if err.status == 405 or (err.status == 400 and err.code == "UNSUPPORTED"):
                why = f"{err.status} {err.code}".strip()
                raise RegistryError(
                    f"{self.domain}: cannot delete {repo}@{digest}: deleting is disabled in this registry ({why})",
                    err.status,
                    err.code,
                ) from None
            raise

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Delete a manifest by digest (every tag naming it goes with it, as the registry decides)."""
        self._delete(repo, "manifests", digest)

    def delete_blob(self, repo: str, digest: str) -> None:
        self._delete(repo, "blobs", digest)

    def tags(self, repo: str, page_size: int = 0) -> Iterator[str]:
        """Every tag of ``repo`` in the registry's order, page by page (``n``, ``last``, ``Link``)."""
        url = f"/v2/{repo}/tags/list" + (f"?n={page_size}" if page_size else "")
        while url:
            response = self.request("GET", url, scopes=(f"repository:{repo}:pull",))
            body = response.read(MAX_MANIFEST)
            try:
                doc = jsonfast.loads(body)
            except ValueError:
                raise RegistryError(f"{self.domain}: tag list of {repo}: not JSON") from None
            tags = doc.get("tags") if isinstance(doc, dict) else None
            page = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
            yield from page
            url = _next_link(response.header("Link"))
            if url:
                url = join_url(response.url, url)
            elif page_size and len(page) == page_size:
                # No Link header: ask for what follows the last tag seen (spec.md "Listing Tags").
                from urllib.parse import quote

                url = f"/v2/{repo}/tags/list?n={page_size}&last={quote(page[-1])}"


def _digest_or_none(text: str) -> Digest | None:
    try:
        return _digest.parse(text)
    except Exception:  # noqa: BLE001 - any unparsable value is "no digest"
        return None


def _sniff_media_type(data: bytes) -> str:
    try:
        doc = jsonfast.loads(data)
    except ValueError:
        return ""
    if not isinstance(doc, dict):
        return ""
    value = doc.get("mediaType")
    if isinstance(value, str) and value:
        return value
    return mt.INDEX if "manifests" in doc else mt.MANIFEST if "config" in doc else ""


def _range_start(response: Response) -> int:
    """The first byte of a 206's ``Content-Range: bytes START-END/TOTAL`` (-1 when unreadable)."""
    unit, _, spec = response.header("Content-Range").partition(" ")
    start, dash, _rest = spec.partition("-")
    return int(start) if unit == "bytes" and dash and start.isdigit() else -1


def _with_digest(location: str, digest: str) -> str:
    from urllib.parse import quote

    sep = "&" if split_url(location)[3] else "?"
    return f"{location}{sep}digest={quote(digest)}"


def split_url(url: str) -> tuple[str, str, str, str]:
    """(scheme, netloc, path, query) of a URL, as urllib.parse.urlsplit gives them, for the absolute
    http(s) URLs and absolute paths the client builds and registries answer with (the import of
    urllib.parse is 2 ms of every pull's start-up). A path alone has an empty scheme and netloc."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    else:
        scheme = scheme.lower()
    rest = rest.partition("#")[0]
    if sep:
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        netloc, rest = rest[:cut], rest[cut:]
    else:
        netloc = ""
    path, _, query = rest.partition("?")
    return scheme, netloc, path, query


def join_url(base: str, ref: str) -> str:
    """urllib.parse.urljoin for a Location or Link: an absolute URL, ``//host/...`` or an absolute
    path without dot segments are resolved here; anything else by urllib.parse (RFC 3986 5.2)."""
    scheme, netloc, _path, _query = split_url(base)
    if "://" in ref.partition("?")[0] and ref.partition("://")[0].isalpha():
        return ref
    if ref.startswith("//"):
        return f"{scheme}:{ref}"
    if ref.startswith("/") and "/." not in ref.partition("?")[0]:
        return f"{scheme}://{netloc}{ref}" if netloc else ref
    from urllib.parse import urljoin

    return urljoin(base, ref)


def _next_link(header: str) -> str:
    """RFC 5988 ``Link: </v2/...>; rel="next"`` -> the URL, or ""."""
    for part in header.split(","):
        url, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            return url.strip().strip("<>")
    return ""
