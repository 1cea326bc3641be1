"""The content store: blobs by digest and named references, over an OCI Image
Layout directory (image-layout.md: ``oci-layout``, ``index.json``,
``blobs/<alg>/<encoded>``), so skopeo, umoci and podman read and write the
same directory.

``ContentStore`` is the small interface, in containerd's spirit (ingest,
open, info, delete; references; garbage collection); ``LayoutStore``
implements it.

Guarantees:

- A blob becomes visible only once verified: it is streamed into a temporary
  file under ``.hull/ingest`` while being hashed, checked against the
  expected digest and size (and a size limit), fsynced and renamed into
  ``blobs/``. A wrong digest or size raises and leaves nothing behind.
- Writers hold an ``flock`` on their temporary file; one left by a killed
  writer is unlocked, and is removed the next time a store is opened or
  collected. Two writers of the same blob both succeed.
- The exception: a registry download (``resumable``) keeps its bytes in
  ``.hull/ingest/partial-<alg>-<encoded>`` when it fails or is killed, so the
  next pull continues it with Range; they are still verified before becoming
  visible, and ``gc`` removes partial files nobody is writing.
- A full disk raises ``StoreFull`` after removing the blob being written.
- ``index.json`` is rewritten atomically (temporary file, fsync, rename) under
  the store's exclusive lock; blob commits take it shared, ``gc`` exclusive,
  so a collection never sees half a commit. Blobs a writer has committed
  but not yet referenced are protected by a *lease* (``with store.lease()``):
  a locked file naming them, which ``gc`` treats as a root.

Garbage collection marks from every descriptor in ``index.json`` (and live
leases) through indexes to manifests, and from manifests to their config and
layers; blobs of unknown media types are kept as leaves. ``subject`` is a
weak association (manifest.md): a referrer does not keep its subject alive,
but a referrer (a signature, an SBOM) whose subject is kept is kept with
everything it references, as the distribution spec's referrers API and
containerd's referrer labels treat them as belonging to the subject.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from contextlib import contextmanager

from hull.image.errors import (
    AmbiguousReference,
    BlobNotFound,
    DigestMismatch,
    ImageError,
    InvalidImage,
    LayoutError,
    NoMatchingPlatform,
    ReferenceNotFound,
    SizeLimitExceeded,
    SizeMismatch,
    UnsupportedDigest,
)
from hull.oci import digest as _digest
from hull.oci import media_types as mt
from hull.oci import platform as _platform
from hull.oci._parse import SpecError
from hull.oci.digest import Digest
from hull.oci.image import (
    REF_NAME,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    descriptor_json,
    loads,
    parse_config,
    parse_descriptor,
    parse_index,
    parse_layout_header,
    parse_manifest,
)
from hull.oci.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any, BinaryIO, Protocol

    Source = BinaryIO | Iterable[bytes]

    class ContentStore(Protocol):
        """What the rest of hull (unpack, distribution, commands) needs from a store."""

        def ingest(
            self, source: Source, expected: str | None = None, size: int | None = None, *, limit: int | None = None
        ) -> BlobInfo: ...
        def write(self, data: bytes, expected: str | None = None) -> BlobInfo: ...
        def open(self, digest: str) -> BinaryIO: ...
        def has(self, digest: str) -> bool: ...
        def info(self, digest: str) -> BlobInfo: ...
        def delete(self, digest: str) -> None: ...
        def resolve(self, ref: str) -> Descriptor: ...
        def set_ref(self, ref: str, desc: Descriptor) -> None: ...
        def remove_ref(self, ref: str) -> None: ...
        def images(self) -> list[Descriptor]: ...
        def gc(self) -> GCResult: ...


def _mkstemp(dir: str, prefix: str) -> tuple[int, str]:
    """tempfile.mkstemp's contract (a new file only we opened, mode 0600) without its import cost
    (random, shutil: ~5 ms of a `hull pull`)."""
    while True:
        path = os.path.join(dir, prefix + os.urandom(6).hex())
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), path
        except FileExistsError:
            continue


LAYOUT_VERSION = "1.0.0"
CHUNK = 1 << 20
# Manifests, indexes and configs are read whole; the distribution spec lets registries refuse
# manifests over 4 MiB. 16 MiB leaves room for configs with a long history.
MAX_DOCUMENT = 16 << 20
MAX_DEPTH = 8  # nested indexes followed when resolving an image


@record
class BlobInfo:
    digest: Digest
    size: int


@record
class GCResult:
    removed: list[Digest]
    kept: int
    freed: int


class Lease:
    """Blobs a writer has committed and will reference soon; ``gc`` keeps them while the lease lives."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    def add(self, digest: str) -> None:
        os.write(self.fd, f"{digest}\n".encode())


