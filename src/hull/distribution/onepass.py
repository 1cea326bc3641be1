"""Pull and unpack in one pass (issue 5 section 4): each layer blob is read from the network once and
goes, in the same stream, into the content store and through the layer applier.

While a download thread writes a layer into the store (``Tee`` wraps the
store's resumable ``Partial``), the same chunks go into a bounded queue that an
applier thread reads as the layer's file: gunzip, diff_id check and the
changeset rules of hull.image.layer, into a staging directory beside the
destination. The blob's digest is checked once, by the store; the applier is
handed the end of a layer only after the store verified and committed it, so
nothing is renamed into place before every blob verified.

Layers must be applied in order while they download concurrently: each layer
being downloaded has its own queue, and the applier takes them in manifest
order. A later layer's download waits (the queue is bounded) until the applier
reaches it, so memory stays bounded, and since the pool starts downloads in
manifest order the layer the applier waits for is always running or done.

The one pass is an optimisation with a plain fallback: a layer the store
already had, a layer seen twice, a download that resumed a partial file or had
to restart from byte 0 (its stream is no longer the blob's) — the applier then
reads that layer from the store once it is committed. If a live stream is
abandoned after the applier started on it, the staging tree is half-applied:
the unpack starts over from the store (every blob is verified there by then).
On any failure the staging directory is removed and the destination never
appears, as ``unpack_layers`` guarantees.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import BinaryIO, cast

from hull.image.errors import InvalidImage
from hull.image.layer import ApplyOptions, apply_layer, compression_of, remove_tree
from hull.oci._parse import SpecError
from hull.oci.image import parse_config

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from hull.image.store import LayoutStore, Partial
    from hull.oci.image import Descriptor

DEPTH = 32  # chunks (of about 1 MiB) a layer's download may run ahead of the applier
_EOF = b""


class _Abandoned(Exception):
    """The live stream of a layer stopped being the blob's bytes; the layer is read from the store."""


class _Channel:
    """One layer's bytes from the download thread to the applier: a bounded queue read as a file."""

    def __init__(self) -> None:
        self.q: queue.Queue[bytes | None] = queue.Queue(DEPTH)
        self.closed = threading.Event()  # the applier is gone (done, failed, or moved to the fallback)
        self.consumed = 0  # bytes the applier has taken: after any, an abandoned stream spoils the tree
        self.item = b""  # the chunk being read, from ``pos``
        self.pos = 0

    def put(self, item: bytes | None) -> None:
        """``None`` abandons the stream; ``_EOF`` ends it. Never blocks once the applier is gone."""
        while not self.closed.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def shut(self) -> None:
        """No more reading: unblock the download (closed) and the reader (an abandon at the head)."""
        self.closed.set()
        while True:
            try:
                self.q.put_nowait(None)
                return
            except queue.Full:
                try:
                    self.q.get_nowait()
                except queue.Empty:
                    pass

    def read(self, n: int = -1) -> bytes:
        while self.pos == len(self.item):
            item = self.q.get()
            if item is None:
                raise _Abandoned
            if item == _EOF:
                self.q.put(_EOF)  # later reads see the end again
                return b""
            self.item, self.pos = item, 0
        if self.pos == 0 and (n < 0 or n >= len(self.item)):
            out = self.item  # the whole chunk as it came from the socket: no copy
        else:
            end = len(self.item) if n < 0 else min(len(self.item), self.pos + n)
            out = self.item[self.pos : end]
        self.pos += len(out)
        self.consumed += len(out)
        return out


class Tee:
    """The store's ``Partial`` for one layer, also feeding the applier (client.BlobSink)."""

    def __init__(self, part: Partial, channel: _Channel) -> None:
        self.part = part
        self.channel = channel
        self.live = not part.offset  # bytes already in a partial file never went through the queue
        if not self.live:
            channel.put(None)

    # The Partial's state, read and written through (client.BlobSink's attributes).
    @property
    def offset(self) -> int:
        return self.part.offset

    @offset.setter
    def offset(self, value: int) -> None:
        self.part.offset = value

    @property
    def resumed(self) -> bool:
        return self.part.resumed

    @resumed.setter
    def resumed(self, value: bool) -> None:
        self.part.resumed = value

    @property
    def validator(self) -> str:
        return self.part.validator

    @validator.setter
    def validator(self, value: str) -> None:
        self.part.validator = value

    def set_validator(self, value: str) -> None:
        self.part.set_validator(value)

    def _abandon(self) -> None:
        if self.live:
            self.live = False
            self.channel.put(None)

    def write(self, chunk: bytes) -> None:
        self.part.write(chunk)
        if self.live and chunk:
            self.channel.put(chunk)

    def restart(self) -> None:
        self._abandon()  # the bytes start again from 0: what the applier saw is no longer a prefix
        self.part.restart()

    def commit(self) -> object:
        try:
            info = self.part.commit()
        except BaseException:
            self._abandon()
            raise
        if self.live:
            self.channel.put(_EOF)
        return info

    def fail(self) -> None:
        """The download failed for good."""
        self._abandon()


