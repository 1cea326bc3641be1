"""Where to pull from: containers-registries.conf(5) version 2 and certs.d directories.

The config is TOML::

    unqualified-search-registries = ["docker.io", "quay.io"]
    [[registry]]
    prefix = "example.com/foo"          # which references this entry covers (default: location)
    location = "internal.example.com/bar"  # where they are actually fetched
    insecure = false                    # plain HTTP allowed, TLS not verified
    blocked = false
    [[registry.mirror]]
    location = "mirror.example.com"
    pull-from-mirror = "all"            # or "digest-only", "tag-only"

read from ``$CONTAINERS_REGISTRIES_CONF`` or ``/etc/containers/registries.conf``, then
``registries.conf.d/*.conf`` beside it in name order (a later file replaces entries with the
same prefix and the search list; ``[aliases]`` are merged), as containers/image's
sysregistriesv2 does. A reference is matched by its longest prefix; the pull endpoints are the
mirrors in order, then the location itself.

TLS material comes from ``certs.d/HOST[:PORT]/`` as docker's and containers/image's: every
``*.crt`` is a CA, every ``*.cert`` needs a ``*.key`` of the same stem (a client certificate).

Every pull reads this module: paths are plain strings (os.path, not pathlib), the entries
@record classes (not NamedTuples), ssl imported only to build a context; each of those costs
start-up time.
"""

from __future__ import annotations

import os

from hull.distribution import DistributionError
from hull.oci.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Sequence
    from typing import Any

    from _typeshed import StrPath

DEFAULT_CONF = "/etc/containers/registries.conf"
CERT_DIRS = ("/etc/containers/certs.d", "/etc/docker/certs.d")
_PULL_FROM_MIRROR = ("all", "digest-only", "tag-only")


class RegistriesConfError(DistributionError):
    """A registries.conf or certs.d problem; the message names the file and the field."""


class BlockedError(RegistriesConfError):
    pass


@record
class Mirror:
    location: str
    insecure: bool = False
    pull_from_mirror: str = "all"


@record
class Registry:
    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirrors: tuple[Mirror, ...] = ()


@record
class TLSConfig:
    ca_files: tuple[str, ...] = ()
    client_cert: tuple[str, str] | None = None  # (certificate, key)
    verify: bool = True


@record
class Endpoint:
    """One place to fetch a repository from."""

    registry: str  # host[:port]
    repository: str  # the repository path on that registry
    insecure: bool  # try https without verification, then plain http (containers-registries.conf)
    mirror: bool
    tls: TLSConfig

    @property
    def schemes(self) -> tuple[str, ...]:
        return ("https", "http") if self.insecure else ("https",)


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise RegistriesConfError(f"{where}: expected true or false, got {value!r}")
    return value


