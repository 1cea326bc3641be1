"""``hull image ...``: the image commands, thin over hull.image (docker/podman names, flags and output).

Output shapes follow docker's where docker and podman agree, podman's where
hull's model is podman's (daemonless, names stored whole):

- ``hull images``: docker's table (REPOSITORY TAG IMAGE ID CREATED SIZE, columns
  three spaces apart, CREATED as go-units HumanDuration "... ago", SIZE as
  HumanSize "2.13MB"); ``-q`` one 12-digit ID per row; ``--format json``
  podman's JSON array (one object per image: Id, RepoTags, RepoDigests,
  Created in Unix seconds, CreatedAt, Size, Digest).
- ``hull image inspect``: a JSON array as ``docker image inspect``, plus
  podman's Digest, History and ManifestType.
- ``hull image load``: ``Loaded image: NAME`` (``Loaded image ID: sha256:...``
  for an unnamed one), as docker.
- ``hull image rm``: ``Untagged: NAME`` per name, ``Deleted: sha256:ID`` when
  the image's last name went, as docker.

SIZE / Size are the bytes the image takes in the store (manifest, config
and layer blobs as stored, compressed or not); docker reports the
uncompressed size, which hull would have to decompress every layer to know.
"""

from __future__ import annotations

import os
import sys
import time

from hull.image import names
from hull.image.errors import ImageError
from hull.image.store import LayoutStore
from hull.oci.image import Descriptor, loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO


class CommandError(Exception):
    """A failure the CLI reports as one line (usage problems that argparse cannot see)."""


# ---------------------------------------------------------------- go-units formatting


def human_size(size: float) -> str:
    """go-units HumanSizeWithPrecision(size, 3), as docker images shows sizes ("2.13MB")."""
    from hull.cli.humanize import human_size as go_human_size

    return go_human_size(size, 3)


def human_duration(seconds: float) -> str:
    """go-units HumanDuration."""
    from hull.cli.humanize import human_duration as go_human_duration

    return go_human_duration(seconds)


def parse_time(stamp: str) -> float | None:
    """Unix seconds of an RFC 3339 date-time (nanoseconds allowed), None when absent or unreadable."""
    from datetime import datetime

    if not stamp:
        return None
    text = stamp.replace("z", "Z").replace("t", "T")
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:digits][:6]}{rest[digits:]}"
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def table(rows: list[list[str]]) -> str:
    """docker/cli's formatter layout: text/tabwriter with minwidth 10, padding 3 (hull.cli.table)."""
    from hull.cli.table import tabulate

    return tabulate(rows, minwidth=10, tabwidth=1, padding=3)


# ---------------------------------------------------------------- the image model the commands show


class Image:
    """One image of the store: its manifest, config and every name it has."""

    def __init__(self, store: LayoutStore, desc: Descriptor) -> None:
        self.descriptor = desc
        self.manifest_descriptor, self.manifest = store.manifest(desc)
        self.config_raw = loads(store.fetch(self.manifest.config), "config")
        self.config = store.config(self.manifest)
        self.id = self.manifest.config.digest
        blobs = {self.manifest_descriptor.digest: self.manifest_descriptor.size}
        blobs[self.manifest.config.digest] = self.manifest.config.size
        blobs.update({layer.digest: layer.size for layer in self.manifest.layers})
        if desc.digest != self.manifest_descriptor.digest:
            blobs[desc.digest] = desc.size
        self.size = sum(blobs.values())
        self.tags: list[str] = []

    @property
    def created(self) -> float | None:
        return parse_time(self.config.created)


def all_images(store: LayoutStore) -> list[Image]:
    """The store's images, one per manifest-or-index digest, with their names, newest first."""
    by_digest: dict[str, Image] = {}
    for desc in store.images():
        image = by_digest.get(desc.digest)
        if image is None:
            try:
                image = by_digest[desc.digest] = Image(store, desc)
            except ImageError as err:
                sys.stderr.write(f"hull: warning: skipping {desc.ref_name or desc.digest}: {err}\n")
                continue
        if desc.ref_name and not names.is_untagged(desc.ref_name):
            image.tags.append(desc.ref_name)
    return sorted(by_digest.values(), key=lambda i: -(i.created or 0))


