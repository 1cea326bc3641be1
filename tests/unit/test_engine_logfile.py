"""The json-file log: byte-exact records as moby's jsonfilelog writes them, rotation, docker logs' reading."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hull.engine.logfile import (
    PARTIAL_SIZE,
    LogEntry,
    LogWriter,
    follow,
    format_entry,
    format_time,
    parse_since,
    read_logs,
)

# 2026-11-26T10:00:00Z in nanoseconds, computed independently of the module under test.
T0 = int(datetime(2026, 11, 26, 10, 0, tzinfo=UTC).timestamp()) * 1_000_000_000
SEC = 1_000_000_000


def records(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_a_line_is_one_record_exactly_as_docker_writes_it(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    with LogWriter(str(log)) as w:
        w.write("stdout", b"hello world\n", T0 + 123_456_789)
        w.write("stderr", b"oops\n", T0)
    assert records(log) == [
        b'{"log":"hello world\\n","stream":"stdout","time":"2026-11-26T10:00:00.123456789Z"}\n',
        b'{"log":"oops\\n","stream":"stderr","time":"2026-11-26T10:00:00Z"}\n',
    ]


@pytest.mark.parametrize(
    ("frac", "text"),
    [(0, "10:00:00Z"), (500_000_000, "10:00:00.5Z"), (1_000, "10:00:00.000001Z"), (120, "10:00:00.00000012Z")],
)
def test_time_is_rfc3339nano_with_trailing_zeros_trimmed(frac: int, text: str) -> None:
    assert format_time(T0 + frac) == "2026-11-26T" + text


def test_escaping_follows_docker_html_safe_encoder(tmp_path: Path) -> None:
    # moby's ffjsonWriteJSONBytesAsString: <, >, & as \u003c \u003e \u0026; a tab is \u0009 (no
    # short form); DEL and non-ASCII characters stay raw; \r and \n have short forms.
    log = tmp_path / "ctr.log"
    with LogWriter(str(log)) as w:
        w.write("stdout", '<a href="x">&\t\\\x01\x7f caf\u00e9 \u2028\r\n'.encode(), T0)
    expected = (
        '{"log":"\\u003ca href=\\"x\\"\\u003e\\u0026\\u0009\\\\\\u0001\x7f caf\u00e9 \\u2028\\r\\n",'
        '"stream":"stdout","time":"2026-11-26T10:00:00Z"}\n'
    ).encode()
    assert log.read_bytes() == expected


def test_each_invalid_utf8_byte_becomes_one_escaped_replacement(tmp_path: Path) -> None:
    # Go's utf8.DecodeRune consumes one byte per error: a lone 0xff is one \ufffd, a truncated
    # 3-byte sequence (e2 82) two, a UTF-8-encoded surrogate (ed a0 80) three.
    log = tmp_path / "ctr.log"
    with LogWriter(str(log)) as w:
        w.write("stdout", b"a\xffb\xe2\x82c\xed\xa0\x80d\n", T0)
    assert log.read_bytes() == (
        b'{"log":"a\\ufffdb\\ufffd\\ufffdc\\ufffd\\ufffd\\ufffdd\\n","stream":"stdout","time":"2026-11-26T10:00:00Z"}\n'
    )
    (entry,) = read_logs(str(log))
    assert entry.line == "a\ufffdb\ufffd\ufffdc\ufffd\ufffd\ufffdd\n".encode()


def test_an_unterminated_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    w = LogWriter(str(log))
    w.write("stdout", b"first\nsec", T0)
    w.write("stderr", b"err\n", T0 + SEC)  # streams are buffered apart
    w.write("stdout", b"ond\n", T0 + 2 * SEC)
    assert [(e.stream, e.line, e.time_ns) for e in read_logs(str(log))] == [
        ("stdout", b"first\n", T0),
        ("stderr", b"err\n", T0 + SEC),
        ("stdout", b"second\n", T0 + 2 * SEC),  # stamped when the line was complete
    ]
    w.write("stdout", b"no newline", T0 + 3 * SEC)
    # the stream ended: docker writes the rest as a partial record, without "\n", stamped then
    w.flush_partial(T0 + 4 * SEC)
    w.close()
    assert records(log)[-1] == b'{"log":"no newline","stream":"stdout","time":"2026-11-26T10:00:04Z"}\n'


def test_a_long_line_is_logged_in_16k_partial_pieces_sharing_the_first_timestamp(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    with LogWriter(str(log)) as w:
        w.write("stdout", b"x" * 20000 + b"\n", T0)
        w.write("stdout", b"y" * PARTIAL_SIZE, T0 + SEC)
        w.write("stdout", b"z\n", T0 + 2 * SEC)
    got = [(e.line, e.time_ns) for e in read_logs(str(log))]
    assert got == [
        (b"x" * 16384, T0),
        (b"x" * (20000 - 16384) + b"\n", T0),
        (b"y" * 16384, T0 + SEC),
        (b"z\n", T0 + SEC),  # the last piece of a partial line carries the first piece's time
    ]
    # docker logs prints the pieces back to back: the line is whole again.
    assert b"".join(format_entry(e) for e in read_logs(str(log))) == b"x" * 20000 + b"\n" + b"y" * 16384 + b"z\n"


def test_rotation_keeps_max_file_files_of_about_max_size(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    lines = [f"line {i:03d}\n".encode() for i in range(60)]
    with LogWriter(str(log), max_size=300, max_file=3) as w:
        for i, line in enumerate(lines):
            w.write("stdout", line, T0 + i * SEC)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["ctr.log", "ctr.log.1", "ctr.log.2"]
    record = len(records(log)[0])
    for name in ("ctr.log.1", "ctr.log.2"):
        # docker rotates before the write that finds the file at or over max-size
        assert 300 <= (tmp_path / name).stat().st_size < 300 + record
    got = [e.line for e in read_logs(str(log), max_file=3)]
    assert got == lines[-len(got) :]  # the newest entries, in order, without gaps
    assert 2 * 300 // record < len(got) < len(lines)
    # read with max-file 1, only the current file counts, as docker does
    assert [e.line for e in read_logs(str(log))] == [json_line for json_line in got[-len(records(log)) :]]


def test_max_file_one_starts_the_file_afresh(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    with LogWriter(str(log), max_size=200, max_file=1) as w:
        for i in range(20):
            w.write("stdout", f"{i}\n".encode(), T0)
    assert [p.name for p in tmp_path.iterdir()] == ["ctr.log"]
    got = [e.line for e in read_logs(str(log))]
    assert got[-1] == b"19\n" and b"0\n" not in got
    assert [int(x) for x in got] == list(range(20 - len(got), 20))


def test_a_reopened_log_appends_and_counts_its_size(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    with LogWriter(str(log)) as w:
        w.write("stdout", b"a\n", T0)
    with LogWriter(str(log), max_size=10, max_file=2) as w:
        w.write("stdout", b"b\n", T0)  # the existing file is already over 10 bytes: rotated first
    assert [e.line for e in read_logs(str(log), max_file=2)] == [b"a\n", b"b\n"]
    assert [e.line for e in read_logs(str(log) + ".1")] == [b"a\n"]


def test_invalid_options_are_refused_in_docker_words(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max-file cannot be less than 1"):
        LogWriter(str(tmp_path / "l"), max_file=0)


def _ten(tmp_path: Path) -> str:
    log = tmp_path / "ctr.log"
    with LogWriter(str(log)) as w:
        for i in range(1, 11):
            w.write("stdout" if i % 2 else "stderr", f"{i}\n".encode(), T0 + i * SEC)
    return str(log)


def _nums(entries: object) -> list[int]:
    return [int(e.line) for e in entries]  # type: ignore[attr-defined]


def test_tail_since_and_until_as_docker_logs(tmp_path: Path) -> None:
    log = _ten(tmp_path)
    assert _nums(read_logs(log)) == list(range(1, 11))
    assert _nums(read_logs(log, tail=3)) == [8, 9, 10]
    assert _nums(read_logs(log, tail=0)) == []
    assert _nums(read_logs(log, tail=-1)) == list(range(1, 11))
    assert _nums(read_logs(log, tail=50)) == list(range(1, 11))
    assert _nums(read_logs(log, since_ns=T0 + 5 * SEC)) == [5, 6, 7, 8, 9, 10]
    assert _nums(read_logs(log, until_ns=T0 + 7 * SEC)) == [1, 2, 3, 4, 5, 6, 7]
    assert _nums(read_logs(log, since_ns=T0 + 3 * SEC, until_ns=T0 + 4 * SEC + 1)) == [3, 4]
    # the tail is cut first, then the time window (moby's order)
    assert _nums(read_logs(log, tail=3, since_ns=T0 + 9 * SEC)) == [9, 10]
    assert _nums(read_logs(log, tail=3, since_ns=T0 + 2 * SEC)) == [8, 9, 10]


def test_since_is_only_compared_until_the_first_entry_passes(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    with LogWriter(str(log)) as w:
        for n, t in ((1, 1), (5, 5), (3, 3), (7, 7)):
            w.write("stdout", f"{n}\n".encode(), T0 + t * SEC)
    assert _nums(read_logs(str(log), since_ns=T0 + 4 * SEC)) == [5, 3, 7]


def test_damaged_and_unfinished_records_are_skipped(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    with LogWriter(str(log)) as w:
        w.write("stdout", b"1\n", T0)
    with open(log, "ab") as f:
        f.write(b"garbage\n")
    with LogWriter(str(log)) as w:
        w.write("stdout", b"2\n", T0)
    with open(log, "ab") as f:
        f.write(b'{"log":"3\\n","stream":"std')  # a record the writer has not finished
    assert _nums(read_logs(str(log))) == [1, 2]


def test_a_missing_log_reads_as_empty(tmp_path: Path) -> None:
    assert list(read_logs(str(tmp_path / "none.log"), max_file=3)) == []


def test_format_entry_with_timestamps_uses_nine_fraction_digits() -> None:
    entry = LogEntry("stdout", b"hi\n", T0 + 500_000_000)
    assert format_entry(entry) == b"hi\n"
    assert format_entry(entry, timestamps=True) == b"2026-11-26T10:00:00.500000000Z hi\n"
    assert format_entry(LogEntry("stdout", b"x\n", T0), True) == b"2026-11-26T10:00:00.000000000Z x\n"


def test_follow_reads_what_is_appended_across_rotations_without_loss(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    w = LogWriter(str(log), max_size=400, max_file=4)
    for i in range(5):
        w.write("stdout", f"{i}\n".encode(), T0)
    done = threading.Event()

    def writer() -> None:
        for i in range(5, 200):
            w.write("stdout", f"{i}\n".encode(), T0 + i)
            if i % 5 == 0:
                time.sleep(0.005)
        w.close()
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    got = _nums(follow(str(log), stop=done.is_set, max_file=4, interval=0.002))
    thread.join()
    assert got == list(range(200))  # every entry once, in order, though the file rotated many times
    assert len(list(read_logs(str(log), max_file=4))) < 100  # it did rotate


def test_follow_starts_with_the_tail_and_ends_at_until(tmp_path: Path) -> None:
    log = _ten(tmp_path)
    assert _nums(follow(log, stop=lambda: True, tail=2)) == [9, 10]
    calls = []

    def never() -> bool:
        calls.append(1)
        return False

    # an entry after --until ends a follow even if the container keeps running
    assert _nums(follow(log, stop=never, until_ns=T0 + 3 * SEC)) == [1, 2, 3]


def test_follow_waits_for_a_log_that_does_not_exist_yet(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    done = threading.Event()

    def later() -> None:
        time.sleep(0.05)
        with LogWriter(str(log)) as w:
            w.write("stdout", b"late\n", T0)
        done.set()

    thread = threading.Thread(target=later)
    thread.start()
    got = [e.line for e in follow(str(log), stop=done.is_set, interval=0.01)]
    thread.join()
    assert got == [b"late\n"]


NOW = T0 + 123_456_789


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10m", T0 - 600 * SEC),  # relative: before now, in whole seconds
        ("1h30m", T0 - 5400 * SEC),
        ("1.5s", T0 - 2 * SEC),  # now - 1.5s = T0 - 1.38s: Unix() rounds down
        ("2026-11-26T10:00:00Z", T0),
        ("2026-11-26T10:00:00.25Z", T0 + 250_000_000),
        ("2026-11-26T11:00:00+01:00", T0),
        ("2026-11-26T10:00Z", T0),
        ("1700000000", 1_700_000_000 * SEC),
        ("1700000000.5", 1_700_000_000 * SEC + 500_000_000),
        ("0", 0),
    ],
)
def test_parse_since_reads_values_as_the_docker_client(value: str, expected: int) -> None:
    assert parse_since(value, now_ns=NOW) == expected


def test_parse_since_without_a_zone_is_local_time() -> None:
    offset = time.localtime().tm_gmtoff * SEC
    assert parse_since("2026-11-26T10:00:00", now_ns=NOW) == T0 - offset
    assert parse_since("2026-11-26", now_ns=NOW) == T0 - 10 * 3600 * SEC - offset


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "10 minutes", "12:00"])
def test_parse_since_refuses_what_docker_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_since(value, now_ns=NOW)


def test_files_are_not_world_readable(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        LogWriter(str(tmp_path / "ctr.log")).close()
    finally:
        os.umask(old)
    assert (tmp_path / "ctr.log").stat().st_mode & 0o777 == 0o640


def test_follow_catches_up_over_several_rotations_between_polls(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    w = LogWriter(str(log), max_size=200, max_file=100)
    w.write("stdout", b"0\n", T0)
    polled = threading.Event()
    done = threading.Event()

    def writer() -> None:
        polled.wait(5)
        for i in range(1, 300):  # dozens of rotations while the follower sleeps
            w.write("stdout", f"{i}\n".encode(), T0 + i)
        w.close()
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()

    def stop() -> bool:
        polled.set()
        return done.is_set()

    got = _nums(follow(str(log), stop=stop, max_file=100, interval=0.2))
    thread.join()
    assert len(list(tmp_path.iterdir())) > 20
    assert got == list(range(300))