def _check_digest(value: str, what: str = "digest") -> Digest:
    try:
        return _digest.parse(value, what)
    except SpecError as err:
        raise InvalidImage(str(err)) from None


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _chunks(source: Source) -> Iterator[bytes]:
    read = getattr(source, "read", None)
    if read is None:
        yield from source
        return
    while chunk := read(CHUNK):
        yield chunk


class LayoutStore:
    """A content store over one OCI Image Layout directory."""

    def __init__(self, root: str, *, create: bool = True, limit: int | None = None) -> None:
        self.root = os.path.abspath(root)
        self.limit = limit
        self._private = os.path.join(self.root, ".hull")
        self._ingest_dir = os.path.join(self._private, "ingest")
        self._lease_dir = os.path.join(self._private, "leases")
        header = os.path.join(self.root, "oci-layout")
        if not os.path.exists(header):
            if not create:
                raise LayoutError(f"{self.root}: not an OCI image layout (no oci-layout file)")
            os.makedirs(self.root, exist_ok=True)
            with self._locked(shared=False):
                if not os.path.exists(header):
                    self._initialise()
        self._check_layout(header)
        self._clean_stale()

    # ------------------------------------------------------------ layout

    def _initialise(self) -> None:
        os.makedirs(os.path.join(self.root, "blobs"), exist_ok=True)
        if not os.path.exists(os.path.join(self.root, "index.json")):
            self._write_index({"schemaVersion": 2, "mediaType": mt.INDEX, "manifests": []})
        self._atomic_write(os.path.join(self.root, "oci-layout"), json.dumps({"imageLayoutVersion": LAYOUT_VERSION}))

    def _check_layout(self, header: str) -> None:
        try:
            with open(header, "rb") as f:
                version = parse_layout_header(f.read())
        except SpecError as err:
            raise LayoutError(f"{header}: {err}") from None
        if not version.startswith("1."):
            raise LayoutError(f"{header}: unsupported imageLayoutVersion {version!r}")
        if not os.path.isdir(os.path.join(self.root, "blobs")):
            raise LayoutError(f"{self.root}: not an OCI image layout (no blobs directory)")
        if not os.path.isfile(os.path.join(self.root, "index.json")):
            raise LayoutError(f"{self.root}: not an OCI image layout (no index.json)")

    @contextmanager
    def _locked(self, shared: bool, wait: bool = True) -> Iterator[bool]:
        os.makedirs(self._private, exist_ok=True)
        fd = os.open(os.path.join(self._private, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
            try:
                fcntl.flock(fd, flags)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def _atomic_write(self, path: str, text: str) -> None:
        fd, tmp = _mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            os.write(fd, text.encode())
            os.fchmod(fd, 0o644)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.rename(tmp, path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            os.unlink(tmp)
            raise
        _fsync_dir(os.path.dirname(path))

    def blob_path(self, digest: str) -> str:
        d = _check_digest(digest)
        return os.path.join(self.root, "blobs", d.algorithm, d.encoded)

    # ------------------------------------------------------------ blobs

    def ingest(
        self,
        source: Source,
        expected: str | None = None,
        size: int | None = None,
        *,
        limit: int | None = None,
        algorithm: str = _digest.CANONICAL,
        lease: Lease | None = None,
    ) -> BlobInfo:
        """Stream ``source`` (a binary file or an iterable of bytes) into the store.

        The content is hashed while written; it becomes visible under its digest only
        if it matches ``expected`` and ``size`` (when given) and stays within ``limit``
        (or the store's). On any failure nothing is left behind.
        """
        want = _check_digest(expected, "expected digest") if expected is not None else None
        if want is not None:
            if not want.verifiable:
                raise UnsupportedDigest(f"cannot verify {want}: supported algorithms are sha256 and sha512")
            algorithm = want.algorithm
            # Checked and leased under the shared lock: a collection cannot sweep the blob in between.
            with self._locked(shared=True):
                if self.has(want):
                    info = self.info(want)
                    if size is not None and info.size != size:
                        raise SizeMismatch(size, info.size, str(want))
                    if lease is not None:
                        lease.add(want)
                    return info
        try:
            hasher = _digest.hasher(algorithm)
        except SpecError as err:
            raise UnsupportedDigest(str(err)) from None
        cap = limit if limit is not None else self.limit
        fd, tmp = self._temp_file()
        try:
            written = 0
            for chunk in _chunks(source):
                written += len(chunk)
                if size is not None and written > size:
                    raise SizeMismatch(size, written, "content (at least)")
                if cap is not None and written > cap:
                    raise SizeLimitExceeded(cap)
                hasher.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            if size is not None and written != size:
                raise SizeMismatch(size, written)
            actual = Digest(f"{algorithm}:{hasher.hexdigest()}")
            if want is not None and actual != want:
                raise DigestMismatch(want, actual)
            os.fchmod(fd, 0o644)
            os.fsync(fd)
            self._commit(tmp, actual, lease)
            return BlobInfo(actual, written)
        except BaseException as err:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            if isinstance(err, OSError) and _no_space(err):
                raise StoreFull(self.root, str(want or "being ingested"), err.strerror or "no space left") from None
            raise
        finally:
            os.close(fd)

    def write(self, data: bytes, expected: str | None = None, *, lease: Lease | None = None) -> BlobInfo:
        return self.ingest([data], expected, len(data) if expected is not None else None, lease=lease)

    def _temp_file(self) -> tuple[int, str]:
        # Created and locked under the shared store lock, so a cleaner (which holds it exclusively)
        # never sees the file between creation and flock and takes it for a dead writer's.
        with self._locked(shared=True):
            os.makedirs(self._ingest_dir, exist_ok=True)
            fd, tmp = _mkstemp(dir=self._ingest_dir, prefix="blob-")
            fcntl.flock(fd, fcntl.LOCK_EX)
        return fd, tmp

    def _commit(self, tmp: str, digest: Digest, lease: Lease | None) -> None:
        target = os.path.join(self.root, "blobs", digest.algorithm, digest.encoded)
        with self._locked(shared=True):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            # Two writers of the same blob: the second rename replaces identical content.
            os.rename(tmp, target)
            _fsync_dir(os.path.dirname(target))
            if lease is not None:
                lease.add(digest)

    @contextmanager
    def resumable(self, expected: str, size: int, *, lease: Lease | None = None) -> Iterator[Partial]:
        """A download of ``expected`` that survives its writer: bytes go to ``.hull/ingest/partial-<alg>-
        <encoded>``, kept when the writer fails or dies, and continued by the next one.

        No hash state is saved (hashlib objects cannot be pickled): a writer that finds a partial file
        re-reads its bytes once to rebuild the hash. While a writer holds the file (flock), a second
        writer of the same blob gets a private temporary file instead. See ``Partial`` for the rest."""
        want = _check_digest(expected, "expected digest")
        if not want.verifiable:
            raise UnsupportedDigest(f"cannot verify {want}: supported algorithms are sha256 and sha512")
        with self._locked(shared=True):
            os.makedirs(self._ingest_dir, exist_ok=True)
            path = os.path.join(self._ingest_dir, f"{PARTIAL}{want.algorithm}-{want.encoded}")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shared = False
            except BlockingIOError:
                os.close(fd)
                fd, path = _mkstemp(dir=self._ingest_dir, prefix="blob-")
                fcntl.flock(fd, fcntl.LOCK_EX)
                shared = True
        part = Partial(self, want, size, lease, fd, path, keep=not shared)
        try:
            yield part
        finally:
            if not part.keep and not part.committed:
                for name in (path, path + ".validator"):
                    try:
                        os.unlink(name)  # still ours: unlinked before the lock is released below
                    except FileNotFoundError:
                        pass
            os.close(fd)

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFound(digest) from None

    def read(self, digest: str, limit: int = MAX_DOCUMENT) -> bytes:
        with self.open(digest) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise SizeLimitExceeded(limit)
        return data

    def has(self, digest: str) -> bool:
        return os.path.isfile(self.blob_path(digest))

    def info(self, digest: str) -> BlobInfo:
        try:
            st = os.stat(self.blob_path(digest))
        except FileNotFoundError:
            raise BlobNotFound(digest) from None
        return BlobInfo(Digest(digest), st.st_size)

    def delete(self, digest: str) -> None:
        path = self.blob_path(digest)
        with self._locked(shared=False):
            try:
                os.unlink(path)
            except FileNotFoundError:
                raise BlobNotFound(digest) from None

    def blobs(self) -> list[Digest]:
        """Every blob in the layout whose name is a valid digest."""
        out: list[Digest] = []
        base = os.path.join(self.root, "blobs")
        for algorithm in sorted(os.listdir(base)):
            folder = os.path.join(base, algorithm)
            if not os.path.isdir(folder):
                continue
            for name in sorted(os.listdir(folder)):
                try:
                    out.append(_digest.parse(f"{algorithm}:{name}"))
                except SpecError:
                    continue  # not a blob (another tool's temporary file, say): leave it alone
        return out

    def fetch(self, desc: Descriptor, limit: int = MAX_DOCUMENT) -> bytes:
        """A small blob (manifest, index, config), checked against its descriptor's size and digest."""
        if desc.data is not None:
            return desc.data  # already verified against digest and size by parse_descriptor
        if desc.size > limit:
            raise SizeLimitExceeded(limit)
        data = self.read(desc.digest, limit)
        if len(data) != desc.size:
            raise SizeMismatch(desc.size, len(data), str(desc.digest))
        if desc.digest.verifiable and _digest.of(data, desc.digest.algorithm) != desc.digest:
            raise DigestMismatch(desc.digest, _digest.of(data, desc.digest.algorithm))
        return data

    # ------------------------------------------------------------ leases and stale files

    @contextmanager
    def lease(self) -> Iterator[Lease]:
        with self._locked(shared=True):
            os.makedirs(self._lease_dir, exist_ok=True)
            fd, path = _mkstemp(dir=self._lease_dir, prefix="lease-")
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield Lease(fd, path)
        finally:
            os.unlink(path)
            os.close(fd)

    def _dead_files(self, folder: str) -> Iterator[tuple[str, int]]:
        """Files in ``folder`` nobody holds a lock on (their writer died); yields (path, fd)."""
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return
        for name in names:
            path = os.path.join(folder, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield path, fd
            finally:
                os.close(fd)

    def _live_leases(self) -> set[str]:
        live: set[str] = set()
        for name in os.listdir(self._lease_dir) if os.path.isdir(self._lease_dir) else []:
            path = os.path.join(self._lease_dir, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    with os.fdopen(os.dup(fd)) as f:
                        live.update(line.strip() for line in f if line.strip())
            finally:
                os.close(fd)
        return live

    def _clean_stale(self, wait: bool = False) -> None:
        if not os.access(self.root, os.W_OK):
            return  # a layout this user can only read (another user's, a read-only mount): nothing to clean
        with self._locked(shared=False, wait=wait) as got:
            if not got:
                return  # someone is busy with the store; the next command cleans up
            for folder in (self._ingest_dir, self._lease_dir):
                for path, _fd in self._dead_files(folder):
                    if not os.path.basename(path).startswith(PARTIAL):  # resumed by the next pull; gc removes
                        os.unlink(path)

    # ------------------------------------------------------------ references (index.json)

    def _index_path(self) -> str:
        return os.path.join(self.root, "index.json")

    def _read_index(self) -> tuple[dict[str, Any], Index]:
        with open(self._index_path(), "rb") as f:
            raw = f.read()
        try:
            doc = loads(raw, "index.json")
            return doc, parse_index(doc, path="index.json")
        except SpecError as err:
            raise InvalidImage(f"{self._index_path()}: {err}") from None

    def _write_index(self, doc: dict[str, Any]) -> None:
        self._atomic_write(self._index_path(), json.dumps(doc, separators=(",", ":"), ensure_ascii=False))

    def images(self) -> list[Descriptor]:
        """Every descriptor in index.json, in order."""
        return self._read_index()[1].manifests

    def resolve(self, ref: str) -> Descriptor:
        """The index.json descriptor named ``ref`` (its ref.name annotation), or with digest ``ref``."""
        found = [d for d in self.images() if d.ref_name == ref]
        if not found and ":" in ref:
            found = [d for d in self.images() if d.digest == ref]
        if not found:
            raise ReferenceNotFound(ref)
        if len({d.digest for d in found}) > 1:
            raise AmbiguousReference(ref, len(found))
        return found[0]

    def set_ref(self, ref: str, desc: Descriptor) -> None:
        """Name ``desc`` ``ref`` in index.json, replacing what had that name (as skopeo does)."""
        if not ref or any(ord(c) < 0x20 for c in ref):
            raise InvalidImage(f"invalid reference name {ref!r}")
        entry = descriptor_json(desc)
        entry["annotations"] = {**desc.annotations, REF_NAME: ref}
        with self._locked(shared=False):
            if desc.data is None and not self.has(desc.digest):
                raise BlobNotFound(desc.digest)  # checked under the lock: no collection in between
            doc, _index = self._read_index()
            kept = [d for d in doc.get("manifests", []) if (d.get("annotations") or {}).get(REF_NAME) != ref]
            doc["manifests"] = [*kept, entry]
            self._write_index(doc)

    def remove_ref(self, ref: str) -> None:
        with self._locked(shared=False):
            doc, _index = self._read_index()
            kept = [d for d in doc.get("manifests", []) if (d.get("annotations") or {}).get(REF_NAME) != ref]
            if len(kept) == len(doc.get("manifests", [])):
                raise ReferenceNotFound(ref)
            doc["manifests"] = kept
            self._write_index(doc)

    # ------------------------------------------------------------ images

    def manifest(self, desc: Descriptor, platform: Platform | None = None) -> tuple[Descriptor, Manifest]:
        """Follow ``desc`` through indexes (choosing by platform, the host's by default) to a manifest."""
        want = _platform.normalize(platform) if platform is not None else _platform.host()
        for _ in range(MAX_DEPTH):
            if desc.media_type in mt.INDEXES:
                index = self._parse(desc, parse_index)
                choices = _platform.select(index.manifests, want)
                if not choices:
                    available = [
                        _platform.format_platform(d.platform) for d in index.manifests if d.platform is not None
                    ]
                    raise NoMatchingPlatform(_platform.format_platform(want), available)
                desc = choices[0]
            elif desc.media_type in mt.MANIFESTS:
                return desc, self._parse(desc, parse_manifest)
            else:
                raise InvalidImage(f"{desc.digest}: media type {desc.media_type!r} is not an image manifest or index")
        raise InvalidImage(f"{desc.digest}: image indexes nested more than {MAX_DEPTH} deep")

    def config(self, manifest: Manifest) -> ImageConfig:
        """The manifest's image config; refused for an artifact (manifest.md: an unknown config media
        type "MUST NOT" be parsed)."""
        if manifest.config.media_type not in mt.IMAGE_CONFIGS:
            raise InvalidImage(f"not a container image: config media type {manifest.config.media_type!r}")
        data = self.fetch(manifest.config)
        try:
            config = parse_config(data, path="config")
        except SpecError as err:
            raise InvalidImage(f"{manifest.config.digest}: {err}") from None
        if len(config.rootfs.diff_ids) != len(manifest.layers):
            raise InvalidImage(
                f"{manifest.config.digest}: config.rootfs.diff_ids has {len(config.rootfs.diff_ids)} entries "
                f"but the manifest has {len(manifest.layers)} layers"
            )
        return config

    def _parse(self, desc: Descriptor, parser: Any) -> Any:
        data = self.fetch(desc)
        try:
            return parser(data, desc.media_type)
        except SpecError as err:
            raise InvalidImage(f"{desc.digest}: {err}") from None

    # ------------------------------------------------------------ garbage collection

    def gc(self) -> GCResult:
        """Remove every blob not reachable from index.json or a live lease (see the module notes)."""
        with self._locked(shared=False):
            for folder in (self._ingest_dir, self._lease_dir):
                for path, _fd in self._dead_files(folder):
                    os.unlink(path)
            marked: set[str] = set()
            self._mark(list(self._read_index()[1].manifests), marked)
            marked |= self._live_leases()  # leased blobs are listed one by one: no walk needed
            candidates = [d for d in self.blobs() if d not in marked]
            self._mark_referrers(candidates, marked)
            removed: list[Digest] = []
            freed = 0
            for d in self.blobs():
                if d in marked:
                    continue
                path = os.path.join(self.root, "blobs", d.algorithm, d.encoded)
                try:
                    freed += os.stat(path).st_size
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                removed.append(d)
            return GCResult(removed, len(marked), freed)

    def _children(self, desc: Descriptor) -> list[Descriptor]:
        if desc.media_type not in mt.MANIFESTS and desc.media_type not in mt.INDEXES:
            return []  # a layer, a config, or a type hull does not know: a leaf
        try:
            if desc.media_type in mt.INDEXES:
                return list(self._parse(desc, parse_index).manifests)
            manifest: Manifest = self._parse(desc, parse_manifest)
        except (BlobNotFound, InvalidImage, SizeMismatch, DigestMismatch, SizeLimitExceeded):
            return []  # a missing or broken node keeps what it is but cannot name children
        return [manifest.config, *manifest.layers]

    def _mark(self, pending: list[Descriptor], marked: set[str]) -> None:
        while pending:
            desc = pending.pop()
            if desc.digest in marked:
                continue
            marked.add(desc.digest)
            pending.extend(d for d in self._children(desc) if d.digest not in marked)

    def _mark_referrers(self, candidates: list[Digest], marked: set[str]) -> None:
        subjects: dict[Digest, tuple[str, Descriptor]] = {}
        for d in candidates:
            path = os.path.join(self.root, "blobs", d.algorithm, d.encoded)
            try:
                if os.stat(path).st_size > 4 << 20:
                    continue  # the distribution spec's manifest size; layers are not referrers
                with open(path, "rb") as f:
                    if f.read(1) != b"{":
                        continue
                    f.seek(0)
                    doc = loads(f.read())
                subject = doc.get("subject")
                if not isinstance(subject, dict):
                    continue
                media_type = doc.get("mediaType") or (mt.INDEX if "manifests" in doc else mt.MANIFEST)
                parsed = parse_descriptor(subject, "subject")
            except (OSError, SpecError):
                continue
            subjects[d] = (str(media_type), parsed)
        changed = True
        while changed:
            changed = False
            for d, (media_type, subject) in list(subjects.items()):
                if subject.digest in marked and d not in marked:
                    size = os.stat(os.path.join(self.root, "blobs", d.algorithm, d.encoded)).st_size
                    self._mark([Descriptor(media_type, d, size)], marked)
                    del subjects[d]
                    changed = True


PARTIAL = "partial-"  # resumable downloads in .hull/ingest; kept across runs (see LayoutStore.resumable)


def _no_space(err: OSError) -> bool:
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


class StoreFull(ImageError):
    """The store's file system is full: the blob being written was removed, nothing was made visible."""

    def __init__(self, root: str, digest: str, strerror: str) -> None:
        super().__init__(f"{root}: {strerror} while writing blob {digest}; nothing was stored")


class Partial:
    """One resumable blob download (from ``LayoutStore.resumable``).

    ``offset`` bytes are already there (hashed); ``write`` appends, ``restart`` empties the file (a
    server that ignored Range, a validator that changed), ``commit`` checks size and digest and makes
    the blob visible. A wrong digest or size discards the bytes (the next attempt starts at 0) and
    raises; a full disk discards them too (keeping them keeps the disk full) and raises ``StoreFull``.
    Any other failure keeps them for the next attempt or the next process. ``validator`` (the first
    response's ETag or Last-Modified) is kept beside the file, for If-Range after a crash."""

    def __init__(
        self, store: LayoutStore, want: Digest, size: int, lease: Lease | None, fd: int, path: str, keep: bool
    ) -> None:
        self.store, self.want, self.size, self.lease = store, want, size, lease
        self.fd, self.path, self.keep, self.resumable = fd, path, keep, keep
        self.committed = False
        self.hasher = _digest.hasher(want.algorithm)
        self.offset = 0
        self.resumed = False  # bytes were there before this process wrote any
        with os.fdopen(os.dup(fd), "rb") as f:
            while chunk := f.read(CHUNK):
                self.hasher.update(chunk)
                self.offset += len(chunk)
        if self.offset > size:
            self.restart()
        self.resumed = self.offset > 0
        try:
            with open(self.path + ".validator", encoding="utf-8") as v:
                self.validator = v.read(1024).strip() if self.offset else ""
        except OSError:
            self.validator = ""

    def set_validator(self, value: str) -> None:
        self.validator = value
        if self.keep:
            with open(self.path + ".validator", "w", encoding="utf-8") as v:
                v.write(value)

    def restart(self) -> None:
        self.keep = self.resumable
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.hasher = _digest.hasher(self.want.algorithm)
        self.offset = 0
        self.resumed = False

    def write(self, chunk: bytes) -> None:
        if self.offset + len(chunk) > self.size:
            self.discard()
            raise SizeMismatch(self.size, self.offset + len(chunk), f"{self.want} (at least)")
        os.lseek(self.fd, self.offset, os.SEEK_SET)
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as err:
            if _no_space(err):
                self.discard()
                raise StoreFull(self.store.root, str(self.want), err.strerror or "no space left") from None
            raise
        self.hasher.update(chunk)
        self.offset += len(chunk)

    def discard(self) -> None:
        """Forget the bytes: the file is emptied now (freeing the space) and removed when the writer
        closes it, unless a ``restart`` makes it a download again."""
        self.restart()
        self.keep = False
        self.validator = ""

    def commit(self) -> BlobInfo:
        if self.offset != self.size:
            got = self.offset
            self.discard()
            raise SizeMismatch(self.size, got, str(self.want))
        actual = Digest(f"{self.want.algorithm}:{self.hasher.hexdigest()}")
        if actual != self.want:
            self.discard()
            raise DigestMismatch(self.want, actual)
        try:
            os.fchmod(self.fd, 0o644)
            os.fsync(self.fd)
        except OSError as err:
            if _no_space(err):
                self.discard()
                raise StoreFull(self.store.root, str(self.want), err.strerror or "no space left") from None
            raise
        self.store._commit(self.path, actual, self.lease)
        self.committed = True
        self.keep = False
        try:
            os.unlink(self.path + ".validator")
        except FileNotFoundError:
            pass
        return BlobInfo(actual, self.size)


def copy(src: LayoutStore, dst: LayoutStore, desc: Descriptor, lease: Lease | None = None) -> None:
    """Copy the graph under ``desc`` from ``src`` into ``dst``, children first, every blob verified.

    Blobs absent from ``src`` that are non-distributable (image-layout.md: a layout "MAY be missing
    referenced blobs") are skipped; any other missing blob is an error.
    """
    for child in src._children(desc):
        copy(src, dst, child, lease)
    if desc.data is not None and not src.has(desc.digest):
        dst.write(desc.data, desc.digest, lease=lease)
        return
    try:
        f = src.open(desc.digest)
    except BlobNotFound:
        if desc.media_type in mt.NON_DISTRIBUTABLE:
            return
        raise
    with f:
        dst.ingest(f, desc.digest, desc.size, lease=lease)
