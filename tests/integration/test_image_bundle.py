"""``hull unpack``: an image built from the busybox fixture, unpacked into a bundle that hull-runtime runs, and
compared with ``umoci unpack`` of the same image (rootfs tree and config.json).

The image is written through hull's store and layer writer: layer 1 is the busybox rootfs, layer 2 the changeset
to a modified copy (a file and a directory deleted -> whiteouts, a user and groups added, a setuid file, a hard
link, a device node, a fifo).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hull.image.bundle import unpack_bundle
from hull.image.store import LayoutStore
from hull.oci import image as im
from tests.conftest import Runtime
from tests.unit.test_bundle_from_image import build_image, host_arch

pytestmark = pytest.mark.usefixtures("root_required")


def run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc.stdout


def modified_copy(base: Path, top: Path) -> Path:
    shutil.copytree(base, top, symlinks=True)
    (top / "bin" / "vi").unlink()  # a whiteout for a symlink
    shutil.rmtree(top / "usr" / "sbin")  # a whiteout for a directory
    with open(top / "etc" / "passwd", "a") as f:
        f.write("app:x:1000:1000:app user:/home/app:/bin/sh\n")
    with open(top / "etc" / "group", "a") as f:
        f.write("app:x:1000:\nstaff:x:50:app\n")
    (top / "home" / "app").mkdir(parents=True)
    os.chown(top / "home" / "app", 1000, 1000)
    (top / "message").write_text("hello from the image\n")
    (top / "suid").write_text("#!/bin/sh\n")
    os.chmod(top / "suid", 0o4755)
    os.link(top / "message", top / "message-link")
    os.mknod(top / "dev" / "null2", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mkfifo(top / "fifo", 0o640)
    return top


@pytest.fixture
def image_store(tmp_path: Path, busybox_rootfs: Path) -> LayoutStore:
    top = modified_copy(busybox_rootfs, tmp_path / "top")
    store = LayoutStore(str(tmp_path / "store"))
    ec = im.ExecConfig(
        user="app",
        entrypoint=["/bin/sh", "-c"],
        cmd=["id; cat /message; ls /bin/vi /usr/sbin 2>&1; pwd; echo $HOME $GREETING"],
        env=["GREETING=hi", "PATH=/bin:/usr/bin"],
        working_dir="/home/app",
        exposed_ports=["8080/tcp"],
        labels={"com.example.kind": "test", "org.opencontainers.image.os": "custom"},
        stop_signal="SIGQUIT",
    )
    build_image(store, [(busybox_rootfs, None), (top, busybox_rootfs)], "img", ec, host_arch(),
                created="2024-03-04T05:06:07Z", author="hull tests")  # fmt: skip
    return store


def test_unpacked_bundle_runs(tmp_path: Path, image_store: LayoutStore, runtime: Runtime) -> None:
    bundle = tmp_path / "bundle"
    unpack_bundle(image_store, "img", str(bundle), terminal=False)
    out = runtime("run", "--bundle", str(bundle), "c1", check=False)
    assert out.stdout.splitlines() == [
        "uid=1000(app) gid=1000(app) groups=50(staff)",
        "hello from the image",
        "ls: /bin/vi: No such file or directory",
        "ls: /usr/sbin: No such file or directory",
        "/home/app",
        "/home/app hi",
    ], out.stderr


def tree_of(root: Path) -> dict[str, tuple[Any, ...]]:
    """What a user would compare: names, types and modes, owners, link targets, devices, contents."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            extra: Any = None
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    extra = (hashlib.sha256(f.read()).hexdigest(), st.st_nlink)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = st.st_rdev
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_gid, extra)
    return out


def test_same_rootfs_and_config_as_umoci(tmp_path: Path, image_store: LayoutStore) -> None:
    hull_bundle = tmp_path / "hull"
    config = unpack_bundle(image_store, "img", str(hull_bundle))
    umoci_bundle = tmp_path / "umoci"
    run("umoci", "unpack", "--image", f"{image_store.root}:img", str(umoci_bundle))
    hull_tree = tree_of(hull_bundle / "rootfs")
    assert "bin/vi" not in hull_tree and "usr/sbin" not in hull_tree and "dev/null2" in hull_tree
    assert hull_tree == tree_of(umoci_bundle / "rootfs")

    theirs = json.loads((umoci_bundle / "config.json").read_text())
    for key in ("args", "env", "cwd", "user", "terminal"):
        assert config["process"][key] == theirs["process"][key], key
    assert config["root"]["path"] == theirs["root"]["path"] and not theirs["root"].get("readonly")
    # Where umoci departs from conversion.md: it writes empty annotations for absent fields, and its implicit
    # annotations overwrite Config.Labels, which "MUST take precedence".
    assert theirs["annotations"]["org.opencontainers.image.os"] == "linux"
    assert config["annotations"]["org.opencontainers.image.os"] == "custom"
    umoci_annotations = {k: v for k, v in theirs["annotations"].items() if v}
    umoci_annotations["org.opencontainers.image.os"] = "custom"
    assert config["annotations"] == umoci_annotations
    assert config["annotations"]["org.opencontainers.image.stopSignal"] == "SIGQUIT"
    assert config["annotations"]["org.opencontainers.image.exposedPorts"] == "8080/tcp"
