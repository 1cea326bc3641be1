"""Pull progress and the one-pass pull+unpack, against Debian's docker-registry on loopback (issue 5 section 4).

Progress: ``hull pull`` with stderr in a file writes skopeo-style lines, ``--quiet``
nothing; a pull through the terminal reporter (rich, on a fake terminal) draws each
blob. One pass: ``pull(unpack_to=)`` gives the same tree as pulling and then
``unpack_layers`` from the store, for a three-layer image whose later layers
whiteout and re-create what an earlier one made; a layer the store already had
is read from the store; a corrupt blob fails the pull and no rootfs appears.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from hull.distribution import onepass
from hull.distribution.client import Registry
from hull.distribution.progress import RichReporter
from hull.distribution.pull import pull
from hull.distribution.reference import parse
from hull.image.errors import DigestMismatch
from hull.image.layer import LayerSource, unpack_layers
from hull.image.store import LayoutStore
from hull.oci.image import parse_config
from hull.testing.registry import RegistryServer
from tests.integration.test_registry import HULL, SOURCE, import_source, run, skopeo_push
from tests.integration.test_registry_faults import MiB, Proxy, cut_after, fast_registry

pytestmark = pytest.mark.usefixtures("root_required")
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path / "registry") as reg:
        yield reg


@pytest.fixture
def busybox(tmp_path: Path, busybox_rootfs: Path) -> LayoutStore:
    return import_source(tmp_path, busybox_rootfs)


def _tar(entries: list[tuple[str, bytes | None]]) -> bytes:
    """A gzip layer: (name, content) files, content None for a directory."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def layered_image(tmp_path: Path) -> LayoutStore:
    """Three layers: the first makes files (one of 6 MB, so it streams in several chunks), the second
    whiteouts one, the third makes it again with other content."""
    store = LayoutStore(str(tmp_path / "layered"))
    big = os.urandom(6 << 20)
    tars = [
        _tar([("a", None), ("a/file1", b"one\n"), ("a/keep", b"keep\n"), ("big", big)]),
        _tar([("a", None), ("a/.wh.file1", b""), ("b", None), ("b/new", b"new\n")]),
        _tar([("a", None), ("a/file1", b"three\n")]),
    ]
    layers, diff_ids = [], []
    for data in tars:
        blob = gzip.compress(data, 1)
        info = store.write(blob, "sha256:" + hashlib.sha256(blob).hexdigest())
        layers.append({"mediaType": GZIP_LAYER, "digest": str(info.digest), "size": info.size})
        diff_ids.append("sha256:" + hashlib.sha256(data).hexdigest())
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    cinfo = store.write(config.encode(), "sha256:" + hashlib.sha256(config.encode()).hexdigest())
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": str(cinfo.digest),
                   "size": cinfo.size},
        "layers": layers,
    }).encode()  # fmt: skip
    minfo = store.write(manifest, "sha256:" + hashlib.sha256(manifest).hexdigest())
    from hull.oci.image import Descriptor

    store.set_ref("layered", Descriptor("application/vnd.oci.image.manifest.v1+json", minfo.digest, minfo.size))
    return store


