"""A real service in a real distribution: the debootstrap Debian image with python3 under the engine.

The image is the cached debootstrap tar (the ``debian_image`` fixture),
imported with ``hull image import`` as a user would. ``python3 -m
http.server`` runs detached with ``--network host`` and answers the host's
HTTP client; ``hull stop`` ends it (through ``--init``: python as PID 1 would
ignore SIGTERM, as under docker) and ``hull rm`` leaves nothing.
"""

from __future__ import annotations

import socket
import time
import urllib.request

from tests.integration import engine_support
from tests.integration.engine_support import Engine

engine = engine_support.engine  # the fixture

DEBIAN = "localhost/debian-python:bookworm"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str, timeout: float = 15) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body: bytes = response.read()
                return body
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_http_server_in_debian_answers_the_host(engine: Engine, debian_image: str) -> None:
    engine("image", "import", debian_image, DEBIAN, "-c", 'CMD ["python3"]', timeout=300)
    proc = engine("run", "--rm", DEBIAN, "sh", "-c", ". /etc/os-release; echo $VERSION_CODENAME; python3 -V")
    assert proc.stdout.splitlines()[0] == "bookworm" and proc.stdout.splitlines()[1].startswith("Python 3.11")
    # the image's CMD
    proc = engine("run", "--rm", "-i", DEBIAN, input="print(6 * 7)\n", stdin=None)
    assert proc.stdout == "42\n"

    port = _free_port()
    cid = engine("run", "-d", "--name", "web", "--network", "host", "--init", "-w", "/etc", DEBIAN,
                 "python3", "-m", "http.server", str(port), "--bind", "127.0.0.1").stdout.strip()  # fmt: skip
    body = _get(f"http://127.0.0.1:{port}/os-release")
    assert b"VERSION_CODENAME=bookworm" in body
    assert engine("ps", "--format", "{{.Names}} {{.Status}}").stdout.startswith("web Up ")
    logs = engine("logs", "web")
    assert '"GET /os-release HTTP/1.1" 200' in logs.stderr  # http.server logs requests on stderr

    start = time.monotonic()
    engine("stop", "web")
    assert time.monotonic() - start < 5  # tini passed SIGTERM on: no 10 s wait for SIGKILL
    doc = engine.inspect("web")
    assert (doc["State"]["Status"], doc["State"]["ExitCode"]) == ("exited", 143)
    try:
        _get(f"http://127.0.0.1:{port}/", timeout=0)
        raise AssertionError("the server still answers after hull stop")
    except OSError:
        pass
    engine("rm", "web")
    assert engine.ids() == [] and cid not in engine("ps", "-a", "-q", "--no-trunc").stdout
    engine.assert_no_leaks()
