"""Local image names: the part of docker's reference grammar that local tags need, and lookup.

A name is stored in the content store's index.json as the descriptor's
``org.opencontainers.image.ref.name`` annotation, written whole
(``localhost/busybox:test``), as ``podman save --format oci-archive`` writes
it. hull normalises only the tag: a name without ``:TAG`` gets ``:latest``
(docker/distribution reference.go's default tag). It adds no domain: podman
would store ``podman import x busybox`` as ``localhost/busybox:latest`` and
docker as ``docker.io/library/busybox:latest``; hull keeps ``busybox:latest``
and, when looking a short name up, also tries ``localhost/NAME`` so images
loaded from podman's archives are found by their short name. The full
reference grammar (domains, digests, docker.io expansion) arrives with the
distribution layer.

An image without a name (a ``docker save`` archive without RepoTags) is
kept under its manifest digest as the ref name, shown as ``<none>``.

Lookup, as docker's: a name, an image ID (the config digest, with or without
``sha256:``, or an unambiguous prefix of at least 4 hex digits of it), or a
manifest digest.
"""

from __future__ import annotations

import re

from hull.image.errors import ImageError, NotFound
from hull.oci.digest import Digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hull.image.store import LayoutStore
    from hull.oci.image import Descriptor

DEFAULT_TAG = "latest"
LOCAL_DOMAIN = "localhost"

# distribution/reference regexp.go: path components lowercase alphanumerics joined by separators;
# the first component may be a domain (with dots or a port, or "localhost").
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
_NAME = re.compile(rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_HEX_ID = re.compile(r"(?:sha256:)?([0-9a-f]{4,64})")


class InvalidReference(ImageError):
    def __init__(self, ref: str, why: str) -> None:
        super().__init__(f"invalid reference format {ref!r}: {why}")
        self.ref = ref


class ImageNotFound(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"{ref}: image not known")
        self.ref = ref


class AmbiguousImage(ImageError):
    def __init__(self, ref: str, count: int) -> None:
        super().__init__(f"{ref}: ambiguous, it names {count} images (give more of the ID)")
        self.ref = ref


def split(ref: str) -> tuple[str, str]:
    """``(repository, tag)`` of a normalised name."""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, ""


def normalize(ref: str) -> str:
    """``NAME[:TAG]`` checked against docker's grammar, with the default tag added."""
    if not ref:
        raise InvalidReference(ref, "empty name")
    if "@" in ref:
        raise InvalidReference(ref, "a digest cannot name a local tag")
    if len(ref) > 255 + 129:
        raise InvalidReference(ref, "name too long")
    name, tag = split(ref)
    if _NAME.fullmatch(name) is None:
        if name.lower() != name and _NAME.fullmatch(name.lower()) is not None:
            raise InvalidReference(ref, "repository name must be lowercase")
        raise InvalidReference(ref, "expected [DOMAIN/]NAME[:TAG] with lowercase letters, digits and . _ - separators")
    if len(name) > 255:
        raise InvalidReference(ref, "repository name longer than 255 characters")
    if ":" in ref[ref.rfind("/") + 1 :] and not tag:
        raise InvalidReference(ref, "empty tag")
    if tag and _TAG.fullmatch(tag) is None:
        raise InvalidReference(ref, "a tag is up to 128 letters, digits, '_', '.' and '-', not starting with . or -")
    return f"{name}:{tag or DEFAULT_TAG}"


def is_untagged(ref_name: str) -> bool:
    """Whether an index.json ref name is an untagged image's placeholder (its manifest digest)."""
    return ref_name.startswith("sha256:") and "/" not in ref_name


def candidates(ref: str) -> list[str]:
    """The ref names ``ref`` may stand for, in lookup order."""
    try:
        full = normalize(ref)
    except InvalidReference:
        return []
    out = [full]
    first = full.split("/", 1)[0]
    if "/" not in full or not ("." in first or ":" in first or first == LOCAL_DOMAIN):
        out.append(f"{LOCAL_DOMAIN}/{full}")
        # What `hull pull NAME` stores (docker's normalisation): docker.io/library/NAME, docker.io/ORG/NAME.
        out.append(f"docker.io/{full}" if "/" in full else f"docker.io/library/{full}")
    return out


def config_digest(store: LayoutStore, desc: Descriptor) -> Digest:
    """The image ID: the digest of the config of the manifest ``desc`` names (for the host's platform)."""
    _mdesc, manifest = store.manifest(desc)
    return manifest.config.digest


def lookup(store: LayoutStore, ref: str) -> list[Descriptor]:
    """Every index.json descriptor of the image ``ref`` names (all its tags when ``ref`` is an ID).

    A name gives its one descriptor; an image ID or manifest digest gives every
    descriptor of that image. Raises ImageNotFound, AmbiguousImage or InvalidReference.
    """
    images = store.images()
    for name in candidates(ref):
        found = [d for d in images if d.ref_name == name]
        if found:
            return found[-1:]
    m = _HEX_ID.fullmatch(ref)
    if m is None:
        normalize(ref)  # a bad name says why
        raise ImageNotFound(ref)
    prefix = m.group(1)
    by_image: dict[str, list[Descriptor]] = {}
    for d in images:
        try:
            ids = {config_digest(store, d).encoded, d.digest.encoded}
        except ImageError:
            ids = {d.digest.encoded}
        if any(i.startswith(prefix) for i in ids):
            by_image.setdefault(d.digest, []).append(d)
    if not by_image:
        raise ImageNotFound(ref)
    if len(by_image) > 1:
        raise AmbiguousImage(ref, len(by_image))
    return next(iter(by_image.values()))