def spy_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Digests read back from any store (a second read of a blob) from now on."""
    opened: list[str] = []
    real = LayoutStore.open

    def spy(self: LayoutStore, digest: str) -> object:
        opened.append(str(digest))
        return real(self, digest)

    monkeypatch.setattr(LayoutStore, "open", spy)
    return opened


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its type and content digest."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def two_pass(store: LayoutStore, name: str, dest: Path) -> None:
    _m, manifest = store.manifest(store.resolve(name))
    config = parse_config(store.fetch(manifest.config))
    sources = [
        LayerSource(store.open(d.digest), d.media_type, d.digest, d.size, diff)
        for d, diff in zip(manifest.layers, config.rootfs.diff_ids, strict=True)
    ]
    try:
        unpack_layers(sources, str(dest))
    finally:
        for s in sources:
            s.blob.close()


def test_pull_writes_plain_lines_when_stderr_is_a_file_and_nothing_when_quiet(
    tmp_path: Path, registry: RegistryServer, busybox: LayoutStore
) -> None:
    ref = f"{registry.host}/test/busybox:1"
    skopeo_push(busybox, SOURCE, ref)
    _m, manifest = busybox.manifest(busybox.resolve(SOURCE))
    blobs = [manifest.config, *manifest.layers]
    root = str(tmp_path / "hull")
    with open(tmp_path / "err", "w+") as err:
        proc = subprocess.run([HULL, "--root", root, "pull", ref], stdout=subprocess.PIPE, stderr=err, text=True,
                              timeout=120, check=True)  # fmt: skip
        err.seek(0)
        lines = err.read().splitlines()
    assert proc.stdout.strip() == manifest.config.digest.encoded
    for desc in blobs:
        short = f"sha256:{desc.digest.encoded[:12]}"
        assert f"Copying blob {short} done" in lines
        assert any(line.startswith(f"Copying blob {short} ") and line.endswith("B") for line in lines), lines
    assert not any("\x1b[" in line for line in lines)  # no terminal escapes in a file

    again = run(HULL, "--root", root, "pull", ref)
    assert f"Copying blob sha256:{manifest.layers[0].digest.encoded[:12]} skipped: already exists" in again.stderr

    quiet = run(HULL, "--root", str(tmp_path / "quiet"), "pull", "-q", ref)
    assert quiet.stderr == ""
    assert quiet.stdout.strip() == manifest.config.digest.encoded


def test_pull_through_the_terminal_reporter_draws_every_blob(
    tmp_path: Path, registry: RegistryServer, busybox: LayoutStore
) -> None:
    ref = f"{registry.host}/test/busybox:1"
    skopeo_push(busybox, SOURCE, ref)
    store = LayoutStore(str(tmp_path / "hull"))
    screen = FakeTTY()
    reporter = RichReporter(screen)
    try:
        result = pull(store, parse(ref), progress=reporter)
    finally:
        reporter.close()
    _m, manifest = store.manifest(result.descriptor)
    for desc in [manifest.config, *manifest.layers]:
        assert f"sha256:{desc.digest.encoded[:12]} done" in screen.getvalue()
        assert store.has(desc.digest)


def test_one_pass_pull_unpacks_the_same_tree_as_pull_then_unpack(
    tmp_path: Path, registry: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onepass, "DEPTH", 2)  # downloads run at most 2 chunks ahead: back-pressure is exercised
    source = layered_image(tmp_path)
    ref = f"{registry.host}/test/layered:1"
    skopeo_push(source, "layered", ref)
    store = LayoutStore(str(tmp_path / "hull"))
    dest = tmp_path / "rootfs"
    opened = spy_opens(monkeypatch)
    result = pull(store, parse(ref), registry=Registry(registry.host), unpack_to=str(dest))
    assert len(result.fetched) == 4  # config and three layers, each downloaded once
    _m, manifest = store.manifest(result.descriptor)
    layer_digests = {str(d.digest) for d in manifest.layers}
    assert not layer_digests & set(opened)  # and never read back from the store: one pass (the config is)
    got = tree(dest)
    assert (dest / "a/file1").read_text() == "three\n"
    assert (dest / "a/keep").read_text() == "keep\n" and (dest / "b/new").read_text() == "new\n"
    two_pass(store, f"{ref.split('/', 1)[0]}/test/layered:1", tmp_path / "reference")
    assert got == tree(tmp_path / "reference")


def test_one_pass_reads_a_layer_the_store_already_has_from_the_store(
    tmp_path: Path, registry: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = layered_image(tmp_path)
    ref = f"{registry.host}/test/layered:1"
    skopeo_push(source, "layered", ref)
    store = LayoutStore(str(tmp_path / "hull"))
    _m, manifest = source.manifest(source.resolve("layered"))
    first = manifest.layers[0]
    with source.open(first.digest) as f:
        store.ingest(f, first.digest, first.size)
    dest = tmp_path / "rootfs"
    opened = spy_opens(monkeypatch)
    result = pull(store, parse(ref), unpack_to=str(dest))
    assert first.digest in result.skipped and len(result.fetched) == 3
    layer_digests = {str(d.digest) for d in manifest.layers}
    assert [d for d in opened if d in layer_digests] == [str(first.digest)]  # only the one not downloaded
    assert (dest / "a/file1").read_text() == "three\n" and (dest / "big").stat().st_size == 6 << 20


def test_one_pass_with_a_corrupt_blob_fails_and_leaves_no_rootfs(tmp_path: Path, registry: RegistryServer) -> None:
    source = layered_image(tmp_path)
    ref = f"{registry.host}/test/layered:1"
    skopeo_push(source, "layered", ref)
    _m, manifest = source.manifest(source.resolve("layered"))
    blob = registry.blob_file(manifest.layers[1].digest)
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0xFF  # in the gzip trailer's CRC area: the registry serves it, the digest no longer matches
    blob.write_bytes(bytes(data))
    store = LayoutStore(str(tmp_path / "hull"))
    dest = tmp_path / "rootfs"
    with pytest.raises(DigestMismatch):
        pull(store, parse(ref), unpack_to=str(dest))
    assert not dest.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".rootfs.partial")]
    assert store.images() == []


def test_one_pass_survives_a_dropped_connection_mid_layer(
    tmp_path: Path, registry: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The download resumes with Range: the stream into the applier continues where it was."""
    source = layered_image(tmp_path)
    _m, manifest = source.manifest(source.resolve("layered"))
    proxy = Proxy(registry.host)
    try:
        ref = f"{proxy.host}/test/layered:1"
        skopeo_push(source, "layered", ref)
        proxy.body_fault = cut_after(int(2.5 * MiB))
        client, _waits = fast_registry(proxy.host)
        dest = tmp_path / "rootfs"
        opened = spy_opens(monkeypatch)
        pull(LayoutStore(str(tmp_path / "hull")), parse(ref), registry=client, unpack_to=str(dest))
        gets = proxy.blob_gets(manifest.layers[0].digest)
    finally:
        proxy.close()
    assert gets[0] == ("", 200) and gets[1][0].startswith("bytes=") and gets[1][1] == 206
    assert not {str(d.digest) for d in manifest.layers} & set(opened)  # still one pass
    two_pass(source, "layered", tmp_path / "reference")
    assert tree(dest) == tree(tmp_path / "reference")


