"""``hull system df|prune|info`` and ``hull events`` end to end, against real containers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.integration import engine_support
from tests.integration.engine_support import BUSYBOX, Engine
from tests.integration.test_engine_volumes_cli import image_with_volume

engine = engine_support.engine  # the fixture: a private engine, leak-checked

MB = 1_000_000


def df_rows(engine: Engine) -> dict[str, dict[str, str]]:
    out = engine("system", "df", "--format", "json").stdout
    return {row["Type"]: row for row in map(json.loads, out.splitlines())}


def size_of(text: str) -> float:
    """Bytes of a go-units HumanSize ("1.05MB")."""
    text = text.strip()
    for unit, scale in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9), ("B", 1)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    raise AssertionError(f"not a size: {text}")


# ---------------------------------------------------------------- df


def test_df_counts_a_containers_writes_and_its_volumes(engine: Engine) -> None:
    engine("run", "--name", "writer", "-v", "vol:/v", BUSYBOX, "sh", "-c",
           "dd if=/dev/zero of=/big bs=1024 count=1024 2>/dev/null; echo hi > /v/f")  # fmt: skip
    engine("run", "-d", "--name", "idle", BUSYBOX, "sleep", "60")
    rows = df_rows(engine)
    assert rows["Containers"]["TotalCount"] == "2" and rows["Containers"]["Active"] == "1"
    written = size_of(rows["Containers"]["Size"])
    assert 1.0 * 1024 * 1024 <= written < 1.2 * MB  # the 1 MiB file, and little else
    reclaimable = rows["Containers"]["Reclaimable"]  # the exited writer's layer, the most of it
    assert reclaimable.endswith("%)") and int(reclaimable.split("(")[1].rstrip("%)")) >= 95
    assert rows["Local Volumes"]["TotalCount"] == "1" and rows["Local Volumes"]["Active"] == "1"
    assert rows["Local Volumes"]["Size"] == "3B"
    assert rows["Images"]["TotalCount"] == "1" and rows["Images"]["Active"] == "1"
    assert rows["Images"]["Reclaimable"] == "0B (0%)"
    assert size_of(rows["Images"]["Size"]) > 100_000  # busybox-static
    assert rows["Build Cache"] == {"Active": "0", "Reclaimable": "0B", "Size": "0B", "TotalCount": "0",
                                   "Type": "Build Cache"}  # fmt: skip
    table = engine("system", "df").stdout.splitlines()
    assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [line.split("   ")[0].strip() for line in table[1:]] == [
        "Images", "Containers", "Local Volumes", "Build Cache"]  # fmt: skip
    verbose = engine("system", "df", "-v").stdout
    assert "Images space usage:" in verbose and "Build cache usage: 0B" in verbose
    writer_line = next(line for line in verbose.splitlines() if line.endswith(" writer"))
    assert engine.inspect("writer")["Id"][:12] in writer_line
    assert "vol" in verbose.split("Local Volumes space usage:")[1]


def test_df_of_an_empty_engine(engine: Engine) -> None:
    rows = df_rows(engine)
    assert {r["TotalCount"] for r in rows.values()} == {"0"}
    assert {r["Size"] for r in rows.values()} == {"0B"}


# ---------------------------------------------------------------- prune


def test_system_prune_removes_stopped_containers_and_leaves_running_ones(engine: Engine) -> None:
    done = engine("create", "--name", "made", BUSYBOX, "true").stdout.strip()
    engine("run", "--name", "exited", BUSYBOX, "true")
    exited = engine.inspect("exited")["Id"]
    running = engine("run", "-d", "--name", "up", BUSYBOX, "sleep", "60").stdout.strip()
    out = engine("system", "prune", "-f").stdout
    head, _, rest = out.partition("\n\n")
    lines = head.splitlines()
    assert lines[0] == "Deleted Containers:" and sorted(lines[1:]) == sorted([done, exited])
    assert rest.startswith("Total reclaimed space: ")
    assert engine.ids() == [running]
    assert engine.inspect("up")["State"]["Status"] == "running"
    # The image is used by the running container: kept even with -a.
    out = engine("system", "prune", "-a", "-f").stdout
    assert out == "Total reclaimed space: 0B\n"
    assert "localhost/busybox" in engine("images").stdout


def test_system_prune_all_and_volumes(engine: Engine, tmp_path: Path) -> None:
    image = image_with_volume(engine, tmp_path)
    engine("volume", "create", "named")
    engine("run", "--name", "gone", image, "true")
    (anon,) = [m["Name"] for m in engine.inspect("gone")["Mounts"]]
    out = engine("system", "prune", "-a", "--volumes", "-f").stdout
    sections = out.split("\n\n")
    assert sections[0].splitlines()[0] == "Deleted Containers:"
    assert sections[1] == f"Deleted Volumes:\n{anon}"  # the anonymous one only: docker 23+
    images = sections[2].splitlines()
    assert images[0] == "Deleted Images:"
    assert f"untagged: {image}:latest" in images or f"untagged: {image}" in images
    assert "untagged: localhost/busybox:latest" in images or "untagged: localhost/busybox" in images
    assert sum(line.startswith("deleted: sha256:") for line in images) == 2
    assert sections[3].startswith("Total reclaimed space: ") and size_of(sections[3].split(": ")[1]) > 100_000
    assert engine("volume", "ls", "-q").stdout == "named\n"
    assert engine("images", "-q").stdout == ""
    assert not list((engine.root / "images" / "blobs" / "sha256").iterdir())


# ---------------------------------------------------------------- info


def test_info_reports_containers_and_the_host(engine: Engine) -> None:
    engine("run", "-d", "--name", "up", BUSYBOX, "sleep", "60")
    engine("create", BUSYBOX, "true")
    doc = json.loads(engine("system", "info", "--format", "{{json .}}").stdout)
    assert (doc["Containers"], doc["ContainersRunning"], doc["ContainersPaused"], doc["ContainersStopped"]) == (
        2, 1, 0, 1)  # fmt: skip
    assert doc["Images"] == 1
    assert doc["Driver"] == "overlayfs"
    assert doc["DockerRootDir"] == str(engine.root)
    assert doc["KernelVersion"] == os.uname().release
    assert doc["NCPU"] == len(os.sched_getaffinity(0))
    pure_v2 = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "/sys/fs/cgroup"], capture_output=True,
                             text=True, check=True).stdout.strip() == "cgroup2"  # fmt: skip
    assert doc["CgroupVersion"] == ("2" if pure_v2 else "1")
    assert "hull-runtime" in doc["Runtimes"] and "runc" in doc["Runtimes"]
    with open("/etc/os-release") as f:
        pretty = next(line for line in f if line.startswith("PRETTY_NAME=")).split("=", 1)[1].strip().strip('"')
    assert doc["OperatingSystem"] == pretty
    text = engine("system", "info").stdout
    assert " Containers: 2\n  Running: 1\n  Paused: 0\n  Stopped: 1\n" in text
    assert " Storage Driver: overlayfs\n" in text and " Logging Driver: json-file\n" in text
    assert f" Docker Root Dir: {engine.root}\n" in text
    assert engine("system", "info", "--format", "{{.ServerVersion}}").stdout.strip()


# ---------------------------------------------------------------- events


def test_events_window_shows_a_run_rm_in_order(engine: Engine) -> None:
    since = str(time.time() - 1)
    engine("run", "--rm", "--name", "brief", "--label", "team=a", BUSYBOX, "sh", "-c", "exit 3", check=False)
    until = str(time.time() + 1)
    out = engine("events", "--since", since, "--until", until, timeout=20).stdout
    lines = out.splitlines()
    assert [line.split()[2] for line in lines] == ["create", "start", "die", "destroy"]
    cid = lines[0].split()[3]
    assert len(cid) == 64 and all(line.split()[1] == "container" and line.split()[3] == cid for line in lines)
    assert lines[2].endswith(f" container die {cid} (exitCode=3, image={BUSYBOX}, name=brief, team=a)")
    only = engine("events", "--since", since, "--until", until, "--filter", "event=die", "--format",
                  "{{json .}}").stdout  # fmt: skip
    (ev,) = map(json.loads, only.splitlines())
    assert ev["Action"] == "die" and ev["id"] == cid and ev["Actor"]["Attributes"]["exitCode"] == "3"
    none = engine("events", "--since", since, "--until", until, "--filter", "container=other").stdout
    assert none == ""


def test_events_of_stop_and_kill(engine: Engine) -> None:
    since = str(time.time() - 1)
    engine("run", "-d", "--name", "stopper", BUSYBOX, "sleep", "60")
    engine("stop", "-t", "1", "stopper")  # sleep as PID 1 ignores SIGTERM: SIGKILL after a second
    fmt = '{{.Action}} {{index .Actor.Attributes "signal"}}{{index .Actor.Attributes "exitCode"}}'
    out = engine("events", "--since", since, "--until", str(time.time() + 1), "--format", fmt).stdout
    assert out.splitlines() == ["create ", "start ", "kill 15", "kill 9", "die 137", "stop "]


def test_events_follows_new_containers_until_interrupted(engine: Engine) -> None:
    follower = subprocess.Popen(engine.argv("events", "--filter", "container=fresh"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(1.0)  # started and at the end of the log: only events from now on
        engine("run", "--rm", "--name", "fresh", BUSYBOX, "true")
        engine("run", "--rm", "--name", "other", BUSYBOX, "true")
        deadline = time.monotonic() + 10
        assert follower.stdout is not None
        seen: list[str] = []
        while len(seen) < 4 and time.monotonic() < deadline:
            seen.append(follower.stdout.readline())
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=10)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert [line.split()[2] for line in seen] == ["create", "start", "die", "destroy"]
    assert all("name=fresh" in line for line in seen) and out == ""
    assert follower.returncode == 0 and "Traceback" not in err
