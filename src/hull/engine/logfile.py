"""docker's json-file log driver: the container's ``ctr.log``, written by the monitor, read by ``hull logs``.

One JSON object per line, byte for byte as moby writes it (daemon/logger/jsonfilelog)::

    {"log":"hello\\n","stream":"stdout","time":"2026-11-26T10:00:00.123456789Z"}

- Output is cut at newlines (logger.Copier). A line without its newline stays buffered; docker writes
  it as a *partial* entry (``log`` without the trailing "\\n") when the stream ends or 16 KiB pile up
  without a newline, and the rest of that line later carries the first part's timestamp.
- ``log`` escapes ``"``, ``\\``, "\\n", "\\r", every other control byte as ``\\u00XX`` (a tab is
  ``\\u0009``), ``<``, ``>``, ``&`` as ``\\u003c`` ``\\u003e`` ``\\u0026``, U+2028/U+2029 as
  ``\\u2028``/``\\u2029``, and each byte of invalid UTF-8 as ``\\ufffd`` (Go's utf8.DecodeRune
  consumes one byte per error); other characters are written raw in UTF-8.
- ``time`` is Go's RFC3339Nano in UTC: nine fraction digits with trailing zeros trimmed, no
  fraction at all on a whole second.
- Rotation (``--log-opt max-size/max-file``): before an entry is written, a file that has reached
  max-size is rotated: ``ctr.log.N-1`` is removed, ``.i`` renamed to ``.i+1``, ``ctr.log`` to ``.1``
  (with max-file 1 the file is simply started afresh). A file may thus exceed max-size by one entry.
- Reading as ``docker logs``: rotated files oldest first, then the current one; ``--tail`` picks
  the last N entries first, then ``--since`` drops entries until the first one at or after it and
  ``--until`` ends the output at the first entry after it (moby's forwarder).
"""

from __future__ import annotations

import codecs
import os
import time
from collections.abc import Callable, Iterator
from io import BufferedReader

# logger.Copier's buffer: a line longer than this is logged in partial pieces of this size.
PARTIAL_SIZE = 16 * 1024

_INVALID = "\ud800"  # a lone surrogate never comes out of a UTF-8 decode: it marks an invalid byte


def _go_replace(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeDecodeError):
        raise err
    # Go's decoder resumes at the next byte after an error: one replacement per byte.
    return _INVALID * (err.end - err.start), err.end


codecs.register_error("hull-go-utf8", _go_replace)

_ESCAPES: dict[int, str] = {c: f"\\u{c:04x}" for c in range(0x20)}
_ESCAPES.update(
    {
        ord("\n"): "\\n",
        ord("\r"): "\\r",
        ord('"'): '\\"',
        ord("\\"): "\\\\",
        ord("<"): "\\u003c",
        ord(">"): "\\u003e",
        ord("&"): "\\u0026",
        0x2028: "\\u2028",
        0x2029: "\\u2029",
        ord(_INVALID): "\\ufffd",
    }
)


def json_string(data: bytes) -> str:
    """``data`` as the JSON string literal docker's json-file driver writes (quotes included)."""
    return '"' + data.decode("utf-8", "hull-go-utf8").translate(_ESCAPES) + '"'


