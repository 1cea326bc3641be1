"""Layers as root: device nodes, ownership and uid/gid shifts, security.capability and trusted.* xattrs,
overlayfs upper directories, and interop with umoci both ways."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from hull.image.changeset import CreateOptions, create_layer, create_layer_from_overlay
from hull.image.layer import ApplyOptions, LayerSource, apply_layer, unpack_layers
from hull.image.layer_errors import LayerError
from tests.unit._layer_helpers import member, snapshot, tar_bytes

pytestmark = pytest.mark.usefixtures("root_required")
GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
# security.capability v2 for cap_net_bind_service (bit 10) permitted+effective, as setcap writes it.
CAP = bytes.fromhex("01000002") + (1 << 10).to_bytes(4, "little") + bytes(12)


def rich_tree(root: Path) -> Path:
    (root / "dev").mkdir(parents=True)
    os.mknod(root / "dev" / "null", 0o666 | 0o020000, os.makedev(1, 3))
    os.mknod(root / "dev" / "loop0", 0o660 | 0o060000, os.makedev(7, 0))
    (root / "home" / "u").mkdir(parents=True)
    (root / "home" / "u" / "f").write_text("mine")
    os.chown(root / "home" / "u", 1000, 1000)
    os.chown(root / "home" / "u" / "f", 1000, 100)
    (root / "bin").mkdir()
    (root / "bin" / "ping").write_bytes(b"\x7fELF")
    os.chown(root / "bin" / "ping", 0, 4)
    os.chmod(root / "bin" / "ping", 0o6755)  # after chown, as the layer apply must do
    os.setxattr(root / "bin" / "ping", "security.capability", CAP)
    os.setxattr(root / "bin" / "ping", "trusted.hull", b"t")
    os.symlink("ping", root / "bin" / "pong")
    os.lchown(root / "bin" / "pong", 5, 5)
    return root


def layer_of(tree: Path, **kw: object) -> tuple[bytes, object]:
    out = io.BytesIO()
    d = create_layer(out, str(tree), None, CreateOptions(**kw))  # type: ignore[arg-type]
    return out.getvalue(), d


def test_round_trip_devices_owners_capabilities(tmp_path: Path) -> None:
    src = rich_tree(tmp_path / "src")
    blob, d = layer_of(src)
    unpack_layers([LayerSource(io.BytesIO(blob), GZ, d.digest, d.size, d.diff_id)], str(tmp_path / "out"))  # type: ignore[attr-defined]
    assert snapshot(tmp_path / "out") == snapshot(src)
    ping = tmp_path / "out" / "bin" / "ping"
    assert ping.stat().st_mode & 0o7777 == 0o6755  # setuid/setgid survive the chown
    assert os.getxattr(ping, "security.capability") == CAP  # survives chown and write
    assert os.lstat(tmp_path / "out" / "bin" / "pong").st_uid == 5


def test_uid_gid_shift(tmp_path: Path) -> None:
    blob, _ = layer_of(rich_tree(tmp_path / "src"))
    out = tmp_path / "out"
    out.mkdir()
    apply_layer(io.BytesIO(blob), str(out), "gzip", options=ApplyOptions(uid_shift=100000, gid_shift=200000))
    st = (out / "home" / "u" / "f").stat()
    assert (st.st_uid, st.st_gid) == (101000, 200100)
    assert (out / "bin" / "ping").stat().st_uid == 100000 and (out / "bin" / "ping").stat().st_mode & 0o7777 == 0o6755
    assert os.lstat(out / "bin" / "pong").st_uid == 100005


def test_devices_refused_when_not_allowed(tmp_path: Path) -> None:
    blob, _ = layer_of(rich_tree(tmp_path / "src"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(LayerError, match="layer entry 'dev/loop0': device nodes are not allowed"):
        apply_layer(io.BytesIO(blob), str(out), "gzip", options=ApplyOptions(allow_devices=False))


def test_overlay_xattrs_in_a_layer_are_dropped(tmp_path: Path) -> None:
    info, data = member("d/", tarfile.DIRTYPE)
    info.pax_headers = {"SCHILY.xattr.trusted.overlay.redirect": "/etc", "SCHILY.xattr.trusted.ok": "1"}
    out = tmp_path / "out"
    out.mkdir()
    apply_layer(io.BytesIO(tar_bytes((info, data))), str(out), "")
    assert os.listxattr(out / "d") == ["trusted.ok"]


def test_overlay_upper_becomes_a_layer(tmp_path: Path) -> None:
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for p in (lower / "etc" / "old.d", lower / "var" / "cache", upper, work, merged):
        p.mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root")
    (lower / "etc" / "old.d" / "x").write_text("x")
    (lower / "var" / "cache" / "a").write_text("a")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)], check=True)  # fmt: skip
    try:
        (merged / "etc" / "passwd").unlink()  # -> 0/0 char device whiteout in upper
        subprocess.run(["rm", "-r", str(merged / "etc" / "old.d")], check=True)
        subprocess.run(["rm", "-r", str(merged / "var" / "cache")], check=True)
        (merged / "var" / "cache").mkdir()  # -> opaque directory (trusted.overlay.opaque=y)
        (merged / "var" / "cache" / "b").write_text("b")
        (merged / "new").write_text("new")
        expected = snapshot(merged)
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    assert os.getxattr(upper / "var" / "cache", "trusted.overlay.opaque") == b"y"
    out = io.BytesIO()
    d = create_layer_from_overlay(out, str(upper))
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(out.getvalue())).getmembers()]
    assert {"etc/.wh.passwd", "etc/.wh.old.d", "var/cache/.wh..wh..opq"} <= set(names)
    assert names.index("var/cache/.wh..wh..opq") < names.index("var/cache/b")
    # lower + the layer == what the overlay showed
    target = tmp_path / "applied"
    subprocess.run(["cp", "-a", str(lower), str(target)], check=True)
    apply_layer(io.BytesIO(out.getvalue()), str(target), "gzip", diff_id=d.diff_id)
    assert snapshot(target) == expected


def _oci_layout(path: Path, layers: list[tuple[bytes, str]]) -> None:
    """A one-image OCI layout (tag "t") with ``layers`` as (gzip blob, diff_id)."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> tuple[str, int]:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return "sha256:" + h, len(data)

    descs = []
    for blob, _ in layers:
        digest, size = put(blob)
        descs.append({"mediaType": GZ, "digest": digest, "size": size})
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]}}  # fmt: skip
    cd, cs = put(json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                "layers": descs}  # fmt: skip
    md, ms = put(json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "t"}}]}  # fmt: skip
    (path / "index.json").write_text(json.dumps(index))
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def test_umoci_unpacks_hull_layers(tmp_path: Path) -> None:
    src = rich_tree(tmp_path / "src")
    (src / "etc").mkdir()
    (src / "etc" / "gone").write_text("to be whited out")
    upper = tmp_path / "upper"
    subprocess.run(["cp", "-a", str(src), str(upper)], check=True)
    (upper / "etc" / "gone").unlink()
    (upper / "etc" / "added").write_text("added")
    base, d1 = layer_of(src)
    diff = io.BytesIO()
    d2 = create_layer(diff, str(upper), str(src))
    _oci_layout(tmp_path / "image", [(base, d1.diff_id), (diff.getvalue(), d2.diff_id)])  # type: ignore[attr-defined]
    subprocess.run(["umoci", "unpack", "--image", f"{tmp_path / 'image'}:t", str(tmp_path / "bundle")], check=True,
                   capture_output=True)  # fmt: skip
    assert snapshot(tmp_path / "bundle" / "rootfs") == snapshot(upper)


