"""What a user sees of retries: one line on stderr per re-send (silenced by -q), and podman's
``--retry N`` / ``--retry-delay DURATION`` on pull, push and copy, against a small loopback server
that answers 503 as a registry restarting would."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hull.cli import main as hull
from hull.cli.duration import DurationError, parse_duration
from hull.distribution import client as _client
from hull.distribution.client import Registry, Retry


class Server:
    """Answers request ``n`` (from 0) with ``status(n)``; keeps each request's path."""

    def __init__(self, status: Callable[[int], int]) -> None:
        self.paths: list[str] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                n = len(outer.paths)
                outer.paths.append(self.path)
                code = status(n)
                body = b"{}" if code == 200 else b'{"errors":[{"code":"UNAVAILABLE","message":"restarting"}]}'
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[int], int]], Server]]:
    servers: list[Server] = []

    def start(status: Callable[[int], int]) -> Server:
        servers.append(Server(status))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture(autouse=True)
def _default_retry_restored() -> Iterator[None]:
    # The CLI sets the process's default policy; later tests must get Retry() again.
    yield
    _client.set_default_retry(None)


def test_a_503_answered_once_is_logged_as_one_line_then_succeeds(
    serve: Callable[[Callable[[int], int]], Server],
) -> None:
    server = serve(lambda n: 503 if n == 0 else 200)
    lines: list[str] = []
    slept: list[float] = []
    retry = Retry(attempts=3, backoff=0.5, log=lines.append)
    retry.sleep = slept.append
    registry = Registry(server.host, retry=retry)
    registry.ping()
    assert server.paths == ["/v2/", "/v2/"]
    assert len(slept) == 1
    assert lines == [f"Retrying GET http://{server.host}/v2/ in {slept[0]:.1f} s (retry 1/3): 503 Service Unavailable"]


def test_no_line_without_a_log_and_none_when_nothing_failed(serve: Callable[[Callable[[int], int]], Server]) -> None:
    lines: list[str] = []
    retry = Retry(attempts=3, log=lines.append)
    retry.sleep = lambda _s: None
    Registry(serve(lambda n: 200).host, retry=retry).ping()
    assert lines == []
    quiet = Retry(attempts=3)
    quiet.sleep = lambda _s: None
    Registry(serve(lambda n: 503 if n == 0 else 200).host, retry=quiet).ping()  # no log: nothing to call


def test_the_line_shortens_a_blob_digest() -> None:
    lines: list[str] = []
    digest = "sha256:" + "ab" * 32
    Retry(attempts=5, log=lines.append).note("GET", f"http://r/v2/x/blobs/{digest}", 0.84, 1, "timed out")
    assert lines == ["Retrying GET http://r/v2/x/blobs/sha256:abababababab… in 0.8 s (retry 2/5): timed out"]


def test_a_fixed_delay_replaces_the_backoff() -> None:
    retry = Retry(attempts=5, backoff=0.5, fixed_delay=0.25)
    assert [retry.delay(n) for n in range(5)] == [0.25] * 5


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("1s", 1.0), ("500ms", 0.5), ("1.5s", 1.5), ("1m30s", 90.0), ("2h", 7200.0), ("250us", 250e-6)],
)
def test_go_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "1x", "-1s", "1..5s", ".s", "1s2"])
def test_bad_durations_are_refused_naming_the_text(text: str) -> None:
    with pytest.raises(DurationError, match=f'invalid duration "{text}"'):
        parse_duration(text)


def test_pull_retry_flags_bound_the_resends_and_log_each(
    serve: Callable[[Callable[[int], int]], Server], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(lambda n: 503)
    argv = ["--root", str(tmp_path), "pull", "--retry", "2", "--retry-delay", "100ms", f"{server.host}/x:1"]
    assert hull.main(argv) == hull.EXIT_FAILURE
    assert server.paths == ["/v2/x/manifests/1"] * 3  # the first request and 2 re-sends
    err = capsys.readouterr().err
    url = f"http://{server.host}/v2/x/manifests/1"
    assert f"Retrying GET {url} in 0.1 s (retry 1/2): 503 Service Unavailable\n" in err
    assert f"Retrying GET {url} in 0.1 s (retry 2/2): 503 Service Unavailable\n" in err
    assert err.count("Retrying") == 2
    assert err.rstrip().splitlines()[-1].startswith("Error: ")


def test_quiet_silences_the_retry_lines(
    serve: Callable[[Callable[[int], int]], Server], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(lambda n: 503)
    argv = ["--root", str(tmp_path), "pull", "-q", "--retry=1", "--retry-delay=1ms", f"{server.host}/x:1"]
    assert hull.main(argv) == hull.EXIT_FAILURE
    assert len(server.paths) == 2
    assert "Retrying" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["pull", "--retry", "3", "--retry-delay", "2s", "r/x"],
        ["push", "--retry", "3", "--retry-delay", "2s", "img"],
        ["image", "copy", "--retry", "3", "--retry-delay", "2s", "docker://r/x", "oci:/tmp/d"],
    ],
)
def test_pull_push_and_copy_take_the_retry_flags(argv: list[str]) -> None:
    args = hull._parse(hull.build_parser(), argv)
    assert (args.retry, args.retry_delay) == (3, "2s")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--retry", "x"], "invalid int value: 'x'"),
        (["--retry", "-1"], "--retry -1: must be 0 or more"),
        (["--retry-delay", "5"], '--retry-delay: invalid duration "5"'),
    ],
)
def test_bad_retry_flags_are_usage_errors(
    flags: list[str], message: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hull.main(["--root", str(tmp_path), "pull", *flags, "127.0.0.1:1/x"]) == hull.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and message in err
