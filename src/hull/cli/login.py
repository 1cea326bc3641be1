"""``hull login`` and ``hull logout``, as podman's.

login checks the credentials against the registry's ``/v2/`` (through the same Authenticator a
pull uses, so Basic and token auth both count) before it stores them; by default in podman's
auth.json (``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json``, root without
XDG_RUNTIME_DIR ``/run/containers/0/auth.json``), where podman and skopeo find them too;
``--authfile ~/.docker/config.json`` writes docker's file instead. logout removes them.
"""

from __future__ import annotations

import sys
from pathlib import Path


class LoginError(Exception):
    pass


def _password(password: str | None, password_stdin: bool, username: str) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise LoginError("no password given: use --password (-p), --password-stdin, or a terminal")
    import getpass

    return getpass.getpass(f"Password for {username}: ")


def _registry_of(name: str) -> str:
    """podman accepts a URL or host[/path]; credentials are keyed by host (or host/namespace)."""
    from hull.distribution.credentials import normalize_registry

    return normalize_registry(name)


def cmd_login(
    registry: str, username: str | None, password: str | None, password_stdin: bool, authfile: str | None
) -> int:
    from hull.distribution import Unauthorized
    from hull.distribution.auth import Authenticator, AuthError
    from hull.distribution.client import Registry
    from hull.distribution.credentials import Credentials, store

    key = _registry_of(registry)
    host = key.split("/", 1)[0]
    if not username:
        if not sys.stdin.isatty() or password_stdin:
            raise LoginError("no username given: use --username (-u)")
        username = input("Username: ").strip()
    secret = _password(password, password_stdin, username)
    if not username or not secret:
        raise LoginError("a username and a password are both needed")
    auth = Authenticator(lambda _host: Credentials(username, secret, "", "command line"))
    client = Registry(host, authenticator=auth)
    try:
        client.request("GET", "/v2/", ok=(200,)).drain()
    except AuthError:
        raise  # already says which registry and why
    except Unauthorized:
        # The registry refused the retry with the credentials: say so rather than relay its 401.
        raise auth.refused(f"{client.base}/v2/", None) from None
    finally:
        client.close()
    store(key, username, secret, Path(authfile) if authfile else None)
    print("Login Succeeded!")
    return 0


def cmd_logout(registry: str, authfile: str | None) -> int:
    from hull.distribution.credentials import erase

    key = _registry_of(registry)
    if not erase(key, Path(authfile) if authfile else None):
        raise LoginError(f"not logged into {registry}")
    print(f"Removed login credentials for {registry}")
    return 0