def test_hull_applies_umoci_layers(tmp_path: Path) -> None:
    image = f"{tmp_path / 'image'}:t"
    run = lambda *a: subprocess.run(["umoci", *a], check=True, capture_output=True)  # noqa: E731
    run("init", "--layout", str(tmp_path / "image"))
    run("new", "--image", image)
    bundle = tmp_path / "bundle"
    run("unpack", "--image", image, str(bundle))
    rich_tree(bundle / "rootfs")
    (bundle / "rootfs" / "etc").mkdir()
    (bundle / "rootfs" / "etc" / "a").write_text("a")
    run("repack", "--image", image, str(bundle))
    subprocess.run(["rm", "-rf", str(bundle)], check=True)
    run("unpack", "--image", image, str(bundle))
    (bundle / "rootfs" / "etc" / "a").unlink()  # umoci writes a whiteout for this
    os.chmod(bundle / "rootfs" / "home", 0o700)
    run("repack", "--image", image, str(bundle))
    index = json.loads((tmp_path / "image" / "index.json").read_text())
    blob = lambda d: open(tmp_path / "image" / "blobs" / "sha256" / d.split(":")[1], "rb")  # noqa: E731
    manifest = json.load(blob(index["manifests"][0]["digest"]))
    config = json.load(blob(manifest["config"]["digest"]))
    sources = [LayerSource(blob(d["digest"]), d["mediaType"], d["digest"], d["size"], diff)
               for d, diff in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True)]  # fmt: skip
    unpack_layers(sources, str(tmp_path / "hull"))
    for s in sources:
        s.blob.close()
    run("unpack", "--image", image, str(tmp_path / "fresh"))
    assert snapshot(tmp_path / "hull") == snapshot(tmp_path / "fresh" / "rootfs")
    assert (
        not (tmp_path / "hull" / "etc" / "a").exists() and (tmp_path / "hull" / "home").stat().st_mode & 0o777 == 0o700
    )