def find(store: LayoutStore, ref: str) -> tuple[Image, list[Descriptor]]:
    """The image ``ref`` names and the index.json descriptors it was found by."""
    found = names.lookup(store, ref)
    image = Image(store, found[0])
    image.tags = [d.ref_name for d in store.images() if d.digest == found[0].digest and d.ref_name]
    image.tags = [t for t in image.tags if not names.is_untagged(t)]
    return image, found


def inspect_json(image: Image) -> dict[str, Any]:
    cfg = image.config_raw
    history = cfg.get("history") or []
    comment = next((h.get("comment", "") for h in reversed(history) if isinstance(h, dict)), "")
    exec_config = cfg.get("config") or {}
    return {
        "Id": image.id,
        "Digest": image.descriptor.digest,  # an index's when the image was kept whole, as podman's
        "RepoTags": image.tags,
        "RepoDigests": [f"{names.split(t)[0]}@{image.descriptor.digest}" for t in image.tags],
        "Parent": "",
        "Comment": comment,
        "Created": cfg.get("created", ""),
        "Author": cfg.get("author", ""),
        "Config": exec_config,
        "Architecture": cfg.get("architecture", ""),
        **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),
        "Os": cfg.get("os", ""),
        "Size": image.size,
        "RootFS": {"Type": image.config.rootfs.type, "Layers": list(image.config.rootfs.diff_ids)},
        "Labels": exec_config.get("Labels"),
        "Annotations": dict(image.manifest.annotations),
        "ManifestType": image.manifest_descriptor.media_type,
        "User": exec_config.get("User", ""),
        "History": history,
    }


# ---------------------------------------------------------------- commands


def cmd_ls(store: LayoutStore, quiet: bool, fmt: str, no_trunc: bool) -> int:
    images = all_images(store)
    now = time.time()
    if fmt == "json":
        out = []
        for image in images:
            created = image.created
            out.append(
                {
                    "Id": image.id.encoded,
                    "RepoTags": image.tags,
                    "RepoDigests": [f"{names.split(t)[0]}@{image.descriptor.digest}" for t in image.tags],
                    "Created": int(created) if created is not None else 0,
                    "CreatedAt": image.config.created,
                    "Size": image.size,
                    "Digest": image.descriptor.digest,
                    "Names": image.tags,
                }
            )
        import json

        print(json.dumps(out, indent=4))
        return 0
    if fmt not in ("", "table"):
        raise CommandError(f"unknown --format {fmt!r} (expected table or json)")
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
    for image in images:
        short = image.id if no_trunc else image.id.encoded[:12]
        created = image.created
        since = human_duration(max(0.0, now - created)) + " ago" if created is not None else "N/A"
        for tag in image.tags or ["<none>:<none>"]:
            repo, version = names.split(tag) if tag != "<none>:<none>" else ("<none>", "<none>")
            rows.append([repo, version, short, since, human_size(image.size)])
    if quiet:
        sys.stdout.write("".join(f"{row[2]}\n" for row in rows[1:]))
    else:
        sys.stdout.write(table(rows))
    return 0


def cmd_inspect(store: LayoutStore, refs: list[str]) -> int:
    out, failed = [], []
    for ref in refs:
        try:
            out.append(inspect_json(find(store, ref)[0]))
        except ImageError as err:
            failed.append(str(err))
    import json  # here: the pull path never needs it

    print(json.dumps(out, indent=4))
    for line in failed:
        sys.stderr.write(f"Error: {line}\n")
    return 1 if failed else 0


def cmd_inspect_remote(refs: list[str], raw: bool) -> int:
    """``--remote``: skopeo inspect's document per reference (one object for one reference, as
    skopeo prints; an array for several); ``--raw``: the manifest bytes, unchanged."""
    from hull.distribution import remote_inspect, sources
    from hull.distribution.auth import Authenticator

    docs: list[Any] = []
    auth = Authenticator()
    for text in refs:
        ref, client, where, top = sources.resolve_pull(
            text, authenticator=auth, attempt=lambda c, r: c.get_manifest(r.path, r.reference)
        )
        try:
            if raw:
                sys.stdout.buffer.write(top[1])
                sys.stdout.flush()
                continue
            docs.append(remote_inspect.inspect(client, where, ref, top))
        finally:
            client.close()
    if not raw:
        import json

        print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=4))
    return 0


