"""``hull image import``: a root filesystem (a tar stream or a directory) as a one-layer image.

As ``docker import`` / ``podman import``: the layer is the tarball itself
(kept as given, plain, gzip or zstd, so importing the same file twice gives
the same layer digest), or for a directory the reproducible layer
``changeset.create_layer`` writes (gzip). The config names the host's os and
architecture, ``rootfs.diff_ids`` (the digest of the uncompressed tar,
computed while the blob is stored), one history entry, and the execution
parameters of ``--change`` instructions (the Dockerfile subset docker import
accepts: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR,
STOPSIGNAL). ``created`` is now, or ``SOURCE_DATE_EPOCH`` when set
(reproducible-builds.org), so an import can be made bit-for-bit repeatable.

Nothing is named before every blob is verified and stored: the blobs are
leased while written, the tag is set last.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
import time
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from hull.image import names
from hull.image import tarformat as tf
from hull.image.errors import ImageError
from hull.image.store import LayoutStore
from hull.oci import digest as _digest
from hull.oci import media_types as mt
from hull.oci import platform as _platform
from hull.oci.image import Descriptor, describe, encode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hull.image.changeset import CreateOptions

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class ImportFailed(ImageError):
    """The source is not a usable root filesystem (not a tar, an unreadable directory, a bad --change)."""


def sniff_compression(head: bytes) -> str:
    """ "", "gzip" or "zstd" from a stream's first bytes (what docker's DetectCompression looks at)."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return ""


def _decompressor(compression: str) -> Any:
    if compression == "gzip":
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj()
    return None


class DiffIdTap:
    """Passes a layer blob through unchanged while hashing its uncompressed content (the diff_id)."""

    def __init__(self, source: BinaryIO, head: bytes, compression: str) -> None:
        self.source = source
        self.head = head
        self.compression = compression
        self._dec = _decompressor(compression)
        self._hash = _digest.hasher(_digest.CANONICAL)
        self._first = b""  # the first tar block, checked once 512 bytes are through
        self._checked = False

    def _feed(self, raw: bytes) -> None:
        data = self._dec.decompress(raw) if self._dec is not None else raw
        self._hash.update(data)
        if not self._checked:
            self._first += data[: 512 - len(self._first)]
            if len(self._first) == 512:
                self._checked = True
                if self._first.strip(b"\0") and not tf.checksum_ok(self._first):
                    raise ImportFailed("not a tar archive (the first header's checksum is wrong)")

    def __iter__(self) -> Iterator[bytes]:
        chunk = self.head
        while chunk:
            try:
                self._feed(chunk)
            except zlib.error as err:
                raise ImportFailed(f"corrupt gzip stream: {err}") from None
            yield chunk
            chunk = self.source.read(CHUNK)

    @property
    def diff_id(self) -> str:
        if not self._checked and self._first.strip(b"\0"):
            raise ImportFailed("not a tar archive (shorter than one tar header)")
        return f"{_digest.CANONICAL}:{self._hash.hexdigest()}"


# ---------------------------------------------------------------- --change


def _json_or_shell(value: str) -> list[str]:
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            return parsed
    return ["/bin/sh", "-c", value]  # Dockerfile "shell form"


def _pairs(value: str, what: str) -> list[tuple[str, str]]:
    words = shlex.split(value)
    if len(words) == 2 and "=" not in words[0]:
        return [(words[0], words[1])]  # legacy "ENV key value"
    out = []
    for word in words:
        key, eq, val = word.partition("=")
        if not eq or not key:
            raise ImportFailed(f"--change {what} {value!r}: expected KEY=VALUE")
        out.append((key, val))
    return out


def apply_changes(config: dict[str, Any], changes: list[str]) -> None:
    """Apply Dockerfile-style ``--change`` instructions to the config's ``config`` object."""
    ec: dict[str, Any] = config.setdefault("config", {})
    for change in changes:
        keyword, _, value = change.strip().partition(" ")
        keyword, value = keyword.upper(), value.strip()
        if keyword in ("=",) or not value:
            raise ImportFailed(f"--change {change!r}: expected INSTRUCTION VALUE")
        if keyword == "CMD":
            ec["Cmd"] = _json_or_shell(value)
        elif keyword == "ENTRYPOINT":
            ec["Entrypoint"] = _json_or_shell(value)
        elif keyword == "ENV":
            env = [e for e in ec.get("Env", [])]
            for key, val in _pairs(value, keyword):
                env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={val}"]
            ec["Env"] = env
        elif keyword == "LABEL":
            ec.setdefault("Labels", {}).update(dict(_pairs(value, keyword)))
        elif keyword == "EXPOSE":
            for port in value.split():
                ec.setdefault("ExposedPorts", {})[port if "/" in port else f"{port}/tcp"] = {}
        elif keyword == "VOLUME":
            for vol in _json_or_shell(value) if value.startswith("[") else value.split():
                ec.setdefault("Volumes", {})[vol] = {}
        elif keyword == "USER":
            ec["User"] = value
        elif keyword == "WORKDIR":
            ec["WorkingDir"] = value
        elif keyword == "STOPSIGNAL":
            ec["StopSignal"] = value
        else:
            raise ImportFailed(
                f"--change {change!r}: {keyword} is not one of CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, "
                "VOLUME, WORKDIR, STOPSIGNAL"
            )


