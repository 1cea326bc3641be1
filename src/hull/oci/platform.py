"""Platform matching: pick the manifest for a platform out of an image index.

Behaves as containerd's ``platforms`` package does (``Normalize``,
``NewMatcher``, ``Only``): names are normalised (x86_64 -> amd64, aarch64 ->
arm64 whose default variant v8 is written as no variant, armhf -> arm/v7,
arm without a variant -> arm/v7...); a platform matches when os, architecture
and variant are equal after normalisation, the candidate's ``os.features``
are a subset of the wanted ones, and (Windows only) ``os.version`` is
compatible; ``only`` also accepts what the platform can run (arm64 runs
arm64/v8.x below its own and arm/v8..v5, amd64/vN runs lower amd64 variants
and 386, arm/vN runs arm/vN-1..v5), best first. image-index.md: "If
multiple manifests match ... the first matching entry SHOULD be used".
"""

from __future__ import annotations

import os as _os

from hull.oci import media_types as mt
from hull.oci.image import Descriptor, Platform

_KNOWN_OS = frozenset(
    (
        "aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd openbsd plan9 solaris windows zos"
    ).split()
)
_KNOWN_ARCH = frozenset(
    (
        "386 amd64 amd64p32 arm armbe arm64 arm64be ppc64 ppc64le loong64 mips mipsle mips64 mips64le mips64p32 "
        "mips64p32le ppc riscv riscv64 s390 s390x sparc sparc64 wasm"
    ).split()
)
# arm64 variant -> the (major, highest minor) pairs it can run, as containerd's arm64variantToVersion.
_ARM64_VERSIONS = {f"v8.{n}": [(8, n)] for n in range(10)} | {f"v9.{n}": [(9, n), (8, min(n + 5, 9))] for n in range(8)}
_ARM64_VERSIONS["v8"] = [(8, 0)]
_ARM64_VERSIONS["v9"] = [(9, 0), (8, 5)]
# uname -m -> GOARCH (and variant) for the host.
_MACHINES = {
    "x86_64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "loongarch64": ("loong64", ""),
    "mips64": ("mips64", ""),
}


def normalize_os(name: str) -> str:
    name = name.lower() or "linux"
    return "darwin" if name == "macos" else name


def normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


def normalize(p: Platform) -> Platform:
    arch, variant = normalize_arch(p.architecture, p.variant)
    return Platform(arch, normalize_os(p.os), p.os_version, sorted(set(p.os_features)), variant, list(p.features))


def host() -> Platform:
    """The platform this machine runs (uname's machine as a GOARCH)."""
    machine = _os.uname().machine
    arch, variant = _MACHINES.get(machine, (machine, ""))
    return normalize(Platform(arch, "linux", variant=variant))


def parse(specifier: str) -> Platform:
    """``os[/arch[/variant]]`` or a lone os or arch, as containerd's ``platforms.Parse``."""
    parts = specifier.split("/")
    if not specifier or len(parts) > 3 or any(not part for part in parts):
        raise ValueError(f"invalid platform {specifier!r} (expected os[/arch[/variant]])")
    here = host()
    if len(parts) == 1:
        name = normalize_os(parts[0])
        if name in _KNOWN_OS:
            return Platform(here.architecture, name, variant=here.variant)
        arch, variant = normalize_arch(parts[0], "")
        if arch not in _KNOWN_ARCH:
            raise ValueError(f"unknown operating system or architecture {specifier!r}")
        return normalize(Platform(arch, here.os, variant=variant))
    arch, variant = normalize_arch(parts[1], parts[2] if len(parts) == 3 else "")
    return normalize(Platform(arch, normalize_os(parts[0]), variant=variant))


def _windows_version(text: str) -> tuple[int, int, int] | None:
    parts = text.split(".")
    if len(parts) < 3 or not all(p.isdigit() for p in parts[:3]):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


_LTSC2022, _LTSC2025 = 20348, 26100


