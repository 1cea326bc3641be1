"""Image archives (OCI archive, docker save) and imports, through the content store; no root needed."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from hull.image import archive, names
from hull.image.importer import ImportFailed, apply_changes, import_image
from hull.image.store import LayoutStore
from hull.oci import media_types as mt


def rootfs_tar(files: dict[str, bytes] | None = None) -> bytes:
    files = files or {"etc/hostname": b"box\n", "bin/hello": b"#!/bin/sh\necho hi\n"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> LayoutStore:
    return LayoutStore(str(tmp_path / "store"))


def imported(store: LayoutStore, name: str = "busybox:test", data: bytes | None = None) -> str:
    _desc, image_id, _ = import_image(store, io.BytesIO(data or rootfs_tar()), name)
    return image_id


def members(archive_bytes: bytes) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(archive_bytes)) as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isreg() else None
            out[m.name] = f.read() if f else b""
    return out


def retar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# ---------------------------------------------------------------- import


def test_import_of_a_tar_keeps_it_as_the_layer_and_names_its_diff_id(store: LayoutStore) -> None:
    data = rootfs_tar()
    manifest_desc, image_id, name = import_image(store, io.BytesIO(data), "busybox")
    assert name == "busybox:latest"
    _, manifest = store.manifest(store.resolve("busybox:latest"))
    (layer,) = manifest.layers
    assert (layer.media_type, layer.digest, layer.size) == (mt.LAYER, sha(data), len(data))
    config = store.config(manifest)
    assert manifest.config.digest == image_id and config.rootfs.diff_ids == [sha(data)]
    assert config.os == "linux" and config.architecture
    assert config.history[0].comment == "imported from tarball"


def test_import_of_a_gzip_tar_computes_the_uncompressed_diff_id(store: LayoutStore) -> None:
    data = rootfs_tar()
    packed = gzip.compress(data, mtime=0)
    import_image(store, io.BytesIO(packed), "gz")
    _, manifest = store.manifest(store.resolve("gz:latest"))
    assert manifest.layers[0].media_type == mt.LAYER_GZIP and manifest.layers[0].digest == sha(packed)
    assert store.config(manifest).rootfs.diff_ids == [sha(data)]


def test_import_is_reproducible_with_source_date_epoch(store: LayoutStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert imported(store, "a") == imported(store, "b")
    _, manifest = store.manifest(store.resolve("a:latest"))
    assert store.config(manifest).created == "2023-11-14T22:13:20Z"


def test_import_refuses_what_is_not_a_tar_and_names_nothing(store: LayoutStore) -> None:
    with pytest.raises(ImportFailed, match="not a tar archive"):
        import_image(store, io.BytesIO(b"hello, world\n" * 100), "junk")
    with pytest.raises(ImportFailed, match="empty input"):
        import_image(store, io.BytesIO(b""), "junk")
    assert store.images() == []


def test_changes_set_the_config_as_dockerfile_instructions() -> None:
    config: dict[str, object] = {}
    apply_changes(
        config,
        ['CMD ["/bin/sh", "-c", "echo hi"]', "ENTRYPOINT /init", "ENV A=1 B=2", "ENV A 3", "LABEL x=y",
         "EXPOSE 80 53/udp", "USER 1000:1000", "WORKDIR /srv", "VOLUME /data", "STOPSIGNAL SIGINT"],
    )  # fmt: skip
    assert config["config"] == {
        "Cmd": ["/bin/sh", "-c", "echo hi"],
        "Entrypoint": ["/bin/sh", "-c", "/init"],
        "Env": ["B=2", "A=3"],
        "Labels": {"x": "y"},
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
        "User": "1000:1000",
        "WorkingDir": "/srv",
        "Volumes": {"/data": {}},
        "StopSignal": "SIGINT",
    }
    with pytest.raises(ImportFailed, match="RUN is not one of"):
        apply_changes({}, ["RUN make"])


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("given", "stored"),
    [("busybox", "busybox:latest"), ("localhost/busybox:test", "localhost/busybox:test"),
     ("registry.example:5000/a/b:1.0", "registry.example:5000/a/b:1.0"), ("a_b.c-d", "a_b.c-d:latest")],
)  # fmt: skip
def test_names_get_the_default_tag_and_keep_their_domain(given: str, stored: str) -> None:
    assert names.normalize(given) == stored


@pytest.mark.parametrize(
    ("bad", "why"),
    [("Busybox", "lowercase"), ("busy box", "expected"), ("busybox:", "empty tag"), ("", "empty"),
     ("a@sha256:" + "0" * 64, "digest"), ("busybox:-x", "tag"), ("-busybox", "expected")],
)  # fmt: skip
def test_bad_names_are_refused_with_the_reason(bad: str, why: str) -> None:
    with pytest.raises(names.InvalidReference, match=why):
        names.normalize(bad)


def test_lookup_by_name_short_name_id_and_prefix(store: LayoutStore) -> None:
    image_id = imported(store, "localhost/busybox:test")
    imported(store, "other", rootfs_tar({"x": b"1"}))
    assert names.lookup(store, "busybox:test")[0].ref_name == "localhost/busybox:test"  # podman's short names
    for ref in (image_id, image_id.removeprefix("sha256:"), image_id[7:19]):
        assert [d.ref_name for d in names.lookup(store, ref)] == ["localhost/busybox:test"]
    assert names.lookup(store, "other")[0].ref_name == "other:latest"
    with pytest.raises(names.ImageNotFound):
        names.lookup(store, "nothere")


# ---------------------------------------------------------------- OCI archive


def test_oci_archive_round_trip_keeps_names_digests_and_id(store: LayoutStore, tmp_path: Path) -> None:
    image_id = imported(store, "localhost/busybox:test")
    out = io.BytesIO()
    archive.save(store, [("localhost/busybox:test", store.resolve("localhost/busybox:test"))], out)
    files = members(out.getvalue())
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    (entry,) = index["manifests"]
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "localhost/busybox:test"}
    for name, data in files.items():  # every blob is named by its digest
        if name.startswith("blobs/sha256/"):
            assert sha(data) == "sha256:" + name.rsplit("/", 1)[1]
    other = LayoutStore(str(tmp_path / "other"))
    (loaded,) = archive.load(other, io.BytesIO(out.getvalue()))
    assert (loaded.name, loaded.image_id) == ("localhost/busybox:test", image_id)
    assert other.resolve("localhost/busybox:test").digest == entry["digest"]


def test_a_corrupt_blob_fails_the_load_and_leaves_no_image(store: LayoutStore, tmp_path: Path) -> None:
    imported(store, "img")
    out = io.BytesIO()
    archive.save(store, [("img:latest", store.resolve("img:latest"))], out)
    files = members(out.getvalue())
    layer = max((n for n in files if n.startswith("blobs/")), key=lambda n: len(files[n]))
    files[layer] = files[layer][:-1] + b"X"
    other = LayoutStore(str(tmp_path / "other"))
    with pytest.raises(archive.CorruptArchive, match="digest mismatch"):
        archive.load(other, io.BytesIO(retar(files)))
    assert other.images() == []


def test_a_missing_blob_or_a_truncated_archive_is_refused(store: LayoutStore, tmp_path: Path) -> None:
    imported(store, "img")
    out = io.BytesIO()
    archive.save(store, [("img:latest", store.resolve("img:latest"))], out)
    files = members(out.getvalue())
    layer = max((n for n in files if n.startswith("blobs/")), key=lambda n: len(files[n]))
    other = LayoutStore(str(tmp_path / "other"))
    with pytest.raises(archive.ArchiveError, match="missing from the archive"):
        archive.load(other, io.BytesIO(retar({n: d for n, d in files.items() if n != layer})))
    with pytest.raises(archive.ArchiveError, match="truncated|corrupt"):
        archive.load(other, io.BytesIO(out.getvalue()[: len(out.getvalue()) // 2]))
    with pytest.raises(archive.ArchiveError, match="neither"):
        archive.load(other, io.BytesIO(retar({"hello.txt": b"hi"})))
    assert other.images() == []


# ---------------------------------------------------------------- docker archive


def test_docker_archive_has_podmans_shape_and_plain_layers(store: LayoutStore) -> None:
    data = rootfs_tar()
    _, image_id, _ = import_image(store, io.BytesIO(gzip.compress(data, mtime=0)), "localhost/busybox:test")
    out = io.BytesIO()
    archive.save(store, [("localhost/busybox:test", store.resolve("localhost/busybox:test"))], out, "docker-archive")
    files = members(out.getvalue())
    (entry,) = json.loads(files["manifest.json"])
    diff_id = sha(data)
    assert entry == {
        "Config": f"{image_id[7:]}.json",
        "RepoTags": ["localhost/busybox:test"],
        "Layers": [f"{diff_id[7:]}.tar"],
    }
    assert files[entry["Layers"][0]] == data  # decompressed: docker archives carry diff tars
    assert sha(files[entry["Config"]]) == image_id
    repositories = json.loads(files["repositories"])
    legacy = repositories["localhost/busybox"]["test"]
    assert f"{legacy}/layer.tar" in files and files[f"{legacy}/VERSION"] == b"1.0"


def test_docker_archive_round_trip_keeps_the_image_id(store: LayoutStore, tmp_path: Path) -> None:
    image_id = imported(store, "a:1")
    imported(store, "b:2", rootfs_tar({"other": b"x"}))
    out = io.BytesIO()
    images = [(n, store.resolve(n)) for n in ("a:1", "b:2")]
    archive.save(store, images, out, "docker-archive")
    other = LayoutStore(str(tmp_path / "other"))
    loaded = archive.load(other, io.BytesIO(out.getvalue()))
    assert sorted(item.name or "" for item in loaded) == ["a:1", "b:2"]
    assert next(i.image_id for i in loaded if i.name == "a:1") == image_id
    _, manifest = other.manifest(other.resolve("a:1"))
    assert manifest.config.digest == image_id and manifest.layers[0].media_type == mt.LAYER


def test_docker_legacy_archive_without_tags_loads_unnamed(tmp_path: Path) -> None:
    # moby's legacy layout: ID/layer.tar files, HEX.json config, no RepoTags.
    layer = rootfs_tar()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}).encode()  # fmt: skip
    files = {
        f"{sha(config)[7:]}.json": config,
        "abc/layer.tar": layer,
        "abc/VERSION": b"1.0",
        "manifest.json": json.dumps(
            [{"Config": f"{sha(config)[7:]}.json", "RepoTags": None, "Layers": ["abc/layer.tar"]}]
        ).encode(),  # fmt: skip
    }
    store = LayoutStore(str(tmp_path / "s"))
    (loaded,) = archive.load(store, io.BytesIO(retar(files)))
    assert loaded.name is None and loaded.image_id == sha(config)
    assert names.is_untagged(store.images()[0].ref_name)


def test_docker_archive_whose_layer_contradicts_the_diff_id_is_refused(tmp_path: Path) -> None:
    layer = rootfs_tar()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha(layer + b"\0")]}}).encode()  # fmt: skip
    files = {
        "c.json": config,
        "l.tar": layer,
        "manifest.json": json.dumps([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l.tar"]}]).encode(),
    }
    store = LayoutStore(str(tmp_path / "s"))
    with pytest.raises(archive.CorruptArchive, match="diff_id mismatch"):
        archive.load(store, io.BytesIO(retar(files)))
    gz = dict(files, **{"l.tar": gzip.compress(layer)})  # compressed (docker 25 keeps some so): also checked
    with pytest.raises(archive.CorruptArchive, match="diff_id mismatch"):
        archive.load(store, io.BytesIO(retar(gz)))
    assert store.images() == []
