"""The registry client over TLS (hull.distribution.http1 with ssl, imported only for https) against
Debian's docker-registry serving HTTPS with a certificate made here by the openssl CLI: a push and a
pull digest for digest with the CA given as certs.d would give it, skopeo reading what hull pushed,
and one clear error without the CA."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.distribution import TransportError
from hull.distribution.client import Registry
from hull.distribution.pull import pull
from hull.distribution.push import push
from hull.distribution.reference import parse
from hull.distribution.registries import TLSConfig, ssl_context
from hull.image.store import LayoutStore
from hull.testing.registry import REGISTRY_BIN, free_port
from tests.integration.test_registry import SOURCE, graph, import_source, run

pytestmark = pytest.mark.usefixtures("root_required")


class TLSRegistry:
    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True)
        self.cert, key = base / "domain.crt", base / "domain.key"
        run(
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(self.cert), "-days", "1", "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        )
        self.cert_dir = base / "certs"  # as certs.d/HOST: the CA alone
        self.cert_dir.mkdir()
        (self.cert_dir / "ca.crt").write_bytes(self.cert.read_bytes())
        port = free_port()
        self.host = f"localhost:{port}"
        config = base / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {base / 'storage'}\n"
            f"http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {self.cert}\n    key: {key}\n"
        )
        self.log = open(base / "registry.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            try:
                self.client().ping()
                return
            except TransportError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise
                time.sleep(0.05)

    def client(self, with_ca: bool = True) -> Registry:
        tls = TLSConfig((str(self.cert),) if with_ca else (), None, True)
        return Registry(self.host, insecure=False, ssl_context=ssl_context(tls))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[TLSRegistry]:
    reg = TLSRegistry(tmp_path / "registry")
    try:
        yield reg
    finally:
        reg.stop()


def test_push_and_pull_over_tls_digest_for_digest(
    tmp_path: Path, tls_registry: TLSRegistry, busybox_rootfs: Path
) -> None:
    source = import_source(tmp_path, busybox_rootfs)
    desc = source.resolve(SOURCE)
    ref = parse(f"{tls_registry.host}/tls/busybox:1")
    client = tls_registry.client()
    assert client.base.startswith("https://")
    push(source, desc, ref, registry=client, chunk_size=300_000)  # chunked PATCHes over one TLS connection

    store = LayoutStore(str(tmp_path / "pulled"))
    result = pull(store, ref, registry=tls_registry.client())
    assert graph(store, store.resolve(f"{ref.repository}:1")) == graph(source, desc)
    assert result.descriptor.digest == desc.digest

    raw = run("skopeo", "inspect", "--raw", "--cert-dir", str(tls_registry.cert_dir), f"docker://{ref}").stdout
    assert raw.encode() == source.read(desc.digest)


def test_an_unknown_certificate_authority_is_one_clear_error_not_retried(tls_registry: TLSRegistry) -> None:
    client = tls_registry.client(with_ca=False)
    retried: list[str] = []
    client.retry.log = retried.append
    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        client.ping()
    assert retried == []  # the same certificate would come back on every re-send
