"""Pull an image from a registry into the content store.

The order, as containerd's and skopeo's: resolve the reference to a
manifest or index; from an index choose the manifest for the platform
(the host's by default, with hull.oci.platform's ranking); then fetch the
config and the layers, a bounded number at a time, each streamed once into
the store's verified ingest (digest and size checked on the way, nothing
visible on a mismatch). Blobs the store already has are not downloaded.

The name is written into index.json last, and only when every blob is in
the store and verified: a failed pull leaves no image behind. Blobs that
did verify before the failure stay in ``blobs/`` unreferenced (so a retry
does not fetch them again); a lease protects them from a concurrent ``gc``
only while the pull runs, so ``hull image prune`` removes them.

What is tagged is the platform's manifest (as ``skopeo copy`` without
``--all`` does): the store only ever names complete images. A pull by
digest alone is kept unnamed, under its manifest digest.

``all_platforms`` (nerdctl's ``--all-platforms``, skopeo's ``copy --all``)
keeps the whole index instead: every manifest it lists (nested indexes
too), each one's config and layers, all fetched by the same bounded pool
and resumable as above, and the index's own bytes named by the reference;
``hull unpack`` then chooses the host's platform from it
(hull.image.store.LayoutStore.manifest).
"""

from __future__ import annotations

import threading

from hull.distribution import NotFoundError
from hull.distribution.client import Registry
from hull.distribution.reference import Reference
from hull.image.errors import InvalidImage, NoMatchingPlatform
from hull.oci import media_types as mt
from hull.oci import platform as _platform
from hull.oci._parse import SpecError
from hull.oci.image import Descriptor, Index, Manifest, Platform, parse_config, parse_index, parse_manifest
from hull.oci.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from hull.distribution.onepass import OnePass
    from hull.distribution.progress import Reporter
    from hull.image.layer import ApplyOptions
    from hull.image.store import LayoutStore, Lease
    from hull.oci.digest import Digest

DEFAULT_CONCURRENCY = 3  # containerd's default max concurrent downloads is 3
MAX_DEPTH = 4


@record
class PullResult:
    name: str  # the index.json ref name the image was stored under
    descriptor: Descriptor  # of the manifest that was stored
    index_digest: str  # the index the manifest came from, "" when the reference named a manifest
    fetched: list[str]  # blobs downloaded
    skipped: list[str]  # blobs the store already had


def local_name(ref: Reference, manifest: Descriptor) -> str:
    """The ref name for index.json: ``domain/path:tag`` as docker and podman store it, or, for a pull
    by digest alone, the manifest digest (hull.image.names' placeholder for an unnamed image)."""
    if ref.tag:
        return f"{ref.repository}:{ref.tag}"
    return str(manifest.digest)


def _parse_index(data: bytes, desc: Descriptor) -> Index:
    try:
        return parse_index(data, desc.media_type or None)
    except SpecError as err:
        raise InvalidImage(f"{desc.digest}: {err}") from None


def _parse_manifest(data: bytes, desc: Descriptor) -> Manifest:
    try:
        return parse_manifest(data, desc.media_type or None)
    except SpecError as err:
        raise InvalidImage(f"{desc.digest}: {err}") from None


def resolve(registry: Registry, ref: Reference, platform: Platform | None = None) -> tuple[Descriptor, bytes, str]:
    """The platform's manifest for ``ref``: (descriptor, bytes, digest of the index it came from or "")."""
    want = _platform.normalize(platform) if platform is not None else _platform.host()
    desc, data = registry.get_manifest(ref.path, ref.reference)
    index_digest = ""
    for _ in range(MAX_DEPTH):
        if desc.media_type in mt.MANIFESTS:
            return desc, data, index_digest
        if desc.media_type not in mt.INDEXES:
            raise InvalidImage(f"{ref}: media type {desc.media_type!r} is not an image manifest or index")
        index = _parse_index(data, desc)
        choices = _platform.select(index.manifests, want)
        if not choices:
            available = [_platform.format_platform(d.platform) for d in index.manifests if d.platform is not None]
            raise NoMatchingPlatform(_platform.format_platform(want), available)
        index_digest = index_digest or str(desc.digest)
        chosen: Descriptor = choices[0]
        desc, data = registry.get_manifest(ref.path, str(chosen.digest))
        if desc.digest != chosen.digest or desc.size != chosen.size:
            raise InvalidImage(f"{ref}: manifest {desc.digest} does not match the index's descriptor")
        desc = Descriptor(chosen.media_type, desc.digest, desc.size, platform=chosen.platform)
    raise InvalidImage(f"{ref}: image indexes nested more than {MAX_DEPTH} deep")


