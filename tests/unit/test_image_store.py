"""The content store over an OCI Image Layout: blobs, references, images, GC, failures and concurrency."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.image import errors
from hull.image.store import LayoutStore, copy
from hull.oci import digest as dg
from hull.oci import image as im
from hull.oci import media_types as mt
from hull.oci.image import Descriptor, Platform


def blob_files(root: Path) -> list[str]:
    return sorted(f"{p.parent.name}:{p.name}" for p in (root / "blobs").glob("*/*"))


def temp_files(root: Path) -> list[Path]:
    return sorted((root / ".hull" / "ingest").glob("*")) if (root / ".hull" / "ingest").exists() else []


def put(store: LayoutStore, media_type: str, data: bytes, **extra: object) -> Descriptor:
    info = store.write(data)
    return Descriptor(media_type, info.digest, info.size, **extra)  # type: ignore[arg-type]


def make_image(
    store: LayoutStore,
    layers: list[bytes],
    ref: str | None = None,
    arch: str = "amd64",
    subject: Descriptor | None = None,
) -> Descriptor:
    layer_descs = [put(store, mt.LAYER, data) for data in layers]
    config = im.ImageConfig(arch, "linux", im.RootFS([dg.of(data) for data in layers]))
    config_desc = put(store, mt.CONFIG, im.encode(im.config_json(config)))
    manifest = im.Manifest(config_desc, layer_descs, mt.MANIFEST, subject=subject)
    desc = put(store, mt.MANIFEST, im.encode(im.manifest_json(manifest)), platform=Platform(arch, "linux"))
    if ref:
        store.set_ref(ref, desc)
    return desc


@pytest.fixture
def store(tmp_path: Path) -> LayoutStore:
    return LayoutStore(str(tmp_path / "layout"))


@pytest.fixture
def root(store: LayoutStore) -> Path:
    return Path(store.root)


# ------------------------------------------------------------------ the layout


def test_new_layout_is_an_oci_image_layout(root: Path) -> None:
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((root / "index.json").read_text())
    assert index == {"schemaVersion": 2, "mediaType": mt.INDEX, "manifests": []}
    assert (root / "blobs").is_dir()


def test_opening_something_else_fails(tmp_path: Path) -> None:
    with pytest.raises(errors.LayoutError, match="no oci-layout file"):
        LayoutStore(str(tmp_path / "nothing"), create=False)
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    with pytest.raises(errors.LayoutError, match="unsupported imageLayoutVersion '2.0.0'"):
        LayoutStore(str(tmp_path / "v2"))
    (tmp_path / "v2" / "oci-layout").write_text("[]")
    with pytest.raises(errors.LayoutError, match="must be a JSON object"):
        LayoutStore(str(tmp_path / "v2"))
    (tmp_path / "v2" / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    with pytest.raises(errors.LayoutError, match="no blobs directory"):
        LayoutStore(str(tmp_path / "v2"))


# ------------------------------------------------------------------ blobs


def test_write_read_info_delete(store: LayoutStore, root: Path) -> None:
    info = store.write(b"hello")
    assert info.digest == dg.of(b"hello") and info.size == 5
    assert (root / "blobs" / "sha256" / info.digest.encoded).read_bytes() == b"hello"
    assert store.has(info.digest) and store.info(info.digest) == info
    with store.open(info.digest) as f:
        assert f.read() == b"hello"
    assert store.read(info.digest) == b"hello"
    store.delete(info.digest)
    assert not store.has(info.digest)
    with pytest.raises(errors.BlobNotFound, match=f"blob {info.digest}: not found"):
        store.open(info.digest)
    with pytest.raises(errors.BlobNotFound):
        store.delete(info.digest)
    with pytest.raises(errors.BlobNotFound):
        store.info(info.digest)


def test_streaming_ingest_from_file_and_iterator(store: LayoutStore) -> None:
    data = os.urandom(3 << 20)  # several chunks
    info = store.ingest(io.BytesIO(data), dg.of(data), len(data))
    assert info.size == len(data) and store.read(info.digest, limit=len(data)) == data
    parts = [b"a" * 10, b"", b"b" * 7]
    info = store.ingest(iter(parts))
    assert info.digest == dg.of(b"".join(parts)) and info.size == 17
    info = store.ingest([b"x"], algorithm="sha512")
    assert info.digest == dg.of(b"x", "sha512") and store.has(info.digest)
    assert (Path(store.root) / "blobs" / "sha512" / info.digest.encoded).exists()


def test_wrong_digest_leaves_nothing_visible(store: LayoutStore, root: Path) -> None:
    with pytest.raises(errors.DigestMismatch, match=f"expected {dg.of(b'good')}, got {dg.of(b'evil')}"):
        store.ingest([b"evil"], dg.of(b"good"), 4)
    assert blob_files(root) == [] and temp_files(root) == []


@pytest.mark.parametrize(
    ("chunks", "size", "message"),
    [([b"abc"], 4, "expected 4 bytes of content, got 3"), ([b"ab", b"cde"], 4, "expected 4 bytes")],
)
def test_wrong_size_leaves_nothing_visible(
    store: LayoutStore, root: Path, chunks: list[bytes], size: int, message: str
) -> None:
    with pytest.raises(errors.SizeMismatch, match=message):
        store.ingest(chunks, dg.of(b"".join(chunks)), size)
    assert blob_files(root) == [] and temp_files(root) == []


def test_size_limit_stops_an_endless_stream(tmp_path: Path) -> None:
    def endless() -> Iterator[bytes]:
        while True:
            yield b"z" * 4096

    limited = LayoutStore(str(tmp_path / "l"), limit=1 << 20)
    with pytest.raises(errors.SizeLimitExceeded, match="size limit of 1048576 bytes"):
        limited.ingest(endless())
    with pytest.raises(errors.SizeLimitExceeded, match="size limit of 100 bytes"):
        limited.ingest(endless(), limit=100)
    # with an expected size, reading stops as soon as the stream is longer
    with pytest.raises(errors.SizeMismatch):
        limited.ingest(endless(), dg.of(b""), 10)
    assert blob_files(Path(limited.root)) == [] and temp_files(Path(limited.root)) == []


def test_bad_expected_digests(store: LayoutStore) -> None:
    with pytest.raises(errors.InvalidImage, match="expected digest: invalid sha256 digest"):
        store.ingest([b"x"], "sha256:ABC")
    with pytest.raises(errors.UnsupportedDigest, match="cannot verify blake3:abc"):
        store.ingest([b"x"], "blake3:abc")
    with pytest.raises(errors.UnsupportedDigest, match="unsupported digest algorithm 'md5'"):
        store.ingest([b"x"], algorithm="md5")
    with pytest.raises(errors.InvalidImage, match="invalid digest"):
        store.has("../../etc/passwd")


def test_existing_blob_is_not_read_again(store: LayoutStore) -> None:
    info = store.write(b"same")

    def never() -> Iterator[bytes]:
        raise AssertionError("source read although the blob exists")
        yield b""

    assert store.ingest(never(), info.digest, 4) == info
    with pytest.raises(errors.SizeMismatch):
        store.ingest(never(), info.digest, 5)


def test_killed_writer_temp_file_is_cleaned_by_the_next_command(root: Path) -> None:
    # A writer that dies mid-ingest (SIGKILL: no cleanup code runs) leaves its temporary file.
    script = (
        "import sys, time\n"
        "from hull.image.store import LayoutStore\n"
        "def slow():\n"
        "    yield b'partial'\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
        "    yield b'never'\n"
        f"LayoutStore({str(root)!r}).ingest(slow())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
        assert len(temp_files(root)) == 1
        # While the writer lives its file is left alone.
        LayoutStore(str(root))
        assert len(temp_files(root)) == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(temp_files(root)) == 1 and blob_files(root) == []
    LayoutStore(str(root))
    assert temp_files(root) == []


def test_gc_also_cleans_a_dead_writers_file(store: LayoutStore, root: Path) -> None:
    (root / ".hull" / "ingest").mkdir(parents=True, exist_ok=True)
    (root / ".hull" / "ingest" / "blob-dead").write_bytes(b"half")
    store.gc()
    assert temp_files(root) == []


def test_fetch_verifies_what_it_reads(store: LayoutStore, root: Path) -> None:
    desc = put(store, mt.CONFIG, b'{"a":1}')
    assert store.fetch(desc) == b'{"a":1}'
    with pytest.raises(errors.SizeMismatch):
        store.fetch(Descriptor(desc.media_type, desc.digest, desc.size + 1))
    (root / "blobs" / "sha256" / desc.digest.encoded).write_bytes(b'{"a":2}')  # corrupted by someone
    with pytest.raises(errors.DigestMismatch):
        store.fetch(desc)
    with pytest.raises(errors.SizeLimitExceeded):
        store.fetch(desc, limit=3)
    embedded = Descriptor(mt.EMPTY_JSON, im.EMPTY_JSON_DIGEST, 2, data=b"{}")
    assert store.fetch(embedded) == b"{}"


# ------------------------------------------------------------------ references


def test_refs_set_resolve_replace_remove(store: LayoutStore, root: Path) -> None:
    one = make_image(store, [b"layer1"], "v1")
    two = make_image(store, [b"layer2"], "v2")
    assert store.resolve("v1").digest == one.digest and store.resolve("v2").digest == two.digest
    assert store.resolve("v1").ref_name == "v1" and store.resolve("v1").platform == Platform("amd64", "linux")
    assert store.resolve(str(two.digest)).digest == two.digest
    store.set_ref("v1", two)  # moving a tag replaces the old entry, as skopeo does
    assert [d.ref_name for d in store.images()] == ["v2", "v1"]
    assert store.resolve("v1").digest == two.digest
    store.remove_ref("v2")
    assert [d.ref_name for d in store.images()] == ["v1"]
    with pytest.raises(errors.ReferenceNotFound, match="reference 'v2': not found"):
        store.resolve("v2")
    with pytest.raises(errors.ReferenceNotFound):
        store.remove_ref("v2")
    with pytest.raises(errors.BlobNotFound):
        store.set_ref("v3", Descriptor(mt.MANIFEST, dg.of(b"absent"), 6))
    with pytest.raises(errors.InvalidImage, match="invalid reference name"):
        store.set_ref("a\nb", one)


def test_index_json_keeps_what_hull_does_not_know(store: LayoutStore, root: Path) -> None:
    # image-layout.md: unknown media types in index.json MUST NOT generate an error; keep other fields too.
    xml = {"mediaType": "application/xml", "size": 3, "digest": str(dg.of(b"xml")), "annotations": {"k": "v"}}
    doc = {"schemaVersion": 2, "manifests": [xml], "annotations": {"com.example.index.revision": "r1"}, "x": 1}
    (root / "index.json").write_text(json.dumps(doc))
    make_image(store, [b"l"], "latest")
    after = json.loads((root / "index.json").read_text())
    assert after["manifests"][0] == xml and after["annotations"] == doc["annotations"] and after["x"] == 1
    assert [d.media_type for d in store.images()] == ["application/xml", mt.MANIFEST]


def test_ambiguous_and_broken_index_json(store: LayoutStore, root: Path) -> None:
    one, two = make_image(store, [b"a"]), make_image(store, [b"b"])
    entries = [dict(im.descriptor_json(d), annotations={im.REF_NAME: "dup"}) for d in (one, two)]
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    with pytest.raises(errors.AmbiguousReference, match="'dup' names 2 descriptors"):
        store.resolve("dup")
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": mt.MANIFEST}]}))
    with pytest.raises(errors.InvalidImage, match=r"index.json: index.json.manifests\[0\].digest: is required"):
        store.images()


# ------------------------------------------------------------------ images


def test_manifest_through_nested_indexes_by_platform(store: LayoutStore) -> None:
    amd = make_image(store, [b"amd"], arch="amd64")
    arm = make_image(store, [b"arm"], arch="arm64")
    inner = im.Index([arm, amd], mt.INDEX)
    inner_desc = put(store, mt.INDEX, im.encode(im.index_json(inner)))
    xml = put(store, "application/xml", b"<x/>")
    outer = im.Index([xml, inner_desc], mt.INDEX)
    store.set_ref("multi", put(store, mt.INDEX, im.encode(im.index_json(outer))))
    desc, manifest = store.manifest(store.resolve("multi"), Platform("x86_64", "linux"))
    assert desc.digest == amd.digest and store.config(manifest).architecture == "amd64"
    desc, _ = store.manifest(store.resolve("multi"), Platform("aarch64", "linux"))
    assert desc.digest == arm.digest
    with pytest.raises(errors.NoMatchingPlatform, match=r"linux/s390x \(available: linux/arm64, linux/amd64\)"):
        store.manifest(store.resolve("multi"), Platform("s390x", "linux"))
    with pytest.raises(errors.InvalidImage, match="'application/xml' is not an image manifest or index"):
        store.manifest(xml)


def test_config_checks(store: LayoutStore) -> None:
    layer = put(store, mt.LAYER, b"l")
    config = im.ImageConfig("amd64", "linux", im.RootFS([]))  # no diff_id for the one layer
    manifest = im.Manifest(put(store, mt.CONFIG, im.encode(im.config_json(config))), [layer], mt.MANIFEST)
    with pytest.raises(errors.InvalidImage, match="diff_ids has 0 entries but the manifest has 1 layers"):
        store.config(manifest)
    artifact = im.Manifest(put(store, "application/vnd.example.config.v1+json", b"{}"), [layer], mt.MANIFEST)
    with pytest.raises(errors.InvalidImage, match="not a container image"):
        store.config(artifact)
    bad = im.Manifest(put(store, mt.CONFIG, b'{"os": "linux"}'), [], mt.MANIFEST)
    with pytest.raises(errors.InvalidImage, match="config.architecture: is required"):
        store.config(bad)


def test_manifest_document_errors_name_the_field(store: LayoutStore) -> None:
    broken = put(store, mt.MANIFEST, b'{"schemaVersion": 2, "config": {}, "layers": []}')
    with pytest.raises(errors.InvalidImage, match=r"config.mediaType: is required"):
        store.manifest(broken)


def test_copy_between_stores(store: LayoutStore, tmp_path: Path) -> None:
    desc = make_image(store, [b"one", b"two"], "v1")
    dst = LayoutStore(str(tmp_path / "dst"))
    copy(store, dst, desc)
    dst.set_ref("copied", desc)
    assert blob_files(Path(dst.root)) == blob_files(Path(store.root))
    _, manifest = dst.manifest(dst.resolve("copied"))
    assert [dst.read(d.digest) for d in manifest.layers] == [b"one", b"two"]


def test_copy_skips_missing_non_distributable_layers(store: LayoutStore, tmp_path: Path) -> None:
    config = put(
        store, mt.CONFIG, im.encode(im.config_json(im.ImageConfig("amd64", "linux", im.RootFS([dg.of(b"f")]))))
    )
    foreign = Descriptor(mt.LAYER_ND_GZIP, dg.of(b"foreign"), 7, urls=["https://example.com/l"])
    desc = put(store, mt.MANIFEST, im.encode(im.manifest_json(im.Manifest(config, [foreign], mt.MANIFEST))))
    dst = LayoutStore(str(tmp_path / "dst"))
    copy(store, dst, desc)
    assert dst.has(desc.digest) and not dst.has(foreign.digest)
    missing = put(
        store,
        mt.MANIFEST,
        im.encode(im.manifest_json(im.Manifest(config, [Descriptor(mt.LAYER, dg.of(b"m"), 1)], mt.MANIFEST))),
    )
    with pytest.raises(errors.BlobNotFound):
        copy(store, dst, missing)


# ------------------------------------------------------------------ garbage collection


def test_gc_marks_from_index_json_and_sweeps_the_rest(store: LayoutStore, root: Path) -> None:
    kept = make_image(store, [b"shared", b"mine"], "kept")
    dropped = make_image(store, [b"shared", b"theirs"])
    xml = put(store, "application/xml", b"<x/>")
    store.set_ref("xml", xml)  # an unknown media type in index.json: kept, as a leaf
    garbage = store.write(b"garbage").digest
    result = store.gc()
    assert store.has(kept.digest) and store.has(xml.digest)
    assert store.has(dg.of(b"shared")) and store.has(dg.of(b"mine"))
    assert not store.has(dropped.digest) and not store.has(dg.of(b"theirs")) and not store.has(garbage)
    assert set(result.removed) >= {dropped.digest, dg.of(b"theirs"), garbage}
    assert result.freed > 0 and result.kept == len(blob_files(root))
    _, manifest = store.manifest(store.resolve("kept"))
    assert store.config(manifest).rootfs.diff_ids == [dg.of(b"shared"), dg.of(b"mine")]


def test_gc_keeps_referrers_of_kept_manifests_only(store: LayoutStore) -> None:
    image = make_image(store, [b"img"], "img")
    signature = make_image(store, [b"sig"], subject=image)  # not in index.json; refers to a kept manifest
    sig_of_sig = make_image(store, [b"sigsig"], subject=signature)
    orphan_subject = make_image(store, [b"gone"])
    orphan_ref = make_image(store, [b"orphan-sig"], subject=orphan_subject)
    # subject is weak: a rooted referrer does not keep its subject
    weak_subject = make_image(store, [b"weak"])
    make_image(store, [b"rooted-sig"], "sbom", subject=weak_subject)
    store.gc()
    assert store.has(signature.digest) and store.has(dg.of(b"sig"))
    assert store.has(sig_of_sig.digest) and store.has(dg.of(b"sigsig"))
    assert not store.has(orphan_ref.digest) and not store.has(orphan_subject.digest)
    assert not store.has(weak_subject.digest) and store.has(store.resolve("sbom").digest)


def test_gc_keeps_leased_blobs(store: LayoutStore) -> None:
    with store.lease() as lease:
        layer = store.ingest([b"pulled"], lease=lease).digest
        again = store.ingest([b"pulled"], dg.of(b"pulled"), 6, lease=lease).digest
        store.gc()
        assert store.has(layer) and again == layer
    store.gc()
    assert not store.has(layer)


# ------------------------------------------------------------------ concurrency


def _writer(root: str, n: int, rounds: int) -> None:
    store = LayoutStore(root)
    for i in range(rounds):
        with store.lease() as lease:
            layers = [os.urandom(2000), b"shared layer"]
            descs = [Descriptor(mt.LAYER, store.ingest([x], lease=lease).digest, len(x)) for x in layers]
            config = im.ImageConfig("amd64", "linux", im.RootFS([dg.of(x) for x in layers]))
            raw = im.encode(im.config_json(config))
            cfg = Descriptor(mt.CONFIG, store.ingest([raw], lease=lease).digest, len(raw))
            raw = im.encode(im.manifest_json(im.Manifest(cfg, descs, mt.MANIFEST)))
            man = Descriptor(mt.MANIFEST, store.ingest([raw], lease=lease).digest, len(raw))
            store.set_ref(f"w{n}-{i}", man)


def _collector(root: str, until: float) -> None:
    store = LayoutStore(root)
    while time.time() < until:
        store.gc()


def test_concurrent_writers_and_gc(root: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_writer, args=(str(root), n, 8)) for n in range(3)]
    collectors = [ctx.Process(target=_collector, args=(str(root), time.time() + 3)) for _ in range(2)]
    for p in writers + collectors:
        p.start()
    for p in writers + collectors:
        p.join(60)
        assert p.exitcode == 0
    store = LayoutStore(str(root))
    store.gc()
    assert sorted(d.ref_name for d in store.images()) == sorted(f"w{n}-{i}" for n in range(3) for i in range(8))
    for desc in store.images():
        _, manifest = store.manifest(desc)
        assert store.config(manifest).rootfs.diff_ids == [
            dg.Digest("sha256:" + hashlib.sha256(store.read(d.digest)).hexdigest()) for d in manifest.layers
        ]
    for name in blob_files(root):  # every visible blob is complete
        alg, hexdigest = name.split(":")
        assert hashlib.new(alg, (root / "blobs" / alg / hexdigest).read_bytes()).hexdigest() == hexdigest
    assert temp_files(root) == []


def test_two_writers_of_the_same_blob(root: Path, tmp_path: Path) -> None:
    data = os.urandom(1 << 20)
    source = tmp_path / "source"
    source.write_bytes(data)
    script = (
        "import sys\nfrom hull.image.store import LayoutStore\n"
        f"LayoutStore({str(root)!r}).ingest(sys.stdin.buffer, {str(dg.of(data))!r}, {len(data)})\n"
    )
    handles = [source.open("rb") for _ in range(4)]
    procs = [subprocess.Popen([sys.executable, "-c", script], stdin=h) for h in handles]
    assert [p.wait(30) for p in procs] == [0, 0, 0, 0]
    for h in handles:
        h.close()
    assert blob_files(root) == [f"sha256:{dg.of(data).encoded}"] and temp_files(root) == []
    assert (root / "blobs" / "sha256" / dg.of(data).encoded).read_bytes() == data
