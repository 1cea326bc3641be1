"""Push an image from the content store to a registry.

Children before parents, as spec.md's "Pushing Manifests" requires (a
registry may refuse a manifest whose blobs it does not have): for each
manifest, its config and layers (a HEAD first, skipped when the repository
has the blob; otherwise a cross-repository mount when asked, else an
upload), then the manifest; for an index, each of its manifests the store
holds by digest, then the index under the tag. The bytes pushed are the
store's, so digests stay what they were.
"""

from __future__ import annotations

from hull.distribution.client import Registry
from hull.distribution.reference import Reference
from hull.image.errors import BlobNotFound, InvalidImage
from hull.oci import media_types as mt
from hull.oci._parse import SpecError
from hull.oci.image import parse_index, parse_manifest
from hull.oci.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from hull.image.store import LayoutStore
    from hull.oci.image import Descriptor


@record
class PushResult:
    digest: str  # of the top manifest or index pushed
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)


def _push_blob(
    registry: Registry,
    store: LayoutStore,
    repo: str,
    desc: Descriptor,
    result: PushResult,
    chunk_size: int,
    mount_from: str,
) -> None:
    if desc.digest in result.uploaded or desc.digest in result.skipped or desc.digest in result.mounted:
        return
    if registry.blob_exists(repo, desc.digest) is not None:
        result.skipped.append(desc.digest)
        return
    try:
        f = store.open(desc.digest)
    except BlobNotFound:
        if desc.media_type in mt.NON_DISTRIBUTABLE:
            return  # image-layout.md: such blobs may be absent; the registry gets their URLs
        raise
    with f:
        how = registry.upload_blob(repo, f, desc.digest, desc.size, chunk_size=chunk_size, mount_from=mount_from)
    (result.mounted if how == "mounted" else result.uploaded).append(desc.digest)


def _push_manifest(
    registry: Registry,
    store: LayoutStore,
    repo: str,
    desc: Descriptor,
    reference: str,
    result: PushResult,
    chunk_size: int,
    mount_from: str,
) -> None:
    data = store.fetch(desc)
    try:
        if desc.media_type in mt.INDEXES:
            for child in parse_index(data, desc.media_type).manifests:
                if store.has(child.digest):  # an index may list platforms the store does not hold
                    _push_manifest(registry, store, repo, child, child.digest, result, chunk_size, mount_from)
        elif desc.media_type in mt.MANIFESTS:
            manifest = parse_manifest(data, desc.media_type)
            for child in [manifest.config, *manifest.layers]:
                _push_blob(registry, store, repo, child, result, chunk_size, mount_from)
        else:
            raise InvalidImage(f"{desc.digest}: media type {desc.media_type!r} is not an image manifest or index")
    except SpecError as err:
        raise InvalidImage(f"{desc.digest}: {err}") from None
    registry.put_manifest(repo, reference, data, desc.media_type)


def push(
    store: LayoutStore,
    desc: Descriptor,
    dest: Reference,
    *,
    registry: Registry | None = None,
    chunk_size: int = 0,
    mount_from: str = "",
    log: Callable[[str], None] | None = None,
) -> PushResult:
    """Push the image ``desc`` (from ``store``'s index.json) to ``dest`` (its tag, else its digest)."""
    registry = registry or Registry(dest.domain)
    if dest.digest is not None and dest.digest != desc.digest:
        raise InvalidImage(f"cannot push {desc.digest} as {dest}: the reference names another digest")
    result = PushResult(str(desc.digest))
    reference = dest.tag or str(desc.digest)
    _push_manifest(registry, store, dest.path, desc, reference, result, chunk_size, mount_from)
    if log is not None:
        for d in result.skipped:
            log(f"{d.partition(':')[2][:12]}: layer already exists")
        log(f"{dest}: digest: {desc.digest} size: {desc.size}")
    return result
