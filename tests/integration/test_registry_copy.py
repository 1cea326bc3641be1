"""``hull image copy`` between a real docker-registry (Debian's, distribution 2.8.2, on loopback), OCI
layout directories and archives, checked with the other tools: skopeo and umoci read what hull
wrote, skopeo pulls what hull pushed, digest for digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.image.store import LayoutStore
from hull.testing.registry import RegistryServer
from tests.integration.test_registry import HULL, SOURCE, graph, import_source, run, skopeo_push

pytestmark = pytest.mark.usefixtures("root_required")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path / "registry") as reg:
        yield reg


@pytest.fixture
def source(tmp_path: Path, busybox_rootfs: Path) -> LayoutStore:
    return import_source(tmp_path, busybox_rootfs)


def copy(tmp_path: Path, src: str, dst: str) -> subprocess.CompletedProcess[str]:
    return run(HULL, "--root", str(tmp_path / "hull"), "image", "copy", src, dst)


def test_registry_to_an_oci_directory_read_by_skopeo_and_umoci(
    tmp_path: Path, registry: RegistryServer, source: LayoutStore
) -> None:
    ref = f"{registry.host}/test/busybox:1"
    skopeo_push(source, SOURCE, ref)
    expected = graph(source, source.resolve(SOURCE))
    out = tmp_path / "layout"
    copy(tmp_path, f"docker://{ref}", f"oci:{out}:v1")
    layout = LayoutStore(str(out), create=False)
    assert graph(layout, layout.resolve("v1")) == expected
    raw = run("skopeo", "inspect", "--raw", f"oci:{out}:v1").stdout.encode()
    assert raw == source.read(expected[0])
    run("umoci", "unpack", "--image", f"{out}:v1", str(tmp_path / "bundle"))
    assert (tmp_path / "bundle" / "rootfs" / "bin" / "busybox").exists()

    # Again: every blob is already there, nothing is fetched.
    again = copy(tmp_path, f"docker://{ref}", f"oci:{out}:v2")
    assert f"0 blobs copied, 0 mounted, {1 + len(expected[2])} already there" in again.stderr


def test_an_oci_directory_to_the_registry_pulled_back_by_skopeo(
    tmp_path: Path, registry: RegistryServer, source: LayoutStore
) -> None:
    expected = graph(source, source.resolve(SOURCE))
    ref = f"{registry.host}/copied/busybox:1"
    copy(tmp_path, f"oci:{source.root}:{SOURCE}", f"docker://{ref}")
    back = tmp_path / "back"
    run("skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{back}:x")
    copied = LayoutStore(str(back), create=False)
    assert graph(copied, copied.resolve("x")) == expected
    for blob in [expected[0], expected[1], *expected[2]]:
        assert copied.read(blob, 64 << 20) == source.read(blob, 64 << 20)

    # Same registry, another repository: the blobs are mounted, not uploaded.
    mounted = copy(tmp_path, f"docker://{ref}", f"docker://{registry.host}/other/busybox:2")
    assert f"0 blobs copied, {1 + len(expected[2])} mounted, 0 already there" in mounted.stderr
    remote = json.loads(
        run("skopeo", "inspect", "--tls-verify=false", f"docker://{registry.host}/other/busybox:2").stdout
    )
    assert remote["Digest"] == expected[0] and remote["Layers"] == expected[2]


def test_oci_archive_to_the_registry_and_back(tmp_path: Path, registry: RegistryServer, source: LayoutStore) -> None:
    expected = graph(source, source.resolve(SOURCE))
    archive = tmp_path / "image.tar"
    run("skopeo", "copy", "-q", f"oci:{source.root}:{SOURCE}", f"oci-archive:{archive}:img")
    ref = f"{registry.host}/archived/busybox:1"
    copy(tmp_path, f"oci-archive:{archive}:img", f"docker://{ref}")
    remote = json.loads(run("skopeo", "inspect", "--tls-verify=false", f"docker://{ref}").stdout)
    assert remote["Digest"] == expected[0] and remote["Layers"] == expected[2]

    out = tmp_path / "out.tar"
    copy(tmp_path, f"docker://{ref}", f"oci-archive:{out}:again")
    raw = run("skopeo", "inspect", "--raw", f"oci-archive:{out}:again").stdout.encode()
    assert raw == source.read(expected[0])
    assert not os.path.exists(f"{out}.hull-tmp")


def test_a_corrupted_blob_is_not_copied(tmp_path: Path, registry: RegistryServer, source: LayoutStore) -> None:
    ref = f"{registry.host}/tampered/busybox:1"
    skopeo_push(source, SOURCE, ref)
    _manifest, _config, layers = graph(source, source.resolve(SOURCE))
    blob = registry.blob_file(layers[0])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    out = tmp_path / "layout"
    failed = subprocess.run(
        [HULL, "--root", str(tmp_path / "hull"), "image", "copy", f"docker://{ref}", f"oci:{out}:v1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        f"Error: digest mismatch: expected {layers[0]}, got sha256:" + hashlib.sha256(bytes(data)).hexdigest()
    ]
    layout = LayoutStore(str(out), create=False)
    assert layout.images() == [] and not layout.has(layers[0])
    # Into another registry (a mount within one registry moves no bytes, so nothing to verify there):
    # the upload is abandoned before its last byte and the destination has nothing.
    (tmp_path / "other").mkdir()
    other = RegistryServer(tmp_path / "other")
    try:
        failed = subprocess.run(
            [
                HULL,
                "--root",
                str(tmp_path / "hull"),
                "image",
                "copy",
                f"docker://{ref}",
                f"docker://{other.host}/x/y:1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert failed.returncode == 1
        assert failed.stderr.strip().splitlines() == [
            f"Error: digest mismatch: expected {layers[0]}, got sha256:" + hashlib.sha256(bytes(data)).hexdigest()
        ]
        assert not other.blob_file(layers[0]).exists()
        listed = run("skopeo", "list-tags", "--tls-verify=false", f"docker://{other.host}/x/y", check=False)
        assert listed.returncode != 0  # no manifest, so no repository
    finally:
        other.stop()
