"""Registry credentials as docker and podman keep them.

Two file formats with one shape (``{"auths": {KEY: {"auth": base64("user:pass"), "identitytoken": ...}},
"credHelpers": {HOST: NAME}, "credsStore": NAME}``): podman's ``auth.json``
(``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json``, root without
XDG_RUNTIME_DIR: ``/run/containers/0/auth.json``) and docker's ``~/.docker/config.json``
(``$DOCKER_CONFIG/config.json``). Lookups read podman's file first, then docker's, as
containers/image's ``pkg/docker/config`` does.

Credential helpers follow docker-credential-helpers' protocol: ``docker-credential-NAME get``
reads the server URL on stdin and writes ``{"ServerURL", "Username", "Secret"}``; ``store``
reads that JSON; ``erase`` reads the server URL. A Username of ``<token>`` marks the Secret as
an identity token (docker's ``tokenUsername``).
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from hull.distribution import DistributionError
from hull.oci import jsonfast  # json's C scanner without json's import (re, enum)

# docker keys Docker Hub by its v1 index URL; containers/image normalises it to docker.io.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "docker.io"}
TOKEN_USERNAME = "<token>"


class CredentialsError(DistributionError):
    """A credentials file or helper could not be read or written (the message names which)."""


class Credentials(NamedTuple):
    username: str = ""
    password: str = ""
    # An OAuth2 refresh token (docker's identitytoken): sent to the token server with the
    # refresh_token grant instead of username/password (distribution docs/spec/auth/oauth.md).
    identity_token: str = ""
    source: str = ""  # where they came from: a file path or docker-credential-NAME

    def __repr__(self) -> str:  # never print secrets by accident
        return f"Credentials(username={self.username!r}, source={self.source!r})"


# run_helper(program, action, stdin) -> stdout; raises CredentialsError. Injectable for tests.
HelperRunner = Callable[[str, str, bytes], bytes]


def run_helper(program: str, action: str, data: bytes) -> bytes:
    import subprocess

    try:
        done = subprocess.run([program, action], input=data, capture_output=True, timeout=60, check=False)
    except FileNotFoundError:
        raise CredentialsError(f"credential helper {program} not found in PATH") from None
    except subprocess.TimeoutExpired:
        raise CredentialsError(f"credential helper {program} {action}: timed out") from None
    if done.returncode != 0:
        out = (done.stdout or done.stderr).decode(errors="replace").strip()
        if action == "get" and "credentials not found" in out:
            return b""
        raise CredentialsError(f"credential helper {program} {action}: {out or f'exit status {done.returncode}'}")
    return done.stdout


def normalize_registry(key: str) -> str:
    """An auths key (``https://index.docker.io/v1/``, ``http://host:5000``, ``host/ns/repo``) as
    ``host[:port][/path]``, Docker Hub's names as ``docker.io`` (containers/image normalizeAuthFileKey)."""
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix) :].split("/", 1)[0]  # a URL key names only its host (docker's v1 style)
            break
    host, sep, rest = key.partition("/")
    if host in _HUB_ALIASES:
        host = "docker.io"
    return host + sep + rest.rstrip("/") if rest else host


def default_auth_file() -> Path:
    """Where ``hull login`` writes: podman's auth.json."""
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        return Path(env)
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        return Path(runtime_dir) / "containers" / "auth.json"
    if os.geteuid() == 0:
        return Path("/run/containers/0/auth.json")
    return Path(os.path.expanduser("~")) / ".config" / "containers" / "auth.json"


def docker_config_file() -> Path:
    config_dir = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(config_dir) / "config.json"


def auth_files() -> list[Path]:
    """The files a lookup reads, first match wins (containers/image getPathToAuth + docker's)."""
    files = [default_auth_file()]
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    files.append(Path(config_home) / "containers" / "auth.json")
    files.append(docker_config_file())
    seen: list[Path] = []
    for f in files:
        if f not in seen:
            seen.append(f)
    return seen


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise CredentialsError(f"{path}: {err.strerror}") from None
    if not raw.strip():
        return {}
    try:
        doc = jsonfast.loads(raw)
    except ValueError as err:
        raise CredentialsError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise CredentialsError(f"{path}: expected a JSON object")
    for field in ("auths", "credHelpers"):
        if field in doc and not isinstance(doc[field], dict):
            raise CredentialsError(f"{path}: {field}: expected an object")
    if "credsStore" in doc and not isinstance(doc["credsStore"], str):
        raise CredentialsError(f"{path}: credsStore: expected a string")
    return doc


def _decode_entry(path: Path, key: str, entry: Any) -> Credentials | None:
    where = f"{path}: auths[{key!r}]"
    if not isinstance(entry, dict):
        raise CredentialsError(f"{where}: expected an object")
    identity = entry.get("identitytoken") or ""
    auth = entry.get("auth") or ""
    if not isinstance(auth, str) or not isinstance(identity, str):
        raise CredentialsError(f"{where}: auth and identitytoken must be strings")
    username = password = ""
    if auth:
        try:
            plain = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialsError(f"{where}.auth: not base64 of 'username:password'") from None
        username, sep, password = plain.partition(":")
        if not sep:
            raise CredentialsError(f"{where}.auth: decodes to no 'username:password' pair")
    if not (username or identity):
        return None  # docker leaves empty placeholders in auths when a credsStore holds the secret
    return Credentials(username, password, identity, str(path))


