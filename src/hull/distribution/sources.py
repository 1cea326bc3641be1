"""Where a reference is pulled from and pushed to: the registries config applied to a name.

- Short names (no registry part: ``busybox``, ``team/app:1``) become fully qualified names by
  containers-registries.conf(5): an ``[aliases]`` entry if there is one, else each of
  ``unqualified-search-registries`` in order, every candidate tried until one resolves (podman's
  ``short-name-mode = "permissive"`` without a terminal; hull never prompts). With no search
  registries configured, docker's normalisation (``docker.io/library/...``) is the one candidate.
- A fully qualified name's endpoints are registries.RegistriesConf.pull_endpoints: the mirrors
  that apply, then the registry (its ``location`` rewrite applied). As containers/image's
  docker_image_src.go newImageSource, every error while fetching the manifest from one endpoint
  (connection refused or reset, TLS, 404, 401/403, 5xx, a digest mismatch) falls through to the
  next; once a manifest is in hand its blobs come from that endpoint only. A blocked registry is
  refused with one line before anything is sent.
- Plain HTTP only for registries marked ``insecure`` (HTTPS without verification first, then
  HTTP, as containers/image) and, as docker's daemon (whose default insecure-registries is
  127.0.0.0/8), for loopback hosts (localhost, 127.0.0.0/8, ::1). hull speaks plain HTTP to a
  loopback registry straight away, without a TLS attempt first, unless certs.d has TLS material
  for it (then it is HTTPS, verified with those CAs).
- TLS material for every HTTPS endpoint comes from certs.d (registries.tls_config).
"""

from __future__ import annotations

from hull.distribution import DistributionError, TransportError
from hull.distribution.client import Registry, is_loopback
from hull.distribution.reference import Reference, parse
from hull.distribution.registries import BlockedError, Endpoint, RegistriesConf, load, ssl_context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")

    from hull.distribution.client import Authenticator


class PullFailed(DistributionError):
    """Every endpoint (and every short-name candidate) failed; the message lists each attempt."""


def is_short_name(text: str) -> bool:
    """No registry part: the first component is not a host (normalize.go splitDockerDomain's test)."""
    name = text.split("@", 1)[0]
    first, slash, _rest = name.partition("/")
    if not slash:
        return True
    return "." not in first and ":" not in first and first != "localhost" and first.lower() == first


def candidates(text: str, conf: RegistriesConf) -> list[Reference]:
    """The fully qualified references to try for ``text``, in order."""
    if not is_short_name(text):
        return [parse(text)]
    name, at, digest = text.partition("@")
    tag = ""
    if ":" in name:
        name, _, tag = name.partition(":")
    suffix = (f":{tag}" if tag else "") + (f"@{digest}" if at else "")
    if name in conf.aliases:
        return [parse(conf.aliases[name] + suffix)]
    if not conf.search:
        return [parse(text)]  # docker's normalisation: docker.io/library/NAME
    return [parse(f"{registry}/{name}{suffix}") for registry in conf.search]


def _endpoint_ref(ref: Reference, endpoint: Endpoint) -> Reference:
    return Reference(endpoint.registry, endpoint.repository, ref.tag, ref.digest)


def open_endpoint(endpoint: Endpoint, authenticator: Authenticator | None = None) -> Registry:
    """A client for one endpoint with the scheme and TLS context the config asks for."""
    tls = endpoint.tls
    has_tls_material = bool(tls.ca_files or tls.client_cert)
    if is_loopback(endpoint.registry) and not has_tls_material:
        return Registry(endpoint.registry, authenticator=authenticator, insecure=True)
    context = ssl_context(tls)  # unverified when the endpoint is insecure (tls.verify False)
    client = Registry(endpoint.registry, authenticator=authenticator, insecure=False, ssl_context=context)
    if endpoint.insecure:
        try:
            client.ping()
        except TransportError:
            client.close()
            return Registry(endpoint.registry, authenticator=authenticator, insecure=True)
    return client


def resolve_pull(
    text: str,
    *,
    conf: RegistriesConf | None = None,
    authenticator: Authenticator | None = None,
    attempt: Callable[[Registry, Reference], T],
    log: Callable[[str], None] | None = None,
) -> tuple[Reference, Registry, Reference, T]:
    """Find where ``text`` can be pulled from: (the user's fully qualified reference, the client of
    the endpoint that answered, the reference on that endpoint, what ``attempt`` returned for it).

    ``attempt(client, endpoint_ref)`` fetches the manifest (or whatever proves the endpoint has the
    image); any DistributionError from it moves on to the next endpoint or candidate."""
    conf = load() if conf is None else conf
    failures: list[str] = []
    refs = candidates(text, conf)
    for ref in refs:
        try:
            endpoints = conf.pull_endpoints(f"{ref.domain}/{ref.path}", by_digest=ref.digest is not None)
        except BlockedError as err:
            if len(refs) == 1:
                raise
            failures.append(str(err))
            continue
        if log is not None:
            log(f"Trying to pull {ref}...")  # podman's line, once per candidate, mirrors or not
        for endpoint in endpoints:
            where = _endpoint_ref(ref, endpoint)
            client: Registry | None = None
            try:
                client = open_endpoint(endpoint, authenticator)
                found = attempt(client, where)
            except DistributionError as err:
                if client is not None:
                    client.close()
                failures.append(f"{where}: {err}" if str(where) not in str(err) else str(err))
                continue
            return ref, client, where, found
    if len(failures) == 1:
        raise PullFailed(failures[0])
    raise PullFailed(f"{text}: every source failed: " + "; ".join(failures))


def push_target(
    ref: Reference, *, conf: RegistriesConf | None = None, authenticator: Authenticator | None = None
) -> tuple[Registry, Reference]:
    """The client and reference a push of ``ref`` goes to: the registry itself (its location
    rewrite applied), never a mirror; a blocked registry is refused."""
    conf = load() if conf is None else conf
    endpoint = conf.push_endpoint(f"{ref.domain}/{ref.path}")
    return open_endpoint(endpoint, authenticator), _endpoint_ref(ref, endpoint)
