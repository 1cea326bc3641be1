"""Keeping a whole index: ``hull pull --all-platforms`` (nerdctl's flag) and ``hull image copy --all``
(skopeo's), against Debian's docker-registry (distribution 2.8.2). The index is built locally: two
images made by ``hull image import`` (busybox, and a small tree of its own so the layers differ), each
given another ``architecture`` in a new config, listed by one OCI index that skopeo pushes with
``--all``. What hull stores is compared with what was pushed, digest for digest and byte for byte.

``hull pull --all-platforms`` and the first ``hull image copy --all`` run through the CLI; the other
copies call hull.cli.image.cmd_copy in-process (what ``hull image copy`` runs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hull.cli.image import cmd_copy
from hull.distribution.pull import pull
from hull.distribution.reference import parse
from hull.image.store import LayoutStore
from hull.oci import image as im
from hull.oci import media_types as mt
from hull.oci import platform as pf
from hull.oci.image import Descriptor
from tests.integration.test_registry import (
    HULL,
    SOURCE,
    add_platform_manifest,
    graph,
    hull_root,
    import_source,
    registry,
    run,
    skopeo_push,
)

pytestmark = pytest.mark.usefixtures("root_required")
__all__ = ["registry"]  # the fixture, imported to be used here

HOST = pf.host().architecture
FOREIGN = "arm64" if HOST != "arm64" else "amd64"


def build_index(tmp_path: Path, busybox_rootfs: Path) -> tuple[LayoutStore, Descriptor, list[Descriptor]]:
    """A store holding "multi": an index of the host's architecture (busybox) and FOREIGN (another tree)."""
    source = import_source(tmp_path, busybox_rootfs)
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hello").write_text("only in the foreign image\n")
    run(HULL, "--root", str(tmp_path / "src"), "image", "import", str(tree), "localhost/other:1")
    native = add_platform_manifest(source, source.resolve(SOURCE), HOST)
    foreign = add_platform_manifest(source, source.resolve("localhost/other:1"), FOREIGN)
    raw = im.encode(im.index_json(im.Index([foreign, native], mt.INDEX)))  # the host's is not first
    info = source.write(raw)
    top = Descriptor(mt.INDEX, info.digest, info.size)
    source.set_ref("multi", top)
    return source, top, [foreign, native]


def tree_digests(store: LayoutStore, top: Descriptor, children: list[Descriptor]) -> dict[str, bytes]:
    """Every blob of the index (the index, each manifest, config and layer) and its bytes in ``store``."""
    out = {top.digest: store.read(top.digest)}
    for child in children:
        mdesc, config, layers = graph(store, child)
        for digest in (mdesc, config, *layers):
            out[digest] = store.read(digest, 64 << 20)
    return out


def test_pull_all_platforms_keeps_the_index_digest_for_digest(
    tmp_path: Path, registry: object, busybox_rootfs: Path
) -> None:
    source, top, children = build_index(tmp_path, busybox_rootfs)
    ref = f"{registry.host}/multi/busybox:1"  # type: ignore[attr-defined]
    skopeo_push(source, "multi", ref, "--all")
    pushed = tree_digests(source, top, children)

    hull, store = hull_root(tmp_path)
    # A single-platform pull first: its blobs are not downloaded again (as a resumed pull's).
    single = pull(store, parse(ref))
    assert single.descriptor.digest == children[1].digest
    run(*hull, "pull", "-q", "--all-platforms", ref)

    named = store.resolve(ref)
    assert (named.digest, named.media_type) == (top.digest, mt.INDEX)  # the index, not a platform's manifest
    kept = tree_digests(store, named, children)
    assert kept == pushed  # every manifest, config and layer of both platforms, same bytes
    raw = run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout.encode()
    assert store.read(named.digest) == raw
    assert run("skopeo", "inspect", "--raw", f"oci:{store.root}:{ref}").stdout.encode() == raw

    # inspect shows the index's digest and the host's image; unpack chooses the host's platform.
    inspected = json.loads(run(*hull, "image", "inspect", ref).stdout)[0]
    assert inspected["Digest"] == top.digest and inspected["Architecture"] == HOST
    run(*hull, "unpack", ref, str(tmp_path / "bundle"))
    assert (tmp_path / "bundle" / "rootfs" / "bin" / "busybox").exists()
    assert not (tmp_path / "bundle" / "rootfs" / "etc" / "hello").exists()
    foreign_config = store.config(store.manifest(named, pf.Platform(FOREIGN, "linux"))[1])
    assert foreign_config.architecture == FOREIGN

    # Pulled again: every blob is there, nothing is fetched.
    again = pull(store, parse(ref), all_platforms=True)
    assert again.fetched == [] and len(again.skipped) == len(pushed) - 3  # all but the index and 2 manifests

    # Pushed on by hull: the same index, each platform's manifest under its digest.
    other = f"{registry.host}/again/busybox:2"  # type: ignore[attr-defined]
    run(*hull, "push", ref, other)
    assert run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{other}").stdout.encode() == raw
    foreign_raw = run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{other[:-2]}@{children[0].digest}")
    assert foreign_raw.stdout.encode() == pushed[children[0].digest]


