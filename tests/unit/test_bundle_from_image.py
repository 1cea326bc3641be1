"""Bundles from images through hull's store: rootfs + config.json, and the clear errors (no root needed)."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from hull.image.bundle import UserNotFound, resolve_image, unpack_bundle
from hull.image.changeset import CreateOptions, create_layer
from hull.image.errors import BlobNotFound, ImageError, NoMatchingPlatform
from hull.image.store import LayoutStore
from hull.oci import image as im
from hull.oci import media_types as mt
from hull.oci.digest import Digest
from hull.oci.image import Descriptor, Platform


def build_image(store: LayoutStore, trees: list[tuple[Path, Path | None]], ref: str,
                exec_config: im.ExecConfig | None = None, architecture: str = "amd64",
                **config_fields: Any) -> Descriptor:  # fmt: skip
    """An image whose layers are the changesets lower -> upper of ``trees`` (gzip, hull's writer), tagged ``ref``."""
    layers: list[Descriptor] = []
    diff_ids: list[Digest] = []
    with store.lease() as lease:
        for upper, lower in trees:
            buf = io.BytesIO()
            d = create_layer(buf, str(upper), str(lower) if lower else None, CreateOptions(mtime=1700000000))
            info = store.write(buf.getvalue(), d.digest, lease=lease)
            layers.append(Descriptor(mt.LAYER_GZIP, info.digest, info.size))
            diff_ids.append(Digest(d.diff_id))
        config = im.ImageConfig(architecture, "linux", im.RootFS(diff_ids), config=exec_config, **config_fields)
        cinfo = store.write(im.encode(im.config_json(config)), lease=lease)
        manifest = im.Manifest(Descriptor(mt.CONFIG, cinfo.digest, cinfo.size), layers, mt.MANIFEST)
        minfo = store.write(im.encode(im.manifest_json(manifest)), lease=lease)
        desc = Descriptor(mt.MANIFEST, minfo.digest, minfo.size)
        store.set_ref(ref, desc)
    return desc


def host_arch() -> str:
    from hull.oci.platform import host

    return host().architecture


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def two_layer_store(tmp_path: Path) -> LayoutStore:
    base = tree(tmp_path / "base", {"etc/passwd": "root:x:0:0::/root:/bin/sh\n", "etc/group": "root:x:0:\n",
                                    "old": "o", "dir/a": "a"})  # fmt: skip
    top = tmp_path / "top"
    shutil.copytree(base, top)
    (top / "old").unlink()
    (top / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nsvc:x:500:600:svc:/srv:/bin/sh\n")
    (top / "etc/group").write_text("root:x:0:\nsvcgrp:x:600:\nlog:x:700:svc\n")
    (top / "dir/b").write_text("b")
    store = LayoutStore(str(tmp_path / "store"))
    ec = im.ExecConfig(user="svc", entrypoint=["/bin/run"], cmd=["--x"], env=["A=1"], labels={"l": "v"})
    build_image(store, [(base, None), (top, base)], "app", ec, host_arch())
    return store


def test_unpack_bundle_rootfs_and_config(tmp_path: Path, two_layer_store: LayoutStore) -> None:
    bundle = tmp_path / "bundle"
    config = unpack_bundle(two_layer_store, "app", str(bundle), terminal=False)
    rootfs = bundle / "rootfs"
    assert sorted(str(p.relative_to(rootfs)) for p in rootfs.rglob("*")) == [
        "dir", "dir/a", "dir/b", "etc", "etc/group", "etc/passwd"]  # fmt: skip
    on_disk = json.loads((bundle / "config.json").read_text())
    assert on_disk == config
    assert config["process"]["args"] == ["/bin/run", "--x"]
    assert config["process"]["user"] == {"uid": 500, "gid": 600, "additionalGids": [700]}
    assert "HOME=/srv" in config["process"]["env"] and "A=1" in config["process"]["env"]
    assert config["annotations"]["l"] == "v"
    assert config["root"]["path"] == "rootfs"


def test_existing_bundle_is_refused(tmp_path: Path, two_layer_store: LayoutStore) -> None:
    (tmp_path / "b" / "rootfs").mkdir(parents=True)
    with pytest.raises(ImageError, match="rootfs already exists"):
        unpack_bundle(two_layer_store, "app", str(tmp_path / "b"))


def test_missing_user_is_an_error_and_leaves_no_bundle(tmp_path: Path) -> None:
    base = tree(tmp_path / "base", {"etc/passwd": "root:x:0:0::/root:/bin/sh\n"})
    store = LayoutStore(str(tmp_path / "store"))
    build_image(store, [(base, None)], "img", im.ExecConfig(user="ghost"), host_arch())
    with pytest.raises(UserNotFound, match="config.User 'ghost': no user 'ghost' in /etc/passwd"):
        unpack_bundle(store, "img", str(tmp_path / "b"))
    assert os.listdir(tmp_path / "b") == []


def test_passwd_symlink_out_of_the_rootfs_is_resolved_inside(tmp_path: Path) -> None:
    # /etc/passwd -> /../../../../etc/passwd must read the image's file, never the host's
    base = tree(tmp_path / "base", {"hostile/passwd": "me:x:77:88::/:/bin/sh\n"})
    (base / "etc").mkdir()
    os.symlink("/../../../../../../hostile/passwd", base / "etc/passwd")
    store = LayoutStore(str(tmp_path / "store"))
    build_image(store, [(base, None)], "img", im.ExecConfig(user="me"), host_arch())
    assert unpack_bundle(store, "img", str(tmp_path / "b"))["process"]["user"] == {"uid": 77, "gid": 88}
    build_image(store, [(base, None)], "root", im.ExecConfig(user="root"), host_arch())
    with pytest.raises(UserNotFound):  # the host has root, the image does not
        unpack_bundle(store, "root", str(tmp_path / "c"))


def test_platform_mismatch_is_an_error(tmp_path: Path) -> None:
    base = tree(tmp_path / "base", {"f": "x"})
    store = LayoutStore(str(tmp_path / "store"))
    other = "s390x" if host_arch() != "s390x" else "amd64"
    build_image(store, [(base, None)], "img", None, other)
    with pytest.raises(NoMatchingPlatform, match=f"available: linux/{other}"):
        unpack_bundle(store, "img", str(tmp_path / "b"))
    # asking for that platform explicitly works
    assert resolve_image(store, "img", Platform(other, "linux")).config.architecture == other


def test_missing_layer_blob_is_an_error(tmp_path: Path, two_layer_store: LayoutStore) -> None:
    image = resolve_image(two_layer_store, "app")
    two_layer_store.delete(image.manifest.layers[1].digest)
    with pytest.raises(BlobNotFound, match=f"blob {image.manifest.layers[1].digest}: not found"):
        unpack_bundle(two_layer_store, "app", str(tmp_path / "b"))
    assert not (tmp_path / "b" / "rootfs").exists()


def test_unpack_into_a_copy_snapshotter_cleans_a_dead_unpack(tmp_path: Path, two_layer_store: LayoutStore) -> None:
    from hull.image.bundle import unpack_image
    from hull.image.snapshot import KIND_COMMITTED, CopySnapshotter
    from hull.oci.digest import chain_ids

    sn = CopySnapshotter(str(tmp_path / "sn"))
    image = resolve_image(two_layer_store, "app")
    chains = chain_ids(image.config.rootfs.diff_ids)
    # what a killed unpacker leaves: an active extract snapshot, no committed layer, nobody holding its lock
    sn.prepare(f"extract-99999-{chains[0]}", "", {"hull.chain-id": chains[0]})
    Path(sn.writable_dir(f"extract-99999-{chains[0]}"), "half-written").write_text("")
    assert unpack_image(two_layer_store, sn, image) == chains[1]
    assert [(i.name, i.kind) for i in sn.walk()] == [(c, KIND_COMMITTED) for c in sorted(chains)]
    top = Path(sn.fs_dir(sn.stat(chains[1]).id))
    assert sorted(p.name for p in top.rglob("*")) == ["a", "b", "dir", "etc", "group", "passwd"]  # "old" whited out