# ---------------------------------------------------------------- import


def _created() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None and epoch.isdigit():
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))
    now = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}Z"


def _layer_from_stream(store: LayoutStore, source: BinaryIO, lease: Any) -> tuple[Descriptor, str]:
    head = source.read(CHUNK)
    if not head:
        raise ImportFailed("empty input: expected a tar archive")
    compression = sniff_compression(head)
    tap = DiffIdTap(source, head, compression)
    info = store.ingest(tap, lease=lease)
    media_type = {"": mt.LAYER, "gzip": mt.LAYER_GZIP, "zstd": mt.LAYER_ZSTD}[compression]
    return Descriptor(media_type, info.digest, info.size), tap.diff_id


def _layer_from_directory(
    store: LayoutStore, path: str, lease: Any, options: CreateOptions | None = None
) -> tuple[Descriptor, str]:
    from hull.image.changeset import CreateOptions, create_layer

    with tempfile.TemporaryFile(dir=store.root) as tmp:
        digests = create_layer(tmp, path, None, options or CreateOptions(compression="gzip"))
        tmp.seek(0)
        info = store.ingest(tmp, digests.digest, digests.size, lease=lease)
    return Descriptor(mt.LAYER_GZIP, info.digest, info.size), digests.diff_id


def import_image(
    store: LayoutStore,
    source: str | BinaryIO,
    ref: str | None = None,
    *,
    changes: list[str] | None = None,
    message: str = "",
    created: str | None = None,
    layer_options: CreateOptions | None = None,
) -> tuple[Descriptor, str, str | None]:
    """Import ``source`` (a tar path, a directory path, or an open binary stream) as an image.

    ``created`` replaces the config's creation time and ``layer_options`` how a directory's layer
    is written (a fixed mtime and owner make the image reproducible: hull.image.builtin).
    Returns the manifest descriptor, the image ID (config digest) and the name it was tagged with.
    """
    name = names.normalize(ref) if ref else None
    config: dict[str, Any] = {}
    apply_changes(config, changes or [])  # a bad --change fails before anything is written
    with store.lease() as lease:
        if isinstance(source, str) and os.path.isdir(source):
            layer, diff_id = _layer_from_directory(store, source, lease, layer_options)
        elif isinstance(source, str):
            try:
                f = open(source, "rb")
            except OSError as err:
                raise ImportFailed(f"{source}: {err.strerror}") from None
            with f:
                layer, diff_id = _layer_from_stream(store, f, lease)
        else:
            layer, diff_id = _layer_from_stream(store, source, lease)
        created = created or _created()
        host = _platform.host()
        doc: dict[str, Any] = {"created": created, "architecture": host.architecture}
        if host.variant:
            doc["variant"] = host.variant
        doc["os"] = host.os
        doc["config"] = config.get("config", {})
        doc["rootfs"] = {"type": "layers", "diff_ids": [diff_id]}
        history = {"created": created, "created_by": f"hull image import ({layer.digest})"}
        history["comment"] = message or "imported from tarball"
        doc["history"] = [history]
        config_blob = encode(doc)
        config_desc = describe(mt.CONFIG, config_blob)
        store.write(config_blob, config_desc.digest, lease=lease)
        manifest_blob = encode(
            {
                "schemaVersion": 2,
                "mediaType": mt.MANIFEST,
                "config": {"mediaType": mt.CONFIG, "digest": config_desc.digest, "size": config_desc.size},
                "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}],
            }
        )
        manifest = describe(mt.MANIFEST, manifest_blob)
        store.write(manifest_blob, manifest.digest, lease=lease)
        store.set_ref(name or manifest.digest, manifest)
    return manifest, config_desc.digest, name
