"""Snapshotters with real mounts: overlayfs layers shared by ChainID, views, commits of a container's upper into a
layer, a 60-layer stack past mount(2)'s one-page limit, and a kill -9 in the middle of an unpack."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hull.image.bundle import create_bundle, prepare_rootfs, resolve_image, unpack_image
from hull.image.layer import LayerSource, unpack_layers
from hull.image.mounts import mount_all, mounted, page_size, unmount_all
from hull.image.snapshot import KIND_ACTIVE, KIND_COMMITTED, CopySnapshotter, OverlaySnapshotter, Snapshotter
from hull.image.store import LayoutStore
from hull.oci import image as im
from hull.oci.digest import chain_ids
from tests.conftest import Runtime
from tests.integration.test_image_bundle import modified_copy, tree_of
from tests.unit.test_bundle_from_image import build_image, host_arch

pytestmark = pytest.mark.usefixtures("root_required")


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


def test_overlay_prepare_commit_view(tmp_path: Path) -> None:
    sn = OverlaySnapshotter(str(tmp_path / "sn"))
    target = tmp_path / "mnt"
    target.mkdir()
    with mounted(sn.prepare("a"), str(target)) as tree:
        Path(tree, "etc").mkdir()
        Path(tree, "etc/keep").write_text("keep\n")
        Path(tree, "etc/drop").write_text("drop\n")
    sn.commit("base", "a")

    mount_all(sn.prepare("b", "base"), str(target))
    try:
        assert (target / "etc/keep").read_text() == "keep\n"
        (target / "etc/drop").unlink()
        (target / "new").write_text("new\n")
    finally:
        unmount_all(str(target))
    upper = Path(sn.writable_dir("b"))
    # overlayfs recorded the deletion as its whiteout (a 0/0 character device) in the upper only
    assert os.stat(upper / "etc/drop", follow_symlinks=False).st_rdev == 0
    assert (Path(sn.fs_dir(sn.stat("base").id)) / "etc/drop").read_text() == "drop\n"
    sn.commit("top", "b")

    mount_all(sn.view("v", "top"), str(target))
    try:
        assert sorted(os.listdir(target)) == ["etc", "new"]
        assert os.listdir(target / "etc") == ["keep"]
        with pytest.raises(OSError) as err:
            (target / "x").write_text("no")
        assert err.value.errno == errno.EROFS
    finally:
        unmount_all(str(target))
    assert mounts_under(tmp_path) == []
    assert sn.usage("top").inodes == 4  # fs, etc, etc/drop (whiteout), new


@pytest.fixture
def base_image(tmp_path: Path, busybox_rootfs: Path) -> LayoutStore:
    store = LayoutStore(str(tmp_path / "store"))
    top = modified_copy(busybox_rootfs, tmp_path / "top")
    ec = im.ExecConfig(user="app", cmd=["/bin/sh", "-c", "id -u; cat /message; ls /bin/vi 2>&1 | wc -l"])
    build_image(store, [(busybox_rootfs, None), (top, busybox_rootfs)], "two", ec, host_arch())
    other = tmp_path / "other"
    other.mkdir()
    (other / "only-in-one").write_text("1")
    build_image(store, [(busybox_rootfs, None), (other, None)], "one", ec, host_arch())
    return store


@pytest.mark.parametrize("kind", [OverlaySnapshotter, CopySnapshotter])
def test_images_share_their_base_layer(tmp_path: Path, base_image: LayoutStore, kind: type[Snapshotter]) -> None:
    sn = kind(str(tmp_path / "sn"))
    two = resolve_image(base_image, "two")
    top_two = unpack_image(base_image, sn, two)
    assert top_two == chain_ids(two.config.rootfs.diff_ids)[-1]
    base_chain = chain_ids(two.config.rootfs.diff_ids)[0]
    base_id = sn.stat(base_chain).id
    marker = Path(sn.fs_dir(base_id), ".unpacked-once")
    marker.write_text("")  # would vanish if the base layer were unpacked again
    one = resolve_image(base_image, "one")
    top_one = unpack_image(base_image, sn, one)
    assert chain_ids(one.config.rootfs.diff_ids)[0] == base_chain
    assert sn.stat(base_chain).id == base_id and marker.exists()
    names = {i.name: i for i in sn.walk()}
    assert set(names) == {base_chain, top_two, top_one}
    assert all(i.kind == KIND_COMMITTED for i in names.values())
    assert names[top_one].parent == names[top_two].parent == base_chain
    assert names[base_chain].labels["hull.diff-id"] == two.config.rootfs.diff_ids[0]
    # a second unpack of the same image does nothing
    assert unpack_image(base_image, sn, two) == top_two and len(sn.walk()) == 3


def without_nlink(tree: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    # overlayfs (index=off) reports a lower file's link count even after a link to it was deleted above
    return {k: v[:3] + ((v[3][0],) if isinstance(v[3], tuple) else (v[3],)) for k, v in tree.items()}


@pytest.mark.parametrize("kind", [OverlaySnapshotter, CopySnapshotter])
def test_container_rootfs_runs_and_commits_to_a_layer(
    tmp_path: Path, base_image: LayoutStore, runtime: Runtime, kind: type[Snapshotter]
) -> None:
    sn = kind(str(tmp_path / "sn"))
    prepared = prepare_rootfs(base_image, sn, "two", "ctr", terminal=False)
    bundle = tmp_path / "bundle"
    rootfs = create_bundle(str(bundle), prepared)
    try:
        out = runtime("run", "--bundle", str(bundle), "c1")
        assert out.stdout.split("\n")[:3] == ["1000", "hello from the image", "1"]
        # the container's changes: a deletion, an opaque directory, a new file, a mode change
        os.unlink(os.path.join(rootfs, "message"))
        shutil.rmtree(os.path.join(rootfs, "etc"))
        os.mkdir(os.path.join(rootfs, "etc"))
        Path(rootfs, "etc", "only").write_text("only\n")
        Path(rootfs, "added").write_text("added\n")
        os.chmod(os.path.join(rootfs, "suid"), 0o700)
        expected = without_nlink(tree_of(Path(rootfs)))
    finally:
        unmount_all(rootfs)
    blob = io.BytesIO()
    digests = sn.create_layer("ctr", blob)
    # round trip: the image's layers plus the new one, applied by hull, give the container's tree
    image = resolve_image(base_image, "two")
    sources = [LayerSource(base_image.open(d.digest), d.media_type, d.digest, d.size, diff)
               for d, diff in zip(image.manifest.layers, image.config.rootfs.diff_ids, strict=True)]  # fmt: skip
    blob.seek(0)
    sources.append(LayerSource(blob, "application/vnd.oci.image.layer.v1.tar+gzip", digests.digest,
                               digests.size, digests.diff_id))  # fmt: skip
    unpack_layers(sources, str(tmp_path / "replayed"))
    assert without_nlink(tree_of(tmp_path / "replayed")) == expected
    sn.remove("ctr")


def test_sixty_layers_mount(tmp_path: Path) -> None:
    store = LayoutStore(str(tmp_path / "store"))
    trees: list[tuple[Path, Path | None]] = []
    previous: Path | None = None
    for i in range(60):
        t = tmp_path / "trees" / f"t{i}"
        if previous is None:
            t.mkdir(parents=True)
        else:
            shutil.copytree(previous, t)
        (t / f"f{i}").write_text(f"{i}\n")
        if i == 30:
            (t / "f10").unlink()  # a whiteout half-way up
        trees.append((t, previous))
        previous = t
    build_image(store, trees, "deep", None, host_arch())
    # a long root so that the plain lowerdir= list is well over a page
    sn = OverlaySnapshotter(str(tmp_path / ("a-rather-long-directory-name-" * 3) / "sn"))
    prepared = prepare_rootfs(store, sn, "deep", "ctr")
    (m,) = prepared.mounts
    assert len(",".join(m.options)) > page_size()
    target = tmp_path / "rootfs"
    target.mkdir()
    mount_all(prepared.mounts, str(target))
    try:
        names = sorted(os.listdir(target))
        assert names == sorted(f"f{i}" for i in range(60) if i != 10)
        assert (target / "f59").read_text() == "59\n" and (target / "f0").read_text() == "0\n"
        (target / "written").write_text("upper")
    finally:
        unmount_all(str(target))
    assert Path(sn.writable_dir("ctr"), "written").read_text() == "upper"


UNPACKER = """
import sys
from hull.image.bundle import resolve_image, unpack_image
from hull.image.snapshot import OverlaySnapshotter
from hull.image.store import LayoutStore
store = LayoutStore(sys.argv[1])
unpack_image(store, OverlaySnapshotter(sys.argv[2]), resolve_image(store, "big"))
"""


def test_kill_mid_unpack_leaves_nothing_committed(tmp_path: Path, busybox_rootfs: Path) -> None:
    big = tmp_path / "big"
    shutil.copytree(busybox_rootfs, big, symlinks=True)
    for d in range(100):
        (big / "many" / str(d)).mkdir(parents=True)
        for f in range(300):
            (big / "many" / str(d) / str(f)).write_text("x" * 100)
    store = LayoutStore(str(tmp_path / "store"))
    build_image(store, [(busybox_rootfs, None), (big, busybox_rootfs)], "big", None, host_arch())
    image = resolve_image(store, "big")
    top = chain_ids(image.config.rootfs.diff_ids)[-1]
    root = tmp_path / "sn"
    proc = subprocess.Popen([sys.executable, "-c", UNPACKER, store.root, str(root)], cwd=os.getcwd())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the second layer is being applied through its overlay
            meta = root / "metadata.json"
            if meta.exists() and mounts_under(root):
                snaps = json.loads(meta.read_text())["snapshots"]
                if any(k.startswith("extract-") and v["parent"] for k, v in snaps.items()):
                    break
            time.sleep(0.01)
        else:
            pytest.fail("the unpack never reached its second layer")
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    sn = OverlaySnapshotter(str(root))
    states = {i.name: i.kind for i in sn.walk()}
    assert top not in states  # nothing that looks committed
    assert [k for k, v in states.items() if k.startswith("extract-")] and KIND_ACTIVE in states.values()
    # the next unpack removes the dead one's leftovers (its mount too) and succeeds
    assert unpack_image(store, sn, image) == top
    assert {i.name for i in sn.walk()} == set(chain_ids(image.config.rootfs.diff_ids))
    assert mounts_under(root) == []
    with mounted(sn.view("check", top), str(tmp_path / "check")) as tree:
        assert len(os.listdir(os.path.join(tree, "many", "99"))) == 300


def test_copy_snapshotter_preserves_everything(tmp_path: Path) -> None:
    sn = CopySnapshotter(str(tmp_path / "sn"))
    sn.prepare("a")
    tree = Path(sn.writable_dir("a"))
    (tree / "dir").mkdir(mode=0o2750)
    os.chown(tree / "dir", 123, 456)
    (tree / "dir" / "file").write_text("data")
    os.chown(tree / "dir" / "file", 7, 8)
    os.chmod(tree / "dir" / "file", 0o4711)  # after chown, which clears setuid
    os.link(tree / "dir" / "file", tree / "hard")
    os.symlink("dir/file", tree / "sym")
    os.mknod(tree / "null", 0o620 | 0o020000, os.makedev(1, 3))
    os.mkfifo(tree / "fifo", 0o600)
    os.setxattr(tree / "dir" / "file", "user.note", b"kept")
    os.setxattr(tree / "dir" / "file", "security.capability",
                bytes.fromhex("0100000200200000000000000000000000000000"))  # fmt: skip
    os.chmod(tree / "dir", 0o2750)
    sn.commit("base", "a")
    sn.prepare("b", "base")
    copy = Path(sn.writable_dir("b"))
    assert tree_of(copy) == tree_of(Path(sn.fs_dir(sn.stat("base").id)))
    assert os.stat(copy / "dir" / "file").st_mode & 0o7777 == 0o4711 and os.stat(copy / "null").st_rdev
    assert os.getxattr(copy / "dir" / "file", "user.note") == b"kept"
    assert os.getxattr(copy / "dir" / "file", "security.capability") == os.getxattr(
        tree / "dir" / "file", "security.capability")  # fmt: skip
    assert os.stat(copy / "hard").st_ino == os.stat(copy / "dir" / "file").st_ino
