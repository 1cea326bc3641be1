"""Referrers and delete against Debian's docker-registry (distribution 2.8.2): it has no referrers API
(404), so listing goes through the referrers tag schema that hull's push keeps up to date; it deletes
by digest when storage.delete is enabled and answers 405 when not."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hull.distribution.client import Registry
from hull.distribution.push import push
from hull.distribution.reference import parse
from hull.image.store import LayoutStore
from hull.oci import digest as dg
from hull.oci import media_types as mt
from hull.oci.image import EMPTY_JSON_DIGEST, Descriptor
from hull.testing.registry import REGISTRY_BIN, RegistryServer

pytestmark = pytest.mark.usefixtures("root_required")

HULL = os.path.join(os.path.dirname(sys.executable), "hull")
SOURCE = "localhost/busybox:test"
SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def source(tmp_path: Path, busybox_rootfs: Path) -> LayoutStore:
    proc = run(HULL, "--root", str(tmp_path / "src"), "image", "import", str(busybox_rootfs), SOURCE)
    assert proc.returncode == 0, proc.stderr
    return LayoutStore(str(tmp_path / "src" / "images"))


def start(tmp_path: Path, delete: bool = True) -> RegistryServer:
    if not os.path.exists(REGISTRY_BIN):
        pytest.fail("docker-registry is not installed (scripts/setup.sh installs it)")
    return RegistryServer(tmp_path / "registry", delete=delete)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryServer]:
    with start(tmp_path) as reg:
        yield reg


def push_image(store: LayoutStore, host: str, name: str) -> Descriptor:
    """Push the busybox image as HOST/NAME; the pushed manifest's descriptor."""
    desc = store.resolve(SOURCE)
    client = Registry(host)
    push(store, desc, parse(f"{host}/{name}"), registry=client)
    repo = parse(f"{host}/{name}")
    found = client.head_manifest(repo.path, repo.tag)
    assert found is not None
    return Descriptor(mt.MANIFEST, found.digest, found.size)


def push_artifact(client: Registry, repo: str, subject: Descriptor, artifact_type: str, text: str) -> str:
    """An artifact as image-spec's manifest.md "Guidelines for Artifact Usage": artifactType set, the
    empty config descriptor, one layer; ``subject`` the image. Pushed by digest (untagged)."""
    client.upload_blob(repo, io.BytesIO(b"{}"), str(EMPTY_JSON_DIGEST), 2)
    blob = text.encode()
    blob_digest = str(dg.of(blob))
    client.upload_blob(repo, io.BytesIO(blob), blob_digest, len(blob))
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": mt.EMPTY_JSON, "digest": str(EMPTY_JSON_DIGEST), "size": 2, "data": "e30="},
        "layers": [{"mediaType": "text/plain", "digest": blob_digest, "size": len(blob)}],
        "subject": {"mediaType": subject.media_type, "digest": str(subject.digest), "size": subject.size},
        "annotations": {"org.example.note": text},
    }
    data = json.dumps(doc).encode()
    digest = str(dg.of(data))
    assert str(client.put_manifest(repo, digest, data, mt.MANIFEST)) == digest
    return digest


def test_an_artifact_pushed_with_a_subject_is_listed_through_the_referrers_tag(
    registry: RegistryServer, source: LayoutStore
) -> None:
    image = push_image(source, registry.host, "app:1")
    client = Registry(registry.host)
    sbom = push_artifact(client, "app", image, SBOM, "sbom")
    sig = push_artifact(client, "app", image, SIGNATURE, "signature")
    push_artifact(client, "app", image, SBOM, "sbom")  # the same manifest again: no second entry

    # The registry has no API: hull pushed the index under sha256-<hex> itself.
    algorithm, _, encoded = str(image.digest).partition(":")
    assert f"{algorithm}-{encoded}" in list(client.tags("app"))

    every = client.referrers("app", str(image.digest))
    assert every["mediaType"] == mt.INDEX
    entries = {d["digest"]: d for d in every["manifests"]}
    assert sorted(entries) == sorted([sbom, sig])
    assert entries[sbom]["artifactType"] == SBOM
    assert entries[sbom]["mediaType"] == mt.MANIFEST
    assert entries[sbom]["annotations"] == {"org.example.note": "sbom"}

    only = client.referrers("app", str(image.digest), SBOM)
    assert [d["digest"] for d in only["manifests"]] == [sbom]
    assert client.referrers("app", str(image.digest), "application/none")["manifests"] == []

    # The CLI: REF by tag, filtered.
    proc = run(HULL, "image", "referrers", f"{registry.host}/app:1", "--artifact-type", SIGNATURE)
    assert proc.returncode == 0, proc.stderr
    assert [d["digest"] for d in json.loads(proc.stdout)["manifests"]] == [sig]

    # An image without referrers has an empty list, not an error.
    other = push_image(source, registry.host, "other:1")
    assert client.referrers("other", str(other.digest))["manifests"] == []


