"""Image archives, both directions, between a tar stream and the content store.

Two formats:

- *OCI archive*: a tar of an OCI Image Layout (image-layout.md: ``oci-layout``,
  ``index.json``, ``blobs/ALG/HEX``), what ``podman save --format oci-archive``
  and skopeo's ``oci-archive:`` write. Names travel as the index.json
  descriptors' ``org.opencontainers.image.ref.name``, whole
  (``localhost/busybox:test``), as podman writes them.
- *docker-archive*, the ``docker save`` format (moby image/tarexport): a
  ``manifest.json`` list of ``{"Config", "RepoTags", "Layers"}`` naming files
  in the tar — the config (``HEX.json``) and one uncompressed tar per layer —
  plus the legacy ``repositories`` file and per-layer ``ID/{VERSION,json,
  layer.tar}`` directories. Docker 25+ writes the same ``manifest.json`` whose
  paths point into an OCI layout in the same tar (``blobs/sha256/HEX``); both
  read the same way, as does podman's (``HEX.tar`` layers, ``ID/layer.tar``
  symlinks to them). hull writes podman's shape.

Loading streams the tar once: every ``blobs/ALG/HEX`` member is verified
against its name as it is stored, other large members (layer tars) are stored
under their computed digest, small documents are kept in memory. Layers are
then checked against the config's ``rootfs.diff_ids``. Everything is written
under a lease and the names are set last, so a corrupt archive (a digest,
size or diff_id that does not match, a truncated tar) leaves no image
visible; its stray blobs go with the next ``hull image prune``.

The image ID is the config's digest in both formats; the config's bytes are
never rewritten, so an image keeps its ID through hull, podman and docker.
A docker-archive image is stored with an OCI manifest made for it (the
archive has none), its layers as they were (plain tars, or compressed ones
where a docker 25 archive kept them compressed).
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO

from hull.image import names
from hull.image.errors import ImageError, InvalidImage, SizeLimitExceeded, VerificationError
from hull.image.importer import sniff_compression
from hull.image.store import BlobInfo, LayoutStore
from hull.oci import digest as _digest
from hull.oci import media_types as mt
from hull.oci._parse import SpecError
from hull.oci.digest import Digest
from hull.oci.image import (
    REF_NAME,
    Descriptor,
    Manifest,
    describe,
    descriptor_json,
    encode,
    loads,
    parse_config,
    parse_index,
    parse_manifest,
)
from hull.oci.records import record

OCI_ARCHIVE = "oci-archive"
DOCKER_ARCHIVE = "docker-archive"
FORMATS = (OCI_ARCHIVE, DOCKER_ARCHIVE)
CONTAINERD_NAME = "io.containerd.image.name"  # docker 25+ and containerd name images with it
_SMALL = 4 << 20  # members kept in memory while loading (manifest.json, configs, repositories, ...)


class ArchiveError(ImageError):
    """An archive that is not one of the formats, or is truncated, or contradicts itself."""


class CorruptArchive(ArchiveError, VerificationError):
    """Archive content that does not match its digest, size or diff_id."""


@record
class Loaded:
    name: str | None  # None: an image without a name, kept under its manifest digest
    manifest: Descriptor
    image_id: Digest


# ---------------------------------------------------------------- loading


class _Members:
    """What one pass over the archive found: blobs stored, small files in memory, links."""

    def __init__(self) -> None:
        self.stored: dict[str, BlobInfo] = {}
        self.small: dict[str, bytes] = {}
        self.links: dict[str, str] = {}

    def resolve(self, path: str) -> str:
        path = posixpath.normpath(path.lstrip("/"))
        for _ in range(16):  # symlinks to symlinks, bounded
            if path not in self.links:
                return path
            path = self.links[path]
        raise ArchiveError(f"{path}: too many levels of links in the archive")

    def read(self, store: LayoutStore, path: str, what: str) -> bytes:
        path = self.resolve(path)
        if path in self.small:
            return self.small[path]
        if path in self.stored:
            return store.read(self.stored[path].digest)
        raise ArchiveError(f"{what} {path!r} is not in the archive")

    def blob(self, store: LayoutStore, path: str, what: str) -> BlobInfo:
        """A member as a stored blob (a small one is stored now)."""
        path = self.resolve(path)
        if path in self.stored:
            return self.stored[path]
        if path in self.small:
            return store.write(self.small[path])
        raise ArchiveError(f"{what} {path!r} is not in the archive")


def _member_path(name: str) -> str:
    path = posixpath.normpath(name.lstrip("/"))
    return "" if path == "." else path


def _blob_name(path: str) -> Digest | None:
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != "blobs":
        return None
    try:
        return _digest.parse(f"{parts[1]}:{parts[2]}")
    except SpecError:
        return None


def _scan(store: LayoutStore, stream: BinaryIO, lease: Any) -> _Members:
    found = _Members()
    try:
        tar = tarfile.open(fileobj=stream, mode="r|*")
    except tarfile.TarError as err:
        raise ArchiveError(f"not a tar archive ({err})") from None
    try:
        with tar:
            for member in tar:
                path = _member_path(member.name)
                if not path:
                    continue
                if member.issym():
                    found.links[path] = posixpath.normpath(posixpath.join(posixpath.dirname(path), member.linkname))
                    continue
                if member.islnk():
                    found.links[path] = _member_path(member.linkname)
                    continue
                if not member.isreg():
                    continue
                f = tar.extractfile(member)
                assert f is not None  # a regular file always has content
                digest = _blob_name(path)
                if digest is not None:
                    # image-layout.md: a blob's name is its digest; verified as stored.
                    try:
                        found.stored[path] = store.ingest(f, digest, member.size, lease=lease)
                    except VerificationError as err:
                        raise CorruptArchive(f"corrupt archive: {path}: {err}") from None
                elif member.size <= _SMALL and not path.endswith(".tar"):
                    found.small[path] = f.read()
                else:
                    found.stored[path] = store.ingest(f, size=member.size, lease=lease)
    except tarfile.TarError as err:
        raise ArchiveError(f"corrupt or truncated archive ({err})") from None
    except EOFError:
        raise ArchiveError("truncated archive (unexpected end of data)") from None
    if not found.stored and not found.small:
        raise ArchiveError("empty archive")
    return found


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as err:
        raise ArchiveError(f"{what}: invalid JSON ({err})") from None


def _check_diff_id(store: LayoutStore, info: BlobInfo, diff_id: str, what: str) -> str:
    """The layer's media type; raises if its uncompressed content is not ``diff_id``."""
    with store.open(info.digest) as f:
        compression = sniff_compression(f.read(8))
        if compression == "" and info.digest == diff_id:
            return mt.LAYER
        f.seek(0)
        from hull.image.layer_errors import LayerError
        from hull.image.layer_stream import verified_chunks

        try:
            for _chunk in verified_chunks(f, compression, diff_id=diff_id):
                pass
        except LayerError as err:
            raise CorruptArchive(f"corrupt archive: {what}: {err}") from None
    return {"": mt.LAYER, "gzip": mt.LAYER_GZIP, "zstd": mt.LAYER_ZSTD}[compression]


