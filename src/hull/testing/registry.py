"""Debian's docker-registry (distribution 2.8.2) on a free loopback port, for tests and benchmarks.

Storage and config live under a directory of the caller's; no auth, htpasswd Basic auth, or token
auth (``htpasswd_auth`` / ``token_auth`` make the config's ``auth:`` section). Plain HTTP: loopback
is an insecure registry by default for every client.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

REGISTRY_BIN = "/usr/bin/docker-registry"
CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: {delete}
http:
  addr: 127.0.0.1:{port}
"""


class RegistryDidNotStart(RuntimeError):
    pass


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel's pick, the socket closed again)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def htpasswd_auth(path: str | os.PathLike[str], realm: str = "hull-test") -> str:
    """The ``auth:`` section for Basic auth against an htpasswd file (bcrypt lines, ``htpasswd -B``)."""
    return f"  htpasswd:\n    realm: {realm}\n    path: {path}\n"


def token_auth(realm: str, service: str, issuer: str, rootcertbundle: str | os.PathLike[str]) -> str:
    """The ``auth:`` section for distribution's token auth (docs/spec/auth/token.md)."""
    return (
        f"  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n"
        f"    rootcertbundle: {rootcertbundle}\n"
    )


class RegistryServer:
    """A running docker-registry, storage in ``base``/storage; ``host`` is its 127.0.0.1:port.

    Ready once ``/v2/`` answers: 200 without auth, 401 with it (a 200 then means the auth section
    was ignored). ``delete=False`` disables DELETE (storage.delete.enabled: the registry answers
    405). Stop with ``stop()`` or use it as a context manager."""

    def __init__(
        self, base: str | os.PathLike[str], auth: str | None = None, timeout: float = 15, *, delete: bool = True
    ) -> None:
        base = Path(base)
        base.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.host = f"127.0.0.1:{port}"
        self.storage = base / "storage"
        config = base / "config.yml"
        text = CONFIG.format(root=self.storage, port=port, delete="true" if delete else "false")
        config.write_text(text + (f"auth:\n{auth}" if auth else ""))
        self.log_path = base / "registry.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while not self._answers(auth is not None):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RegistryDidNotStart(f"docker-registry did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    def _answers(self, auth: bool) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1) as r:
                if auth:
                    self.stop()
                    raise RegistryDidNotStart("the registry answered /v2/ without credentials")
                return bool(r.status == 200)
        except urllib.error.HTTPError as err:
            return auth and err.code == 401
        except OSError:
            return False

    def blob_file(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes."""
        algorithm, _, encoded = digest.partition(":")
        return self.storage / "docker/registry/v2/blobs" / algorithm / encoded[:2] / encoded / "data"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self) -> RegistryServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
