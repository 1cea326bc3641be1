"""Platform normalisation and matching, table-driven against containerd's platforms package behaviour."""

from __future__ import annotations

import pytest

from hull.oci import media_types as mt
from hull.oci import platform as pf
from hull.oci.digest import of
from hull.oci.image import Descriptor, Platform


def P(spec: str, os_version: str = "", features: tuple[str, ...] = ()) -> Platform:  # noqa: N802
    os_name, _, rest = spec.partition("/")
    arch, _, variant = rest.partition("/")
    return Platform(arch, os_name, os_version, list(features), variant)


@pytest.mark.parametrize(
    ("arch", "variant", "expected"),
    [
        ("x86_64", "", ("amd64", "")),
        ("x86-64", "", ("amd64", "")),
        ("AMD64", "v1", ("amd64", "")),
        ("amd64", "v3", ("amd64", "v3")),
        ("i386", "", ("386", "")),
        ("aarch64", "", ("arm64", "")),
        ("arm64", "v8", ("arm64", "")),
        ("arm64", "8", ("arm64", "")),
        ("arm64", "v8.0", ("arm64", "")),
        ("arm64", "v9.0", ("arm64", "v9")),
        ("arm64", "v8.2", ("arm64", "v8.2")),
        ("armhf", "", ("arm", "v7")),
        ("armel", "", ("arm", "v6")),
        ("arm", "", ("arm", "v7")),
        ("arm", "7", ("arm", "v7")),
        ("arm", "6", ("arm", "v6")),
        ("ppc64le", "", ("ppc64le", "")),
    ],
)
def test_normalize_arch(arch: str, variant: str, expected: tuple[str, str]) -> None:
    assert pf.normalize_arch(arch, variant) == expected


def test_normalize_os_and_features() -> None:
    p = pf.normalize(Platform("aarch64", "Linux", os_features=["b", "a", "b"]))
    assert (p.os, p.architecture, p.variant, p.os_features) == ("linux", "arm64", "", ["a", "b"])
    assert pf.normalize(Platform("amd64", "macOS")).os == "darwin"


@pytest.mark.parametrize(
    ("want", "have", "ok"),
    [
        (P("linux/amd64"), P("linux/x86_64"), True),
        (P("linux/amd64"), P("linux/arm64"), False),
        (P("linux/amd64"), P("windows/amd64"), False),
        (P("linux/arm64"), P("linux/aarch64/v8"), True),
        (P("linux/arm64/v8"), P("linux/arm64"), True),
        (P("linux/arm/v7"), P("linux/arm"), True),
        (P("linux/arm/v7"), P("linux/arm/v6"), False),  # exact match only: see vector for compatibility
        # os.features of the image must be a subset of the wanted ones
        (P("linux/amd64", features=("a", "b")), P("linux/amd64", features=("b",)), True),
        (P("linux/amd64"), P("linux/amd64", features=("b",)), False),
        # os.version only matters on Windows
        (P("linux/amd64", "1"), P("linux/amd64", "2"), True),
        (P("windows/amd64", "10.0.17763.1"), P("windows/amd64", "10.0.17763.5"), True),
        (P("windows/amd64", "10.0.17763.1"), P("windows/amd64", "10.0.14393.1"), False),
        # from ltsc2022 on, a host runs containers from the previous LTSC up to its own build
        (P("windows/amd64", "10.0.26100.1"), P("windows/amd64", "10.0.20348.1"), True),
        (P("windows/amd64", "10.0.26200.1"), P("windows/amd64", "10.0.20348.1"), False),
        (P("windows/amd64", "10.0.26200.1"), P("windows/amd64", "10.0.26100.1"), True),
        (P("windows/amd64", "10.0.20348.1"), P("windows/amd64", "10.0.17763.1"), False),
    ],
)
def test_matches(want: Platform, have: Platform, ok: bool) -> None:
    assert pf.matches(pf.normalize(want), have) is ok