def _windows_compatible(want: str, have: str) -> bool:
    # containerd's checkWindowsHostAndContainerCompat: same major.minor; before ltsc2022 the
    # build must be equal; from ltsc2022 on a host runs builds from the previous LTSC up to its own.
    host_v, ctr_v = _windows_version(want), _windows_version(have)
    if host_v is None or not have:
        return True
    if ctr_v is None:
        ctr_v = (0, 0, 0)
    if host_v[:2] != ctr_v[:2]:
        return False
    if host_v[2] < _LTSC2022:
        return host_v[2] == ctr_v[2]
    oldest = _LTSC2025 if host_v[2] > _LTSC2025 else _LTSC2022
    return oldest <= ctr_v[2] <= host_v[2]


def matches(want: Platform, have: Platform) -> bool:
    """``have`` (an image's platform) satisfies ``want`` (a normalised platform) exactly."""
    have = normalize(have)
    if (want.os, want.architecture, want.variant) != (have.os, have.architecture, have.variant):
        return False
    if want.os == "windows" and not _windows_compatible(want.os_version, have.os_version):
        return False
    # Features the image requires must all be present where it runs.
    return set(have.os_features) <= set(want.os_features)


def vector(p: Platform) -> list[Platform]:
    """What a platform can run, best first (containerd's platformVector)."""
    p = normalize(p)

    def like(arch: str, variant: str) -> Platform:
        return Platform(arch, p.os, p.os_version, list(p.os_features), variant)

    out = [p]
    if p.architecture == "amd64":
        level = p.variant[1:] if p.variant.startswith("v") else ""
        if level.isdigit():
            out += [like("amd64", f"v{n}") for n in range(int(level) - 1, 0, -1)]
        out.append(like("386", ""))
    elif p.architecture == "arm":
        level = p.variant[1:] if p.variant.startswith("v") else ""
        if level.isdigit():
            out += [like("arm", f"v{n}") for n in range(int(level) - 1, 4, -1)]
    elif p.architecture == "arm64":
        variant = p.variant or "v8"
        if variant not in _ARM64_VERSIONS:
            return [p]  # containerd returns no candidate at all here; hull at least runs the exact platform
        out = []
        for major, top in _ARM64_VERSIONS.get(variant, []):
            out += [like("arm64", f"v{major}" if minor == 0 else f"v{major}.{minor}") for minor in range(top, -1, -1)]
        arm_variant = "v8" if variant.startswith(("v8", "v9")) else variant
        out += vector(like("arm", arm_variant))
    return [normalize(q) for q in out]


def rank(want: Platform, have: Platform) -> int | None:
    """Position of ``have`` among what ``want`` can run (0 is best), None if it cannot run it."""
    for i, candidate in enumerate(vector(want)):
        if matches(candidate, have):
            return i
    return None


def select(manifests: list[Descriptor], want: Platform, strict: bool = False) -> list[Descriptor]:
    """The descriptors of an index that fit ``want``, best first.

    Only manifest and index media types are candidates; others are skipped
    (image-index.md: an unknown ``mediaType`` "MUST NOT generate an error").
    A descriptor without ``platform`` fits any platform but ranks last, as in
    containerd's ``images.Manifest``. Among equals the index order is kept;
    more matching ``os.features`` rank first. ``strict`` matches only the
    platform itself (containerd's ``OnlyStrict``).
    """
    candidates = vector(want)[:1] if strict else vector(want)
    scored: list[tuple[int, int, int, Descriptor]] = []
    for position, desc in enumerate(manifests):
        if desc.media_type not in mt.MANIFESTS and desc.media_type not in mt.INDEXES:
            continue
        if desc.platform is None:
            scored.append((len(candidates), 0, position, desc))
            continue
        found = next((i for i, c in enumerate(candidates) if matches(c, desc.platform)), None)
        if found is not None:
            scored.append((found, -len(desc.platform.os_features), position, desc))
    return [item[3] for item in sorted(scored, key=lambda item: item[:3])]


def format_platform(p: Platform) -> str:
    return "/".join(part for part in (p.os, p.architecture, p.variant) if part)
