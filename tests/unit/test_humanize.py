"""docker's human output: go-units HumanDuration/HumanSize/BytesSize and docker ps's STATUS."""

from __future__ import annotations

import pytest

from hull.cli.humanize import bytes_size, created_text, human_duration, human_size, status_text

MIN, HOUR, DAY = 60, 3600, 86400


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "Less than a second"),
        (0, "Less than a second"),
        (0.999, "Less than a second"),
        (1, "1 second"),
        (1.9, "1 second"),
        (2, "2 seconds"),
        (59.9, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (59 * MIN + 59, "59 minutes"),
        (60 * MIN, "About an hour"),
        (HOUR + 29 * MIN, "About an hour"),  # hours are rounded: 1.48 -> 1
        (HOUR + 30 * MIN, "2 hours"),  # 1.5 -> 2
        (47 * HOUR, "47 hours"),
        (47 * HOUR + 30 * MIN, "2 days"),  # rounds to 48 hours
        (13 * DAY, "13 days"),
        (14 * DAY, "2 weeks"),
        (59 * DAY, "8 weeks"),
        (60 * DAY, "2 months"),
        (729 * DAY, "24 months"),
        (730 * DAY, "2 years"),
        (3 * 365 * DAY + 100 * DAY, "3 years"),
    ],
)
def test_human_duration_is_go_units(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "precision", "text"),
    [
        (0, 4, "0B"),
        (999, 4, "999B"),
        (1000, 4, "1kB"),
        (1024, 4, "1.024kB"),
        (1_000_000, 4, "1MB"),
        (1_048_576, 4, "1.049MB"),
        (3_420_000_000, 4, "3.42GB"),
        (5_372_000_000_000, 4, "5.372TB"),
        (1_234_567, 3, "1.23MB"),  # docker images / ps --size
        (7_340_032, 3, "7.34MB"),
        (999_999, 3, "1e+03kB"),  # Go's %.3g agrees: 999.999 -> 1e+03
        (10**27, 4, "1000YB"),
    ],
)
def test_human_size_is_go_units(size: int, precision: int, text: str) -> None:
    assert human_size(size, precision) == text


def test_human_size_default_is_humansize_precision_four() -> None:
    assert human_size(1_234_567) == "1.235MB"


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0B"), (500, "500B"), (1024, "1KiB"), (1536, "1.5KiB"), (1_048_576, "1MiB"), (1_572_864, "1.5MiB"),
     (2**30 * 7.25, "7.25GiB"), (123_456_789, "117.7MiB")],
)  # fmt: skip
def test_bytes_size_is_go_units(size: float, text: str) -> None:
    assert bytes_size(size) == text


NS = 1_000_000_000
NOW = 1_800_000_000 * NS


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"state": "running", "started_at_ns": NOW - 5 * NS}, "Up 5 seconds"),
        ({"state": "running", "started_at_ns": NOW - 90 * NS, "paused": True}, "Up About a minute (Paused)"),
        ({"state": "paused", "started_at_ns": NOW - 3 * HOUR * NS}, "Up 3 hours (Paused)"),
        ({"state": "running", "started_at_ns": NOW - 5 * NS, "health": "healthy"}, "Up 5 seconds (healthy)"),
        ({"state": "running", "started_at_ns": NOW - 5 * NS, "health": "starting"}, "Up 5 seconds (health: starting)"),
        ({"state": "running", "started_at_ns": NOW, "health": "unhealthy"}, "Up Less than a second (unhealthy)"),
        (
            {"state": "restarting", "exit_code": 1, "started_at_ns": NOW - 9 * NS, "finished_at_ns": NOW - 2 * NS},
            "Restarting (1) 2 seconds ago",
        ),
        ({"state": "exited", "exit_code": 0, "started_at_ns": NOW - 9 * NS, "finished_at_ns": NOW - 3 * NS},
         "Exited (0) 3 seconds ago"),
        ({"state": "exited", "exit_code": 137, "started_at_ns": 1, "finished_at_ns": NOW - 2 * DAY * NS},
         "Exited (137) 2 days ago"),
        ({"state": "created"}, "Created"),
        ({"state": "removing", "started_at_ns": 1, "finished_at_ns": 2}, "Removal In Progress"),
        ({"state": "dead", "started_at_ns": 1, "finished_at_ns": 2}, "Dead"),
        ({"state": "exited", "started_at_ns": 1}, ""),  # moby: started but no finish time
    ],
)  # fmt: skip
def test_status_text_is_docker_ps_status(kwargs: dict[str, object], text: str) -> None:
    args: dict[str, object] = {"exit_code": 0, "started_at_ns": 0, "finished_at_ns": 0, "now_ns": NOW}
    args.update(kwargs)
    assert status_text(**args) == text  # type: ignore[arg-type]


def test_created_text() -> None:
    assert created_text(NOW - 5 * NS, NOW) == "5 seconds ago"
    assert created_text(NOW - 3 * 7 * DAY * NS, NOW) == "3 weeks ago"
    assert created_text(NOW + 10 * NS, NOW) == "Less than a second ago"  # a clock step back
