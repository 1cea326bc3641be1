"""Hostile layers (issue 4 section 4): nothing is ever written outside the target, each gives one clear error.

Every tarball is crafted here. ``outside`` is a directory next to the root that a
layer tries to reach; each test checks it is untouched.
"""

from __future__ import annotations

import io
import os
import tarfile
import zlib
from pathlib import Path

import pytest

from hull.image import tarformat
from hull.image.layer import ApplyOptions, LayerSource, apply_layer, unpack_layers
from hull.image.layer_errors import LayerError
from tests.unit._layer_helpers import gz, member, sha256, tar_bytes

D, F, S, L = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim").write_text("precious")
    return tmp_path / "root"


def outside_intact(root: Path) -> bool:
    out = root.parent / "outside"
    return sorted(os.listdir(out)) == ["victim"] and (out / "victim").read_text() == "precious"


def apply(tar: bytes, root: Path, compression: str = "", **kw: object) -> None:
    apply_layer(io.BytesIO(tar), str(root), compression, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["../outside/victim", "a/../../outside/victim", "./../outside/x", "a/b/../../.."])
def test_dotdot_entry_refused(root: Path, name: str) -> None:
    with pytest.raises(LayerError, match=r"layer entry .*: a '\.\.' component could leave the root"):
        apply(tar_bytes(member(name, F, b"pwned")), root)
    assert outside_intact(root)


def test_absolute_entry_refused(root: Path) -> None:
    target = root.parent / "outside" / "victim"
    with pytest.raises(LayerError, match=f"layer entry '{target}': absolute path is not allowed"):
        apply(tar_bytes(member(str(target), F, b"pwned")), root)
    assert outside_intact(root)


@pytest.mark.parametrize("link", ["ABS", "../outside", "../../../../../../outside", "a/../../outside"])
def test_symlink_out_of_root_then_write_through_it(root: Path, link: str) -> None:
    link = str(root.parent / "outside") if link == "ABS" else link
    # One layer: the symlink, then an entry through it (the classic tar escape).
    apply(tar_bytes(member("esc", S, linkname=link), member("esc/victim", F, b"pwned"), member("esc/new", F)), root)
    assert outside_intact(root)
    # The entries resolved as inside the container: the link target taken from the root.
    assert os.path.islink(root / "esc")
    landed = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.is_symlink()}
    assert landed and all(not p.startswith("..") for p in landed)


def test_directory_replaced_by_symlink_between_layers(root: Path) -> None:
    apply(tar_bytes(member("d/", D), member("d/f", F)), root)
    apply(tar_bytes(member("d", S, linkname=str(root.parent / "outside"))), root)
    apply(tar_bytes(member("d/victim", F, b"pwned"), member("d/.wh.victim", F)), root)
    assert outside_intact(root)
    assert os.path.islink(root / "d")


def test_hardlink_to_outside_refused(root: Path) -> None:
    for target in ("../outside/victim", str(root.parent / "outside" / "victim")):
        with pytest.raises(LayerError, match=f"layer entry 'h': hardlink target '{target}': "):
            apply(tar_bytes(member("h", L, linkname=target)), root)
    # Through a symlinked parent the target is looked up inside the root, where it does not exist.
    with pytest.raises(LayerError, match="layer entry 'h2': hardlink target 'esc/victim' does not exist"):
        esc = member("esc", S, linkname=str(root.parent / "outside"))
        apply(tar_bytes(esc, member("h2", L, linkname="esc/victim")), root)
    assert outside_intact(root)
    assert (root.parent / "outside" / "victim").stat().st_nlink == 1


def test_whiteout_naming_outside(root: Path) -> None:
    with pytest.raises(LayerError, match=r"layer entry '\.wh\.\.': whiteout names no entry"):
        apply(tar_bytes(member(".wh..", F)), root)
    with pytest.raises(LayerError, match="'..' component could leave the root"):
        apply(tar_bytes(member("../outside/.wh.victim", F)), root)
    apply(tar_bytes(member("esc", S, linkname=str(root.parent / "outside")), member("esc/.wh.victim", F),
                    member("esc/.wh..wh..opq", F)), root)  # fmt: skip
    assert outside_intact(root)


def test_device_nodes_refused_by_option(root: Path) -> None:
    with pytest.raises(LayerError, match="layer entry 'dev/mem': device nodes are not allowed"):
        apply(tar_bytes(member("dev/mem", tarfile.CHRTYPE, devmajor=1, devminor=1)), root,
              options=ApplyOptions(allow_devices=False))  # fmt: skip
    assert not (root / "dev" / "mem").exists()


def test_decompression_bomb(root: Path) -> None:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    blob = z.compress(tarformat.build_header(b"bomb", 0o644, 0, 0, 1 << 30, 0, tarformat.REG))
    chunk = bytes(1 << 20)
    for _ in range(64):  # 64 MiB of zeros: 64 KiB compressed
        blob += z.compress(chunk)
    blob += z.flush()
    assert len(blob) < 128 << 10
    with pytest.raises(LayerError, match="exceeds the limit of 16777216 bytes"):
        apply(blob, root, "gzip", options=ApplyOptions(max_bytes=16 << 20))


def test_truncated_member(root: Path) -> None:
    tar = tar_bytes(member("big", F, b"x" * 5000))
    with pytest.raises(LayerError, match="layer entry 'big': archive ends inside the file's 5000 bytes"):
        apply(tar[: 512 + 2048], root)


def test_size_beyond_the_stream(root: Path) -> None:
    header = tarformat.build_header(b"liar", 0o644, 0, 0, 10 << 20, 0, tarformat.REG)
    with pytest.raises(LayerError, match="layer entry 'liar': archive ends inside"):
        apply(gz(header + b"short" + bytes(1024)), root, "gzip")


def test_size_smaller_than_data(root: Path) -> None:
    header = tarformat.build_header(b"liar", 0o644, 0, 0, 10, 0, tarformat.REG)
    body = b"A" * 2048  # the "next header" is file data
    with pytest.raises(LayerError, match="layer entry 'liar': header after this entry .*checksum"):
        apply(header + body + bytes(1024), root)


def test_not_a_tar_and_missing_end(root: Path) -> None:
    with pytest.raises(LayerError, match="first header: header checksum mismatch"):
        apply(b"<html>not a layer</html>".ljust(1024, b" "), root)
    with pytest.raises(LayerError, match="without its end-of-archive marker"):
        apply(tar_bytes(member("f", F, b"x"))[:1024], root)


def test_hostile_layer_in_unpack_leaves_nothing(root: Path) -> None:
    good = gz(tar_bytes(member("etc/", D), member("etc/passwd", F, b"root")))
    bad = gz(tar_bytes(member("ok", F), member("../outside/victim", F, b"pwned")))
    mt = "application/vnd.oci.image.layer.v1.tar+gzip"
    dest = root / "rootfs"
    with pytest.raises(LayerError, match="could leave the root"):
        unpack_layers([LayerSource(io.BytesIO(b), mt, sha256(b)) for b in (good, bad)], str(dest))
    assert os.listdir(root) == [] and outside_intact(root)
