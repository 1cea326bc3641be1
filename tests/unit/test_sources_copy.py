"""Short-name candidates (aliases, search registries), copy's transport names as skopeo's, and the
verifying upload body."""

from __future__ import annotations

import hashlib

import pytest

from hull.distribution.copy import CopyError, Location, VerifyingReader, parse_location
from hull.distribution.registries import RegistriesConf
from hull.distribution.sources import candidates, is_short_name
from hull.image.errors import DigestMismatch, InvalidImage


@pytest.mark.parametrize(
    ("text", "short"),
    [
        ("busybox", True),
        ("team/app:1", True),
        ("busybox@sha256:" + "a" * 64, True),
        ("localhost/app", False),
        ("127.0.0.1:5000/app", False),
        ("quay.io/team/app", False),
        ("Registry/app", False),
    ],
)
def test_short_names_are_the_ones_without_a_registry_part(text: str, short: bool) -> None:
    assert is_short_name(text) is short


def test_candidates_aliases_then_search_registries_then_docker() -> None:
    conf = RegistriesConf.parse(
        'unqualified-search-registries = ["quay.io", "docker.io"]\n[aliases]\n"box" = "example.com/tools/busybox"\n'
    )
    assert [str(r) for r in candidates("box:1", conf)] == ["example.com/tools/busybox:1"]
    assert [str(r) for r in candidates("app", conf)] == ["quay.io/app:latest", "docker.io/library/app:latest"]
    assert [str(r) for r in candidates("reg.example:5000/app:2", conf)] == ["reg.example:5000/app:2"]
    assert [str(r) for r in candidates("app", RegistriesConf())] == ["docker.io/library/app:latest"]


def test_copy_locations_are_named_as_skopeo_names_them() -> None:
    assert parse_location("docker://127.0.0.1:5000/a/b:1") == Location("docker", "127.0.0.1:5000/a/b:1", "")
    assert parse_location("oci:/tmp/layout:v1") == Location("oci", "/tmp/layout", "v1")
    assert parse_location("oci:/tmp/layout") == Location("oci", "/tmp/layout", "")
    assert parse_location("oci-archive:/tmp/x.tar:img") == Location("oci-archive", "/tmp/x.tar", "img")
    assert parse_location("docker-archive:/tmp/x.tar:a/b:1") == Location("docker-archive", "/tmp/x.tar", "a/b:1")
    assert parse_location("busybox:1") == Location("hull", "busybox:1", "")
    with pytest.raises(CopyError, match="docker://REF"):
        parse_location("docker:busybox")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_the_upload_body_fails_before_its_end_on_a_digest_mismatch() -> None:
    data = b"x" * 3000
    good = VerifyingReader([data[:1000], data[1000:]], _digest(data), len(data))
    assert good.read(2048) + good.read(2048) + good.read(2048) == data
    bad = VerifyingReader([data[:1000], b"y" * 2000], _digest(data), len(data))
    with pytest.raises(DigestMismatch):
        while bad.read(1024):
            pass
    short = VerifyingReader([data[:1000]], _digest(data), len(data))
    with pytest.raises(InvalidImage, match="1000 bytes, its descriptor says 3000"):
        short.read(4096)


def test_the_last_byte_is_held_back_until_the_digest_is_checked() -> None:
    data = b"z" * 2048
    bad = VerifyingReader([data[:1024], b"q" * 1024], _digest(data), len(data))
    assert bad.read(1024) == data[:1024]
    with pytest.raises(DigestMismatch):
        bad.read(1024)  # exactly the rest: refused rather than returned