def test_copy_all_between_the_registry_and_layouts(tmp_path: Path, registry: object, busybox_rootfs: Path) -> None:
    source, top, children = build_index(tmp_path, busybox_rootfs)
    host = registry.host  # type: ignore[attr-defined]
    pushed = tree_digests(source, top, children)
    hull, store = hull_root(tmp_path)

    # hull's layout -> the registry, then the registry -> an OCI directory, both whole.
    run(*hull, "image", "copy", "-q", "--all", f"oci:{source.root}:multi", f"docker://{host}/copied/multi:1")
    raw = run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{host}/copied/multi:1").stdout
    assert raw.encode() == pushed[top.digest]
    for child in children:  # each platform's manifest is in the registry under its digest
        by_digest = f"docker://{host}/copied/multi@{child.digest}"
        assert (
            run("skopeo", "inspect", "--raw", "--tls-verify=false", by_digest).stdout.encode() == pushed[child.digest]
        )

    out = tmp_path / "layout"
    assert cmd_copy(store, f"docker://{host}/copied/multi:1", f"oci:{out}:v1", "", True, True) == 0
    layout = LayoutStore(str(out), create=False)
    assert layout.resolve("v1").digest == top.digest
    assert tree_digests(layout, layout.resolve("v1"), children) == pushed
    # skopeo reads the result as the index it pushes: every platform's image, unchanged.
    back = tmp_path / "back"
    run("skopeo", "copy", "-q", "--all", f"oci:{out}:v1", f"oci:{back}:x")
    copied = LayoutStore(str(back), create=False)
    assert tree_digests(copied, copied.resolve("x"), children) == pushed

    # Into hull's own store, by name: the index too.
    assert cmd_copy(store, f"docker://{host}/copied/multi:1", "localhost/multi:copied", "", True, True) == 0
    assert store.resolve("localhost/multi:copied").digest == top.digest
    assert tree_digests(store, store.resolve("localhost/multi:copied"), children) == pushed

    # Without --all, the host's platform only, as skopeo copy.
    assert cmd_copy(store, f"docker://{host}/copied/multi:1", f"oci:{out}:one", "", True) == 0
    assert layout.resolve("one").digest == children[1].digest


def test_copy_all_into_archives(tmp_path: Path, busybox_rootfs: Path) -> None:
    """An OCI archive holds the whole index (skopeo reads it back unchanged); a docker archive cannot
    hold an index, so --all into one is refused in one line, as skopeo refuses it."""
    from hull.cli.image import CommandError
    from hull.distribution.copy import CopyError

    source, top, children = build_index(tmp_path, busybox_rootfs)
    pushed = tree_digests(source, top, children)
    _hull, store = hull_root(tmp_path)
    archive = tmp_path / "multi.tar"
    assert cmd_copy(store, f"oci:{source.root}:multi", f"oci-archive:{archive}:v1", "", True, True) == 0
    raw = run("skopeo", "inspect", "--raw", f"oci-archive:{archive}:v1").stdout.encode()
    assert raw == pushed[top.digest]
    back = tmp_path / "back"
    run("skopeo", "copy", "-q", "--all", f"oci-archive:{archive}:v1", f"oci:{back}:x")
    copied = LayoutStore(str(back), create=False)
    assert tree_digests(copied, copied.resolve("x"), children) == pushed

    with pytest.raises(CopyError, match="a docker archive holds one platform's image"):
        cmd_copy(store, f"oci:{source.root}:multi", f"docker-archive:{tmp_path / 'd.tar'}", "", True, True)
    assert not (tmp_path / "d.tar").exists()
    with pytest.raises(CommandError, match="--all and --platform"):
        cmd_copy(store, f"oci:{source.root}:multi", f"oci:{tmp_path / 'x'}", "linux/arm64", True, True)