def _load_docker(store: LayoutStore, found: _Members, lease: Any) -> list[tuple[list[str], Descriptor, Digest]]:
    entries = _json(found.small["manifest.json"], "manifest.json")
    if not isinstance(entries, list) or not entries:
        raise ArchiveError("manifest.json: expected a non-empty list of images")
    out = []
    for i, entry in enumerate(entries):
        where = f"manifest.json[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise ArchiveError(f"{where}.Config: missing")
        layers = entry.get("Layers")
        if not isinstance(layers, list) or not all(isinstance(p, str) for p in layers):
            raise ArchiveError(f"{where}.Layers: expected a list of paths")
        tags = entry.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ArchiveError(f"{where}.RepoTags: expected a list of names")
        config_bytes = found.read(store, entry["Config"], f"{where}.Config")
        try:
            config = parse_config(config_bytes, path="config")
        except SpecError as err:
            raise InvalidImage(f"{where}.Config: {err}") from None
        if len(config.rootfs.diff_ids) != len(layers):
            raise ArchiveError(
                f"{where}: the config lists {len(config.rootfs.diff_ids)} diff_ids but Layers has {len(layers)} files"
            )
        config_desc = describe(mt.CONFIG, config_bytes)
        store.write(config_bytes, config_desc.digest, lease=lease)
        layer_descs = []
        for j, (path, diff_id) in enumerate(zip(layers, config.rootfs.diff_ids, strict=True)):
            info = found.blob(store, path, f"{where}.Layers[{j}]")
            media_type = _check_diff_id(store, info, diff_id, f"{where}.Layers[{j}] ({path})")
            layer_descs.append(Descriptor(media_type, info.digest, info.size))
        doc = {
            "schemaVersion": 2,
            "mediaType": mt.MANIFEST,
            "config": descriptor_json(config_desc),
            "layers": [descriptor_json(d) for d in layer_descs],
        }
        blob = encode(doc)
        manifest = describe(mt.MANIFEST, blob)
        store.write(blob, manifest.digest, lease=lease)
        out.append(([names.normalize(t) for t in tags], manifest, config_desc.digest))
    return out


