"""``hull`` image commands against the field's tools: podman saves that hull loads, hull saves that podman
loads and skopeo inspects (OCI and docker-save archives), umoci reading hull's store, and a bundle from
``hull unpack`` run by hull-runtime. Images come from the test fixtures' busybox rootfs, never a registry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.testing import podman as podman_setup

pytestmark = pytest.mark.usefixtures("root_required")

BIN = os.path.dirname(sys.executable)
HULL = os.path.join(BIN, "hull")
HULL_RUNTIME = os.path.join(BIN, "hull-runtime")
IMAGE = "localhost/busybox:test"


def run(*args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env)
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
    return proc.stdout


class Podman:
    """podman with private storage; the base is short: podman refuses long --runroot paths."""

    def __init__(self, base: Path) -> None:
        self.env = podman_setup.conf_env(base / "containers.conf")
        self.argv = podman_setup.storage_argv(f"{base}/r", f"{base}/rr", f"{base}/t")

    def __call__(self, *args: str) -> str:
        return run(*self.argv, *args, env=self.env)

    def image_id(self, ref: str) -> str:
        return self("image", "inspect", "--format", "{{.Id}}", ref).strip()


@pytest.fixture(scope="module")
def podman(busybox_rootfs: Path) -> Iterator[Podman]:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed (scripts/setup.sh installs it)")
    base = Path(tempfile.mkdtemp(prefix="hp", dir="/tmp"))
    engine = Podman(base)
    with tarfile.open(base / "rootfs.tar", "w") as tar:
        for entry in sorted(busybox_rootfs.iterdir()):
            tar.add(entry, arcname=entry.name)
    engine("import", str(base / "rootfs.tar"), IMAGE)
    yield engine
    subprocess.run([*engine.argv, "system", "reset", "--force"], env=engine.env, capture_output=True, timeout=120)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def hull(tmp_path: Path) -> Iterator[list[str]]:
    yield [HULL, "--root", str(tmp_path / "hull")]


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_hull_loads_podmans_archive_with_the_same_image_id(
    podman: Podman, hull: list[str], tmp_path: Path, fmt: str
) -> None:
    archive = tmp_path / "podman.tar"
    podman("save", "--format", fmt, "-o", str(archive), IMAGE)
    assert run(*hull, "image", "load", "-i", str(archive)) == f"Loaded image: {IMAGE}\n"
    (doc,) = json.loads(run(*hull, "image", "inspect", "busybox:test"))  # podman's short name finds it
    assert doc["Id"] == "sha256:" + podman.image_id(IMAGE)
    assert doc["RepoTags"] == [IMAGE]
    podman_doc = json.loads(podman("image", "inspect", IMAGE))[0]
    assert doc["RootFS"]["Layers"] == podman_doc["RootFS"]["Layers"]
    assert (doc["Os"], doc["Architecture"], doc["Created"]) == ("linux", "amd64", podman_doc["Created"])


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_podman_and_skopeo_read_hulls_archive(podman: Podman, hull: list[str], tmp_path: Path, fmt: str) -> None:
    tar = tmp_path / "rootfs.tar"
    run("tar", "-C", str(podman_rootfs(tmp_path, podman)), "-cf", str(tar), ".")
    image_id = run(*hull, "image", "import", "-c", "CMD [\"/bin/echo\", \"from hull\"]", str(tar),
                   f"localhost/hull-{fmt}:1").strip()  # fmt: skip
    archive = tmp_path / "hull.tar"
    run(*hull, "image", "save", "--format", fmt, "-o", str(archive), f"localhost/hull-{fmt}:1")
    skopeo = json.loads(run("skopeo", "inspect", f"{fmt}:{archive}"))
    config = json.loads(run("skopeo", "inspect", "--config", f"{fmt}:{archive}"))
    (hull_doc,) = json.loads(run(*hull, "image", "inspect", f"localhost/hull-{fmt}:1"))
    assert config["rootfs"]["diff_ids"] == hull_doc["RootFS"]["Layers"]
    assert config["config"]["Cmd"] == ["/bin/echo", "from hull"]
    assert skopeo["Architecture"] == "amd64" and skopeo["Os"] == "linux"
    out = podman("load", "-i", str(archive))
    assert f"Loaded image: localhost/hull-{fmt}:1" in out
    assert "sha256:" + podman.image_id(f"localhost/hull-{fmt}:1") == image_id
    # podman runs it (with runc: this checks hull's image, not hull-runtime)
    assert podman("--runtime", "/usr/bin/runc", "run", "--rm", "--network", "none", f"localhost/hull-{fmt}:1") == (
        "from hull\n"
    )


def podman_rootfs(tmp_path: Path, podman: Podman) -> Path:
    """The rootfs of podman's image, exported through podman save and unpacked by hull."""
    archive = tmp_path / "p.tar"
    podman("save", "--format", "oci-archive", "-o", str(archive), IMAGE)
    root = [HULL, "--root", str(tmp_path / "scratch")]
    run(*root, "load", "-i", str(archive))
    run(*root, "unpack", IMAGE, str(tmp_path / "scratch-bundle"))
    return tmp_path / "scratch-bundle" / "rootfs"


def test_unpacked_bundle_runs_under_hull_runtime(hull: list[str], busybox_rootfs: Path, tmp_path: Path) -> None:
    run(*hull, "image", "import", "-c", "CMD [\"/bin/sh\", \"-c\", \"cat /etc/hostname; echo $A\"]",
        "-c", "ENV A=from-env", str(busybox_rootfs), "box")  # fmt: skip
    bundle = tmp_path / "bundle"
    run(*hull, "unpack", "box", str(bundle))
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["/bin/sh", "-c", "cat /etc/hostname; echo $A"]
    assert (bundle / "rootfs" / "bin" / "busybox").stat().st_size == (busybox_rootfs / "bin" / "busybox").stat().st_size
    (bundle / "rootfs" / "etc" / "hostname").write_text("unpacked\n")
    with open(tmp_path / "out", "w") as out:
        code = subprocess.run(
            [HULL_RUNTIME, "--root", str(tmp_path / "state"), "run", "--bundle", str(bundle), "c1"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=60,
        ).returncode  # fmt: skip
    assert code == 0, (tmp_path / "out").read_text()
    assert (tmp_path / "out").read_text() == "unpacked\nfrom-env\n"
    # a bundle that exists is refused, one line
    proc = subprocess.run([*hull, "unpack", "box", str(bundle)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "already exists" in proc.stderr


def test_umoci_and_skopeo_read_hulls_store(hull: list[str], busybox_rootfs: Path, tmp_path: Path) -> None:
    image_id = run(*hull, "import", str(busybox_rootfs), "box:1").strip()
    run(*hull, "tag", "box:1", "box:2")
    layout = tmp_path / "hull" / "images"
    assert sorted(run("umoci", "ls", "--layout", str(layout)).split()) == ["box:1", "box:2"]
    bundle = tmp_path / "umoci-bundle"
    run("umoci", "unpack", "--image", f"{layout}:box:1", str(bundle))
    assert (bundle / "rootfs" / "bin" / "busybox").is_file()
    config = json.loads(run("skopeo", "inspect", "--config", f"oci:{layout}:box:2"))
    assert config["rootfs"]["diff_ids"] == json.loads(run(*hull, "image", "inspect", image_id))[0]["RootFS"]["Layers"]
