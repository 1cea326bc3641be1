"""The built-in image ``localhost/busybox``: made offline from the host's busybox-static, reproducible,
listed by ``hull images``, unpacked by ``hull unpack`` on a fresh store and run by hull-runtime, and safe
to build from two processes at once."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hull.image.builtin import BUILTIN_REF, ensure_builtin, find_busybox
from hull.image.store import LayoutStore
from tests.conftest import Runtime

pytestmark = pytest.mark.usefixtures("root_required")

HULL = os.path.join(os.path.dirname(sys.executable), "hull")


def hull(root: Path, *args: str) -> str:
    proc = subprocess.run(
        [HULL, "--root", str(root), *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, f"hull {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
    return proc.stdout


def digests(store: LayoutStore) -> tuple[str, str, list[str]]:
    desc = store.resolve(BUILTIN_REF)
    _mdesc, manifest = store.manifest(desc)
    return desc.digest, manifest.config.digest, [layer.digest for layer in manifest.layers]


def test_built_twice_gives_the_same_digests(tmp_path: Path) -> None:
    a = LayoutStore(str(tmp_path / "a"))
    b = LayoutStore(str(tmp_path / "b"))
    started = time.monotonic()
    assert ensure_builtin(a, "localhost/busybox") is True
    took = time.monotonic() - started
    assert ensure_builtin(b, "localhost/busybox:latest") is True
    assert digests(a) == digests(b)
    assert ensure_builtin(a, "localhost/busybox") is False  # there already: nothing rebuilt
    assert took < 2, f"building the built-in image took {took:.2f}s"


def test_only_the_localhost_name_builds_it(tmp_path: Path) -> None:
    store = LayoutStore(str(tmp_path / "s"))
    for ref in ("busybox", "docker.io/library/busybox", "localhost/busybox:1.36", "localhost/other", "Bad Name"):
        assert ensure_builtin(store, ref) is False
    assert store.images() == []


def test_image_content_and_config(tmp_path: Path) -> None:
    store = LayoutStore(str(tmp_path / "s"))
    ensure_builtin(store, "localhost/busybox")
    _mdesc, manifest = store.manifest(store.resolve(BUILTIN_REF))
    config = store.config(manifest)
    assert len(manifest.layers) == 1
    doc = json.loads(store.read(manifest.config.digest))
    assert doc["config"]["Cmd"] == ["sh"]
    assert doc["config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert doc["os"] == "linux"
    assert doc["architecture"] == {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    assert config.rootfs.diff_ids and len(config.rootfs.diff_ids) == 1
    # The layer as GNU tar lists it: owners 0/0, applet links, /tmp 1777, one mtime for all.
    blob = store.blob_path(manifest.layers[0].digest)
    listing = subprocess.run(
        ["tar", "-tvzf", blob, "--numeric-owner", "--full-time"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    entries = {line.split()[5]: line.split() for line in listing}
    assert entries["bin/sh"][0].startswith("l") and entries["bin/sh"][-1] == "busybox"
    assert entries["tmp/"][0] == "drwxrwxrwt"
    assert entries["bin/busybox"][2] == str(os.path.getsize(find_busybox()))
    assert {fields[1] for fields in entries.values()} == {"0/0"}
    assert len({(fields[3], fields[4]) for fields in entries.values()}) == 1
    assert "etc/passwd" in entries and "etc/group" in entries and "proc/" in entries


def test_hull_unpack_on_a_fresh_store_then_run(tmp_path: Path, runtime: Runtime) -> None:
    root = tmp_path / "hull"
    bundle = tmp_path / "bundle"
    hull(root, "unpack", "localhost/busybox", str(bundle))
    listed = hull(root, "images").splitlines()
    assert any(line.split()[:2] == ["localhost/busybox", "latest"] for line in listed), listed
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["echo", "hello from the built-in image"]
    (bundle / "config.json").write_text(json.dumps(config))
    out = runtime("run", "--bundle", str(bundle), "builtin1")
    assert out.stdout == "hello from the built-in image\n"


def test_two_processes_build_at_once(tmp_path: Path) -> None:
    root = tmp_path / "hull"
    code = (
        "import sys; from hull.image.store import LayoutStore; from hull.image.builtin import ensure_builtin;"
        "ensure_builtin(LayoutStore(sys.argv[1]), 'localhost/busybox')"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(root / "images")], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    store = LayoutStore(str(root / "images"))
    assert [d.ref_name for d in store.images()] == [BUILTIN_REF]
    reference = LayoutStore(str(tmp_path / "reference"))
    ensure_builtin(reference, "localhost/busybox")
    assert digests(store) == digests(reference)
    # Every blob the name reaches is there whole; nothing was left in the ingest area.
    manifest_digest, config_digest, layers = digests(store)
    for digest in (manifest_digest, config_digest, *layers):
        with open(store.blob_path(digest), "rb") as f:
            assert f"sha256:{hashlib.file_digest(f, 'sha256').hexdigest()}" == digest
    assert os.listdir(root / "images" / ".hull" / "ingest") == []
    hull(root, "unpack", "localhost/busybox", str(tmp_path / "bundle"))
    assert (tmp_path / "bundle" / "rootfs" / "bin" / "busybox").stat().st_size == os.path.getsize(find_busybox())