@pytest.mark.parametrize(
    ("want", "expected"),
    [
        ("linux/amd64", ["linux/amd64", "linux/386"]),
        ("linux/amd64/v3", ["linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"]),
        ("linux/arm/v7", ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
        ("linux/arm/v5", ["linux/arm/v5"]),
        ("linux/arm64", ["linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
        (
            "linux/arm64/v8.2",
            [
                "linux/arm64/v8.2",
                "linux/arm64/v8.1",
                "linux/arm64",
                "linux/arm/v8",
                "linux/arm/v7",
                "linux/arm/v6",
                "linux/arm/v5",
            ],
        ),
        ("linux/ppc64le", ["linux/ppc64le"]),
    ],
)
def test_vector(want: str, expected: list[str]) -> None:
    assert [pf.format_platform(p) for p in pf.vector(P(want))] == expected


def test_vector_arm64_v9_includes_v8_levels() -> None:
    got = [pf.format_platform(p) for p in pf.vector(P("linux/arm64/v9.1"))]
    assert got[:3] == ["linux/arm64/v9.1", "linux/arm64/v9", "linux/arm64/v8.6"]
    assert "linux/arm64" in got and got[-1] == "linux/arm/v5"


def entry(platform: Platform | None, media_type: str = mt.MANIFEST, tag: str = "") -> Descriptor:
    return Descriptor(media_type, of(f"{platform}{tag}".encode()), 1, platform=platform, annotations={"t": tag})


ARM6, ARM7, AMD64, ARM64, I386 = (
    P("linux/arm/v6"),
    P("linux/arm/v7"),
    P("linux/amd64"),
    P("linux/arm64/v8"),
    P("linux/386"),
)


@pytest.mark.parametrize(
    ("index", "want", "expected"),
    [
        # first matching entry wins among equals (image-index.md)
        ([entry(AMD64, tag="1"), entry(AMD64, tag="2")], AMD64, ["1", "2"]),
        # best variant first, whatever the index order
        ([entry(ARM6, tag="v6"), entry(ARM7, tag="v7")], ARM7, ["v7", "v6"]),
        ([entry(ARM7, tag="v7")], ARM6, []),
        # arm64 hosts fall back to arm images; amd64 hosts to 386
        ([entry(ARM7, tag="v7"), entry(ARM64, tag="a64")], P("linux/aarch64"), ["a64", "v7"]),
        ([entry(I386, tag="386")], AMD64, ["386"]),
        # unknown media types are skipped, not errors; nested indexes are candidates
        ([entry(AMD64, "application/xml", "x"), entry(AMD64, mt.INDEX, "idx")], AMD64, ["idx"]),
        ([entry(AMD64, mt.DOCKER_MANIFEST, "d")], AMD64, ["d"]),
        # no platform: fits anything, ranks last
        ([entry(None, tag="any"), entry(AMD64, tag="amd")], AMD64, ["amd", "any"]),
        # more os.features that match rank first
        (
            [entry(P("linux/amd64"), tag="plain"), entry(P("linux/amd64", features=("f",)), tag="feat")],
            P("linux/amd64", features=("f",)),
            ["feat", "plain"],
        ),
        ([entry(P("linux/amd64", features=("g",)), tag="g")], P("linux/amd64", features=("f",)), []),
    ],
)
def test_select(index: list[Descriptor], want: Platform, expected: list[str]) -> None:
    assert [d.annotations["t"] for d in pf.select(index, want)] == expected


def test_select_strict() -> None:
    assert pf.select([entry(I386, tag="386")], AMD64, strict=True) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/armhf", "linux/arm/v7"),
        ("windows/amd64", "windows/amd64"),
    ],
)
def test_parse(spec: str, expected: str) -> None:
    assert pf.format_platform(pf.parse(spec)) == expected


def test_parse_single_component_and_errors() -> None:
    here = pf.host()
    assert pf.parse("linux").architecture == here.architecture
    assert pf.parse("s390x").os == "linux" and pf.parse("s390x").architecture == "s390x"
    for bad in ("", "a/b/c/d", "linux//v7", "nonsense"):
        with pytest.raises(ValueError):
            pf.parse(bad)


def test_host_is_this_machine() -> None:
    import os

    machine = os.uname().machine
    here = pf.host()
    assert here.os == "linux"
    if machine == "x86_64":
        assert (here.architecture, here.variant) == ("amd64", "")