def format_time(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` of a UTC instant given in nanoseconds since the epoch."""
    secs, frac = divmod(ns, 1_000_000_000)
    t = time.gmtime(secs)
    text = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def format_time_fixed(ns: int) -> str:
    """``docker logs -t``'s stamp: RFC3339 with always nine fraction digits (jsonmessage.RFC3339NanoFixed)."""
    secs, frac = divmod(ns, 1_000_000_000)
    t = time.gmtime(secs)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{frac:09d}Z"


def format_local(ns: int, digits: int = 0) -> str:
    """Go's RFC 3339 of the local time (``Z`` for UTC, else ``+07:00``), with ``digits`` fraction
    digits (docker's volume CreatedAt: none; its events: nine)."""
    secs, frac = divmod(ns, 1_000_000_000)
    t = time.localtime(secs)
    offset = t.tm_gmtoff or 0
    zone = "Z"
    if offset:
        sign = "+" if offset > 0 else "-"
        zone = f"{sign}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    fraction = f".{frac:09d}"[: digits + 1] if digits else ""
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + fraction + zone


def _days_from_civil(y: int, m: int, d: int) -> int:
    # Howard Hinnant's days-from-civil: proleptic Gregorian date to days since 1970-01-01.
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_time(text: str, local_offset: int | None = None) -> int:
    """Nanoseconds since the epoch of ``YYYY-MM-DD[THH[:MM[:SS[.frac]]]][Z|±hh:mm]``.

    Without a zone the time is in ``local_offset`` seconds east of UTC (default: the host's
    current offset, as docker uses the reference time's zone). ValueError if malformed.
    """
    bad = ValueError(f"cannot parse time {text!r}")
    zone_at = len(text)
    offset: int | None = None
    if text.endswith(("Z", "z")):
        zone_at, offset = len(text) - 1, 0
    elif len(text) > 10 and text[-6] in "+-" and text[-3] == ":":
        zone_at = len(text) - 6
        hh, mm = text[-5:-3], text[-2:]
        if not (hh.isdigit() and mm.isdigit()):
            raise bad
        offset = (int(hh) * 3600 + int(mm) * 60) * (1 if text[-6] == "+" else -1)
    body = text[:zone_at]
    date, _, clock = body.partition("T")
    parts = date.split("-")
    if len(parts) != 3 or [len(p) for p in parts] != [4, 2, 2] or not all(p.isdigit() for p in parts):
        raise bad
    year, month, day = (int(p) for p in parts)
    hour = minute = second = frac_ns = 0
    if clock:
        main, dot, frac = clock.partition(".")
        fields = main.split(":")
        if len(fields) > 3 or not all(len(f) == 2 and f.isdigit() for f in fields):
            raise bad
        if dot and (len(fields) != 3 or not frac.isdigit() or len(frac) > 9):
            raise bad
        hour, minute, second = ([int(f) for f in fields] + [0, 0])[:3]
        frac_ns = int(frac.ljust(9, "0")) if dot else 0
    elif "T" in body:
        raise bad
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60):
        raise bad
    if offset is None:
        offset = time.localtime().tm_gmtoff if local_offset is None else local_offset
    secs = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset
    return secs * 1_000_000_000 + frac_ns


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def go_duration_ns(text: str) -> int:
    """Go's ``time.ParseDuration`` (signed, "1h30m", "1.5s", "0"); ValueError if malformed."""
    bad = ValueError(f'time: invalid duration "{text}"')
    sign = 1
    rest = text
    if rest[:1] in ("-", "+"):
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise bad
    total = 0
    i = 0
    while i < len(rest):
        start = i
        while i < len(rest) and (rest[i].isdigit() or rest[i] == "."):
            i += 1
        number = rest[start:i]
        if not number or number == "." or number.count(".") > 1 or not number.isascii():
            raise bad
        start = i
        while i < len(rest) and not (rest[i].isdigit() or rest[i] == "."):
            i += 1
        unit = _DURATION_UNITS.get(rest[start:i])
        if unit is None:
            raise bad
        whole, _, frac = number.partition(".")
        total += int(whole or "0") * unit
        if frac:
            total += int(frac) * unit // 10 ** len(frac)
    return sign * total


def parse_since(value: str, now_ns: int | None = None) -> int:
    """A ``--since``/``--until`` value as nanoseconds since the epoch, as the docker client reads it.

    A Go duration ("10m", "1h30m") is that long before now, cut to whole seconds; else an RFC3339
    date/time (a zone-less one in local time, a date alone at midnight); else Unix seconds with an
    optional fraction ("1700000000.5"). ValueError with docker's message otherwise.
    """
    now = time.time_ns() if now_ns is None else now_ns
    if value != "0":
        try:
            delta = go_duration_ns(value)
        except ValueError:
            pass
        else:
            return ((now - delta) // 1_000_000_000) * 1_000_000_000
    try:
        return parse_time(value)
    except ValueError:
        if "-" in value:
            raise ValueError(f'parsing time "{value}": not an RFC 3339 date/time') from None
    sec, dot, frac = value.partition(".")
    if sec.lstrip("-").isdigit() and sec.isascii() and (not dot or (frac.isdigit() and frac.isascii())):
        ns = int(frac[:9].ljust(9, "0")) if dot else 0
        return int(sec) * 1_000_000_000 + ns
    raise ValueError(f'failed to parse value as time or duration: "{value}"')


class LogEntry:
    """One decoded entry: ``line`` as the container wrote it (with its "\\n" unless partial)."""

    __slots__ = ("line", "stream", "time_ns")

    def __init__(self, stream: str, line: bytes, time_ns: int) -> None:
        self.stream = stream
        self.line = line
        self.time_ns = time_ns

    def __repr__(self) -> str:
        return f"LogEntry({self.stream!r}, {self.line!r}, {self.time_ns})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogEntry):
            return NotImplemented
        return (self.stream, self.line, self.time_ns) == (other.stream, other.line, other.time_ns)

    __hash__ = None  # type: ignore[assignment]


def encode_entry(stream: str, line: bytes, time_ns: int) -> bytes:
    """One json-file record, newline included."""
    log = f'"log":{json_string(line)},' if line else ""
    stream_field = f'"stream":{json_string(stream.encode())},' if stream else ""
    return f'{{{log}{stream_field}"time":"{format_time(time_ns)}"}}\n'.encode()


def format_entry(entry: LogEntry, timestamps: bool = False) -> bytes:
    """What ``docker logs`` prints for an entry; with ``-t`` the fixed-width stamp and a space first."""
    if timestamps:
        return format_time_fixed(entry.time_ns).encode() + b" " + entry.line
    return entry.line


class LogWriter:
    """Appends a container's output to its json-file log, rotating as docker's max-size/max-file.

    Not thread-safe: the monitor writes from one loop. ``max_size`` 0 means unlimited.
    """

    def __init__(self, path: str, max_size: int = 0, max_file: int = 1, mode: int = 0o640) -> None:
        if max_size < 0:
            raise ValueError("max-size must be a positive number")
        if max_file < 1:
            raise ValueError("max-file cannot be less than 1")
        self.path = path
        self.max_size = max_size
        self.max_file = max_file
        self._mode = mode
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)
        self._size = os.lseek(self._fd, 0, os.SEEK_END)
        self._pending: dict[str, bytes] = {}
        self._partial_ts: dict[str, int] = {}

    def write(self, stream: str, data: bytes, when_ns: int | None = None) -> None:
        """Log ``data`` read from the container's ``stream`` ("stdout"/"stderr") at ``when_ns``."""
        now = time.time_ns() if when_ns is None else when_ns
        buf = self._pending.pop(stream, b"") + data
        start = 0
        while True:
            newline = buf.find(b"\n", start)
            end = newline if newline >= 0 else len(buf)
            if end - start >= PARTIAL_SIZE:
                self._partial(stream, buf[start : start + PARTIAL_SIZE], now)
                start += PARTIAL_SIZE
            elif newline >= 0:
                stamp = self._partial_ts.pop(stream, now)
                self._append(encode_entry(stream, buf[start:newline] + b"\n", stamp))
                start = newline + 1
            else:
                break
        if start < len(buf):
            self._pending[stream] = buf[start:]

    def _partial(self, stream: str, piece: bytes, now: int) -> None:
        stamp = self._partial_ts.setdefault(stream, now)
        self._append(encode_entry(stream, piece, stamp))

    def flush_partial(self, when_ns: int | None = None) -> None:
        """Write buffered unterminated lines as partial entries, as docker does when a stream ends."""
        now = time.time_ns() if when_ns is None else when_ns
        for stream in list(self._pending):
            self._partial(stream, self._pending.pop(stream), now)

    def close(self) -> None:
        if self._fd < 0:
            return
        self.flush_partial()
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _append(self, record: bytes) -> None:
        if self.max_size and self._size >= self.max_size:
            self._rotate()
        os.write(self._fd, record)
        self._size += len(record)

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = -1
        if self.max_file < 2:
            _remove(self.path)
        else:
            _remove(f"{self.path}.{self.max_file - 1}")
            for i in range(self.max_file - 1, 1, -1):
                _rename(f"{self.path}.{i - 1}", f"{self.path}.{i}")
            _rename(self.path, f"{self.path}.1")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        self._fd = os.open(self.path, flags, self._mode)
        self._size = 0


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rename(src: str, dst: str) -> None:
    try:
        os.rename(src, dst)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------- reading


def _decode(raw: bytes) -> LogEntry | None:
    import json

    try:
        doc = json.loads(raw)
        text = doc.get("log", "")
        try:
            line = text.encode()
        except UnicodeEncodeError:  # a lone surrogate escape: Go's decoder makes it U+FFFD
            line = "".join("\ufffd" if 0xD800 <= ord(c) < 0xE000 else c for c in text).encode()
        return LogEntry(str(doc.get("stream", "")), line, parse_time(doc["time"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # a damaged record is skipped rather than ending the output


def _file_entries(f: BufferedReader) -> Iterator[LogEntry]:
    while True:
        raw = f.readline()
        if not raw.endswith(b"\n"):
            return  # end, or a record still being written
        entry = _decode(raw)
        if entry is not None:
            yield entry


def _rotated(path: str, max_file: int) -> list[str]:
    return [f"{path}.{i}" for i in range(max_file - 1, 0, -1)]


def _window(entries: Iterator[LogEntry], since_ns: int | None, until_ns: int | None) -> Iterator[LogEntry]:
    for entry in entries:
        if since_ns is not None:
            if entry.time_ns < since_ns:
                continue
            since_ns = None  # moby: once one entry is in the window, the rest are not compared
        if until_ns is not None and entry.time_ns > until_ns:
            return
        yield entry


def _all_entries(path: str, max_file: int) -> Iterator[LogEntry]:
    """Rotated files oldest first, then the current one."""
    for name in _rotated(path, max_file):
        try:
            with open(name, "rb") as f:
                yield from _file_entries(f)
        except FileNotFoundError:
            continue
    try:
        with open(path, "rb") as f:
            yield from _file_entries(f)
    except FileNotFoundError:
        return


def _tailed(entries: Iterator[LogEntry], tail: int | None) -> Iterator[LogEntry]:
    if tail is None or tail < 0:
        return entries
    if tail == 0:
        return iter(())
    from collections import deque

    return iter(deque(entries, maxlen=tail))


def read_logs(
    path: str,
    *,
    tail: int | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    max_file: int = 1,
) -> Iterator[LogEntry]:
    """The entries of a json-file log and its rotated files, oldest first (``docker logs``).

    ``tail`` None or negative means all ("--tail all"), 0 none.
    """
    return _window(_tailed(_all_entries(path, max_file), tail), since_ns, until_ns)


def follow(
    path: str,
    *,
    stop: Callable[[], bool],
    tail: int | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    max_file: int = 1,
    interval: float = 0.1,
) -> Iterator[LogEntry]:
    """``docker logs -f``: the existing entries, then new ones as they are appended.

    Polls every ``interval`` seconds. A rotation is noticed by the path naming another inode: the
    old file (still open) is drained before the new one is read from its start, so nothing is
    lost or repeated. Ends once ``stop()`` is true and everything written before is read, or at
    the first entry after ``until_ns``.
    """
    return _window(_following(path, stop, tail, max_file, interval), since_ns, until_ns)


class _Tracked:
    """An open log file, the inode it was opened as, and a record cut short by the writer."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "rb")  # noqa: SIM115 - closed by _following
        self.ino = os.fstat(self.file.fileno()).st_ino
        self.carry = b""

    def entries(self) -> Iterator[LogEntry]:
        while True:
            raw = self.file.readline()
            if not raw:
                return
            raw = self.carry + raw
            if not raw.endswith(b"\n"):
                self.carry = raw  # the writer is mid-record: finish it on the next poll
                return
            self.carry = b""
            entry = _decode(raw)
            if entry is not None:
                yield entry

    def replaced(self, path: str) -> bool:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        if st.st_ino != self.ino:
            return True
        if st.st_size < self.file.tell():  # truncated in place: start over
            self.file.seek(0)
            self.carry = b""
        return False


def _open(path: str) -> _Tracked | None:
    try:
        return _Tracked(path)
    except FileNotFoundError:
        return None


def _successors(path: str, max_file: int, ino: int) -> list[_Tracked]:
    """The files written after the one with inode ``ino`` (all for -1), oldest first, opened.

    Rotation only renames, so the order of the names is the order of writing; if ``ino`` is gone
    from them (rotated out), every file there is newer. The names are stat-ed again after opening
    and the listing retried if a rotation moved them meanwhile.
    """
    names = [*_rotated(path, max_file), path]
    for _ in range(5):
        opened = [t for t in (_open(name) for name in names) if t is not None]
        inodes = [t.ino for t in opened]
        again = []
        for name in names:
            try:
                again.append(os.stat(name).st_ino)
            except FileNotFoundError:
                continue
        if again == inodes:
            break
        for t in opened:
            t.file.close()
    return opened[inodes.index(ino) + 1 :] if ino in inodes else opened


def _following(
    path: str, stop: Callable[[], bool], tail: int | None, max_file: int, interval: float
) -> Iterator[LogEntry]:
    # All files are opened at once (a consistent listing), so a rotation while they are read
    # neither hides nor repeats entries; the newest stays open to be followed.
    pending = _successors(path, max_file, -1)
    current = pending.pop() if pending else None
    try:
        first = [t.entries() for t in pending] + ([current.entries()] if current else [])
        yield from _tailed((entry for entries in first for entry in entries), tail)
        for t in pending:
            t.file.close()
        pending = []
        while True:
            done = stop()  # sampled before draining: whatever was written before stop() is read
            if current is None:
                current = _open(path)
            while current is not None:
                yield from current.entries()
                if not current.replaced(path):
                    break
                # Rotated: finish this file (still open), then every file written after it.
                yield from current.entries()
                current.file.close()
                pending = _successors(path, max_file, current.ino)
                current = None
                while pending:
                    current = pending.pop(0)
                    if pending:
                        yield from current.entries()
                        current.file.close()
            if done:
                return
            time.sleep(interval)
    finally:
        for t in [*pending, *([current] if current is not None else [])]:
            t.file.close()
