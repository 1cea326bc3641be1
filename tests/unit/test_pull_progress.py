"""Progress reporting for pulls (issue 5 section 4): plain lines in logs, bars on a terminal, nothing when quiet."""

from __future__ import annotations

import io
import threading

from hull.distribution import progress
from hull.distribution.progress import LineReporter, RichReporter, Silent, reporter_for

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_name_the_short_digest_and_size_then_done() -> None:
    out = io.StringIO()
    r = LineReporter(out)
    r.started(DIGEST, 12_345_678)
    r.advanced(DIGEST, 1 << 20)
    r.finished(DIGEST)
    r.skipped(OTHER)
    r.close()
    assert out.getvalue().splitlines() == [
        "Copying blob sha256:abababababab 12.3 MB",
        "Copying blob sha256:abababababab done",
        "Copying blob sha256:cdcdcdcdcdcd skipped: already exists",
    ]


def test_sizes_in_decimal_units_as_skopeo() -> None:
    assert [progress.human_size(n) for n in (0, 999, 1000, 1_500_000, 2_000_000_000)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "1.5 MB",
        "2.0 GB",
    ]


def test_lines_from_concurrent_downloads_never_interleave() -> None:
    out = io.StringIO()
    r = LineReporter(out)
    digests = [f"sha256:{i:064x}" for i in range(8)]

    def work(d: str) -> None:
        for _ in range(50):
            r.started(d, 999)
            r.finished(d)

    threads = [threading.Thread(target=work, args=(d,)) for d in digests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 8 * 50 * 2
    assert all(line.startswith("Copying blob sha256:") and line.endswith(("999 B", "done")) for line in lines)


def test_quiet_says_nothing_even_on_a_terminal() -> None:
    out = FakeTTY()
    r = reporter_for(True, out)
    assert isinstance(r, Silent)
    r.started(DIGEST, 10)
    r.advanced(DIGEST, 10)
    r.finished(DIGEST)
    r.skipped(OTHER)
    r.close()
    assert out.getvalue() == ""


def test_a_pipe_gets_lines_and_a_terminal_gets_bars() -> None:
    assert isinstance(reporter_for(False, io.StringIO()), LineReporter)
    bars = reporter_for(False, FakeTTY())
    try:
        assert isinstance(bars, RichReporter)
    finally:
        bars.close()


def test_bars_show_each_blob_and_end_done() -> None:
    out = FakeTTY()
    r = RichReporter(out)
    r.started(DIGEST, 3 << 20)
    for _ in range(3):
        r.advanced(DIGEST, 1 << 20)
    r.finished(DIGEST)
    r.skipped(OTHER)
    r.close()
    text = out.getvalue()
    assert "\x1b[" in text  # drawn with terminal escapes, not lines
    assert "sha256:abababababab done" in text
    assert "sha256:cdcdcdcdcdcd skipped: already exists" in text
    assert "3.1/3.1 MB" in text  # rich's DownloadColumn: decimal MB, complete
    assert max(len(line) for line in text.replace("\r", "\n").splitlines()) < 200  # one line per blob