class OnePass:
    """Unpacks ``layers`` (with the config's diff_ids) into the new directory ``dest`` while they download."""

    def __init__(
        self,
        store: LayoutStore,
        config: Descriptor,
        layers: list[Descriptor],
        downloading: Collection[str],
        dest: str,
        options: ApplyOptions | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.layers = layers
        self.dest = os.path.abspath(dest)
        if os.path.lexists(self.dest):
            raise InvalidImage(f"unpack destination {self.dest} already exists")
        self.options = options
        # A live channel for the first occurrence of each layer being downloaded.
        self.channels = {d.digest: _Channel() for d in layers if d.digest in downloading}
        self._ready: set[str] = set()
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._stop = False
        self.fell_back = False
        head, tail = os.path.split(self.dest)
        self.staging = os.path.join(head, f".{tail}.partial-{os.getpid()}")
        self._thread = threading.Thread(target=self._run, name="hull-unpack", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ called by the pull

    def sink(self, desc: Descriptor, part: Partial) -> Partial | Tee:
        channel = self.channels.get(desc.digest)
        return Tee(part, channel) if channel is not None else part

    def ready(self, digest: str) -> None:
        """``digest`` is committed in the store."""
        with self._cond:
            self._ready.add(digest)
            self._cond.notify_all()

    def finish(self) -> None:
        """Wait for the applier; re-raise its error. ``dest`` exists after this returns."""
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """The pull failed: stop the applier and leave nothing behind."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for channel in self.channels.values():
            channel.shut()
        self._thread.join()

    # ------------------------------------------------------------ the applier thread

    def _wait_ready(self, digest: str) -> None:
        with self._cond:
            while digest not in self._ready and not self.store.has(digest):
                if self._stop:
                    raise _Stopped
                self._cond.wait(0.5)

    def _run(self) -> None:
        try:
            self._wait_ready(self.config.digest)
            try:
                diff_ids = parse_config(self.store.fetch(self.config), path="config").rootfs.diff_ids
            except SpecError as err:
                raise InvalidImage(f"{self.config.digest}: {err}") from None
            if len(diff_ids) != len(self.layers):
                raise InvalidImage(
                    f"{self.config.digest}: config.rootfs.diff_ids has {len(diff_ids)} entries "
                    f"but the manifest has {len(self.layers)} layers"
                )
            os.mkdir(self.staging, 0o755)
            try:
                self._apply_all(diff_ids, live=True)
            except _Abandoned:
                # A stream stopped mid-layer: start over from the store, where every blob ends up verified.
                self.fell_back = True
                for channel in self.channels.values():
                    channel.shut()
                remove_tree(self.staging)
                os.mkdir(self.staging, 0o755)
                self._apply_all(diff_ids, live=False)
            os.rename(self.staging, self.dest)
        except BaseException as err:  # noqa: BLE001 - handed to finish(), which re-raises it
            self._error = err
            if os.path.lexists(self.staging):
                remove_tree(self.staging)
        finally:
            for channel in self.channels.values():
                channel.closed.set()  # downloads never wait on a queue nobody reads

    def _apply_all(self, diff_ids: Sequence[str], *, live: bool) -> None:
        used: set[str] = set()
        for desc, diff_id in zip(self.layers, diff_ids, strict=True):
            compression = compression_of(desc.media_type)
            channel = self.channels.get(desc.digest) if live and desc.digest not in used else None
            used.add(desc.digest)
            if channel is not None:
                # The digest is the store's to check (the end of the stream comes after its commit).
                try:
                    apply_layer(cast("BinaryIO", channel), self.staging, compression, size=desc.size,
                                diff_id=diff_id, options=self.options)  # fmt: skip
                    continue
                except _Abandoned:
                    if channel.consumed:
                        raise
                channel.closed.set()
            self._wait_ready(desc.digest)
            with self.store.open(desc.digest) as blob:
                apply_layer(blob, self.staging, compression, digest=desc.digest, size=desc.size,
                            diff_id=diff_id, options=self.options)  # fmt: skip


class _Stopped(Exception):
    pass
