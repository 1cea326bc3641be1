"""Media types of the OCI Image Spec v1.1 (media-types.md) and Docker's Image
Manifest V2 Schema 2, with the classification the rest of hull relies on.

Unknown media types are never an error on their own: manifest.md says storing
or copying implementations "MUST NOT error" on an unknown layer or config
media type, and image-index.md / image-layout.md say an unknown ``mediaType``
in ``manifests`` "MUST NOT generate an error" (it is skipped when resolving).
"""

from __future__ import annotations

import re

# OCI (media-types.md)
DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
LAYER_ND_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
EMPTY_JSON = "application/vnd.oci.empty.v1+json"

# Docker Image Manifest V2 Schema 2 (distribution manifest-v2-2.md) and what containerd also reads.
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"
# Schema 1 is deprecated and signed differently; hull recognises it only to refuse it clearly.
DOCKER_SCHEMA1 = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)

MANIFESTS = frozenset({MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({INDEX, DOCKER_MANIFEST_LIST})
IMAGE_CONFIGS = frozenset({CONFIG, DOCKER_CONFIG})

# Layer media type -> compression ("" for a plain tar). Docker's types are
# "interchangeable" with OCI's (media-types.md "Compatibility Matrix").
LAYER_COMPRESSION = {
    LAYER: "",
    LAYER_GZIP: "gzip",
    LAYER_ZSTD: "zstd",
    LAYER_ND: "",
    LAYER_ND_GZIP: "gzip",
    LAYER_ND_ZSTD: "zstd",
    DOCKER_LAYER: "",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_LAYER_ZSTD: "zstd",
    DOCKER_FOREIGN_LAYER: "",
    DOCKER_FOREIGN_LAYER_GZIP: "gzip",
}
# layer.md "Non-distributable layers" (deprecated) and Docker's foreign layers: content
# may be absent from a store and fetched from the descriptor's urls.
NON_DISTRIBUTABLE = frozenset({LAYER_ND, LAYER_ND_GZIP, LAYER_ND_ZSTD, DOCKER_FOREIGN_LAYER, DOCKER_FOREIGN_LAYER_GZIP})

# RFC 6838 section 4.2 restricted-name, as image-spec's schema/defs-descriptor.json spells it.
_RESTRICTED_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(f"{_RESTRICTED_NAME}/{_RESTRICTED_NAME}")


def is_valid(media_type: str) -> bool:
    """RFC 6838 type/subtype grammar (descriptor.md "mediaType")."""
    return _MEDIA_TYPE.fullmatch(media_type) is not None


def is_layer(media_type: str) -> bool:
    return media_type in LAYER_COMPRESSION


def layer_compression(media_type: str) -> str | None:
    """ "", "gzip" or "zstd" for a known layer type, None for an unknown one."""
    return LAYER_COMPRESSION.get(media_type)