def _parse(store: LayoutStore, desc: Descriptor, parser: Any) -> Any:
    try:
        return parser(store.fetch(desc), desc.media_type)
    except SpecError as err:
        raise InvalidImage(f"{desc.digest}: {err}") from None


def _check_graph(store: LayoutStore, desc: Descriptor, depth: int = 0) -> Digest | None:
    """Every blob under ``desc`` is present (non-distributable layers may be missing); returns the image ID
    of a manifest (None for an index)."""
    if depth > 8:
        raise ArchiveError(f"{desc.digest}: indexes nested too deep")
    if desc.media_type in mt.INDEXES:
        for child in _parse(store, desc, parse_index).manifests:
            if child.media_type in mt.MANIFESTS or child.media_type in mt.INDEXES:
                if store.has(child.digest):
                    _check_graph(store, child, depth + 1)
            # image-index.md: an index may name manifests for platforms the archive does not carry
        return None
    if desc.media_type not in mt.MANIFESTS:
        raise ArchiveError(f"{desc.digest}: media type {desc.media_type!r} is not an image manifest or index")
    manifest: Manifest = _parse(store, desc, parse_manifest)
    for blob in [manifest.config, *manifest.layers]:
        if not store.has(blob.digest) and blob.data is None and blob.media_type not in mt.NON_DISTRIBUTABLE:
            raise ArchiveError(f"blob {blob.digest} ({blob.media_type}) is missing from the archive")
        if store.has(blob.digest) and store.info(blob.digest).size != blob.size:
            raise ArchiveError(f"blob {blob.digest}: size differs from its descriptor's {blob.size}")
    if manifest.config.media_type in mt.IMAGE_CONFIGS:
        store.config(manifest)  # parses, and checks diff_ids against the layers
    return manifest.config.digest


def _load_oci(store: LayoutStore, found: _Members) -> list[tuple[list[str], Descriptor, Digest]]:
    if "oci-layout" not in found.small:
        raise ArchiveError("not an OCI archive: no oci-layout file (and no manifest.json)")
    try:
        index = parse_index(loads(found.small["index.json"], "index.json"), path="index.json")
    except SpecError as err:
        raise InvalidImage(f"index.json: {err}") from None
    out = []
    for desc in index.manifests:
        if not store.has(desc.digest) and desc.data is None:
            raise ArchiveError(f"index.json names {desc.digest}, which is not in the archive")
        image_id = _check_graph(store, desc)
        if image_id is None:
            try:
                image_id = names.config_digest(store, desc)
            except ImageError:
                image_id = desc.digest  # no manifest for this host: the index names the image
        name = desc.annotations.get(CONTAINERD_NAME) or desc.annotations.get(REF_NAME) or ""
        kept = {k: v for k, v in desc.annotations.items() if k not in (REF_NAME, CONTAINERD_NAME)}
        clean = Descriptor(desc.media_type, desc.digest, desc.size, desc.urls, kept, desc.data, desc.platform,
                           desc.artifact_type)  # fmt: skip
        tags = []
        if name:
            try:
                tags = [names.normalize(name)]
            except names.InvalidReference:
                tags = []  # skopeo's bare tags ("latest") name no repository: the image stays unnamed
        out.append((tags, clean, image_id))
    return out


