"""hull.network.netns as root: a persistent network namespace made, joined, and removed without a trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hull.network import netns
from hull.network.errors import NetworkError


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def links(path: Path) -> list[dict[str, object]]:
    out = subprocess.run(["nsenter", f"--net={path}", "ip", "-j", "link"], capture_output=True, text=True,
                         check=True, timeout=10)  # fmt: skip
    found: list[dict[str, object]] = json.loads(out.stdout)
    return found


def test_created_namespace_has_only_lo_up_and_is_not_ours(tmp_path: Path) -> None:
    path = tmp_path / "ns"
    before = os.stat("/proc/thread-self/ns/net").st_ino
    netns.create(str(path))
    try:
        assert netns.exists(str(path))
        assert str(path) in mount_points()
        (lo,) = links(path)
        assert lo["ifname"] == "lo" and "UP" in lo["flags"]  # type: ignore[operator]
        # a namespace of its own: not this process's (nor this thread's, which unshare did not touch)
        assert os.stat(path).st_ino != os.stat("/proc/self/ns/net").st_ino
        assert os.stat("/proc/thread-self/ns/net").st_ino == before
    finally:
        netns.remove(str(path))
    assert not path.exists() and str(path) not in mount_points()
    assert not netns.exists(str(path))


def test_namespace_outlives_the_process_that_made_it(tmp_path: Path) -> None:
    path = tmp_path / "ns"
    code = f"from hull.network import netns; netns.create({str(path)!r})"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    try:
        assert netns.exists(str(path))
        subprocess.run(["nsenter", f"--net={path}", "ip", "link", "set", "lo", "up"], check=True, timeout=10)
        (lo,) = links(path)
        assert "UP" in lo["flags"]  # type: ignore[operator]  # the same namespace, still there
    finally:
        netns.remove(str(path))
    assert not path.exists() and str(path) not in mount_points()


def test_remove_while_a_process_holds_it_open(tmp_path: Path) -> None:
    path = tmp_path / "ns"
    netns.create(str(path))
    holder = subprocess.Popen(["nsenter", f"--net={path}", "sleep", "30"])
    try:
        netns.remove(str(path))
        assert not path.exists() and str(path) not in mount_points()
    finally:
        holder.kill()
        holder.wait(10)


def test_remove_of_nothing_is_fine(tmp_path: Path) -> None:
    netns.remove(str(tmp_path / "missing"))
    plain = tmp_path / "plain"
    plain.write_text("")  # a create interrupted before its mount
    assert not netns.exists(str(plain))
    netns.remove(str(plain))
    assert not plain.exists()
    assert not netns.exists("")


def test_create_never_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "ns"
    netns.create(str(path))
    try:
        with pytest.raises(NetworkError, match="a file already exists there"):
            netns.create(str(path))
        assert netns.exists(str(path)) and mount_points().count(str(path)) == 1
    finally:
        netns.remove(str(path))


def test_create_in_a_missing_directory_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match="No such file or directory"):
        netns.create(str(tmp_path / "nodir" / "ns"))