def cmd_copy(store: LayoutStore, source: str, dest: str, platform: str, quiet: bool, all_images: bool = False) -> int:
    """As skopeo copy (transports in hull.distribution.copy); a summary line on stderr. ``all_images``:
    skopeo's --all, the whole index with every platform's image."""
    from hull.distribution import copy
    from hull.distribution.auth import Authenticator
    from hull.oci import platform as _platform

    if all_images and platform:
        raise CommandError("--all and --platform cannot be used together")
    want = None
    if platform:
        try:
            want = _platform.parse(platform)
        except ValueError as err:
            raise CommandError(f"--platform {platform!r}: {err}") from None
    result = copy.copy(source, dest, store=store, platform=want, authenticator=Authenticator(), all_images=all_images)
    if not quiet:
        sys.stderr.write(
            f"Copied {result.digest}: {len(result.copied)} blobs copied, {len(result.mounted)} mounted, "
            f"{len(result.skipped)} already there\n"
        )
    return 0


def cmd_tag(store: LayoutStore, source: str, target: str) -> int:
    name = names.normalize(target)
    _image, found = find(store, source)
    desc = found[0]
    store.set_ref(name, Descriptor(desc.media_type, desc.digest, desc.size, platform=desc.platform))
    if names.is_untagged(desc.ref_name):
        store.remove_ref(desc.ref_name)  # the placeholder of an unnamed image is no longer needed
    return 0


def cmd_rm(store: LayoutStore, refs: list[str], force: bool) -> int:
    errors = 0
    for ref in refs:
        try:
            image, found = find(store, ref)
            by_name = any(d.ref_name == n for d in found for n in names.candidates(ref))
            if not by_name and len(image.tags) > 1 and not force:
                raise CommandError(
                    f"unable to delete {ref} (must force) - image is referenced in multiple repositories"
                )
            targets = found if by_name else [d for d in store.images() if d.digest == found[0].digest]
            for desc in targets:
                store.remove_ref(desc.ref_name)
                if not names.is_untagged(desc.ref_name):
                    print(f"Untagged: {desc.ref_name}")
            if not any(d.digest == image.descriptor.digest for d in store.images()):
                store.gc()
                print(f"Deleted: {image.id}")
        except (ImageError, CommandError) as err:
            sys.stderr.write(f"Error: {err}\n")
            errors += 1
    return 1 if errors else 0


def cmd_prune(store: LayoutStore) -> int:
    deleted = []
    for desc in store.images():
        if names.is_untagged(desc.ref_name):
            store.remove_ref(desc.ref_name)
            deleted.append(desc.digest)
    result = store.gc()
    if deleted:
        print("Deleted Images:")
        for d in deleted:
            print(f"deleted: {d}")
        print()
    print(f"Total reclaimed space: {human_size(result.freed)}")
    return 0


def _open_input(path: str) -> BinaryIO:
    if path == "-":
        if sys.stdin.isatty():
            raise CommandError("requested load from stdin, but stdin is empty (a terminal); use -i FILE")
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as err:
        raise CommandError(f"{path}: {err.strerror}") from None


def cmd_load(store: LayoutStore, path: str, quiet: bool) -> int:
    from hull.image.archive import load

    f = _open_input(path)
    try:
        loaded = load(store, f)
    finally:
        if f is not sys.stdin.buffer:
            f.close()
    if not quiet:
        for item in loaded:
            print(f"Loaded image: {item.name}" if item.name else f"Loaded image ID: {item.image_id}")
    return 0