def load(store: LayoutStore, stream: BinaryIO) -> list[Loaded]:
    """Load every image of an OCI or docker-save archive; names are set only once all is verified."""
    with store.lease() as lease:
        found = _scan(store, stream, lease)
        try:
            if "manifest.json" in found.small:
                images = _load_docker(store, found, lease)
            elif "index.json" in found.small:
                images = _load_oci(store, found)
            else:
                raise ArchiveError("neither an OCI archive (index.json) nor a docker archive (manifest.json)")
        except (SpecError, SizeLimitExceeded) as err:
            raise ArchiveError(str(err)) from None
        loaded: list[Loaded] = []
        for tags, desc, image_id in images:
            if not tags:
                store.set_ref(desc.digest, desc)
                loaded.append(Loaded(None, desc, image_id))
            for tag in tags:
                store.set_ref(tag, desc)
                loaded.append(Loaded(tag, desc, image_id))
    return loaded


# ---------------------------------------------------------------- saving


def _tarinfo(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, mode: int = 0o644) -> tarfile.TarInfo:
    # Reproducible: owner 0:0, mtime 0, no user names (as podman writes docker archives).
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode, info.mtime = size, kind, mode, 0
    return info


def _graph(store: LayoutStore, desc: Descriptor, seen: set[str]) -> Iterator[Descriptor]:
    """Every descriptor under ``desc`` (itself last), each once; missing non-distributable layers skipped."""
    if desc.digest in seen:
        return
    seen.add(desc.digest)
    if desc.media_type in mt.INDEXES:
        for child in _parse(store, desc, parse_index).manifests:
            yield from _graph(store, child, seen)
    elif desc.media_type in mt.MANIFESTS:
        manifest = _parse(store, desc, parse_manifest)
        for child in [manifest.config, *manifest.layers]:
            if child.digest not in seen and (store.has(child.digest) or child.media_type not in mt.NON_DISTRIBUTABLE):
                seen.add(child.digest)
                yield child
    yield desc


