"""``hull image copy SRC DST``: one image between transports, named as skopeo names them.

- ``docker://REF``: a registry (the registries config applies: mirrors, insecure, blocked, certs.d;
  a source's short name is resolved as a pull's, see hull.distribution.sources).
- ``oci:DIR[:TAG]``: an OCI Image Layout directory (created when it is a destination); without a
  TAG a source must hold exactly one image, a destination names the image by its digest.
- ``oci-archive:FILE[:TAG]`` and ``docker-archive:FILE[:REF]``: a tar of either format (read and
  written by hull.image.archive through a temporary layout).
- anything else: an image of hull's own store, by the name ``hull images`` shows.

As skopeo's copy without ``--all``, an index is resolved to the host's platform and that
manifest is copied, its bytes unchanged (so its digest is the same at both ends). Every blob is
verified on the way: into a layout by the store's verified ingest, into a registry through a
reader that hashes what it sends and fails before the upload's last byte if the digest differs.
A blob the destination already has is not sent; between two repositories of the same registry
it is mounted (``mount=``/``from=``) rather than uploaded.

``all_images`` (skopeo's ``--all``): an index is copied whole, every manifest it lists (nested
indexes too) with its blobs, children before parents, each manifest under its digest and the
index under the destination's name; the bytes are unchanged, so every digest is the source's.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO, cast

from hull.distribution import DistributionError, sources
from hull.distribution import pull as _pull
from hull.distribution.client import Registry
from hull.distribution.reference import Reference
from hull.distribution.reference import parse as parse_reference
from hull.image import archive, names
from hull.image.errors import DigestMismatch, InvalidImage
from hull.image.store import LayoutStore
from hull.oci import media_types as mt
from hull.oci.digest import parse as parse_digest
from hull.oci.image import Descriptor, Manifest, Platform, parse_index, parse_manifest
from hull.oci.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from hull.distribution.client import Authenticator

CHUNK = 1 << 20
TRANSPORTS = ("docker", "oci", "oci-archive", "docker-archive")


class CopyError(DistributionError):
    pass


@record
class CopyResult:
    digest: str  # of the manifest copied
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)


@record
class Location:
    transport: str  # "docker", "oci", "oci-archive", "docker-archive" or "hull"
    path: str  # the reference text, directory or file
    name: str  # the tag / reference inside a layout or archive ("" for none)


def parse_location(text: str) -> Location:
    """``transport:rest`` as skopeo: for oci/oci-archive/docker-archive the path ends at the first
    ':' (skopeo's splitPathAndImage), what follows is the name; anything without a known
    transport is a name in hull's store."""
    transport, colon, rest = text.partition(":")
    if colon and transport in TRANSPORTS:
        if transport == "docker":
            if not rest.startswith("//"):
                raise CopyError(f"{text}: a registry reference is docker://REF")
            return Location("docker", rest[2:], "")
        path, _, name = rest.partition(":")
        if not path:
            raise CopyError(f"{text}: {transport}: needs a path")
        return Location(transport, path, name)
    return Location("hull", text, "")


def _file_chunks(f: BinaryIO) -> Iterator[bytes]:
    with f:
        while chunk := f.read(CHUNK):
            yield chunk


class VerifyingReader:
    """A file-like over chunks for an upload body: hashes what is read and raises DigestMismatch
    (or a size error) when the source ends, before the last byte goes out."""

    def __init__(self, chunks: Iterable[bytes], digest: str, size: int) -> None:
        self._chunks = iter(chunks)
        self._expected = parse_digest(digest)
        self._hash = hashlib.new(self._expected.algorithm)
        self._size = size
        self._seen = 0
        self._buffer = b""
        self._done = False

    def tell(self) -> int:
        return self._seen - len(self._buffer)

    def seek(self, offset: int) -> None:
        if offset != self.tell():
            raise CopyError(f"blob {self._expected}: cannot send again from {offset}: the source is a stream")

    def read(self, n: int = -1) -> bytes:
        while not self._done and (n < 0 or len(self._buffer) < n):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._finish()
                break
            self._hash.update(chunk)
            self._seen += len(chunk)
            if self._seen > self._size:
                raise InvalidImage(f"blob {self._expected}: more than the {self._size} bytes its descriptor says")
            self._buffer += chunk
            if self._seen == self._size:
                self._finish()  # the size is known: verify before the last byte is handed out
        if n < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def _finish(self) -> None:
        self._done = True
        if self._seen == self._size and next(self._chunks, None):
            raise InvalidImage(f"blob {self._expected}: more than the {self._size} bytes its descriptor says")
        if self._seen != self._size:
            raise InvalidImage(f"blob {self._expected}: {self._seen} bytes, its descriptor says {self._size}")
        actual = f"{self._expected.algorithm}:{self._hash.hexdigest()}"
        if actual != self._expected:
            raise DigestMismatch(str(self._expected), actual)


def _verified_body(chunks: Iterable[bytes], desc: Descriptor) -> BinaryIO:
    # http.client only needs read(); upload_blob's tell()/seek() are VerifyingReader's own.
    return cast("BinaryIO", VerifyingReader(chunks, desc.digest, desc.size))


# ---------------------------------------------------------------- sources


class _Source:
    def __init__(
        self,
        manifest: tuple[Descriptor, bytes],
        blobs: Callable[[Descriptor], Iterable[bytes]],
        child: Callable[[Descriptor], bytes] | None = None,
    ) -> None:
        self.descriptor, self.data = manifest
        self.blobs = blobs
        self.child = child  # an index entry's bytes (all_images), verified against its descriptor
        self.registry: Registry | None = None
        self.repo = ""
        self.cleanup: list[Callable[[], None]] = []


def _store_source(store: LayoutStore, desc: Descriptor, platform: Platform | None, whole: bool = False) -> _Source:
    chunks: Callable[[Descriptor], Iterable[bytes]] = lambda d: _file_chunks(store.open(d.digest))  # noqa: E731
    if whole:
        top = Descriptor(desc.media_type, desc.digest, desc.size)
        return _Source((top, store.fetch(top)), chunks, store.fetch)
    mdesc, _manifest = store.manifest(desc, platform)
    return _Source((mdesc, store.fetch(mdesc)), chunks)


def _registry_child(client: Registry, repo: str) -> Callable[[Descriptor], bytes]:
    def child(listed: Descriptor) -> bytes:
        found, data = client.get_manifest(repo, str(listed.digest))  # the digest is checked there
        if found.size != listed.size:
            raise InvalidImage(f"manifest {listed.digest}: {found.size} bytes, the index says {listed.size}")
        return data

    return child


def _layout_image(store: LayoutStore, name: str, where: str) -> Descriptor:
    if name:
        return store.resolve(name)
    images = store.images()
    if len({d.digest for d in images}) != 1:
        raise CopyError(f"{where}: holds {len(images)} images: say which one ({where}:NAME)")
    return images[0]


def _temp_store() -> tuple[LayoutStore, str]:
    tmp = tempfile.mkdtemp(prefix="hull-copy-")
    return LayoutStore(os.path.join(tmp, "layout")), tmp


def open_source(
    loc: Location,
    store: LayoutStore | None,
    platform: Platform | None,
    authenticator: Authenticator | None,
    whole: bool = False,
) -> _Source:
    if loc.transport == "docker":
        _ref, client, where, found = sources.resolve_pull(
            loc.path,
            authenticator=authenticator,
            attempt=(lambda c, r: _pull.resolve_top(c, r)) if whole else (lambda c, r: _pull.resolve(c, r, platform)),
        )
        mdesc, mdata, _index = found
        child = _registry_child(client, where.path) if whole else None
        src = _Source((mdesc, mdata), lambda d: client.open_blob(where.path, d.digest).chunks(), child)
        src.registry, src.repo = client, where.path
        src.cleanup.append(client.close)
        return src
    if loc.transport == "oci":
        layout = LayoutStore(loc.path, create=False)
        return _store_source(layout, _layout_image(layout, loc.name, f"oci:{loc.path}"), platform, whole)
    if loc.transport in ("oci-archive", "docker-archive"):
        layout, tmp = _temp_store()
        try:
            with open(loc.path, "rb") as f:
                loaded = archive.load(layout, f)
            wanted = [x for x in loaded if not loc.name or x.name in (loc.name, names.normalize(loc.name))]
            if len({x.manifest.digest for x in wanted}) != 1:
                raise CopyError(f"{loc.transport}:{loc.path}: holds {len(loaded)} images: say which one")
            src = _store_source(layout, wanted[0].manifest, platform, whole)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        src.cleanup.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
        return src
    if store is None:
        raise CopyError(f"{loc.path}: hull's store is not available here")
    return _store_source(store, names.lookup(store, loc.path)[0], platform, whole)


# ---------------------------------------------------------------- copying


def _manifest_of(desc: Descriptor, data: bytes) -> Manifest:
    if desc.media_type not in mt.MANIFESTS:
        raise InvalidImage(f"{desc.digest}: media type {desc.media_type!r} is not a manifest")
    try:
        return parse_manifest(data, desc.media_type)
    except Exception as err:  # noqa: BLE001 - a parse failure of any kind is an invalid image
        raise InvalidImage(f"{desc.digest}: {err}") from None


# (descriptor, bytes, the parsed manifest or None for an index), children before parents, the top last.
Node = tuple[Descriptor, bytes, "Manifest | None"]


def _nodes(src: _Source) -> list[Node]:
    if src.child is None or src.descriptor.media_type not in mt.INDEXES:
        return [(src.descriptor, src.data, _manifest_of(src.descriptor, src.data))]
    out: list[Node] = []
    seen: set[str] = set()
    child = src.child

    def walk(desc: Descriptor, data: bytes, depth: int) -> None:
        if depth > _pull.MAX_DEPTH:
            raise InvalidImage(f"{src.descriptor.digest}: image indexes nested more than {_pull.MAX_DEPTH} deep")
        try:
            listed = parse_index(data, desc.media_type).manifests
        except Exception as err:  # noqa: BLE001 - as _manifest_of
            raise InvalidImage(f"{desc.digest}: {err}") from None
        for entry in listed:
            if entry.digest in seen:
                continue
            seen.add(entry.digest)
            if entry.media_type in mt.INDEXES:
                walk(entry, child(entry), depth + 1)
            else:
                raw = child(entry)
                out.append((entry, raw, _manifest_of(entry, raw)))
        out.append((desc, data, None))

    walk(src.descriptor, src.data, 1)
    return out


def _blobs(manifest: Manifest) -> list[Descriptor]:
    seen: set[str] = set()
    out = []
    for d in [manifest.config, *manifest.layers]:
        if d.digest not in seen:
            seen.add(d.digest)
            out.append(d)
    return out


def _to_layout(src: _Source, layout: LayoutStore, name: str, result: CopyResult) -> Descriptor:
    nodes = _nodes(src)
    done: set[str] = set()
    with layout.lease() as lease:
        for _desc, _data, manifest in nodes:
            for d in _blobs(manifest) if manifest is not None else []:
                if d.digest in done:
                    continue
                done.add(d.digest)
                if layout.has(d.digest):
                    layout.ingest([], d.digest, d.size, lease=lease)
                    result.skipped.append(d.digest)
                    continue
                layout.ingest(src.blobs(d), d.digest, d.size, lease=lease)  # verified: digest and size
                result.copied.append(d.digest)
        for desc, data, _manifest in nodes:
            layout.write(data, desc.digest, lease=lease)
        top = Descriptor(src.descriptor.media_type, src.descriptor.digest, src.descriptor.size)
        layout.set_ref(name or str(top.digest), top)
    return top


def _verified(src: _Source, desc: Descriptor) -> BinaryIO:
    return _verified_body(src.blobs(desc), desc)


def _to_registry(src: _Source, client: Registry, ref: Reference, result: CopyResult) -> None:
    nodes = _nodes(src)
    same_registry = src.registry is not None and src.registry.host == client.host and src.repo != ref.path
    done: set[str] = set()
    for desc, data, manifest in nodes:
        for d in _blobs(manifest) if manifest is not None else []:
            if d.digest in done:
                continue
            done.add(d.digest)
            if client.blob_exists(ref.path, d.digest) is not None:
                result.skipped.append(d.digest)
                continue
            if same_registry:
                # Offer the mount first; a registry that declines (202) opens an upload, which is then used.
                how = client.upload_blob(ref.path, _verified(src, d), d.digest, d.size, mount_from=src.repo)
                (result.mounted if how == "mounted" else result.copied).append(d.digest)
                continue
            client.upload_blob(ref.path, _verified(src, d), d.digest, d.size)
            result.copied.append(d.digest)
        # spec.md "Pushing Manifests": an index's manifests go first, by digest; the top under the tag.
        top = desc.digest == src.descriptor.digest
        client.put_manifest(ref.path, (ref.tag or str(desc.digest)) if top else str(desc.digest), data, desc.media_type)


def copy(
    source: str,
    dest: str,
    *,
    store: LayoutStore | None = None,
    platform: Platform | None = None,
    authenticator: Authenticator | None = None,
    all_images: bool = False,
) -> CopyResult:
    """Copy the image ``source`` names to ``dest`` (transports in the module notes)."""
    src_loc, dst_loc = parse_location(source), parse_location(dest)
    src = open_source(src_loc, store, platform, authenticator, all_images)
    result = CopyResult(str(src.descriptor.digest))
    try:
        if dst_loc.transport == "docker":
            ref = parse_reference(dst_loc.path)
            if ref.digest is not None and ref.digest != src.descriptor.digest:
                raise CopyError(f"{dest}: names digest {ref.digest}, the image is {src.descriptor.digest}")
            client, where = sources.push_target(ref, authenticator=authenticator)
            try:
                _to_registry(src, client, where, result)
            finally:
                client.close()
        elif dst_loc.transport == "oci":
            _to_layout(src, LayoutStore(dst_loc.path), dst_loc.name, result)
        elif dst_loc.transport in ("oci-archive", "docker-archive"):
            if (
                dst_loc.transport == "docker-archive"
                and src.child is not None
                and src.descriptor.media_type in mt.INDEXES
            ):
                # docker save's format has no index: skopeo refuses --all there too.
                raise CopyError(
                    f"{dest}: a docker archive holds one platform's image, not an index; copy without --all"
                )
            layout, tmp = _temp_store()
            try:
                name = dst_loc.name
                if dst_loc.transport == "docker-archive" and name:
                    name = str(parse_reference(name))  # docker archives name images by repository:tag
                top = _to_layout(src, layout, name, result)
                partial = f"{dst_loc.path}.hull-tmp"
                with open(partial, "wb") as out:
                    archive.save(layout, [(name or str(top.digest), top)], out, dst_loc.transport)
                os.replace(partial, dst_loc.path)  # no half-written archive under the name
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        else:
            if store is None:
                raise CopyError(f"{dest}: hull's store is not available here")
            _to_layout(src, store, names.normalize(dst_loc.path), result)
    finally:
        for undo in src.cleanup:
            undo()
    return result
