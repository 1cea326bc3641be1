"""The lifecycle's states and their persistence; concurrent commands (runtime.md "State", "Lifecycle").

State lives on disk between invocations; commands on one container
serialise on its lock while commands on different containers never wait, and
``state`` answers without waiting for a create that is still running hooks.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.conftest import Runtime
from tests.integration._support import TAG_VAR, alive, new_id, popen, state, tag_env, wait_for, wait_for_status


def _gate_hook(tmp_path: Path, kind: str = "createRuntime") -> tuple[Any, Path, Path]:
    """A hook that says it started, then waits for the test to let it go (or 10 s)."""
    started, release = tmp_path / "hook-started", tmp_path / "hook-release"
    script = tmp_path / "gate.sh"
    script.write_text(
        f"#!/bin/sh\ntouch {started}\ni=0\n"
        f"while [ ! -e {release} ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done\n"
    )
    script.chmod(0o755)

    def edit(config: dict[str, Any]) -> None:
        config["hooks"] = {kind: [{"path": str(script), "timeout": 20}]}

    return edit, started, release


def _parallel(
    runtime: Runtime, commands: list[list[str]], env: dict[str, str] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Start every command at once (each its own process) and wait for all."""
    outs = [tempfile.TemporaryFile("w+") for _ in commands]
    try:
        procs = [
            subprocess.Popen(
                [*runtime.argv0, "--root", str(runtime.root), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
            for args, out in zip(commands, outs, strict=True)
        ]
        results = []
        for args, proc, out in zip(commands, procs, outs, strict=True):
            code = proc.wait(timeout=30)
            out.seek(0)
            results.append(subprocess.CompletedProcess(args, code, out.read(), ""))
        return results
    finally:
        for out in outs:
            out.close()


# ---------------------------------------------------------------- lifecycle


def test_creating_created_running_stopped(runtime: Runtime, make_bundle, tmp_path: Path) -> None:
    edit, started, release = _gate_hook(tmp_path)
    bundle = make_bundle(["sh", "-c", "while [ ! -e /tmp/stop ]; do sleep 0.01; done"], edit=edit)
    create = popen(runtime, "create", "--bundle", str(bundle), "c1")
    try:
        wait_for(lambda: started.exists() or create.poll() is not None, what="the createRuntime hook")
        # state answers while create holds the container's lock for its hooks.
        began = time.monotonic()
        doc = state(runtime, "c1")
        assert time.monotonic() - began < 2
        assert doc["status"] == "creating"
        assert doc["pid"] > 0 and alive(doc["pid"])  # init exists and waits (runtime.md lifecycle step 5)
        assert [d["status"] for d in json.loads(runtime("list", "-f", "json").stdout)] == ["creating"]
    finally:
        release.touch()
        assert create.wait(timeout=10) == 0
    assert state(runtime, "c1")["status"] == "created"
    runtime("start", "c1")
    running = state(runtime, "c1")
    assert running["status"] == "running" and running["pid"] == doc["pid"]
    (bundle / "rootfs" / "tmp" / "stop").touch()
    stopped = wait_for_status(runtime, "c1", "stopped")
    assert stopped["pid"] == 0
    runtime("delete", "c1")


def test_a_dead_init_reads_stopped_with_pid_0(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["sleep", "30"])
    for cid, command in (("created", "create"), ("running", "run")):
        runtime(command, *(["--detach"] if command == "run" else []), "--bundle", str(bundle), cid)
        doc = state(runtime, cid)
        assert doc["status"] == cid
        os.kill(doc["pid"], 9)  # behind the runtime's back
        stopped = wait_for_status(runtime, cid, "stopped")
        assert stopped["pid"] == 0  # as runc prints it
        assert {k: v for k, v in stopped.items() if k not in ("status", "pid")} == {
            k: v for k, v in doc.items() if k not in ("status", "pid")
        }
        # A stopped container can only be deleted.
        assert "cannot start a container that has stopped" in runtime("start", cid, check=False).stderr
        assert "container not running" in runtime("kill", cid, check=False).stderr
        runtime("delete", cid)


def test_a_process_that_exits_reads_stopped(runtime: Runtime, make_bundle) -> None:
    runtime("run", "--detach", "--bundle", str(make_bundle(["true"])), "c1")
    assert wait_for_status(runtime, "c1", "stopped")["pid"] == 0


def test_state_persists_across_invocations(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["sleep", "30"])
    runtime("create", "--bundle", str(bundle), "c1")
    first = state(runtime, "c1")
    # A fresh Runtime (new processes, nothing shared but --root) reads the same container.
    again = Runtime(runtime.argv0, runtime.root)
    assert state(again, "c1") == first
    again("start", "c1")
    assert state(runtime, "c1") == {**first, "status": "running"}
    assert (runtime.root / "c1" / "state.json").is_file()


def test_a_recycled_pid_is_not_the_container(runtime: Runtime, make_bundle) -> None:
    """The record keeps init's start time; another process under the same PID is not it."""
    runtime("run", "--detach", "--bundle", str(make_bundle(["sleep", "30"])), "c1")
    pid = state(runtime, "c1")["pid"]
    path = runtime.root / "c1" / "state.json"
    record = json.loads(path.read_text())
    assert record["pid"] == pid
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        path.write_text(json.dumps({**record, "pid": stranger.pid}))
        assert state(runtime, "c1")["status"] == "stopped"
        runtime("delete", "c1")
        assert stranger.poll() is None  # delete never signals a process that is not the container's
    finally:
        stranger.kill()
        stranger.wait()
        os.kill(pid, 9)


def test_a_directory_without_state_does_not_block(runtime: Runtime, make_bundle) -> None:
    """What a create killed before it wrote any state leaves: list ignores it, delete --force removes it."""
    (runtime.root / "c1").mkdir(parents=True)
    (runtime.root / "c1" / "lock").touch()
    assert runtime("list", "-q").stdout == ""
    assert "container does not exist" in runtime("state", "c1", check=False).stderr
    runtime("delete", "--force", "c1")
    assert not (runtime.root / "c1").exists()
    runtime("create", "--bundle", str(make_bundle(["sleep", "30"])), "c1")
    # An empty directory (no lock file) is no container either: create takes its place.
    (runtime.root / "c2").mkdir()
    runtime("create", "--bundle", str(make_bundle(["sleep", "30"])), "c2")
    assert state(runtime, "c2")["status"] == "created"


# ---------------------------------------------------------------- concurrency


def test_parallel_creates_of_one_id_exactly_one_wins(runtime: Runtime, make_bundle) -> None:
    bundles = [make_bundle(["sleep", "30"]) for _ in range(10)]
    tag = new_id("tag")
    results = _parallel(runtime, [["create", "--bundle", str(b), "same"] for b in bundles], tag_env(tag))
    winners = [r for r in results if r.returncode == 0]
    assert len(winners) == 1, [r.stdout for r in results]
    for r in results:
        if r.returncode != 0:
            assert r.returncode == 1 and "container with given ID already exists" in r.stdout, r.stdout
    doc = state(runtime, "same")
    assert doc["status"] == "created" and alive(doc["pid"])
    assert doc["bundle"] == str(bundles[results.index(winners[0])])
    # Only the winner's init exists: the losers forked nothing.
    assert len(_tagged(tag)) == 1
    runtime("delete", "same")
    wait_for(lambda: not _tagged(tag), what="the container's init to be gone")


def _tagged(tag: str) -> list[int]:
    """Processes whose environment carries ``tag``: the container's init, which inherits the runtime's."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                environ = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"{TAG_VAR}={tag}".encode() in environ and alive(int(name)):
                found.append(int(name))
    return found


def test_parallel_creates_and_deletes_of_different_ids(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["sleep", "30"])
    ids = [f"p{i}" for i in range(8)]
    results = _parallel(runtime, [["create", "--bundle", str(bundle), cid] for cid in ids])
    assert [r.returncode for r in results] == [0] * len(ids), [r.stdout for r in results]
    assert runtime("list", "-q").stdout.split() == ids
    pids = [state(runtime, cid)["pid"] for cid in ids]
    assert len(set(pids)) == len(ids)
    # Start half while deleting the other half.
    commands = [["start", cid] if i % 2 else ["delete", "--force", cid] for i, cid in enumerate(ids)]
    results = _parallel(runtime, commands)
    assert [r.returncode for r in results] == [0] * len(ids), [r.stdout for r in results]
    assert runtime("list", "-q").stdout.split() == ids[1::2]
    assert all(state(runtime, cid)["status"] == "running" for cid in ids[1::2])
    results = _parallel(runtime, [["delete", "--force", cid] for cid in ids[1::2]])
    assert [r.returncode for r in results] == [0] * (len(ids) // 2)
    assert runtime("list", "-q").stdout == ""
    wait_for(lambda: not any(alive(p) for p in pids), what="every init to be gone")


def test_parallel_creates_and_deletes_of_one_id(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["sleep", "30"])
    tag = new_id("tag")
    for _ in range(3):
        commands = [["create", "--bundle", str(bundle), "c1"], ["delete", "--force", "c1"]] * 4
        for r in _parallel(runtime, commands, tag_env(tag)):
            if r.args[0] == "delete" or "already exists" not in r.stdout:
                assert r.returncode == 0, (r.args, r.stdout)
        if "c1" in runtime("list", "-q").stdout.split():
            assert state(runtime, "c1")["status"] == "created"
        runtime("delete", "--force", "c1")
        wait_for(lambda: not _tagged(tag), what="every init to be gone")
        assert os.listdir(runtime.root) == []


def test_parallel_state_while_start(runtime: Runtime, make_bundle) -> None:
    runtime("create", "--bundle", str(make_bundle(["sleep", "30"])), "c1")
    commands = [["state", "c1"] for _ in range(5)] + [["start", "c1"]] + [["state", "c1"] for _ in range(5)]
    results = _parallel(runtime, commands)
    assert [r.returncode for r in results] == [0] * len(commands), [r.stdout for r in results]
    seen = {json.loads(r.stdout)["status"] for r in results if r.args[0] == "state"}
    assert seen <= {"created", "running"}
    assert state(runtime, "c1")["status"] == "running"


def test_parallel_starts_of_one_id_exactly_one_wins(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["sh", "-c", "echo started >> /tmp/log; sleep 30"], edit=_writable)
    runtime("create", "--bundle", str(bundle), "c1")
    results = _parallel(runtime, [["start", "c1"] for _ in range(6)])
    assert sorted(r.returncode for r in results) == [0, 1, 1, 1, 1, 1], [r.stdout for r in results]
    for r in results:
        if r.returncode:
            assert "cannot start an already running container" in r.stdout, r.stdout
    wait_for(lambda: (bundle / "rootfs" / "tmp" / "log").exists(), what="the process")
    time.sleep(0.05)
    assert (bundle / "rootfs" / "tmp" / "log").read_text() == "started\n"


def _writable(config: dict[str, Any]) -> None:
    config["root"]["readonly"] = False


def test_parallel_force_deletes_of_one_id(runtime: Runtime, make_bundle) -> None:
    runtime("run", "--detach", "--bundle", str(make_bundle(["sleep", "30"])), "c1")
    pid = state(runtime, "c1")["pid"]
    results = _parallel(runtime, [["delete", "--force", "c1"] for _ in range(6)])
    assert [r.returncode for r in results] == [0] * 6, [r.stdout for r in results]
    assert not (runtime.root / "c1").exists()
    wait_for(lambda: not alive(pid), what="init to be gone")


def test_commands_on_different_ids_do_not_wait_for_each_other(runtime: Runtime, make_bundle, tmp_path: Path) -> None:
    edit, started, release = _gate_hook(tmp_path)
    slow = popen(runtime, "create", "--bundle", str(make_bundle(["sleep", "30"], edit=edit)), "slow")
    try:
        wait_for(lambda: started.exists() or slow.poll() is not None, what="the slow create's hook")
        with ThreadPoolExecutor(4) as pool:
            began = time.monotonic()
            runtime("create", "--bundle", str(make_bundle(["sleep", "30"])), "fast")
            runtime("start", "fast")
            list(pool.map(lambda _: state(runtime, "fast"), range(4)))
            runtime("delete", "--force", "fast")
            assert time.monotonic() - began < 5
        assert slow.poll() is None
    finally:
        release.touch()
        assert slow.wait(timeout=10) == 0
    assert state(runtime, "slow")["status"] == "created"