def save_oci(store: LayoutStore, images: list[tuple[str, Descriptor]], out: BinaryIO) -> None:
    """Write ``(name, descriptor)`` images as an OCI archive to ``out``."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        layout = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()
        tar.addfile(_tarinfo("oci-layout", len(layout)), io.BytesIO(layout))
        tar.addfile(_tarinfo("blobs", kind=tarfile.DIRTYPE, mode=0o755))
        seen: set[str] = set()
        algorithms: set[str] = set()
        entries = []
        for name, desc in images:
            for blob in _graph(store, desc, seen):
                if blob.digest.algorithm not in algorithms:
                    algorithms.add(blob.digest.algorithm)
                    tar.addfile(_tarinfo(f"blobs/{blob.digest.algorithm}", kind=tarfile.DIRTYPE, mode=0o755))
                with store.open(blob.digest) as f:
                    tar.addfile(_tarinfo(f"blobs/{blob.digest.algorithm}/{blob.digest.encoded}", blob.size), f)
            entry = descriptor_json(desc)
            annotations = {k: v for k, v in desc.annotations.items() if k != REF_NAME}
            if name and not names.is_untagged(name):
                annotations[REF_NAME] = name
            if annotations:
                entry["annotations"] = annotations
            else:
                entry.pop("annotations", None)
            entries.append(entry)
        index = encode({"schemaVersion": 2, "manifests": entries})
        tar.addfile(_tarinfo("index.json", len(index)), io.BytesIO(index))


def _plain_layer(store: LayoutStore, layer: Descriptor, diff_id: str, spool: str) -> tuple[BinaryIO, int]:
    """The uncompressed layer tar (docker-archive layers are plain), verified on the way."""
    from hull.image.layer import compression_of
    from hull.image.layer_stream import verified_chunks

    compression = compression_of(layer.media_type)
    f = store.open(layer.digest)
    if compression == "":
        return f, layer.size
    tmp = tempfile.TemporaryFile(dir=spool)
    with f:
        for chunk in verified_chunks(f, compression, digest=layer.digest, size=layer.size, diff_id=diff_id):
            tmp.write(chunk)
    size = tmp.tell()
    tmp.seek(0)
    return tmp, size


def save_docker(store: LayoutStore, images: list[tuple[str, Descriptor]], out: BinaryIO) -> None:
    """Write images as a ``docker save`` archive (podman's shape: HEX.tar layers, HEX.json configs)."""
    by_manifest: dict[str, tuple[Descriptor, list[str]]] = {}
    for name, desc in images:
        mdesc, _ = store.manifest(desc)
        tags = by_manifest.setdefault(mdesc.digest, (mdesc, []))[1]
        if name and not names.is_untagged(name) and name not in tags:
            tags.append(name)
    written: set[str] = set()
    manifest_json: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, f: BinaryIO, size: int) -> None:
            if name not in written:
                written.add(name)
                tar.addfile(_tarinfo(name, size, mode=0o444), f)

        for mdesc, tags in by_manifest.values():
            _, manifest = store.manifest(mdesc)
            config = store.config(manifest)
            config_bytes = store.fetch(manifest.config)
            layer_paths = []
            parent = ""
            for layer, diff_id, chain in zip(
                manifest.layers, config.rootfs.diff_ids, _digest.chain_ids(config.rootfs.diff_ids), strict=True
            ):
                path = f"{diff_id.encoded}.tar"
                if path not in written:
                    blob, size = _plain_layer(store, layer, diff_id, store.root)
                    with blob:
                        add(path, blob, size)
                layer_paths.append(path)
                # Legacy v1 layer directories (moby image/tarexport "repositories" era): an ID unique
                # to the image's layer chain and config, as podman (containers/image) derives its own.
                legacy = _digest.of(f"{chain} {manifest.config.digest}".encode()).encoded
                if legacy not in written:
                    written.add(legacy)
                    tar.addfile(_tarinfo(legacy, kind=tarfile.DIRTYPE, mode=0o755))
                    tar.addfile(_tarinfo(f"{legacy}/VERSION", 3), io.BytesIO(b"1.0"))
                    meta = {"id": legacy, **({"parent": parent} if parent else {})}
                    meta_bytes = json.dumps(meta).encode()
                    tar.addfile(_tarinfo(f"{legacy}/json", len(meta_bytes)), io.BytesIO(meta_bytes))
                    link = _tarinfo(f"{legacy}/layer.tar", kind=tarfile.SYMTYPE, mode=0o777)
                    link.linkname = f"../{path}"
                    tar.addfile(link)
                parent = legacy
            config_path = f"{manifest.config.digest.encoded}.json"
            add(config_path, io.BytesIO(config_bytes), len(config_bytes))
            manifest_json.append({"Config": config_path, "RepoTags": tags, "Layers": layer_paths})
            for tag in tags:
                repo, version = names.split(tag)
                repositories.setdefault(repo, {})[version] = parent
        doc = json.dumps(manifest_json, separators=(",", ":")).encode()
        tar.addfile(_tarinfo("manifest.json", len(doc), mode=0o444), io.BytesIO(doc))
        repos = json.dumps(repositories, separators=(",", ":")).encode()
        tar.addfile(_tarinfo("repositories", len(repos), mode=0o444), io.BytesIO(repos))


def save(store: LayoutStore, images: list[tuple[str, Descriptor]], out: BinaryIO, fmt: str = OCI_ARCHIVE) -> None:
    if fmt == OCI_ARCHIVE:
        save_oci(store, images, out)
    elif fmt == DOCKER_ARCHIVE:
        save_docker(store, images, out)
    else:
        raise ArchiveError(f"unknown archive format {fmt!r} (expected {' or '.join(FORMATS)})")
