"""Image references as docker's distribution/reference parses and normalises them (ParseNormalizedNamed)."""

from __future__ import annotations

import pytest

from hull.distribution.reference import parse
from hull.image.names import InvalidReference

HEX = "a" * 64
DIGEST = f"sha256:{HEX}"


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        # docker.io and library/ defaults, the default tag
        ("busybox", "docker.io", "library/busybox", "latest", None),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
        ("user/app", "docker.io", "user/app", "latest", None),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("index.docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("index.docker.io/user/app:v1", "docker.io", "user/app", "v1", None),
        # domains: a dot, a port, localhost, an uppercase letter, IPv6
        ("quay.io/coreos/etcd", "quay.io", "coreos/etcd", "latest", None),
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/app:dev", "localhost:5000", "app", "dev", None),
        ("127.0.0.1:5000/a/b/c:1", "127.0.0.1:5000", "a/b/c", "1", None),
        ("Registry/app", "Registry", "app", "latest", None),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
        # a one-part name that looks like host:port is a name with a tag
        ("localhost:5000", "docker.io", "library/localhost", "5000", None),
        # separators in path components
        ("a/b.c_d__e---f", "docker.io", "a/b.c_d__e---f", "latest", None),
        # digests, and tag + digest (the tag is kept, the digest is what is fetched)
        (f"busybox@{DIGEST}", "docker.io", "library/busybox", "", DIGEST),
        (f"example.com/app:1@{DIGEST}", "example.com", "app", "1", DIGEST),
    ],
)
def test_parse_normalises_like_docker(text: str, domain: str, path: str, tag: str, digest: str | None) -> None:
    ref = parse(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)


def test_string_forms() -> None:
    ref = parse("busybox")
    assert str(ref) == "docker.io/library/busybox:latest"
    assert ref.familiar() == "busybox:latest"
    assert ref.repository == "docker.io/library/busybox"
    assert ref.reference == "latest"
    pinned = parse(f"example.com/app:1@{DIGEST}")
    assert str(pinned) == f"example.com/app:1@{DIGEST}"
    assert pinned.reference == DIGEST  # the digest wins over the tag when fetching
    assert parse("user/app").familiar() == "user/app:latest"
    assert parse("busybox", default_tag=False).tag == ""


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty reference"),
        ("Busybox", "repository name must be lowercase"),
        ("docker.io/Busybox", "repository name must be lowercase"),
        ("busybox:", "invalid tag"),
        ("busybox:-x", "invalid tag"),
        ("busybox:" + "t" * 129, "invalid tag"),
        ("a//b", "invalid repository path"),
        ("a/b/", "invalid repository path"),
        ("-a", "invalid repository path"),
        ("a_-b", "invalid repository path"),
        (":tag", "empty repository name"),
        ("busybox@sha256:abc", "invalid digest"),
        ("busybox@sha256:" + "A" * 64, "lowercase hex"),
        ("busybox@" + DIGEST + "x", "invalid digest"),
        (HEX, "image ID"),
        ("-bad.com/app", "invalid domain"),
        ("example.com:port/app", "invalid domain"),
        ("a/" + "b" * 250, "not be more than 255"),
    ],
)
def test_bad_references_say_why(text: str, why: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse(text)
    assert why in str(info.value)
    assert str(info.value).startswith("invalid reference format")
