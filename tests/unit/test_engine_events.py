"""engine.events: the event log read back as ``docker events`` would: time window, filters, following, format."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hull.engine import events
from hull.engine.containers import Container
from hull.engine.errors import EngineError
from hull.engine.options import RunOptions
from hull.engine.paths import EnginePaths

CID = "b4c5ff76aab7463865a2b81116d335f55b50017e8b8b345d5bfd741558a173fc"
OTHER = "0123456789ab" + "0" * 52
T0 = 1_795_687_849_000_000_000


def event(action: str, t: int, cid: str = CID, name: str = "web", **attrs: str) -> dict[str, Any]:
    return {
        "status": action, "id": cid, "from": "busybox:1.36", "Type": "container", "Action": action,
        "Actor": {"ID": cid, "Attributes": {"image": "busybox:1.36", "name": name, **attrs}}, "scope": "local",
        "time": t // 1_000_000_000, "timeNano": t,
    }  # fmt: skip


def write(path: Path, *evs: dict[str, Any]) -> None:
    with open(path, "a") as f:
        for ev in evs:
            f.write(json.dumps(ev, separators=(",", ":")) + "\n")


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# ---------------------------------------------------------------- format


def test_default_line_is_docker_clis_pretty_print_with_sorted_attributes(utc: None) -> None:
    ev = event("die", T0 + 123_456_789, exitCode="0", zeta="z", alpha="a")
    line = events.format_event(ev)
    assert line == (
        f"2026-11-26T10:10:49.123456789Z container die {CID} "
        "(alpha=a, exitCode=0, image=busybox:1.36, name=web, zeta=z)"
    )


def test_time_keeps_nine_fraction_digits(utc: None) -> None:
    assert events.format_event(event("start", T0 + 5_000)).startswith("2026-11-26T10:10:49.000005000Z ")


def test_time_is_local_with_its_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "EST+5")
    time.tzset()
    try:
        assert events.format_event(event("start", T0)).startswith("2026-11-26T05:10:49.000000000-05:00 ")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_event_without_attributes_has_no_parentheses(utc: None) -> None:
    ev = event("start", T0)
    ev["Actor"]["Attributes"] = {}
    assert events.format_event(ev) == f"2026-11-26T10:10:49.000000000Z container start {CID}"


# ---------------------------------------------------------------- filters


def passes(ev: dict[str, Any], *flags: str) -> bool:
    return events.matches(ev, events.parse_filters(list(flags)))


def test_container_filter_matches_id_prefix_or_name() -> None:
    ev = event("start", T0)
    assert passes(ev, "container=web")
    assert passes(ev, f"container={CID[:12]}")
    assert passes(ev, "container=we")  # moby's FuzzyMatch: a prefix of the name too
    assert not passes(ev, "container=db")
    assert passes(ev, "container=db", "container=web")  # one key: OR


def test_event_filter_is_exact_except_for_exec_events() -> None:
    assert passes(event("die", T0), "event=die")
    assert not passes(event("destroy", T0), "event=de")
    assert passes(event("exec_start: sh -c true", T0), "event=exec_start")


def test_image_filter_with_or_without_tag() -> None:
    ev = event("create", T0)
    assert passes(ev, "image=busybox:1.36")
    assert passes(ev, "image=busybox")
    assert not passes(ev, "image=alpine")


def test_label_filter_needs_every_label() -> None:
    ev = event("create", T0, tier="front", team="a")
    assert passes(ev, "label=tier")
    assert passes(ev, "label=tier=front", "label=team=a")
    assert not passes(ev, "label=tier=front", "label=team=b")  # one key, several values: AND for labels


def test_type_filter_and_different_keys_and_together() -> None:
    ev = event("start", T0)
    assert passes(ev, "type=container", "event=start")
    assert not passes(ev, "type=image")
    assert not passes(ev, "type=container", "event=die")


def test_volume_filter_does_not_match_container_events() -> None:
    assert not passes(event("create", T0, name="data"), "volume=data")


def test_bad_filters_are_dockers_errors() -> None:
    with pytest.raises(EngineError, match="invalid filter 'colour'"):
        events.parse_filters(["colour=red"])
    with pytest.raises(EngineError, match="expected name=value"):
        events.parse_filters(["container"])


# ---------------------------------------------------------------- reading


def test_read_keeps_the_window_inclusive_and_skips_torn_lines(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    write(log, event("create", T0), event("start", T0 + 10), event("die", T0 + 20))
    with open(log, "a") as f:
        f.write('{"status":"dest')  # a write cut short (no newline): not an event yet
    got = [e["Action"] for e in events.read(str(log), T0 + 10, T0 + 20)]
    assert got == ["start", "die"]
    assert [e["Action"] for e in events.read(str(log))] == ["create", "start", "die"]


def test_stream_with_a_past_until_gives_past_events_only(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    write(log, event("create", T0), event("start", T0 + 10))
    got = list(events.stream(str(log), T0, T0 + 5, clock=lambda: T0 + 1_000))
    assert [e["Action"] for e in got] == ["create"]  # returns: nothing to wait for


def test_stream_without_since_or_until_shows_only_new_events(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    write(log, event("create", T0))
    seen: list[str] = []

    def append_later() -> None:
        time.sleep(0.2)
        write(log, event("start", T0 + 10))

    thread = threading.Thread(target=append_later)
    thread.start()
    deadline = time.monotonic() + 5
    for ev in events.stream(str(log), stop=lambda: bool(seen) or time.monotonic() > deadline):
        seen.append(ev["Action"])
    thread.join()
    assert seen == ["start"]


def test_stream_follows_a_log_that_does_not_exist_yet_and_stops_at_until(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    now = time.time_ns()
    until = now + 700_000_000

    def append_later() -> None:
        time.sleep(0.2)
        write(log, event("create", time.time_ns()))

    thread = threading.Thread(target=append_later)
    thread.start()
    started = time.monotonic()
    got = [e["Action"] for e in events.stream(str(log), None, until)]
    thread.join()
    assert got == ["create"]
    assert 0.5 < time.monotonic() - started < 5  # ended by --until, not before


def test_stream_joins_a_line_written_in_two_pieces(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    log.write_text("")
    line = json.dumps(event("start", T0)) + "\n"
    got: list[str] = []

    def append_in_pieces() -> None:
        time.sleep(0.15)
        with open(log, "a") as f:
            f.write(line[:20])
            f.flush()
            time.sleep(0.2)
            f.write(line[20:])

    thread = threading.Thread(target=append_in_pieces)
    thread.start()
    deadline = time.monotonic() + 5
    for ev in events.stream(str(log), stop=lambda: bool(got) or time.monotonic() > deadline):
        got.append(ev["Action"])
    thread.join()
    assert got == ["start"]


def test_since_after_until_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="cannot be after"):
        list(events.stream(str(tmp_path / "events.log"), T0 + 10, T0))


def test_emit_writes_dockers_json_that_read_returns(tmp_path: Path) -> None:
    paths = EnginePaths(str(tmp_path / "root"), str(tmp_path / "run"))
    os.makedirs(paths.root)
    c = Container(id=CID, name="web", image="busybox", image_id="sha256:x", image_digest="sha256:y", created=T0,
                  options=RunOptions(image="busybox", labels={"tier": "front"}), args=["sh"], snapshot=CID,
                  snapshotter="overlayfs")  # fmt: skip
    events.emit(paths, "die", c, {"exitCode": "3"})
    (got,) = list(events.read(paths.events))
    assert list(got) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert got["Actor"] == {"ID": CID, "Attributes": {"image": "busybox", "name": "web", "tier": "front",
                                                      "exitCode": "3"}}  # fmt: skip
    assert got["time"] == got["timeNano"] // 1_000_000_000