def _helper_program(doc: dict[str, Any], registry: str) -> str | None:
    host = registry.split("/", 1)[0]
    helpers = doc.get("credHelpers") or {}
    name = helpers.get(host) or (helpers.get(DOCKER_HUB_KEY) if host == "docker.io" else None)
    name = name or doc.get("credsStore")
    return f"docker-credential-{name}" if name else None


def _server_url(registry: str) -> str:
    # Helpers are keyed by what docker sends them: the v1 index URL for Hub, else the host.
    host = registry.split("/", 1)[0]
    return DOCKER_HUB_KEY if host == "docker.io" else host


def _from_helper(program: str, registry: str, runner: HelperRunner) -> Credentials | None:
    out = runner(program, "get", _server_url(registry).encode())
    if not out.strip():
        return None
    try:
        doc = jsonfast.loads(out)
        username, secret = str(doc.get("Username") or ""), str(doc.get("Secret") or "")
    except (ValueError, AttributeError):
        raise CredentialsError(f"credential helper {program} get: not a JSON object: {out[:80]!r}") from None
    if username == TOKEN_USERNAME:
        return Credentials("", "", secret, program)
    return Credentials(username, secret, "", program) if username or secret else None


def _candidate_keys(registry: str) -> list[str]:
    """``host/ns/repo`` then ``host/ns`` then ``host``: podman's most-specific-first lookup."""
    parts = registry.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]


def lookup(registry: str, files: Sequence[Path] | None = None, runner: HelperRunner = run_helper) -> Credentials | None:
    """Credentials for ``registry`` (``host[:port]``, optionally with a repository path for
    podman's per-namespace entries), or None for anonymous access."""
    registry = normalize_registry(registry)
    for path in auth_files() if files is None else files:
        doc = _read(path)
        if not doc:
            continue
        host = registry.split("/", 1)[0]
        helpers = doc.get("credHelpers") or {}
        if host in helpers or (host == "docker.io" and DOCKER_HUB_KEY in helpers):
            program = _helper_program(doc, registry)
            assert program is not None
            return _from_helper(program, registry, runner)
        auths = {normalize_registry(k): (k, v) for k, v in (doc.get("auths") or {}).items()}
        for key in _candidate_keys(registry):
            if key in auths:
                found = _decode_entry(path, *auths[key])
                if found is not None:
                    return found
        if doc.get("credsStore"):
            found = _from_helper(f"docker-credential-{doc['credsStore']}", registry, runner)
            if found is not None:
                return found
    return None


def _auth_key(path: Path, registry: str) -> str:
    """The auths key to write: docker's config.json keeps Hub under its v1 URL."""
    if registry == "docker.io" and path.name == "config.json":
        return DOCKER_HUB_KEY
    return registry


def write_atomically(path: Path, doc: dict[str, Any]) -> None:
    """Replace ``path`` with ``doc`` as JSON, mode 0600 from the start (the file holds secrets),
    via a temporary file in the same directory renamed over it, so readers never see half a file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".auth-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            import json  # login and logout only

            json.dump(doc, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def store(
    registry: str, username: str, password: str, path: Path | None = None, runner: HelperRunner = run_helper
) -> str:
    """Save credentials for ``registry`` in ``path`` (default: podman's auth.json), or in the
    credential helper that file names for it. Returns where they went."""
    registry = normalize_registry(registry)
    path = default_auth_file() if path is None else path
    doc = _read(path)
    program = _helper_program(doc, registry)
    if program:
        secret = jsonfast.dumps({"ServerURL": _server_url(registry), "Username": username, "Secret": password})
        runner(program, "store", secret.encode())
        doc.setdefault("auths", {}).setdefault(_auth_key(path, registry), {})  # docker's placeholder
        write_atomically(path, doc)
        return program
    auths = doc.setdefault("auths", {})
    for key in [k for k in auths if normalize_registry(k) == registry]:
        del auths[key]  # one entry per registry, whatever spelling it had
    auths[_auth_key(path, registry)] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    write_atomically(path, doc)
    return str(path)


def erase(registry: str, path: Path | None = None, runner: HelperRunner = run_helper) -> bool:
    """Remove the credentials for ``registry`` from ``path`` (and its helper); False if none were there."""
    registry = normalize_registry(registry)
    path = default_auth_file() if path is None else path
    doc = _read(path)
    removed = False
    program = _helper_program(doc, registry)
    if program:
        try:
            runner(program, "erase", _server_url(registry).encode())
            removed = True
        except CredentialsError as err:
            if "credentials not found" not in str(err):
                raise
    auths = doc.get("auths") or {}
    for key in [k for k in auths if normalize_registry(k) == registry]:
        del auths[key]
        removed = True
    if removed:
        write_atomically(path, doc)
    return removed