def test_one_pass_starts_over_from_the_store_when_a_download_restarts_from_byte_0(
    tmp_path: Path, registry: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that ignores Range sends the blob again from 0: what the applier had is no prefix of
    the new stream, so the unpack is redone from the verified blobs in the store."""
    source = layered_image(tmp_path)
    _m, manifest = source.manifest(source.resolve("layered"))
    proxy = Proxy(registry.host)

    def ignore_range(h: BaseHTTPRequestHandler, n: int) -> bool:
        if "Range" in h.headers:
            del h.headers["Range"]
        return False

    try:
        ref = f"{proxy.host}/test/layered:1"
        skopeo_push(source, "layered", ref)
        proxy.fault = ignore_range
        proxy.body_fault = cut_after(int(2.5 * MiB))
        client, _waits = fast_registry(proxy.host)
        dest = tmp_path / "rootfs"
        opened = spy_opens(monkeypatch)
        pull(LayoutStore(str(tmp_path / "hull")), parse(ref), registry=client, unpack_to=str(dest))
        statuses = [status for _rng, status in proxy.blob_gets(manifest.layers[0].digest)]
    finally:
        proxy.close()
    assert statuses == [200, 200]  # the second answer was the whole blob again
    # Layer 1 was half-applied from the first answer: every layer is applied again from the store.
    assert [d for d in opened if d != str(manifest.config.digest)] == [str(d.digest) for d in manifest.layers]
    two_pass(source, "layered", tmp_path / "reference")
    assert tree(dest) == tree(tmp_path / "reference")


def test_hull_pull_unpack_makes_the_rootfs_and_refuses_an_existing_directory(
    tmp_path: Path, registry: RegistryServer, busybox: LayoutStore, busybox_rootfs: Path
) -> None:
    ref = f"{registry.host}/test/busybox:1"
    skopeo_push(busybox, SOURCE, ref)
    dest = tmp_path / "rootfs"
    run(HULL, "--root", str(tmp_path / "hull"), "pull", "-q", "--unpack", str(dest), ref)
    assert (dest / "bin" / "busybox").read_bytes() == (busybox_rootfs / "bin" / "busybox").read_bytes()

    again = run(HULL, "--root", str(tmp_path / "other"), "pull", "-q", "--unpack", str(dest), ref, check=False)
    assert again.returncode != 0 and again.stderr.count("\n") == 1 and "already exists" in again.stderr
    assert run(HULL, "--root", str(tmp_path / "other"), "images", "-q").stdout == ""


def test_retry_lines_on_a_terminal_are_whole_lines_above_the_bars(tmp_path: Path, registry: RegistryServer) -> None:
    """``hull pull`` on a terminal (script(1)) through a proxy that answers two blob GETs 503 and
    cuts a body: each "Retrying" line reaches the terminal whole (not re-wrapped by rich at the
    terminal's width, not split by another thread's), and the bars end complete."""
    from tests.integration.test_registry_faults import publish

    repo, _layer = publish(tmp_path, registry, "big", 12 * MiB)
    proxy = Proxy(registry.host)
    failed: list[str] = []

    def unavailable(h: BaseHTTPRequestHandler, _n: int) -> bool:
        if "/blobs/" not in h.path or h.command != "GET" or len(failed) >= 2:
            return False
        failed.append(h.path)
        h.send_response(503, "Service Unavailable")
        h.send_header("Content-Length", "0")
        h.end_headers()
        return True

    proxy.fault = unavailable
    proxy.body_fault = cut_after(4 * MiB)
    try:
        cmd = f"{HULL} --root {tmp_path / 'out'} pull --retry-delay 100ms {proxy.host}/{repo}:1"
        env = {**os.environ, "COLUMNS": "60", "TERM": "xterm"}  # narrower than a retry line
        proc = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, env=env, timeout=120)
    finally:
        proxy.close()
    out = proc.stdout.decode()
    assert proc.returncode == 0, out
    retries = [line.split("\x1b[2K")[-1] for line in out.split("\r\n") if "Retrying GET" in line]
    assert len(retries) == 3, out
    for line in retries:
        assert line.startswith("Retrying GET http://") and "(retry 1/" in line, line
    assert sum(line.endswith("503 Service Unavailable") for line in retries) == 2
    assert sum("connection lost" in line for line in retries) == 1
    assert "Service Unavailable\r\n" not in out.replace("503 Service Unavailable\r\n", "")  # never cut in two
