"""hull's content store against the field's tools: skopeo and umoci read what hull writes, hull reads what
they write. Images are made locally from the test fixtures' busybox rootfs (umoci), never downloaded.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.image.store import LayoutStore, copy
from hull.oci import digest as dg
from hull.oci import image as im
from hull.oci import media_types as mt
from hull.oci.image import Descriptor

pytestmark = pytest.mark.usefixtures("root_required")


def run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def umoci_image(tmp_path: Path, busybox_rootfs: Path) -> Path:
    """An OCI layout 'src' with tag 'base': the busybox rootfs as one layer, with a config set by umoci."""
    layout = tmp_path / "src"
    run("umoci", "init", "--layout", str(layout))
    run("umoci", "new", "--image", f"{layout}:base")
    run("umoci", "insert", "--image", f"{layout}:base", str(busybox_rootfs), "/")
    run(
        "umoci", "config", "--image", f"{layout}:base", "--config.cmd", "/bin/sh", "--config.env", "FOO=bar",
        "--config.workingdir", "/tmp", "--config.user", "0:0", "--config.label", "org.example=1",
    )  # fmt: skip
    return layout


def layer_members(store: LayoutStore, desc: Descriptor) -> tuple[str, set[str]]:
    """The layer's diff_id and entry names, read through hull's store."""
    with store.open(desc.digest) as f:
        raw = f.read()
    assert dg.of(raw) == desc.digest and len(raw) == desc.size
    tar_bytes = gzip.decompress(raw) if mt.layer_compression(desc.media_type) == "gzip" else raw
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        names = {m.name.lstrip("./") for m in tar.getmembers()}
    return dg.of(tar_bytes), names


def test_skopeo_copy_into_a_hull_store(tmp_path: Path, umoci_image: Path) -> None:
    hull = LayoutStore(str(tmp_path / "hull"))  # created by hull, filled by skopeo
    run("skopeo", "copy", "-q", f"oci:{umoci_image}:base", f"oci:{hull.root}:copied")
    desc, manifest = hull.manifest(hull.resolve("copied"))
    config = hull.config(manifest)
    assert (config.os, config.architecture) == ("linux", "amd64")
    assert config.config is not None
    assert config.config.cmd == ["/bin/sh"] and config.config.env == ["FOO=bar"]
    assert config.config.working_dir == "/tmp" and config.config.user == "0:0"
    assert config.config.labels == {"org.example": "1"}
    assert [h.created_by for h in config.history] == ["umoci insert", "umoci config"]
    (layer,) = manifest.layers
    diff_id, names = layer_members(hull, layer)
    assert config.rootfs.diff_ids == [diff_id]
    assert "bin/busybox" in names and "bin/sh" in names
    # skopeo and hull agree on what the image is
    inspected = json.loads(run("skopeo", "inspect", f"oci:{hull.root}:copied"))
    assert inspected["Digest"] == desc.digest and inspected["Layers"] == [layer.digest]


def test_hull_reads_a_layout_skopeo_created(tmp_path: Path, umoci_image: Path) -> None:
    run("skopeo", "copy", "-q", f"oci:{umoci_image}:base", f"oci:{tmp_path / 'fresh'}:one")
    store = LayoutStore(str(tmp_path / "fresh"), create=False)
    assert [d.ref_name for d in store.images()] == ["one"]
    assert store.config(store.manifest(store.resolve("one"))[1]).config is not None


def build_with_hull(store: LayoutStore, rootfs: Path, ref: str) -> Descriptor:
    """An image written through hull's API: a gzip layer of the rootfs, a config, a manifest, a ref."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(rootfs.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(rootfs)), recursive=False)
    tar_bytes = buf.getvalue()
    compressed = gzip.compress(tar_bytes, mtime=0)
    with store.lease() as lease:
        layer = store.ingest(io.BytesIO(compressed), dg.of(compressed), len(compressed), lease=lease)
        config = im.ImageConfig(
            "amd64",
            "linux",
            im.RootFS([dg.of(tar_bytes)]),
            created="2024-05-06T07:08:09Z",
            config=im.ExecConfig(env=["PATH=/bin", "HULL=1"], cmd=["/bin/echo", "hi"], working_dir="/"),
            history=[im.History(created="2024-05-06T07:08:09Z", created_by="hull test")],
        )
        config_raw = im.encode(im.config_json(config))
        config_info = store.write(config_raw, lease=lease)
        manifest = im.Manifest(
            Descriptor(mt.CONFIG, config_info.digest, config_info.size),
            [Descriptor(mt.LAYER_GZIP, layer.digest, layer.size)],
            mt.MANIFEST,
            annotations={"org.opencontainers.image.title": "hull"},
        )
        raw = im.encode(im.manifest_json(manifest))
        info = store.write(raw, lease=lease)
        desc = Descriptor(mt.MANIFEST, info.digest, info.size, platform=config.platform)
        store.set_ref(ref, desc)
    return desc