def cmd_save(store: LayoutStore, refs: list[str], output: str, fmt: str) -> int:
    from hull.image.archive import FORMATS, save

    if fmt not in FORMATS:
        raise CommandError(f"unknown --format {fmt!r} (expected {' or '.join(FORMATS)})")
    images: list[tuple[str, Descriptor]] = []
    for ref in refs:
        _image, found = find(store, ref)
        images.extend((d.ref_name, d) for d in found)
    if not output:
        if sys.stdout.isatty():
            raise CommandError("refusing to write an archive to a terminal; use -o FILE or redirect stdout")
        save(store, images, sys.stdout.buffer, fmt)
        sys.stdout.buffer.flush()
        return 0
    directory = os.path.dirname(os.path.abspath(output))
    tmp = os.path.join(directory, f".{os.path.basename(output)}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            save(store, images, f, fmt)
        os.rename(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return 0


def cmd_import(store: LayoutStore, source: str, ref: str | None, changes: list[str], message: str) -> int:
    from hull.image.importer import import_image

    src: str | BinaryIO = source
    if source == "-":
        src = _open_input("-")
    elif not os.path.exists(source):
        raise CommandError(f"{source}: no such file or directory")
    _manifest, image_id, _name = import_image(store, src, ref, changes=changes, message=message)
    print(image_id)
    return 0


def cmd_unpack(store: LayoutStore, ref: str, bundle: str, tty: bool) -> int:
    from hull.image.builtin import ensure_builtin
    from hull.image.bundle import unpack_bundle

    ensure_builtin(store, ref)  # localhost/busybox is made from the host's busybox-static when absent
    _image, found = find(store, ref)
    desc = found[0]
    unpack_bundle(store, desc.ref_name or desc.digest, bundle, terminal=tty)
    return 0


def _say(line: str) -> None:
    sys.stderr.write(f"{line}\n")


def _progress(quiet: bool) -> Callable[[str], None] | None:
    return None if quiet else _say


def cmd_pull(
    store: LayoutStore, text: str, platform: str, quiet: bool, unpack: str = "", all_platforms: bool = False
) -> int:
    """As podman: progress on stderr, the image ID on stdout. ``unpack``: a rootfs directory to apply
    the layers into while they download (hull.distribution.onepass). ``all_platforms`` (nerdctl's
    --all-platforms): the whole index, named by REF; the ID printed is the host platform's image's."""
    from hull.distribution import pull, sources
    from hull.distribution.auth import Authenticator
    from hull.oci import platform as _platform

    if all_platforms and (platform or unpack):
        raise CommandError(f"--all-platforms and {'--platform' if platform else '--unpack'} cannot be used together")
    want = None
    if platform:
        try:
            want = _platform.parse(platform)
        except ValueError as err:
            raise CommandError(f"--platform {platform!r}: {err}") from None
    say = _progress(quiet)
    # Mirrors, then the registry; for a short name each search registry (sources' notes).
    ref, client, where, resolved = sources.resolve_pull(
        text,
        authenticator=Authenticator(),
        attempt=(lambda c, r: pull.resolve_top(c, r)) if all_platforms else (lambda c, r: pull.resolve(c, r, want)),
        log=say,
    )
    from hull.distribution.progress import log_through, reporter_for

    progress = reporter_for(quiet)  # bars on a terminal, lines otherwise (the blob lines replace log=)
    restore = log_through(progress, client.retry)  # retry lines above the bars, never through them
    try:
        result = pull.pull(
            store,
            where,
            registry=client,
            platform=want,
            progress=progress,
            resolved=resolved,
            name=pull.local_name(ref, resolved[0]),
            unpack_to=unpack,
            all_platforms=all_platforms,
        )
    finally:
        restore()
        progress.close()
    if say is not None:
        say(f"Digest: {result.index_digest or result.descriptor.digest}")
    try:
        _mdesc, manifest = store.manifest(result.descriptor)
    except ImageError:  # an index without the host's platform, kept whole: its digest stands for it
        print(result.descriptor.digest.encoded)
        return 0
    print(manifest.config.digest.encoded)
    return 0


def cmd_push(store: LayoutStore, source: str, dest: str | None, quiet: bool) -> int:
    from hull.distribution import push, reference

    _image, found = find(store, source)
    desc = found[0]
    target = dest or desc.ref_name
    if not dest and names.is_untagged(target):
        raise CommandError(f"{source}: the image has no name; give a DESTINATION")
    ref = reference.parse(target)
    image = Descriptor(desc.media_type, desc.digest, desc.size)
    from hull.distribution import sources
    from hull.distribution.auth import Authenticator

    client, where = sources.push_target(ref, authenticator=Authenticator())  # location rewrite, blocked, TLS
    result = push.push(store, image, where, registry=client, log=_progress(quiet))
    if quiet:
        return 0
    counts = f"{len(result.uploaded)} uploaded, {len(result.mounted)} mounted, {len(result.skipped)} already there"
    sys.stderr.write(f"Blobs: {counts}\n")
    return 0


COMMANDS: dict[str, Callable[..., int]] = {
    "ls": cmd_ls,
    "inspect": cmd_inspect,
    "tag": cmd_tag,
    "rm": cmd_rm,
    "prune": cmd_prune,
    "load": cmd_load,
    "save": cmd_save,
    "import": cmd_import,
    "unpack": cmd_unpack,
    "pull": cmd_pull,
    "push": cmd_push,
}
