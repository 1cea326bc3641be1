"""Applying layers: changeset rules of image-spec layer.md, compression, verification, pax/GNU headers."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from hull.image import tarformat
from hull.image.layer import ApplyOptions, LayerSource, apply_layer, compression_of, unpack_layers
from hull.image.layer_errors import LayerError, LayerVerificationError
from tests.unit._layer_helpers import gz, member, sha256, snapshot, tar_bytes

D, F, S, L = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE


def apply(tar: bytes, root: Path, compression: str = "", **kw: object) -> None:
    apply_layer(io.BytesIO(tar), str(root), compression, **kw)  # type: ignore[arg-type]


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_media_types_choose_compression() -> None:
    assert compression_of("application/vnd.oci.image.layer.v1.tar") == ""
    assert compression_of("application/vnd.oci.image.layer.v1.tar+gzip") == "gzip"
    assert compression_of("application/vnd.oci.image.layer.v1.tar+zstd") == "zstd"
    assert compression_of("application/vnd.docker.image.rootfs.diff.tar.gzip") == "gzip"
    assert compression_of("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip") == "gzip"
    with pytest.raises(LayerError, match="unsupported layer media type"):
        compression_of("application/vnd.oci.image.config.v1+json")


@pytest.mark.parametrize("threads", [True, False])
@pytest.mark.parametrize("compression", ["", "gzip", "zstd"])
def test_all_compressions_apply_and_verify(tmp_path: Path, compression: str, threads: bool) -> None:
    raw = tar_bytes(member("etc/", D), member("etc/hostname", F, b"box\n"))
    if compression == "gzip":
        blob = gz(raw)
    elif compression == "zstd":
        import zstandard

        blob = zstandard.ZstdCompressor().compress(raw)
    else:
        blob = raw
    opts = ApplyOptions(threads=threads)
    apply(blob, tmp_path, compression, digest=sha256(blob), size=len(blob), diff_id=sha256(raw), options=opts)
    assert (tmp_path / "etc/hostname").read_bytes() == b"box\n"
    with pytest.raises(LayerVerificationError, match="diff_id mismatch"):
        apply(blob, tmp_path, compression, diff_id=sha256(raw + b"x"), options=opts)


def test_multi_member_gzip_is_one_stream(tmp_path: Path) -> None:
    raw = tar_bytes(member("a", F, b"1" * 3000), member("b", F, b"2"))
    blob = gz(raw[:1000]) + gz(raw[1000:])  # pigz/concatenated members (RFC 1952 2.2)
    apply(blob, tmp_path, "gzip", diff_id=sha256(raw))
    assert (tmp_path / "a").read_bytes() == b"1" * 3000


def test_digest_mismatch_leaves_no_destination(tmp_path: Path) -> None:
    blob = gz(tar_bytes(member("f", F, b"x")))
    dest = tmp_path / "rootfs"
    source = LayerSource(io.BytesIO(blob), "application/vnd.oci.image.layer.v1.tar+gzip", sha256(b"other"), len(blob))
    with pytest.raises(LayerVerificationError, match="digest mismatch"):
        unpack_layers([source], str(dest))
    assert os.listdir(tmp_path) == []  # neither the rootfs nor its staging directory


def test_diff_id_and_size_mismatch(tmp_path: Path) -> None:
    raw = tar_bytes(member("f", F, b"x"))
    blob = gz(raw)
    with pytest.raises(LayerVerificationError, match="diff_id mismatch"):
        apply(blob, tmp_path, "gzip", diff_id=sha256(raw + b"\0"))
    with pytest.raises(LayerVerificationError, match="size mismatch"):
        apply(blob, tmp_path, "gzip", size=len(blob) + 1)
    with pytest.raises(LayerVerificationError, match="larger than the descriptor size"):
        apply(blob, tmp_path, "gzip", size=len(blob) - 1)
    with pytest.raises(LayerVerificationError, match="unsupported digest"):
        apply(blob, tmp_path, "gzip", digest="md5:abc")


def test_unpack_layers_in_order_then_renamed(tmp_path: Path) -> None:
    l1 = gz(tar_bytes(member("a/", D), member("a/x", F, b"1"), member("a/y", F, b"2")))
    l2 = gz(tar_bytes(member("a/.wh.x", F), member("a/y", F, b"new")))
    mt = "application/vnd.oci.image.layer.v1.tar+gzip"
    layers = [LayerSource(io.BytesIO(b), mt, sha256(b), len(b)) for b in (l1, l2)]
    unpack_layers(layers, str(tmp_path / "rootfs"))
    assert tree(tmp_path / "rootfs") == {"a", "a/y"}
    assert (tmp_path / "rootfs/a/y").read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["rootfs"]


def test_attributes_modes_mtimes_links(tmp_path: Path) -> None:
    tar = tar_bytes(
        member("d/", D, mode=0o1777, mtime=1_500_000_000),
        member("d/s", F, b"suid", mode=0o4755, mtime=1_400_000_000),
        member("d/g", F, b"sgid", mode=0o2711),
        member("d/ro/", D, mode=0o555),
        member("d/ro/f", F, b"in a read-only dir", mode=0o400),
        member("d/link", S, linkname="s"),
        member("d/hard", L, linkname="d/s"),
        member("d/fifo", tarfile.FIFOTYPE, mode=0o620),
    )
    apply(tar, tmp_path)
    d = tmp_path / "d"
    assert d.stat().st_mode & 0o7777 == 0o1777 and int(d.stat().st_mtime) == 1_500_000_000
    assert (d / "s").stat().st_mode & 0o7777 == 0o4755 and int((d / "s").stat().st_mtime) == 1_400_000_000
    assert (d / "g").stat().st_mode & 0o7777 == 0o2711
    assert (d / "ro").stat().st_mode & 0o7777 == 0o555 and (d / "ro/f").read_bytes() == b"in a read-only dir"
    assert os.readlink(d / "link") == "s"
    assert (d / "hard").stat().st_ino == (d / "s").stat().st_ino
    assert (d / "fifo").is_fifo() and (d / "fifo").stat().st_mode & 0o777 == 0o620


def test_pax_long_names_links_and_xattrs(tmp_path: Path) -> None:
    long_dir = "x" * 150
    long_name = f"{long_dir}/{'y' * 200}"
    info, data = member(long_name, F, b"long")
    info.pax_headers = {"SCHILY.xattr.user.hull": "yes", "mtime": "1600000000.5"}
    tar = tar_bytes(member(f"{long_dir}/", D), (info, data), member("sym", S, linkname="t" * 300))
    apply(tar, tmp_path)
    assert (tmp_path / long_name).read_bytes() == b"long"
    assert os.getxattr(tmp_path / long_name, "user.hull") == b"yes"
    assert (tmp_path / long_name).stat().st_mtime_ns == 1_600_000_000_500_000_000
    assert os.readlink(tmp_path / "sym") == "t" * 300


def test_gnu_long_names(tmp_path: Path) -> None:
    name = "g" * 180
    apply(tar_bytes(member(name, F, b"gnu"), member("h" * 120, L, linkname=name), fmt=tarfile.GNU_FORMAT), tmp_path)
    assert (tmp_path / name).read_bytes() == b"gnu" and (tmp_path / ("h" * 120)).stat().st_nlink == 2


def test_whiteouts_apply_to_lower_layers_only(tmp_path: Path) -> None:
    apply(tar_bytes(member("a/", D), member("a/old", F, b"lower"), member("a/dir/", D), member("a/dir/f", F)), tmp_path)
    apply(
        tar_bytes(
            member("a/.wh.old", F),
            member("a/.wh.dir", F),  # a whole directory from below
            member("a/new", F, b"this layer"),
            member("a/.wh.new", F),  # same layer: "can only be hidden by whiteout files in subsequent layers"
        ),
        tmp_path,
    )
    assert tree(tmp_path) == {"a", "a/new"}


def test_opaque_whiteout_regardless_of_position(tmp_path: Path) -> None:
    # layer.md's own example: the opaque marker after the new children is applied "first".
    apply(tar_bytes(member("a/", D), member("a/b/", D), member("a/b/c/", D), member("a/b/c/bar", F)), tmp_path)
    apply(
        tar_bytes(
            member("a/", D), member("a/b/", D), member("a/b/c/", D), member("a/b/c/foo", F), member("a/.wh..wh..opq", F)
        ),  # fmt: skip
        tmp_path,
    )
    assert tree(tmp_path) == {"a", "a/b", "a/b/c", "a/b/c/foo"}


def test_opaque_keeps_implicit_parents_of_this_layer(tmp_path: Path) -> None:
    apply(tar_bytes(member("a/", D), member("a/b/", D), member("a/b/old", F), member("a/gone", F)), tmp_path)
    apply(tar_bytes(member("a/b/new", F), member("a/.wh..wh..opq", F)), tmp_path)
    assert tree(tmp_path) == {"a", "a/b", "a/b/new"}


def test_changeset_over_existing_files(tmp_path: Path) -> None:
    apply(
        tar_bytes(member("f", F, b"file"), member("d/", D), member("d/x", F), member("keep/", D, mode=0o700)), tmp_path
    )
    os.link(tmp_path / "f", tmp_path / "other-link")
    apply(tar_bytes(member("f", F, b"new"), member("d", F, b"now a file"), member("keep/", D, mode=0o750)), tmp_path)
    assert (tmp_path / "f").read_bytes() == b"new"
    assert (tmp_path / "other-link").read_bytes() == b"file"  # unlinked, not written through the hard link
    assert (tmp_path / "d").read_bytes() == b"now a file"
    assert (tmp_path / "keep").stat().st_mode & 0o777 == 0o750  # dir over dir: attributes replaced


def test_duplicate_entries_later_wins(tmp_path: Path) -> None:
    # layer.md forbids duplicates; like containerd and umoci, hull applies them in order (later wins).
    apply(tar_bytes(member("x", F, b"first"), member("x", F, b"second"), member("y", F), member("y", S, linkname="x")),
          tmp_path)  # fmt: skip
    assert (tmp_path / "x").read_bytes() == b"second" and os.readlink(tmp_path / "y") == "x"


def test_symlinked_parent_followed_inside_root(tmp_path: Path) -> None:
    # usr-merge: lib -> usr/lib; a later entry lib/x lands in usr/lib/x, as containerd and umoci resolve it.
    apply(tar_bytes(member("usr/", D), member("usr/lib/", D), member("lib", S, linkname="usr/lib")), tmp_path)
    apply(tar_bytes(member("lib/libc.so", F, b"c")), tmp_path)
    assert (tmp_path / "usr/lib/libc.so").read_bytes() == b"c" and os.path.islink(tmp_path / "lib")


def test_header_checksum_and_gnu_tar_layers(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "dir" / "sub").mkdir(parents=True)
    (src / "dir" / "file").write_bytes(os.urandom(70_000))
    (src / "dir" / "sub" / ("n" * 150)).write_text("long")
    os.symlink("file", src / "dir" / "sym")
    os.link(src / "dir" / "file", src / "dir" / "hard")
    os.chmod(src / "dir" / "file", 0o4711)
    os.setxattr(src / "dir" / "file", "user.k", b"v\x00\xff")
    for fmt in ("gnu", "posix"):
        out = tmp_path / f"out-{fmt}"
        out.mkdir()
        layer = tmp_path / f"{fmt}.tgz"
        subprocess.run(["tar", f"--format={fmt}", "--xattrs", "-czf", str(layer), "-C", str(src), "."], check=True)
        with open(layer, "rb") as f:
            apply_layer(f, str(out), "gzip")
        assert snapshot(out) == snapshot(src)
    assert tarformat.checksum_ok(tarformat.build_header(b"a", 0o644, 0, 0, 0, 0, tarformat.REG))


def test_file_count_and_options(tmp_path: Path) -> None:
    tar = tar_bytes(*(member(f"f{i}", F) for i in range(5)))
    with pytest.raises(LayerError, match="more than 3 entries"):
        apply(tar, tmp_path, options=ApplyOptions(max_entries=3))
