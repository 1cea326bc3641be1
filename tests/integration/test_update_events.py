"""``update`` and ``events`` side by side with runc 1.1: the cgroup files written, what the container sees,
the errors, the stats document's structure and the OOM notification."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import Runtime
from tests.integration._helpers import created, sh
from tests.integration._support import new_id, state, wait_for, wait_for_status
from tests.integration.test_cgroups import cgroup_dirs, with_resources

RESOURCES: dict[str, Any] = {
    "memory": {"limit": 104857600, "swap": 209715200},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000},
    "pids": {"limit": 42},
}
FILES = {
    "memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes"],
    "cpu": ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"],
    "cpuset": ["cpuset.cpus"],
    "pids": ["pids.max"],
    "devices": ["devices.list"],
}
INSIDE = (
    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us"
)


def host_files(pid: int) -> dict[str, str]:
    dirs = cgroup_dirs(pid)
    found = {}
    for controller, names in FILES.items():
        directory = next(d for key, d in dirs.items() if controller in key.split(","))
        found.update({f"{controller}/{n}": Path(directory, n).read_text() for n in names})
    return found


def message(proc: subprocess.CompletedProcess[str]) -> str:
    """The msg of the last logrus error line (what a caller parsing runc's stderr reads)."""
    found = re.findall(r'level=error msg="((?:[^"\\]|\\.)*)"|level=error msg=(\S+)', proc.stderr)
    assert found, proc.stderr
    quoted, bare = found[-1]
    return str(quoted or bare).replace('\\"', '"')


@contextmanager
def running(rt: Runtime, bundle: Path, cid: str) -> Iterator[int]:
    with created(rt, bundle, cid) as pid:
        rt("start", cid)
        yield pid


def test_update_memory_and_pids_as_runc(runc: Runtime, runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle(["sleep", "100"], with_resources(RESOURCES))
    cid = new_id("upd")
    seen = {}
    for rt in (runc, runtime):
        with running(rt, bundle, cid) as pid:
            before = host_files(pid)
            rt("update", "--memory", "64m", "--pids-limit", "20", "--cpu-quota", "20000", cid)
            after = host_files(pid)
            inside = rt("exec", cid, *sh(INSIDE)).stdout
            seen[rt] = (before, after, inside)
    assert seen[runtime] == seen[runc]
    before, after, inside = seen[runtime]
    assert after["memory/memory.limit_in_bytes"] == "67108864\n"
    assert after["pids/pids.max"] == "20\n"
    assert after["cpu/cpu.cfs_period_us"] == "100000\n"  # the quota alone changed
    assert after["devices/devices.list"] == before["devices/devices.list"]
    assert inside == "67108864\n20\n20000\n"


def test_update_records_the_new_values(runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle(["sleep", "100"], with_resources(RESOURCES))
    cid = new_id("updrec")
    with running(runtime, bundle, cid) as pid:
        runtime("update", "--cpu-quota", "30000", cid)
        runtime("update", "--cpu-period", "200000", cid)
        recorded = json.loads((runtime.root / cid / "state.json").read_text())["config"]["linux"]["resources"]
        assert recorded["cpu"] == {"shares": 512, "quota": 30000, "period": 200000}
        files = host_files(pid)
        assert (files["cpu/cpu.cfs_quota_us"], files["cpu/cpu.cfs_period_us"]) == ("30000\n", "200000\n")


def test_update_from_a_json_file_and_stdin(
    runc: Runtime, runtime: Runtime, make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    bundle = make_bundle(["sleep", "100"], with_resources(RESOURCES))
    first = tmp_path / "first.json"
    first.write_text(json.dumps({"memory": {"limit": 83886080, "reservation": 41943040}, "cpu": {"cpus": "0"}}))
    second = tmp_path / "second.json"
    second.write_text(json.dumps({"pids": {"limit": -1}, "cpu": {"shares": 256}}))
    cid = new_id("updjson")
    seen = {}
    for rt in (runc, runtime):
        with running(rt, bundle, cid) as pid:
            # Flags are ignored when -r is given.
            rt("update", "-r", str(first), "--pids-limit", "7", cid)
            after_file = host_files(pid)
            with second.open() as stdin:
                rt("update", "-r", "-", cid, stdin=stdin)
            seen[rt] = (after_file, host_files(pid))
    assert seen[runtime] == seen[runc]
    after_file, after_stdin = seen[runtime]
    assert after_file["memory/memory.limit_in_bytes"] == "83886080\n"
    assert after_file["memory/memory.soft_limit_in_bytes"] == "41943040\n"
    assert after_file["cpuset/cpuset.cpus"] == "0\n"
    assert after_file["pids/pids.max"] == "42\n"
    assert (after_stdin["pids/pids.max"], after_stdin["cpu/cpu.shares"]) == ("max\n", "256\n")


def test_update_errors_as_runc(
    runc: Runtime, runtime: Runtime, make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    bundle = make_bundle(["sleep", "100"], with_resources(RESOURCES))
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"cpu": {"shares": "many"}}')
    cases = [
        ["--memory", "abc"],
        ["--cpu-period", "-5"],
        ["--cpu-share", "1"],
        ["--pids-limit", "x"],
        ["--l3-cache-schema", "L3:0=f"],
        ["-r", str(bad_json)],
        ["-r", str(tmp_path / "missing.json")],
    ]
    cid = new_id("upderr")
    seen: dict[Runtime, list[tuple[int, str]]] = {}
    for rt in (runc, runtime):
        with running(rt, bundle, cid):
            results = []
            for flags in cases:
                proc = rt("update", *flags, cid, check=False)
                results.append((proc.returncode, message(proc)))
            # The kernel refuses a limit below the usage; runc says what the usage is.
            low = rt("update", "--memory", "4k", cid, check=False)
            assert low.returncode == 1
            assert message(low).startswith("unable to set memory limit to 4096 (current usage: ")
            seen[rt] = results
    assert seen[runtime] == seen[runc]
    assert seen[runtime][0] == (1, "invalid value for memory: invalid size: 'abc'")


def test_update_and_events_of_a_stopped_container(
    runc: Runtime, runtime: Runtime, make_bundle: Callable[..., Path]
) -> None:
    bundle = make_bundle(["true"])
    cid = new_id("updstop")
    for rt in (runc, runtime):
        with running(rt, bundle, cid):
            wait_for_status(rt, cid, "stopped")
            proc = rt("update", "--memory", "64m", cid, check=False)
            assert (proc.returncode, message(proc)) == (1, "container not running")
            for flags in (["--stats"], []):
                proc = rt("events", *flags, cid, check=False)
                assert (proc.returncode, message(proc)) == (1, f"container with id {cid} is not running")
        proc = rt("update", "--memory", "64m", cid, check=False)
        assert (proc.returncode, message(proc)) == (1, "container does not exist")


def test_update_of_a_paused_container(runc: Runtime, runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle(["sleep", "100"], with_resources(RESOURCES))
    cid = new_id("updpause")
    for rt in (runc, runtime):
        with running(rt, bundle, cid) as pid:
            rt("pause", cid)
            rt("update", "--pids-limit", "10", cid)
            assert host_files(pid)["pids/pids.max"] == "10\n"
            assert state(rt, cid)["status"] == "paused"


def test_failed_update_puts_the_previous_limits_back(runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    # runc 1.1.5 means to but writes the new values again (its config copy
    # shares the resources it changed); hull-runtime writes the recorded ones.
    bundle = make_bundle(["sleep", "100"], with_resources(RESOURCES))
    cid = new_id("updback")
    with running(runtime, bundle, cid) as pid:
        proc = runtime("update", "--memory", "64m", "--cpu-share", "1", cid, check=False)
        assert (proc.returncode, message(proc)) == (1, "the minimum allowed cpu-shares is 2")
        files = host_files(pid)
        assert (files["memory/memory.limit_in_bytes"], files["cpu/cpu.shares"]) == ("104857600\n", "512\n")
        recorded = json.loads((runtime.root / cid / "state.json").read_text())["config"]["linux"]["resources"]
        assert recorded["memory"]["limit"] == 104857600


# -- events -------------------------------------------------------------------------------


def key_paths(doc: Any, prefix: str = "") -> set[str]:
    if not isinstance(doc, dict):
        return set()
    out = set()
    for key, value in doc.items():
        out.add(f"{prefix}/{key}")
        out |= key_paths(value, f"{prefix}/{key}")
    return out


# Go's omitempty drops a zero: these counters may be zero for one container and not for the other.
MAY_BE_ZERO = ("/data/memory/cache", "/data/blkio/", "/data/cpu/throttling/", "/data/memory/raw/")


def test_events_stats_has_runcs_structure(runc: Runtime, runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle(sh("sleep 100 & sleep 100 & wait"), with_resources(RESOURCES))
    cid = new_id("evstats")
    docs = {}
    for rt in (runc, runtime):
        with running(rt, bundle, cid) as pid:
            wait_for(lambda: len(cgroup_procs(pid)) == 3, what="both sleeps")
            proc = rt("events", "--stats", cid)
            assert proc.stdout.endswith("}\n") and proc.stdout.count("\n") == 1
            docs[rt] = json.loads(proc.stdout)
    differ = key_paths(docs[runc]) ^ key_paths(docs[runtime])
    assert [k for k in differ if not k.startswith(MAY_BE_ZERO)] == []
    assert list(docs[runtime]["data"]) == list(docs[runc]["data"])
    doc = docs[runtime]
    assert (doc["type"], doc["id"]) == ("stats", cid)
    data = doc["data"]
    assert data["pids"] == {"current": 3, "limit": 42}
    assert data["memory"]["usage"]["usage"] > 0
    assert data["memory"]["usage"]["limit"] == 104857600
    assert data["cpu"]["usage"]["total"] > 0
    assert data["intel_rdt"] == {} and data["network_interfaces"] is None


def cgroup_procs(pid: int) -> list[str]:
    return Path(cgroup_dirs(pid)["pids"], "cgroup.procs").read_text().split()


def text_of(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def events_in_background(rt: Runtime, cid: str, out: Path, *flags: str) -> subprocess.Popen[bytes]:
    with out.open("wb") as stdout:
        return subprocess.Popen(
            [*rt.argv0, "--root", str(rt.root), "events", *flags, cid],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_events_reports_oom_and_stats_until_delete(
    runc: Runtime, runtime: Runtime, make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    # tail buffers a line that never ends; memory and memory+swap capped alike, the OOM killer must act.
    limit = {"memory": {"limit": 16777216, "swap": 16777216}}
    bundle = make_bundle(sh("sleep 1; tail /dev/zero; sleep 100"), with_resources(limit))
    for rt, name in ((runc, "runc"), (runtime, "hull")):
        cid = new_id("evoom")
        events = watch_until_delete(rt, bundle, cid, tmp_path / f"events-{name}.jsonl")
        assert {"type": "oom", "id": cid} in events
        stats = [e for e in events if e["type"] == "stats"]
        assert stats and all(e["id"] == cid and e["data"]["memory"]["usage"]["limit"] == 16777216 for e in stats)
        assert stats[-1]["data"]["memory"]["usage"]["max"] == 16777216  # after the OOM: the peak reached the limit


def watch_until_delete(rt: Runtime, bundle: Path, cid: str, out: Path) -> list[dict[str, Any]]:
    """``events`` output for a container whose process runs out of memory, up to its delete."""
    with running(rt, bundle, cid):
        watcher = events_in_background(rt, cid, out, "--interval", "300ms")
        try:
            wait_for(lambda: '"type":"oom"' in text_of(out), 15, "an oom event")
            wait_for(lambda: '"type":"stats"' in text_of(out).split('"type":"oom"')[-1], 5, "stats after it")
            # The container lives on (its shell survives the killed tail): events keeps going.
            assert watcher.poll() is None
        except BaseException:
            watcher.kill()
            watcher.wait()
            raise
    # delete (leaving ``running``) removes the cgroup, and with it the reason to watch.
    try:
        assert watcher.wait(timeout=10) == 0
    finally:
        watcher.kill()
    return lines(out)


def test_events_interval_paces_the_stats(runtime: Runtime, make_bundle: Callable[..., Path], tmp_path: Path) -> None:
    bundle = make_bundle(["sleep", "100"])
    cid = new_id("evtick")
    out = tmp_path / "events.jsonl"
    with running(runtime, bundle, cid):
        start = time.monotonic()
        watcher = events_in_background(runtime, cid, out, "--interval", "200ms")
        try:
            wait_for(lambda: text_of(out).count("\n") >= 3, 5, "three stats events")
        finally:
            watcher.kill()
            watcher.wait()
        assert time.monotonic() - start >= 0.6
    assert {e["type"] for e in lines(out)} == {"stats"}
