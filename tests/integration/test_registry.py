"""hull's registry client against a real registry: Debian's docker-registry (distribution 2.8.2), started
on 127.0.0.1 on a free port with its storage in a temporary directory, no auth. skopeo is the other client:
images it pushes, hull pulls, and the other way round, compared digest for digest. Images are made locally
from the test fixtures' busybox rootfs with ``hull image import``, never downloaded from the internet.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.distribution.client import Registry
from hull.distribution.pull import pull
from hull.distribution.push import push
from hull.distribution.reference import parse
from hull.image.store import LayoutStore
from hull.oci import digest as dg
from hull.oci import image as im
from hull.oci import media_types as mt
from hull.oci import platform as pf
from hull.oci.image import Descriptor, Platform
from hull.testing.registry import REGISTRY_BIN, RegistryServer

pytestmark = pytest.mark.usefixtures("root_required")

BIN = os.path.dirname(sys.executable)
HULL = os.path.join(BIN, "hull")
SOURCE = "localhost/busybox:test"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
    return proc


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryServer]:
    if not os.path.exists(REGISTRY_BIN) or shutil.which("skopeo") is None:
        pytest.fail("docker-registry and skopeo are not installed (scripts/setup.sh installs them)")
    with RegistryServer(tmp_path / "registry") as reg:
        yield reg


def import_source(tmp_path: Path, busybox_rootfs: Path) -> LayoutStore:
    """A store with the busybox image as SOURCE, made by ``hull image import``."""
    run(HULL, "--root", str(tmp_path / "src"), "image", "import", str(busybox_rootfs), SOURCE)
    return LayoutStore(str(tmp_path / "src" / "images"))


@pytest.fixture
def source(tmp_path: Path, busybox_rootfs: Path) -> LayoutStore:
    return import_source(tmp_path, busybox_rootfs)


def skopeo_push(store: LayoutStore, name: str, dest: str, *extra: str) -> None:
    run("skopeo", "copy", "-q", *extra, "--dest-tls-verify=false", f"oci:{store.root}:{name}", f"docker://{dest}")


def hull_root(tmp_path: Path, name: str = "hull") -> tuple[list[str], LayoutStore]:
    root = tmp_path / name
    return [HULL, "--root", str(root)], LayoutStore(str(root / "images"))


def graph(store: LayoutStore, desc: Descriptor) -> tuple[str, str, list[str]]:
    """(manifest digest, config digest, layer digests) of an image in a store."""
    mdesc, manifest = store.manifest(desc)
    return mdesc.digest, manifest.config.digest, [layer.digest for layer in manifest.layers]


def test_hull_pulls_what_skopeo_pushed_digest_for_digest_and_unpacks_it(
    tmp_path: Path, registry: RegistryServer, source: LayoutStore, busybox_rootfs: Path
) -> None:
    ref = f"{registry.host}/test/busybox:1"
    skopeo_push(source, SOURCE, ref)
    remote = json.loads(run("skopeo", "inspect", "--tls-verify=false", f"docker://{ref}").stdout)
    raw_manifest = run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout.encode()
    raw_config = run("skopeo", "inspect", "--raw", "--config", "--tls-verify=false", f"docker://{ref}").stdout.encode()

    hull, store = hull_root(tmp_path)
    out = run(*hull, "pull", ref)
    assert out.stdout.strip() == dg.of(raw_config).encoded  # the image ID, as podman prints it
    desc = store.resolve(ref)
    manifest_digest, config_digest, layers = graph(store, desc)
    assert manifest_digest == remote["Digest"] == dg.of(raw_manifest)
    assert config_digest == dg.of(raw_config)
    assert layers == remote["Layers"]
    assert store.read(manifest_digest) == raw_manifest  # the registry's bytes, not a re-encoding
    assert (manifest_digest, config_digest, layers) == graph(source, source.resolve(SOURCE))

    listed = json.loads(run(*hull, "images", "--format", "json").stdout)
    assert [image["RepoTags"] for image in listed] == [[ref]]

    bundle = tmp_path / "bundle"
    run(*hull, "unpack", ref, str(bundle))
    busybox = bundle / "rootfs" / "bin" / "busybox"
    assert busybox.read_bytes() == (busybox_rootfs / "bin" / "busybox").read_bytes()
    assert json.loads((bundle / "config.json").read_text())["root"]["path"] == "rootfs"


def test_skopeo_pulls_what_hull_pushed(tmp_path: Path, registry: RegistryServer, source: LayoutStore) -> None:
    desc = source.resolve(SOURCE)
    expected = graph(source, desc)
    # the command line, monolithic uploads
    run(HULL, "--root", str(tmp_path / "src"), "push", SOURCE, f"{registry.host}/pushed/busybox:2")
    # the API: chunked uploads, then a cross-repository mount of the same blobs
    client = Registry(registry.host)
    chunked = push(source, desc, parse(f"{registry.host}/chunked/busybox:3"), registry=client, chunk_size=100_000)
    assert len(chunked.uploaded) == 2 and chunked.skipped == []
    mounted = push(
        source, desc, parse(f"{registry.host}/mounted/busybox:4"), registry=client, mount_from="pushed/busybox"
    )
    assert sorted(mounted.mounted) == sorted([expected[1], *expected[2]]) and mounted.uploaded == []
    again = push(source, desc, parse(f"{registry.host}/pushed/busybox:5"), registry=client)
    assert sorted(again.skipped) == sorted(mounted.mounted) and again.uploaded == []
    # distribution 2.8 ignores n and last (pagination of tags came in 3.0): one page, in its own order
    assert sorted(client.tags("pushed/busybox", page_size=1)) == ["2", "5"]

    for n, repo in enumerate(["pushed/busybox:2", "chunked/busybox:3", "mounted/busybox:4"]):
        out = tmp_path / f"out{n}"
        run("skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{registry.host}/{repo}", f"oci:{out}:x")
        copied = LayoutStore(str(out), create=False)
        assert graph(copied, copied.resolve("x")) == expected
        for blob in [expected[0], expected[1], *expected[2]]:
            assert copied.read(blob, 64 << 20) == source.read(blob, 64 << 20)


def add_platform_manifest(store: LayoutStore, desc: Descriptor, arch: str) -> Descriptor:
    """Another manifest of the same layers whose config says ``arch``."""
    _mdesc, manifest = store.manifest(desc)
    config = json.loads(store.fetch(manifest.config))
    config["architecture"] = arch
    raw_config = im.encode(config)
    info = store.write(raw_config)
    other = im.Manifest(Descriptor(mt.CONFIG, info.digest, info.size), manifest.layers, mt.MANIFEST)
    raw = im.encode(im.manifest_json(other))
    written = store.write(raw)
    return Descriptor(mt.MANIFEST, written.digest, written.size, platform=Platform(arch, "linux"))


def test_a_multi_arch_index_gives_the_hosts_platform(
    tmp_path: Path, registry: RegistryServer, source: LayoutStore
) -> None:
    host = pf.host()
    foreign = "arm64" if host.architecture != "arm64" else "amd64"
    base = source.resolve(SOURCE)
    native = add_platform_manifest(source, base, host.architecture)
    other = add_platform_manifest(source, base, foreign)
    raw_index = im.encode(im.index_json(im.Index([other, native], mt.INDEX)))  # the host's is not first
    index = source.write(raw_index)
    source.set_ref("multi", Descriptor(mt.INDEX, index.digest, index.size))
    ref = f"{registry.host}/multi/busybox:1"
    skopeo_push(source, "multi", ref, "--all")

    hull, store = hull_root(tmp_path)
    run(*hull, "image", "pull", ref)
    assert store.resolve(ref).digest == native.digest
    assert store.config(store.manifest(store.resolve(ref))[1]).architecture == host.architecture

    _hull2, store2 = hull_root(tmp_path, "hull2")
    result = pull(store2, parse(ref), platform=Platform(foreign, "linux"))
    assert result.index_digest == index.digest
    assert store2.resolve(ref).digest == other.digest

    failed = run(*hull, "pull", "--platform", "linux/s390x", ref, check=False)
    assert failed.returncode == 1
    assert "no manifest for platform linux/s390x" in failed.stderr


def test_a_corrupted_blob_fails_the_pull_and_leaves_no_image(
    tmp_path: Path, registry: RegistryServer, source: LayoutStore
) -> None:
    ref = f"{registry.host}/tampered/busybox:1"
    skopeo_push(source, SOURCE, ref)
    _manifest, _config, layers = graph(source, source.resolve(SOURCE))
    blob = registry.blob_file(layers[0])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes: only the digest can tell
    blob.write_bytes(bytes(data))

    hull, store = hull_root(tmp_path)
    failed = run(*hull, "pull", "-q", ref, check=False)
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert lines == [f"Error: digest mismatch: expected {layers[0]}, got {dg.of(bytes(data))}"]
    assert store.images() == []
    assert not store.has(layers[0])
    assert not store.has(dg.of(bytes(data)))
    assert not any((Path(store.root) / ".hull" / "ingest").glob("*"))  # the bad download is discarded
    assert json.loads(run(*hull, "images", "--format", "json").stdout) == []


def test_layers_already_in_the_store_are_not_downloaded(
    tmp_path: Path, registry: RegistryServer, source: LayoutStore
) -> None:
    ref = f"{registry.host}/skip/busybox:1"
    skopeo_push(source, SOURCE, ref)
    _manifest, config, layers = graph(source, source.resolve(SOURCE))
    _hull, store = hull_root(tmp_path)
    with source.open(layers[0]) as f:
        store.ingest(f, layers[0])
    # The registry forgets the layer: the pull can only succeed by not asking for it.
    req = urllib.request.Request(f"http://{registry.host}/v2/skip/busybox/blobs/{layers[0]}", method="DELETE")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 202
    assert Registry(registry.host).blob_exists("skip/busybox", layers[0]) is None

    result = pull(store, parse(ref))
    assert result.skipped == layers
    assert result.fetched == [config]
    assert graph(store, store.resolve(ref)) == graph(source, source.resolve(SOURCE))
