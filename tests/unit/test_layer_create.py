"""Creating layers: changesets between trees, reproducible tars, round trips through apply."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from hull.image.changeset import CreateOptions, create_layer
from hull.image.layer import apply_layer
from hull.image.layer_errors import LayerError
from tests.unit._layer_helpers import snapshot


def build(root: Path) -> Path:
    (root / "etc" / "app.d").mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "etc" / "config").write_text("a=1\n")
    (root / "bin" / "tool").write_bytes(os.urandom(100_000))
    os.chmod(root / "bin" / "tool", 0o4755)
    os.chmod(root / "etc" / "app.d", 0o2750)
    (root / "tmp").mkdir(mode=0o777)
    os.chmod(root / "tmp", 0o1777)
    os.symlink("../bin/tool", root / "etc" / "tool-link")
    os.link(root / "bin" / "tool", root / "bin" / "tool-hard")
    os.mkfifo(root / "etc" / "fifo")
    (root / "deep" / ("d" * 120)).mkdir(parents=True)
    (root / "deep" / ("d" * 120) / ("f" * 150)).write_text("long name")
    os.setxattr(root / "etc" / "config", "user.origin", b"hull\x00\xff")
    os.utime(root / "etc" / "config", (1_000_000_000, 1_000_000_000))
    return root


def make(upper: Path, lower: Path | None = None, **kw: object) -> tuple[bytes, object]:
    out = io.BytesIO()
    digests = create_layer(out, str(upper), str(lower) if lower else None, CreateOptions(**kw))  # type: ignore[arg-type]
    return out.getvalue(), digests


@pytest.mark.parametrize("compression", ["gzip", "zstd", ""])
def test_round_trip(tmp_path: Path, compression: str) -> None:
    src = build(tmp_path / "src")
    blob, d = make(src, compression=compression)
    out = tmp_path / "out"
    out.mkdir()
    apply_layer(io.BytesIO(blob), str(out), compression, digest=d.digest, size=d.size, diff_id=d.diff_id)  # type: ignore[attr-defined]
    # The tree's own root is not an entry; everything under it round-trips.
    assert snapshot(out) == snapshot(src)


def test_digests_describe_the_blob(tmp_path: Path) -> None:
    blob, d = make(build(tmp_path / "src"))
    assert d.digest == "sha256:" + hashlib.sha256(blob).hexdigest() and d.size == len(blob)  # type: ignore[attr-defined]
    import gzip

    assert d.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()  # type: ignore[attr-defined]


def test_reproducible(tmp_path: Path) -> None:
    a = build(tmp_path / "a")
    blob1, d1 = make(a, mtime=0, uid=0, gid=0)
    b = build(tmp_path / "b")  # same content, created later: other mtimes and inodes
    (b / "bin" / "tool").write_bytes((a / "bin" / "tool").read_bytes())
    blob2, d2 = make(b, mtime=0, uid=0, gid=0)
    assert blob1 == blob2 and d1 == d2
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(blob1)).getmembers()]
    assert names.index("bin") < names.index("bin/tool") < names.index("bin/tool-hard")
    assert names[:2] == ["bin", "bin/tool"]  # sorted, each directory before its children
    members = {m.name: m for m in tarfile.open(fileobj=io.BytesIO(blob1)).getmembers()}
    assert members["bin/tool-hard"].islnk() and members["bin/tool-hard"].linkname == "bin/tool"
    assert all(m.mtime == 0 and m.uname == "" and "atime" not in m.pax_headers for m in members.values())


def test_changeset_between_trees(tmp_path: Path) -> None:
    lower = build(tmp_path / "lower")
    upper = tmp_path / "upper"
    subprocess.run(["cp", "-a", str(lower), str(upper)], check=True)
    (upper / "etc" / "config").unlink()  # removed file
    subprocess.run(["rm", "-r", str(upper / "deep")], check=True)  # removed tree
    (upper / "etc" / "app.d" / "default.cfg").write_text("new")  # added in an existing dir
    (upper / "bin" / "tool2").write_text("added")
    os.chmod(upper / "tmp", 0o755)  # attribute change only
    (upper / "etc" / "fifo").unlink()
    (upper / "etc" / "fifo").mkdir()  # type change
    blob, d = make(upper, lower)
    members = [m.name for m in tarfile.open(fileobj=io.BytesIO(blob)).getmembers()]
    assert ".wh.deep" in members and "etc/.wh.config" in members
    assert "bin/tool" not in members and "etc/tool-link" not in members  # unchanged: not in the changeset
    assert members.index("etc/.wh.config") < members.index("etc/app.d")  # whiteouts before siblings
    # Applying base + changeset reproduces upper.
    base_blob, _ = make(lower)
    out = tmp_path / "out"
    out.mkdir()
    apply_layer(io.BytesIO(base_blob), str(out), "gzip")
    apply_layer(io.BytesIO(blob), str(out), "gzip", diff_id=d.diff_id)  # type: ignore[attr-defined]
    assert snapshot(out) == snapshot(upper)


def test_gnu_tar_reads_hull_layers(tmp_path: Path) -> None:
    src = build(tmp_path / "src")
    blob, _ = make(src)
    layer = tmp_path / "layer.tgz"
    layer.write_bytes(blob)
    listing = subprocess.run(["tar", "-tzf", str(layer)], check=True, capture_output=True, text=True)
    assert "bin/tool-hard" in listing.stdout.split() and listing.stderr == ""
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "-xzf", str(layer), "-C", str(out)], check=True)
    assert snapshot(out) == snapshot(src)


def test_whiteout_named_file_cannot_be_archived(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / ".wh.sneaky").write_text("")
    with pytest.raises(LayerError, match="layer entry '.wh.sneaky'"):
        make(tmp_path / "t")