def test_rm_remote_deletes_by_digest_and_drops_the_referrers_entry(
    registry: RegistryServer, source: LayoutStore
) -> None:
    image = push_image(source, registry.host, "app:1")
    client = Registry(registry.host)
    sbom = push_artifact(client, "app", image, SBOM, "sbom")

    proc = run(HULL, "image", "rm", "--remote", f"docker://{registry.host}/app@{sbom}")
    assert proc.returncode == 0, proc.stderr
    assert client.head_manifest("app", sbom) is None
    assert client.referrers("app", str(image.digest))["manifests"] == []

    proc = run(HULL, "image", "rm", "--remote", f"{registry.host}/app:1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"Deleted: {registry.host}/app@{image.digest}"
    assert client.head_manifest("app", "1") is None  # the tag went with its manifest
    assert client.head_manifest("app", str(image.digest)) is None

    proc = run(HULL, "image", "rm", "--remote", f"{registry.host}/app:1")
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"Error: {registry.host}/app:1: no such image in the registry"

    config = source.manifest(source.resolve(SOURCE))[1].config
    assert client.blob_exists("app", config.digest) is not None
    client.delete_blob("app", config.digest)
    assert client.blob_exists("app", config.digest) is None


def test_rm_remote_on_a_registry_with_delete_disabled_says_so_in_one_line(tmp_path: Path, source: LayoutStore) -> None:
    with start(tmp_path, delete=False) as registry:
        push_image(source, registry.host, "app:1")
        proc = run(HULL, "image", "rm", "--remote", f"{registry.host}/app:1")
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "deleting is disabled in this registry (405 UNSUPPORTED)" in lines[0], proc.stderr
        assert Registry(registry.host).head_manifest("app", "1") is not None


def test_the_referrers_tag_is_updated_conditionally_and_a_lost_race_is_redone(
    registry: RegistryServer, source: LayoutStore
) -> None:
    """distribution-spec "Pushing Manifests with Subject": clients SHOULD use If-Match when updating
    the referrers tag. docker-registry 2.8.2 sends an ETag on manifest GETs but ignores If-Match on
    PUT, so a proxy in front of it plays a registry that honours it (412 when the tag moved); another
    client updates the tag between hull's read and hull's write."""
    from tests.integration.test_registry_faults import Proxy

    image = push_image(source, registry.host, "app:1")
    tag = "sha256-" + str(image.digest).partition(":")[2]
    direct = Registry(registry.host)
    proxy = Proxy(registry.host)
    sent: list[dict[str, str]] = []
    raced: list[str] = []

    def current_etag() -> str:
        try:
            return direct.get_manifest_etag("app", tag, accept=(mt.INDEX,))[2]
        except Exception:  # noqa: BLE001 - no such tag yet
            return ""

    def registry_honouring_if_match(h: Any, _n: int) -> bool:
        if h.command != "PUT" or not h.path.endswith(f"/manifests/{tag}"):
            return False
        conditions = {k: v for k, v in h.headers.items() if k.lower() in ("if-match", "if-none-match")}
        sent.append(conditions)
        if "If-Match" in conditions and not raced:
            raced.append(push_artifact(direct, "app", image, SBOM, "pushed meanwhile"))  # the tag moves
        etag = current_etag()
        stale = ("If-Match" in conditions and conditions["If-Match"] != etag) or (
            conditions.get("If-None-Match") == "*" and etag
        )
        if not stale:
            return False
        h.send_response(412, "Precondition Failed")
        h.send_header("Content-Length", "0")
        h.end_headers()
        return True

    proxy.fault = registry_honouring_if_match
    try:
        client = Registry(proxy.host)
        first = push_artifact(client, "app", image, SBOM, "first")  # no tag yet: If-None-Match: *
        second = push_artifact(client, "app", image, SIGNATURE, "second")  # loses the race once, redone
    finally:
        proxy.close()

    assert sent[0] == {"If-None-Match": "*"}
    assert [c.get("If-Match", "").startswith('"sha256:') for c in sent[1:]] == [True, True]
    assert sent[1] != sent[2]  # the second try names the tag's new ETag
    listed = {d["digest"] for d in direct.referrers("app", str(image.digest))["manifests"]}
    assert listed == {first, second, raced[0]}  # nobody's entry was lost