def _location(where: str, value: Any, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise RegistriesConfError(f"{where}: expected a string, got {value!r}")
    text: str = value.rstrip("/")
    if "://" in text:
        raise RegistriesConfError(f"{where}: {text!r}: a location is host[:port][/path], without a URL scheme")
    if not text and not allow_empty:
        raise RegistriesConfError(f"{where}: must not be empty")
    return text


def _registry(where: str, raw: Any) -> Registry:
    if not isinstance(raw, dict):
        raise RegistriesConfError(f"{where}: expected a table")
    known = {"prefix", "location", "insecure", "blocked", "mirror", "mirror-by-digest-only"}
    for key in raw:
        if key not in known:
            raise RegistriesConfError(f"{where}.{key}: unknown field")
    location = _location(f"{where}.location", raw.get("location", ""), allow_empty=True)
    prefix = _location(f"{where}.prefix", raw.get("prefix", location), allow_empty=True)
    if not prefix:
        raise RegistriesConfError(f"{where}: needs a prefix or a location")
    if prefix.startswith("*."):
        if "/" in prefix or "*" in prefix[2:]:
            raise RegistriesConfError(f"{where}.prefix: {prefix!r}: a wildcard is only '*.domain', without a path")
        if location:
            raise RegistriesConfError(f"{where}.location: a wildcard prefix cannot be rewritten to a location")
    elif "*" in prefix:
        raise RegistriesConfError(f"{where}.prefix: {prefix!r}: '*' only as the leading '*.' of a domain")
    by_digest = _bool(f"{where}.mirror-by-digest-only", raw.get("mirror-by-digest-only", False))
    mirrors = []
    raw_mirrors = raw.get("mirror", [])
    if not isinstance(raw_mirrors, list):
        raise RegistriesConfError(f"{where}.mirror: expected an array of tables ([[registry.mirror]])")
    for i, m in enumerate(raw_mirrors):
        mw = f"{where}.mirror[{i}]"
        if not isinstance(m, dict):
            raise RegistriesConfError(f"{mw}: expected a table")
        for key in m:
            if key not in ("location", "insecure", "pull-from-mirror"):
                raise RegistriesConfError(f"{mw}.{key}: unknown field")
        pull = m.get("pull-from-mirror", "")
        if pull and pull not in _PULL_FROM_MIRROR:
            raise RegistriesConfError(
                f"{mw}.pull-from-mirror: {pull!r}: expected one of {', '.join(_PULL_FROM_MIRROR)}"
            )
        if pull and by_digest:
            # containers-registries.conf(5): the two settings conflict.
            raise RegistriesConfError(f"{mw}.pull-from-mirror: cannot be combined with {where}.mirror-by-digest-only")
        mirrors.append(
            Mirror(
                _location(f"{mw}.location", m.get("location", "")),
                _bool(f"{mw}.insecure", m.get("insecure", False)),
                pull or ("digest-only" if by_digest else "all"),
            )
        )
    return Registry(
        prefix,
        location,
        _bool(f"{where}.insecure", raw.get("insecure", False)),
        _bool(f"{where}.blocked", raw.get("blocked", False)),
        tuple(mirrors),
    )


def _only_aliases(text: str) -> bool:
    """Whether ``text`` is at most one ``[aliases]`` table of ``"name" = "value"`` lines, with
    comments (Debian's registries.conf is comments only)."""
    header = False
    for line in text.splitlines():
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if item == "[aliases]" and not header:
            header = True
        elif not header or not (item.startswith('"') and item.endswith('"') and "=" in item and "[" not in item):
            return False
    return True


def _matches(prefix: str, name: str) -> bool:
    if prefix.startswith("*."):
        host = name.split("/", 1)[0]
        return host.endswith(prefix[1:])
    return name == prefix or (name.startswith(prefix) and name[len(prefix)] in "/:@")


class RegistriesConf:
    def __init__(
        self,
        registries: Sequence[Registry] = (),
        search: Sequence[str] = (),
        aliases: dict[str, str] | None = None,
        cert_dirs: Sequence[StrPath] = CERT_DIRS,
    ) -> None:
        self.registries = list(registries)
        self.search = list(search)
        # [aliases] in file order; a file holding nothing else is kept as text and parsed only when
        # a short name needs the aliases (_only_aliases): Debian's registries.conf.d/shortnames.conf
        # would otherwise cost every pull by a full name the tomllib import.
        self._alias_layers: list[dict[str, str] | tuple[str, str]] = [dict(aliases or {})]
        self.cert_dirs = list(cert_dirs)

    @property
    def aliases(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for i, layer in enumerate(self._alias_layers):
            if isinstance(layer, tuple):
                layer = self._alias_layers[i] = self._parse_aliases(*layer)
            merged.update(layer)
        return merged

    def _parse_aliases(self, text: str, source: str) -> dict[str, str]:
        probe = RegistriesConf(cert_dirs=())
        probe.merge(text, source, defer=False)
        return probe.aliases

    @classmethod
    def parse(cls, text: str, source: str = "registries.conf") -> RegistriesConf:
        conf = cls(cert_dirs=CERT_DIRS)
        conf.merge(text, source)
        return conf

    def merge(self, text: str, source: str, defer: bool = True) -> None:
        """Apply one file: its search list replaces ours, its entries replace ours with the same prefix."""
        if defer and _only_aliases(text):
            self._alias_layers.append((text, source))
            return
        import tomllib

        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise RegistriesConfError(f"{source}: not valid TOML: {err}") from None
        if "registries" in doc:
            raise RegistriesConfError(
                f"{source}: [registries.*] is the version 1 format; write version 2 ([[registry]])"
            )
        for key in doc:
            if key not in (
                "unqualified-search-registries",
                "registry",
                "aliases",
                "short-name-mode",
                "credential-helpers",
            ):
                raise RegistriesConfError(f"{source}: {key}: unknown field")
        if "unqualified-search-registries" in doc:
            search = doc["unqualified-search-registries"]
            if not isinstance(search, list) or not all(isinstance(s, str) and s for s in search):
                raise RegistriesConfError(f"{source}: unqualified-search-registries: expected an array of hosts")
            self.search = [_location(f"{source}: unqualified-search-registries[{i}]", s) for i, s in enumerate(search)]
        raw = doc.get("registry", [])
        if not isinstance(raw, list):
            raise RegistriesConfError(f"{source}: registry: expected an array of tables ([[registry]])")
        for i, entry in enumerate(raw):
            reg = _registry(f"{source}: registry[{i}]", entry)
            self.registries = [r for r in self.registries if r.prefix != reg.prefix] + [reg]
        aliases = doc.get("aliases", {})
        if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
            raise RegistriesConfError(f"{source}: aliases: expected a table of strings")
        self._alias_layers.append(dict(aliases))

    def find(self, name: str) -> Registry | None:
        """The entry for ``name`` (``host[:port]/path``): the longest matching prefix."""
        best: Registry | None = None
        for reg in self.registries:
            if _matches(reg.prefix, name) and (best is None or len(reg.prefix) > len(best.prefix)):
                best = reg
        return best

    def tls(self, host: str, insecure: bool = False) -> TLSConfig:
        return tls_config(host, self.cert_dirs, verify=not insecure)

    def pull_endpoints(self, name: str, by_digest: bool = False) -> list[Endpoint]:
        """Where to pull ``name`` from, in order: the mirrors that apply (pull-from-mirror against
        whether the reference has a digest), then the registry itself. Blocked: BlockedError."""
        reg = self.find(name)
        if reg is None:
            host, _, repo = name.partition("/")
            return [Endpoint(host, repo, False, False, self.tls(host))]
        if reg.blocked:
            raise BlockedError(
                f"registry {name.split('/', 1)[0]} is blocked in registries.conf (prefix {reg.prefix!r})"
            )
        out = []
        for m in reg.mirrors:
            if (m.pull_from_mirror == "digest-only" and not by_digest) or (
                m.pull_from_mirror == "tag-only" and by_digest
            ):
                continue
            out.append(self._endpoint(reg, m.location, name, m.insecure, mirror=True))
        out.append(self._endpoint(reg, reg.location or reg.prefix, name, reg.insecure, mirror=False))
        return out

    def push_endpoint(self, name: str) -> Endpoint:
        """Pushes go to the registry itself, never to a mirror."""
        return self.pull_endpoints(name)[-1]

    def _endpoint(self, reg: Registry, location: str, name: str, insecure: bool, mirror: bool) -> Endpoint:
        if reg.prefix.startswith("*."):
            rewritten = name if not mirror else location + name[len(name.split("/", 1)[0]) :]
        else:
            rewritten = location + name[len(reg.prefix) :]
        host, _, repo = rewritten.partition("/")
        return Endpoint(host, repo, insecure, mirror, self.tls(host, insecure))

    def short_name_candidates(self, name: str) -> list[str]:
        """Fully qualified names to try for a short name (no registry part): its alias if one
        is configured, else each search registry in order."""
        if name in self.aliases:
            return [self.aliases[name]]
        return [f"{reg}/{name}" for reg in self.search]


def conf_paths() -> list[str]:
    env = os.environ.get("CONTAINERS_REGISTRIES_CONF")
    main = env or DEFAULT_CONF
    if not env and os.geteuid() != 0:
        config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        user = os.path.join(config_home, "containers", "registries.conf")
        if os.path.exists(user):
            main = user
    extra: list[str] = []
    if not env:
        drop_in = os.path.join(os.path.dirname(main), "registries.conf.d")
        try:
            extra = sorted(os.path.join(drop_in, n) for n in os.listdir(drop_in) if n.endswith(".conf"))
        except (FileNotFoundError, NotADirectoryError):
            pass
    return [main, *extra]


def load(paths: Sequence[StrPath] | None = None, cert_dirs: Sequence[StrPath] | None = None) -> RegistriesConf:
    """The registries config from ``paths`` (default: conf_paths()); missing files are empty."""
    conf = RegistriesConf(cert_dirs=CERT_DIRS if cert_dirs is None else cert_dirs)
    if cert_dirs is None and os.geteuid() != 0:
        conf.cert_dirs.insert(0, os.path.join(os.path.expanduser("~"), ".config", "containers", "certs.d"))
    for path in conf_paths() if paths is None else paths:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        except OSError as err:
            raise RegistriesConfError(f"{path}: {err.strerror}") from None
        conf.merge(text, str(path))
    return conf


def tls_config(host: str, cert_dirs: Sequence[StrPath] = CERT_DIRS, verify: bool = True) -> TLSConfig:
    """CAs and a client certificate for ``host`` (``host[:port]``) from the first certs.d
    directory that has a ``host`` subdirectory."""
    for base in cert_dirs:
        d = os.path.join(base, host)
        try:
            names = sorted(os.listdir(d))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as err:
            raise RegistriesConfError(f"{d}: {err.strerror}") from None
        cas = tuple(os.path.join(d, n) for n in names if n.endswith(".crt"))
        client: tuple[str, str] | None = None
        for n in names:
            stem, ext = os.path.splitext(n)
            if ext == ".cert":
                if stem + ".key" not in names:
                    raise RegistriesConfError(f"{d}: client certificate {n} has no key {stem}.key")
                client = client or (os.path.join(d, n), os.path.join(d, stem + ".key"))
            elif ext == ".key" and stem + ".cert" not in names:
                raise RegistriesConfError(f"{d}: key {n} has no client certificate {stem}.cert")
        return TLSConfig(cas, client, verify)
    return TLSConfig((), None, verify)


def ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """An SSL context for ``tls``: the system CAs plus certs.d's, the client certificate if any;
    unverified when the registry is insecure."""
    import ssl

    ctx = ssl.create_default_context()
    try:
        for ca in tls.ca_files:
            ctx.load_verify_locations(cafile=ca)
        if tls.client_cert:
            ctx.load_cert_chain(*tls.client_cert)
    except (OSError, ssl.SSLError) as err:
        raise RegistriesConfError(f"TLS material for the registry: {err}") from None
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
