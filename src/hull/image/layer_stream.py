"""A layer blob as a stream of uncompressed tar bytes, verified on the way.

One pass over the blob (issue 4 section 3): each chunk read is hashed for the
descriptor digest and counted against its size, decompressed (gzip, zstd or
none, by media type: image-spec media-types.md and layer.md "+gzip"/"+zstd"),
and the uncompressed bytes are hashed for the diff_id (config.md
"rootfs.diff_ids": the digest of the uncompressed tar) and counted against a
decompression-bomb limit. The digests are known only at the end, so the
verification happens when the consumer drains the stream; layer.py applies
into a staging directory for that reason.

Decompression runs in a second thread: zlib, zstandard and hashlib release the
GIL on big buffers, so on two CPUs inflating overlaps with writing files, as
`tar -xzf` overlaps with its `gzip -d` child.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import zlib
from collections.abc import Iterator
from typing import IO, BinaryIO, cast

from hull.image.layer_errors import LayerError, LayerVerificationError

READ_CHUNK = 1 << 20
# Bound on what one decompress call may produce, so a bomb is caught after at most this much.
OUT_CHUNK = 4 << 20
_ALGORITHMS = ("sha256", "sha512")


def hasher(digest: str, what: str) -> tuple[hashlib._Hash, str]:
    algorithm, _, encoded = digest.partition(":")
    if algorithm not in _ALGORITHMS or not encoded:
        raise LayerVerificationError(f"{what} {digest!r}: unsupported digest (sha256 and sha512 are verifiable)")
    return hashlib.new(algorithm), encoded


class _HashingReader:
    """File-object wrapper hashing and counting what is read (for zstandard's stream_reader)."""

    def __init__(self, raw: BinaryIO, h: hashlib._Hash | None) -> None:
        self.raw = raw
        self.h = h
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        if self.h is not None:
            self.h.update(data)
        self.count += len(data)
        return data


def _raw_chunks(blob: _HashingReader, compression: str) -> Iterator[bytes]:
    if compression == "":
        while data := blob.read(READ_CHUNK):
            yield data
    elif compression == "gzip":
        d = zlib.decompressobj(31)
        while raw := blob.read(READ_CHUNK):
            data = raw
            while data:
                if d.eof:
                    # RFC 1952 2.2: a gzip file is a series of members; trailing zeros are tolerated as gzip does.
                    if data.startswith(b"\x1f\x8b"):
                        d = zlib.decompressobj(31)
                    elif not data.strip(b"\0"):
                        break
                    else:
                        raise LayerError("trailing garbage after the gzip stream")
                try:
                    out = d.decompress(data, OUT_CHUNK)
                except zlib.error as e:
                    raise LayerError(f"corrupt gzip stream: {e}") from None
                data = d.unconsumed_tail or (d.unused_data if d.eof else b"")
                if out:
                    yield out
        if not d.eof:
            raise LayerError("truncated gzip stream")
    elif compression == "zstd":
        try:
            import zstandard
        except ImportError:
            raise LayerError("zstd layers need the 'zstandard' package") from None
        reader = zstandard.ZstdDecompressor().stream_reader(
            cast(IO[bytes], blob), read_size=READ_CHUNK, read_across_frames=True
        )
        while True:
            try:
                out = reader.read(OUT_CHUNK)
            except zstandard.ZstdError as e:
                raise LayerError(f"corrupt zstd stream: {e}") from None
            if not out:
                break
            yield out
    else:
        raise LayerError(f"unknown layer compression {compression!r}")


def verified_chunks(
    blob: BinaryIO,
    compression: str,
    *,
    digest: str | None = None,
    size: int | None = None,
    diff_id: str | None = None,
    max_bytes: int | None = None,
) -> Iterator[bytes]:
    """Uncompressed chunks of the layer; raises at the end if digest, size or diff_id differ."""
    bh, bexp = hasher(digest, "digest") if digest else (None, "")
    dh, dexp = hasher(diff_id, "diff_id") if diff_id else (None, "")
    reader = _HashingReader(blob, bh)
    total = 0
    for chunk in _raw_chunks(reader, compression):
        total += len(chunk)
        if max_bytes is not None and total > max_bytes:
            raise LayerError(f"uncompressed layer exceeds the limit of {max_bytes} bytes (decompression bomb?)")
        if size is not None and reader.count > size:
            raise LayerVerificationError(f"blob is larger than the descriptor size {size}")
        if dh is not None:
            dh.update(chunk)
        yield chunk
    # Anything after the end of the compressed stream still belongs to the blob.
    while reader.read(READ_CHUNK):
        if compression:
            raise LayerError(f"trailing data after the {compression} stream")
    if size is not None and reader.count != size:
        raise LayerVerificationError(f"size mismatch: descriptor says {size} bytes, blob has {reader.count}")
    if bh is not None and bh.hexdigest() != bexp:
        raise LayerVerificationError(f"digest mismatch: expected {digest}, got {bh.name}:{bh.hexdigest()}")
    if dh is not None and dh.hexdigest() != dexp:
        raise LayerVerificationError(f"diff_id mismatch: expected {diff_id}, got {dh.name}:{dh.hexdigest()}")


_END = object()


def threaded(chunks: Iterator[bytes], depth: int = 8) -> Iterator[bytes]:
    """``chunks`` produced in a helper thread (decompression and hashing overlap the consumer)."""
    q: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                q.put(chunk)
            q.put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            q.put(e)

    thread = threading.Thread(target=produce, name="layer-decompress", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)
