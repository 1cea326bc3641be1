"""Snapshotter metadata and mount descriptions, without mounting (no root needed)."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from hull.image.mounts import Mount, compact_overlay_data, direct_path, page_size
from hull.image.snapshot import (
    KIND_ACTIVE,
    KIND_COMMITTED,
    KIND_VIEW,
    CopySnapshotter,
    OverlaySnapshotter,
    SnapshotError,
    SnapshotExists,
    SnapshotNotFound,
    open_snapshotter,
)


def write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_prepare_commit_stat_walk(tmp_path: Path) -> None:
    sn = CopySnapshotter(str(tmp_path))
    mounts = sn.prepare("a-active")
    assert mounts == [Mount("bind", sn.writable_dir("a-active"), ("rbind", "rw"))]
    write(os.path.join(sn.writable_dir("a-active"), "etc/hostname"), "one\n")
    assert sn.stat("a-active").kind == KIND_ACTIVE
    sn.commit("layer-a", "a-active", {"k": "v"})
    with pytest.raises(SnapshotNotFound, match="snapshot 'a-active': not found"):
        sn.stat("a-active")
    info = sn.stat("layer-a")
    assert (info.kind, info.parent, info.labels) == (KIND_COMMITTED, "", {"k": "v"})

    sn.prepare("b-active", "layer-a")
    child = sn.writable_dir("b-active")
    # the copy snapshotter starts a child from a copy of its parent's tree
    assert Path(child, "etc/hostname").read_text() == "one\n"
    Path(child, "etc/hostname").write_text("two\n")
    sn.commit("layer-b", "b-active")
    assert Path(sn.fs_dir(info.id), "etc/hostname").read_text() == "one\n"
    assert [(i.name, i.kind, i.parent) for i in sn.walk()] == [
        ("layer-a", KIND_COMMITTED, ""),
        ("layer-b", KIND_COMMITTED, "layer-a"),
    ]
    # a view is read-only and, for a copy snapshotter, the parent's tree itself
    assert sn.view("v", "layer-b") == [Mount("bind", sn.fs_dir(sn.stat("layer-b").id), ("rbind", "ro"))]
    assert sn.stat("v").kind == KIND_VIEW
    assert sn.usage("layer-a").inodes == 3  # fs, etc, etc/hostname
    assert sn.usage("layer-a").size > 0


def test_state_errors(tmp_path: Path) -> None:
    sn = CopySnapshotter(str(tmp_path))
    sn.prepare("x")
    with pytest.raises(SnapshotExists):
        sn.prepare("x")
    with pytest.raises(SnapshotError, match="parent 'x' of snapshot 'y' is not committed"):
        sn.prepare("y", "x")
    with pytest.raises(SnapshotNotFound):
        sn.prepare("y", "missing")
    sn.commit("c", "x")
    with pytest.raises(SnapshotError, match="only an active snapshot can be committed"):
        sn.commit("d", "c")
    sn.prepare("child", "c")
    with pytest.raises(SnapshotError, match="'c' is the parent of child"):
        sn.remove("c")
    with pytest.raises(SnapshotError, match="is committed: make a view"):
        sn.mounts("c")
    sn.prepare("other")
    with pytest.raises(SnapshotExists):
        sn.commit("c", "other")
    sn.remove("child")
    sn.remove("c")
    assert [i.name for i in sn.walk()] == ["other"]


def test_metadata_is_one_atomic_json_file(tmp_path: Path) -> None:
    sn = CopySnapshotter(str(tmp_path))
    sn.prepare("k")
    doc = json.loads((tmp_path / "metadata.json").read_text())
    assert doc["snapshots"]["k"]["kind"] == "active"
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]
    # a second instance over the same root sees the same snapshots
    assert CopySnapshotter(str(tmp_path)).stat("k").kind == KIND_ACTIVE
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(SnapshotError, match="corrupt snapshot metadata"):
        sn.walk()


def test_cleanup_removes_orphan_directories(tmp_path: Path) -> None:
    sn = CopySnapshotter(str(tmp_path))
    sn.prepare("kept")
    orphan = tmp_path / "snapshots" / "99"
    (orphan / "fs").mkdir(parents=True)  # a crash between mkdir and the metadata write
    assert sn.cleanup() == [str(orphan)]
    assert os.listdir(tmp_path / "snapshots") == [sn.stat("kept").id]


def test_removed_snapshot_directory_goes(tmp_path: Path) -> None:
    sn = CopySnapshotter(str(tmp_path))
    sn.prepare("k")
    path = sn.dir(sn.stat("k").id)
    sn.remove("k")
    assert not os.path.exists(path)


def overlay_chain(sn: OverlaySnapshotter, n: int) -> str:
    parent = ""
    for i in range(n):
        sn.prepare(f"a{i}", parent)
        sn.commit(f"l{i}", f"a{i}")
        parent = f"l{i}"
    return parent


def test_overlay_descriptions(tmp_path: Path) -> None:
    sn = OverlaySnapshotter(str(tmp_path))
    # no parent: the directory itself, writable without a mount
    first = sn.prepare("a0")
    assert direct_path(first) == sn.writable_dir("a0")
    sn.commit("l0", "a0")
    sn.prepare("a1", "l0")
    sn.commit("l1", "a1")
    assert not os.path.exists(os.path.join(sn.dir(sn.stat("l1").id), "work"))  # committed: no work dir
    (m,) = sn.prepare("c", "l1")
    assert m.type == "overlay"
    opts = dict(o.split("=", 1) for o in m.options if "=" in o)
    # overlayfs.rst: lowerdir lists the top layer first
    assert opts["lowerdir"].split(":") == [sn.fs_dir(sn.stat("l1").id), sn.fs_dir(sn.stat("l0").id)]
    assert opts["upperdir"] == sn.writable_dir("c")
    assert os.path.isdir(opts["workdir"])
    # views: one layer is a read-only bind, more an overlay without upper
    assert sn.view("v0", "l0") == [Mount("bind", sn.fs_dir(sn.stat("l0").id), ("rbind", "ro"))]
    (v1,) = sn.view("v1", "l1")
    assert v1.type == "overlay" and "ro" in v1.options and not any(o.startswith("upperdir") for o in v1.options)
    assert sn.mounts("c") == [m]


def test_sixty_layers_fit_in_a_page_once_compacted(tmp_path: Path) -> None:
    deep = tmp_path / ("long-directory-name-" * 8)
    sn = OverlaySnapshotter(str(deep))
    top = overlay_chain(sn, 60)
    (m,) = sn.prepare("c", top)
    data = ",".join(m.options)
    assert len(data) > page_size()  # the plain option string would be cut by mount(2)
    base, short = compact_overlay_data(data)
    assert base == os.path.join(str(deep), "snapshots")
    assert len(short) < 1024
    lower = next(o for o in short.split(",") if o.startswith("lowerdir="))[len("lowerdir=") :].split(":")
    assert len(lower) == 60 and lower[0] == f"{sn.stat(top).id}/fs" and lower[-1] == "1/fs"


def test_open_snapshotter_names(tmp_path: Path) -> None:
    assert isinstance(open_snapshotter(str(tmp_path), "copy"), CopySnapshotter)
    assert isinstance(open_snapshotter(str(tmp_path), "overlayfs"), OverlaySnapshotter)
    with pytest.raises(SnapshotError, match="unknown snapshotter 'zfs'"):
        open_snapshotter(str(tmp_path), "zfs")


def test_copy_snapshot_changes_become_a_layer(tmp_path: Path) -> None:
    sn = CopySnapshotter(str(tmp_path / "s"))
    sn.prepare("a")
    write(os.path.join(sn.writable_dir("a"), "keep"), "k")
    write(os.path.join(sn.writable_dir("a"), "gone"), "g")
    sn.commit("base", "a")
    sn.prepare("c", "base")
    os.unlink(os.path.join(sn.writable_dir("c"), "gone"))
    write(os.path.join(sn.writable_dir("c"), "new"), "n")
    buf = io.BytesIO()
    sn.create_layer("c", buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode="r:gz") as tar:
        assert sorted(tar.getnames()) == [".wh.gone", "new"]
