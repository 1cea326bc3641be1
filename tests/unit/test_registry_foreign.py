"""Non-distributable ("foreign") layers: a registry that answers 404 for the layer, and loopback file
servers behind the descriptor's ``urls``. Tried in order, http/https only, every candidate's bytes
verified against the descriptor's digest and size."""

from __future__ import annotations

from typing import Any

import pytest

from hull.distribution import DistributionError
from hull.distribution.pull import pull
from hull.distribution.reference import parse
from hull.image.store import LayoutStore
from hull.oci import image as im
from hull.oci import media_types as mt
from tests.unit import test_registry_client as _loopback
from tests.unit.test_registry_client import Answer, Seen, sha

serve = _loopback.serve  # the loopback-server fixture

LAYER = b"foreign layer bytes " * 1000


def image(urls: list[str]) -> tuple[bytes, dict[str, bytes]]:
    """(manifest, the blobs the registry has: only the config)."""
    config = im.encode({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(LAYER)]}})
    layer = {"mediaType": mt.LAYER_ND_GZIP, "digest": sha(LAYER), "size": len(LAYER), "urls": urls}
    manifest = im.encode(
        {
            "schemaVersion": 2,
            "mediaType": mt.MANIFEST,
            "config": {"mediaType": mt.CONFIG, "digest": sha(config), "size": len(config)},
            "layers": [layer],
        }
    )
    return manifest, {sha(config): config}


def registry_of(manifest: bytes, blobs: dict[str, bytes]) -> Any:
    def handle(req: Seen) -> Answer:
        if "/manifests/" in req.path:
            return 200, {"Content-Type": mt.MANIFEST}, manifest
        blob = blobs.get(req.path.rsplit("/", 1)[1])
        return (200, {}, blob) if blob is not None else (404, {}, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')

    return handle


def test_a_layer_missing_from_the_registry_comes_from_the_first_url_that_serves_it(serve: Any, tmp_path: Any) -> None:
    files = serve(
        lambda req: {
            "/wrong": (200, {}, b"x" * len(LAYER)),  # right size, wrong digest
            "/long": (200, {}, LAYER + b"more"),  # past the descriptor's size
            "/good": (200, {}, LAYER),
        }.get(req.path, (404, {}, b""))
    )
    urls = [
        f"ftp://{files.host}/good",  # never fetched: not http(s)
        f"http://{files.host}/gone",
        f"http://{files.host}/wrong",
        f"http://{files.host}/long",
        f"http://{files.host}/good",
        f"http://{files.host}/unused",
    ]
    manifest, blobs = image(urls)
    reg = serve(registry_of(manifest, blobs))
    store = LayoutStore(str(tmp_path / "store"))
    result = pull(store, parse(f"{reg.host}/app:1"))
    assert store.read(sha(LAYER), 1 << 20) == LAYER
    assert sha(LAYER) in result.fetched
    assert [r.path for r in files.seen] == ["/gone", "/wrong", "/long", "/good"]
    assert store.resolve(f"{reg.host}/app:1").digest == sha(manifest)
    # The registry was asked first, and the file server got no credentials nor the registry's paths.
    assert any(r.path == f"/v2/app/blobs/{sha(LAYER)}" for r in reg.seen)


def test_when_no_url_serves_the_layer_the_pull_fails_naming_each_and_stores_no_image(serve: Any, tmp_path: Any) -> None:
    files = serve(lambda req: (200, {}, b"y" * len(LAYER)))
    urls = ["file:///etc/passwd", f"http://{files.host}/bad"]
    manifest, blobs = image(urls)
    reg = serve(registry_of(manifest, blobs))
    store = LayoutStore(str(tmp_path / "store"))
    with pytest.raises(DistributionError) as err:
        pull(store, parse(f"{reg.host}/app:1"))
    text = str(err.value)
    assert "not in the registry and no URL of the descriptor served it" in text
    assert "file:///etc/passwd: only http and https URLs are fetched" in text
    assert f"http://{files.host}/bad: " in text and "digest" in text.lower()
    assert store.images() == []
    assert not store.has(sha(LAYER))


def test_one_pass_unpack_of_a_foreign_layer_after_a_bad_url_has_only_the_good_bytes(serve: Any, tmp_path: Any) -> None:
    import os

    from tests.unit._layer_helpers import gz, member, tar_bytes

    content = os.urandom(1_500_000)  # incompressible: the layer spans several 1 MiB reads
    tar = tar_bytes(member("hello", data=content))
    good = gz(tar)
    # Longer than the descriptor says: its first MiB reaches the applier before the size check stops it.
    bad = gz(tar_bytes(member("evil", data=os.urandom(2_000_000))))
    files = serve(lambda req: {"/bad": (200, {}, bad), "/good": (200, {}, good)}.get(req.path, (404, {}, b"")))
    config = im.encode({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(tar)]}})
    layer = {
        "mediaType": mt.LAYER_ND_GZIP,
        "digest": sha(good),
        "size": len(good),
        "urls": [f"http://{files.host}/bad", f"http://{files.host}/good"],
    }
    manifest = im.encode(
        {
            "schemaVersion": 2,
            "mediaType": mt.MANIFEST,
            "config": {"mediaType": mt.CONFIG, "digest": sha(config), "size": len(config)},
            "layers": [layer],
        }
    )
    reg = serve(registry_of(manifest, {sha(config): config}))
    store = LayoutStore(str(tmp_path / "store"))
    rootfs = tmp_path / "rootfs"
    pull(store, parse(f"{reg.host}/app:1"), unpack_to=str(rootfs))
    assert sorted(p.name for p in rootfs.iterdir()) == ["hello"]
    assert (rootfs / "hello").read_bytes() == content
