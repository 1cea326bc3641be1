"""The Debian image for end-to-end engine tests: a debootstrap'ed bookworm with python3 (cached in
/var/cache/hull-tests), imported with ``hull image import``, unpacked with ``hull unpack`` and run by
hull-runtime, as a plain program and as a service (python3 -m http.server) answering from the host."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hull.image.store import LayoutStore
from hull.testing.debian import DEBIAN_REF, import_debian
from tests.conftest import Runtime

pytestmark = pytest.mark.usefixtures("root_required")

HULL = os.path.join(os.path.dirname(sys.executable), "hull")


def hull(root: Path, *args: str) -> str:
    proc = subprocess.run(
        [HULL, "--root", str(root), *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, f"hull {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
    return proc.stdout


def set_args(bundle: Path, args: list[str], host_network: bool = False) -> None:
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = args
    if host_network:
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"]
    (bundle / "config.json").write_text(json.dumps(config))


def test_cli_import_unpack_and_run_python(tmp_path: Path, debian_image: str, runtime: Runtime) -> None:
    root = tmp_path / "hull"
    image_id = hull(root, "image", "import", "-c", 'CMD ["python3"]', debian_image, DEBIAN_REF).strip()
    assert image_id.startswith("sha256:") or len(image_id) >= 12
    bundle = tmp_path / "bundle"
    hull(root, "unpack", DEBIAN_REF, str(bundle))
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["python3"]
    assert (bundle / "rootfs" / "etc" / "debian_version").read_text().startswith("12.")
    set_args(bundle, ["python3", "-c", "print(1+1)"])
    out = runtime("run", "--bundle", str(bundle), "deb1", timeout=60)
    assert out.stdout == "2\n"


def test_import_debian_keeps_the_tar_as_the_layer(tmp_path: Path, debian_image: str) -> None:
    store = LayoutStore(str(tmp_path / "images"))
    assert import_debian(store, debian_image) == DEBIAN_REF
    _mdesc, manifest = store.manifest(store.resolve(DEBIAN_REF))
    digest = hashlib.sha256()
    with open(debian_image, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    assert [layer.digest for layer in manifest.layers] == [f"sha256:{digest.hexdigest()}"]
    assert json.loads(store.read(manifest.config.digest))["config"]["Cmd"] == ["python3"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_http_server_answers_from_the_container(tmp_path: Path, debian_image: str, runtime: Runtime) -> None:
    store = LayoutStore(str(tmp_path / "hull" / "images"))
    import_debian(store, debian_image)
    bundle = tmp_path / "bundle"
    hull(tmp_path / "hull", "unpack", DEBIAN_REF, str(bundle))
    (bundle / "rootfs" / "srv" / "index.html").write_text("served by python3 in a hull container\n")
    port = _free_port()
    set_args(bundle, ["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", "/srv", str(port)], True)
    runtime("create", "--bundle", str(bundle), "web1")
    try:
        runtime("start", "web1")
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2) as reply:
                    body = reply.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert body == "served by python3 in a hull container\n"
    finally:
        runtime("kill", "web1", "KILL", check=False)
        runtime("delete", "--force", "web1", check=False)