def resolve_top(registry: Registry, ref: Reference) -> tuple[Descriptor, bytes, str]:
    """What ``ref`` names, index or manifest, unresolved: (descriptor, bytes, the index digest or "")."""
    desc, data = registry.get_manifest(ref.path, ref.reference)
    if desc.media_type in mt.INDEXES:
        return desc, data, str(desc.digest)
    if desc.media_type not in mt.MANIFESTS:
        raise InvalidImage(f"{ref}: media type {desc.media_type!r} is not an image manifest or index")
    return desc, data, ""


def _child(registry: Registry, store: LayoutStore, ref: Reference, listed: Descriptor) -> bytes:
    """An index entry's bytes: the store's when it has them (a resumed pull), else the registry's,
    checked against the entry's digest (get_manifest) and size."""
    if store.has(listed.digest):
        return store.fetch(listed)
    desc, data = registry.get_manifest(ref.path, str(listed.digest))
    if desc.size != listed.size:
        raise InvalidImage(f"{ref}: manifest {listed.digest} is {desc.size} bytes, the index says {listed.size}")
    return data


def _tree(
    registry: Registry, store: LayoutStore, ref: Reference, desc: Descriptor, data: bytes
) -> tuple[list[tuple[Descriptor, bytes, Manifest]], list[tuple[Descriptor, bytes]]]:
    """Every manifest under the index ``desc`` (parsed) and every index (innermost first, ``desc``
    last): the order they are written in, children before parents as spec.md pushes them."""
    manifests: list[tuple[Descriptor, bytes, Manifest]] = []
    indexes: list[tuple[Descriptor, bytes]] = []
    seen: set[str] = set()

    def walk(desc: Descriptor, data: bytes, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise InvalidImage(f"{ref}: image indexes nested more than {MAX_DEPTH} deep")
        for listed in _parse_index(data, desc).manifests:
            if listed.digest in seen:
                continue
            seen.add(listed.digest)
            child = _child(registry, store, ref, listed)
            if listed.media_type in mt.INDEXES:
                walk(listed, child, depth + 1)
            elif listed.media_type in mt.MANIFESTS:
                manifests.append((listed, child, _parse_manifest(child, listed)))
            else:
                raise InvalidImage(f"{desc.digest}: manifests[]: media type {listed.media_type!r} is not a manifest")
        indexes.append((desc, data))

    walk(desc, data, 1)
    return manifests, indexes


def _check_config(store: LayoutStore, manifest: Manifest) -> None:
    config_desc = manifest.config
    if config_desc.media_type not in mt.IMAGE_CONFIGS:
        return  # an artifact's config (an attestation's, a signature's) is not an image config
    try:
        config = parse_config(store.fetch(config_desc), path="config")
    except SpecError as err:
        raise InvalidImage(f"{config_desc.digest}: {err}") from None
    if len(config.rootfs.diff_ids) != len(manifest.layers):
        raise InvalidImage(
            f"{config_desc.digest}: config.rootfs.diff_ids has {len(config.rootfs.diff_ids)} entries "
            f"but the manifest has {len(manifest.layers)} layers"
        )


def _fetch(
    registry: Registry,
    store: LayoutStore,
    repo: str,
    desc: Descriptor,
    lease: Lease,
    progress: Reporter | None = None,
    unpacker: OnePass | None = None,
) -> None:
    # Resumable: a dropped connection continues with Range (client.download_blob), and what a failed
    # or killed pull wrote is continued by the next pull (store.resumable keeps the partial file).
    advanced: Callable[[int], None] | None = None
    if progress is not None:
        reporter = progress
        reporter.started(desc.digest, desc.size)
        advanced = lambda n: reporter.advanced(desc.digest, n)  # noqa: E731
    with store.resumable(desc.digest, desc.size, lease=lease) as part:
        if advanced is not None and part.offset:
            advanced(part.offset)
        # With ``unpacker`` (pull(unpack_to=)), the bytes also stream into the layer applier.
        sink = unpacker.sink(desc, part) if unpacker is not None else part
        try:
            try:
                registry.download_blob(repo, desc.digest, sink, advanced)
            except NotFoundError:
                if not desc.urls:
                    raise
                # Not in the registry: a non-distributable layer's URLs (hull.distribution.foreign).
                from hull.distribution import foreign

                foreign.download(desc, sink, advanced, registry.retry)
        except BaseException:
            if sink is not part:
                sink.fail()  # type: ignore[union-attr]  # the Tee tells the applier to use the fallback
            raise
    if unpacker is not None:
        unpacker.ready(desc.digest)
    if progress is not None:
        progress.finished(desc.digest)


def _fetch_all(todo: list[Descriptor], concurrency: int, fetch: Callable[[Descriptor], None]) -> Iterator[Digest]:
    """Run ``fetch`` on each descriptor, at most ``concurrency`` at a time, yielding digests as they
    complete. The first failure stops queued downloads from starting, waits for the running ones to
    end on their own, and is raised (the store's and the client's errors name the blob already).
    Plain threads: concurrent.futures would import logging, a tenth of a pull's start-up."""
    queue = list(reversed(todo))
    done: list[tuple[Descriptor, BaseException | None]] = []
    cond = threading.Condition()
    stop = False

    def worker() -> None:
        while True:
            with cond:
                if stop or not queue:
                    return
                desc = queue.pop()
            error: BaseException | None = None
            try:
                fetch(desc)
            except BaseException as err:  # noqa: BLE001 - handed to the pulling thread, which raises it
                error = err
            with cond:
                done.append((desc, error))
                cond.notify()

    threads = [
        threading.Thread(target=worker, name=f"hull-pull-{i}") for i in range(min(max(1, concurrency), len(todo)))
    ]
    for thread in threads:
        thread.start()
    try:
        for _ in todo:
            with cond:
                while not done:
                    cond.wait()
                desc, error = done.pop(0)
            if error is not None:
                raise error
            yield desc.digest
    finally:
        with cond:
            stop = True
        for thread in threads:
            thread.join()


def pull(
    store: LayoutStore,
    ref: Reference,
    *,
    registry: Registry | None = None,
    platform: Platform | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    log: Callable[[str], None] | None = None,
    progress: Reporter | None = None,
    resolved: tuple[Descriptor, bytes, str] | None = None,
    name: str = "",
    unpack_to: str = "",
    unpack_options: ApplyOptions | None = None,
    all_platforms: bool = False,
) -> PullResult:
    """Pull ``ref`` into ``store``; see the module notes for what is guaranteed on failure.

    ``progress`` hears of each blob (started/advanced/finished, or skipped), from the download threads.
    ``unpack_to``: also apply the layers into this new directory (a rootfs) in the same pass as the
    download (hull.distribution.onepass); it exists, complete, only if the pull succeeds.
    ``all_platforms``: keep the whole index (module notes); ``resolved`` is then resolve_top's answer
    and ``platform``/``unpack_to`` do not apply."""
    registry = registry or Registry(ref.domain)
    say = log or (lambda _line: None)
    # ``resolved``: the manifest already fetched (sources.resolve_pull tried the endpoints with it);
    # ``name``: the user's name when ``ref`` is a mirror's or a rewritten location's.
    if all_platforms:
        if unpack_to:
            raise InvalidImage("unpacking during the pull needs one platform, not all of them")
        mdesc, mdata, index_digest = resolved or resolve_top(registry, ref)
    else:
        mdesc, mdata, index_digest = resolved or resolve(registry, ref, platform)
    indexes: list[tuple[Descriptor, bytes]] = []
    if mdesc.media_type in mt.INDEXES:
        manifests, indexes = _tree(registry, store, ref, mdesc, mdata)
    else:
        manifests = [(mdesc, mdata, _parse_manifest(mdata, mdesc))]
    manifest = manifests[0][2] if manifests else None
    config_desc = manifest.config if manifest is not None else None
    layers = manifest.layers if manifest is not None else []
    blobs = [d for _desc, _data, m in manifests for d in (m.config, *m.layers)]
    fetched: list[str] = []
    skipped: list[str] = []
    with store.lease() as lease:
        todo: list[Descriptor] = []
        seen: set[str] = set()
        for desc in blobs:
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            if store.has(desc.digest):
                # Leased under the store's lock (ingest returns before reading an empty source).
                store.ingest([], desc.digest, desc.size, lease=lease)
                skipped.append(desc.digest)
                if progress is not None:
                    progress.skipped(desc.digest)
                say(f"{desc.digest.encoded[:12]}: already exists")
            else:
                todo.append(desc)
        unpacker: OnePass | None = None
        if unpack_to and config_desc is not None:
            from hull.distribution.onepass import OnePass

            downloading = {d.digest for d in todo}
            unpacker = OnePass(store, config_desc, list(layers), downloading, unpack_to, unpack_options)
        try:
            for digest in _fetch_all(
                todo, concurrency, lambda d: _fetch(registry, store, ref.path, d, lease, progress, unpacker)
            ):
                fetched.append(digest)
                say(f"{digest.encoded[:12]}: pulled")
            if unpacker is not None:
                unpacker.finish()  # before the name is written: a layer whose diff_id lies fails the pull
        except BaseException:
            if unpacker is not None:
                unpacker.abort()
            raise
        for _desc, _data, each in manifests:
            _check_config(store, each)
        # Children before parents: a crash in between leaves blobs, never an index naming absent ones.
        for each_desc, each_data, _m in manifests:
            store.write(each_data, each_desc.digest, lease=lease)
        for each_desc, each_data in indexes:
            store.write(each_data, each_desc.digest, lease=lease)
        name = name or local_name(ref, mdesc)
        store.set_ref(name, Descriptor(mdesc.media_type, mdesc.digest, mdesc.size, platform=mdesc.platform))
    return PullResult(name, mdesc, index_digest, fetched, skipped)