def test_skopeo_and_umoci_read_an_image_hull_wrote(tmp_path: Path, busybox_rootfs: Path) -> None:
    store = LayoutStore(str(tmp_path / "hull"))
    desc = build_with_hull(store, busybox_rootfs, "built")
    inspected = json.loads(run("skopeo", "inspect", f"oci:{store.root}:built"))
    assert inspected["Digest"] == desc.digest and inspected["Env"] == ["PATH=/bin", "HULL=1"]
    assert inspected["Architecture"] == "amd64" and inspected["Created"].startswith("2024-05-06T07:08:09")
    assert run("umoci", "ls", "--layout", store.root).split() == ["built"]
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--image", f"{store.root}:built", str(bundle))
    assert (bundle / "rootfs" / "bin" / "busybox").read_bytes() == (busybox_rootfs / "bin" / "busybox").read_bytes()
    process = json.loads((bundle / "config.json").read_text())["process"]
    assert process["args"] == ["/bin/echo", "hi"] and "HULL=1" in process["env"]
    # skopeo copies it out (verifying every blob against hull's descriptors)
    run("skopeo", "copy", "-q", f"oci:{store.root}:built", f"oci:{tmp_path / 'out'}:x")
    assert (tmp_path / "out" / "blobs" / "sha256" / desc.digest.encoded).read_bytes() == store.read(desc.digest)


def test_hull_copy_then_gc_and_the_tools_still_read_it(tmp_path: Path, umoci_image: Path, busybox_rootfs: Path) -> None:
    src = LayoutStore(str(umoci_image), create=False)
    dst = LayoutStore(str(tmp_path / "hull"))
    with dst.lease() as lease:
        base = src.resolve("base")
        copy(src, dst, base, lease)
        dst.set_ref("copy", Descriptor(base.media_type, base.digest, base.size))
    other = build_with_hull(dst, busybox_rootfs, "other")
    other_only = {d.digest for d in [other, *dst.manifest(other)[1].layers]}
    dst.write(b"unreferenced")
    dst.remove_ref("other")
    result = dst.gc()
    assert other_only <= set(result.removed) and dg.of(b"unreferenced") in result.removed
    assert run("umoci", "ls", "--layout", dst.root).split() == ["copy"]
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--image", f"{dst.root}:copy", str(bundle))
    assert (bundle / "rootfs" / "bin" / "busybox").exists()
    assert json.loads((bundle / "config.json").read_text())["process"]["cwd"] == "/tmp"
    inspected = json.loads(run("skopeo", "inspect", f"oci:{dst.root}:copy"))
    assert inspected["Digest"] == base.digest
    for blob in (Path(dst.root) / "blobs" / "sha256").iterdir():  # what GC left is complete and named right
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name


@pytest.fixture
def short_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="hull-cs-", dir="/tmp") as d:  # podman: runroot under 50 characters
        yield d


def test_podman_oci_archive_in_and_out(tmp_path: Path, busybox_rootfs: Path, short_dir: str) -> None:
    """podman save --format oci-archive -> hull store -> an oci-archive podman loads back."""
    podman = [
        "podman", "--root", str(tmp_path / "proot"), "--runroot", short_dir, "--storage-driver", "vfs",
        "--cgroup-manager", "cgroupfs", "--events-backend", "file",
    ]  # fmt: skip
    rootfs_tar = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs_tar, "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    image_id = run(*podman, "import", "-q", str(rootfs_tar), "localhost/hullstore:1").strip()
    run(*podman, "save", "-q", "--format", "oci-archive", "-o", str(tmp_path / "saved.tar"), "localhost/hullstore:1")
    with tarfile.open(tmp_path / "saved.tar") as tar:
        tar.extractall(tmp_path / "saved", filter="data")
    saved = LayoutStore(str(tmp_path / "saved"), create=False)
    src_desc = saved.resolve("localhost/hullstore:1")
    _, manifest = saved.manifest(src_desc)
    assert image_id.endswith(manifest.config.digest.encoded)  # podman's image ID is the config digest
    assert saved.config(manifest).rootfs.diff_ids == [layer_members(saved, manifest.layers[0])[0]]

    store = LayoutStore(str(tmp_path / "hull"))
    copy(saved, store, src_desc)
    store.set_ref("roundtrip", Descriptor(src_desc.media_type, src_desc.digest, src_desc.size))
    archive = tmp_path / "hull.tar"
    with tarfile.open(archive, "w") as tar:  # an oci-archive is the layout in a tar; hull's private dir stays out
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(Path(store.root) / name, arcname=name)
    run(*podman, "rmi", "localhost/hullstore:1")
    loaded = run(*podman, "load", "-q", "-i", str(archive))
    assert "roundtrip" in loaded
    inspected = json.loads(run(*podman, "image", "inspect", "localhost/roundtrip:latest"))
    assert inspected[0]["Id"] == manifest.config.digest.encoded
