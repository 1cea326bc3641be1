"""The engine when things go wrong: exits, a killed monitor, a reboot, Ctrl-C, bad input; and leak checks.

A container's monitor (engine.monitor) can be killed and the machine can
reboot while containers run; ``hull ps`` must still tell the truth and
``hull rm -f`` must still clean everything (mounts, cgroups, the snapshot,
the runtime's state and the record). Bad flags and unknown images are one
``Error:`` line. Many run/rm cycles leave nothing behind. And the same basic
life under runc and crun (``--runtime``).
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.integration import engine_support
from tests.integration.engine_support import BUSYBOX, CGROUP_CONTROLLERS, Engine

engine = engine_support.engine  # the fixture

LOOP = "while :; do sleep 0.1; done"


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: "), stderr
    return lines[0]


def _status(engine: Engine, ref: str) -> str:
    return engine("ps", "-a", "--filter", f"name={ref}", "--format", "{{.Status}}").stdout.strip()


def _processes_in(cgroup_id: str) -> list[int]:
    try:
        with open(f"/sys/fs/cgroup/pids/hull/{cgroup_id}/cgroup.procs") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def _gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and _state(pid) != "Z":
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def _monitor_of(engine: Engine, cid: str) -> int:
    import json

    with open(engine.root / "containers" / cid / "container.json") as f:
        pid = int(json.load(f)["monitor_pid"])
    assert pid in engine.monitors()
    return pid


# ---------------------------------------------------------------- exits and a killed monitor


def test_an_exited_process_shows_its_code(engine: Engine) -> None:
    engine("run", "-d", "--name", "ex7", BUSYBOX, "sh", "-c", "exit 7")
    engine("wait", "ex7")
    assert _status(engine, "ex7").startswith("Exited (7) ")
    assert engine("ps", "-q").stdout == ""  # not running: only with -a
    engine("rm", "ex7")
    engine.assert_no_leaks()


def test_killed_monitor_ps_tells_the_truth_and_rm_f_cleans(engine: Engine) -> None:
    cid = engine("run", "-d", "--name", "orphan", BUSYBOX, "sleep", "100").stdout.strip()
    pid = engine.inspect(cid)["State"]["Pid"]
    monitor = _monitor_of(engine, cid)
    os.kill(monitor, signal.SIGKILL)
    assert _gone(monitor)
    assert engine.monitors() == []
    # the container's process outlived its monitor: still running, as ps says
    assert os.path.exists(f"/proc/{pid}") and _state(pid) != "Z"
    assert _status(engine, "orphan").startswith("Up ")
    assert engine.inspect("orphan")["State"]["Running"] is True
    # once the process is gone too, it is exited
    os.kill(pid, signal.SIGKILL)
    assert _gone(pid)
    doc = engine.wait_status("orphan", "exited")
    assert doc["State"]["Status"] == "exited" and doc["State"]["Pid"] == 0
    assert _status(engine, "orphan").startswith("Exited (")
    engine("rm", "-f", "orphan")
    engine.assert_no_leaks()


def test_killed_monitor_of_a_running_container_rm_f_kills_and_cleans(engine: Engine) -> None:
    cid = engine("run", "-d", "--name", "orphan2", "-v", "/anon", BUSYBOX, "sleep", "100").stdout.strip()
    pid = engine.inspect(cid)["State"]["Pid"]
    monitor = _monitor_of(engine, cid)
    os.kill(monitor, signal.SIGKILL)
    assert _gone(monitor)
    assert engine("ps", "--format", "{{.Names}}").stdout == "orphan2\n"
    assert engine("rm", "-f", "-v", "orphan2").stdout == "orphan2\n"
    assert _gone(pid), "rm -f left the container's process running"
    assert engine.ids() == []
    engine.assert_no_leaks()


def test_stop_of_a_container_whose_monitor_was_killed(engine: Engine) -> None:
    cid = engine("run", "-d", "--name", "orphan3", BUSYBOX, "sh", "-c", f"trap '' TERM; {LOOP}").stdout.strip()
    pid = engine.inspect(cid)["State"]["Pid"]
    monitor = _monitor_of(engine, cid)
    os.kill(monitor, signal.SIGKILL)
    assert _gone(monitor)
    # SIGTERM ignored: stop waits its timeout, then SIGKILL, and returns once the process is gone
    start = time.monotonic()
    engine("stop", "-t", "1", "orphan3")
    assert 1 <= time.monotonic() - start < 5
    assert _gone(pid, timeout=0.5)
    assert engine.inspect("orphan3")["State"]["Status"] == "exited"
    engine("rm", "orphan3")
    engine.assert_no_leaks()


def test_reboot_ps_shows_exited_and_rm_f_cleans(engine: Engine) -> None:
    """A reboot as far as a test can make one: monitors and containers killed, the rootfs unmounted,
    the run root (a tmpfs) gone and the emptied cgroups gone."""
    a = engine("run", "-d", "--name", "before", BUSYBOX, "sleep", "100").stdout.strip()
    b = engine("run", "-d", "--name", "again", BUSYBOX, "sh", "-c", f"echo up; {LOOP}").stdout.strip()
    for cid in (a, b):
        monitor = _monitor_of(engine, cid)
        pids = _processes_in(cid)
        assert pids
        os.kill(monitor, signal.SIGKILL)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        assert all(_gone(p) for p in [monitor, *pids])
    for point in sorted(engine.mounts(), reverse=True):
        subprocess.run(["umount", point], check=True)
    shutil.rmtree(engine.runroot)
    for cid in (a, b):
        for controller in CGROUP_CONTROLLERS:
            path = f"/sys/fs/cgroup/{controller}/hull/{cid}"
            if os.path.isdir(path):
                os.rmdir(path)

    lines = engine("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.splitlines()
    assert sorted(line.split(" (")[0] for line in lines) == ["again Exited", "before Exited"], lines
    assert engine("ps", "-q").stdout == ""
    # a stopped container starts again after the reboot
    engine("start", "again")
    assert engine.inspect("again")["State"]["Status"] == "running"
    assert engine("logs", "again").stdout == "up\nup\n"
    engine("rm", "-f", "before", "again")
    assert engine.ids() == []
    engine.assert_no_leaks()


# ---------------------------------------------------------------- signals to `hull run`


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 42), (signal.SIGTERM, 43)])
def test_signals_to_a_foreground_run_reach_the_container(engine: Engine, signum: int, code: int) -> None:
    script = f"trap 'echo caught; exit 42' INT; trap 'echo caught; exit 43' TERM; echo ready; {LOOP}"
    proc = subprocess.Popen(engine.argv("run", "--rm", BUSYBOX, "sh", "-c", script), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signum)  # Ctrl-C on a terminal: SIGINT to the foreground process group's hull
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert (proc.returncode, out, err) == (code, b"caught\n", b"")
    engine.assert_no_leaks()


def test_ctrl_c_on_a_tty_run_interrupts_the_container(engine: Engine) -> None:
    script = f"trap 'echo caught; exit 42' INT; echo ready; {LOOP}"
    command = " ".join(engine.argv("run", "--rm", "-it", BUSYBOX, "sh", "-c", f'"{script}"'))
    proc = subprocess.Popen(["timeout", "30", "script", "-qec", command, "/dev/null"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdin is not None and proc.stdout is not None
        assert proc.stdout.readline() == b"ready\r\n"
        proc.stdin.write(b"\x03")  # Ctrl-C typed on the terminal: the container's pty makes it SIGINT
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 42
    assert out == b"^Ccaught\r\n"  # echoed by the container's terminal, as docker's
    engine.assert_no_leaks()


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["run", "--bogus", BUSYBOX], "--bogus"),
        (["run", "--memory", "lots", BUSYBOX], "lots"),
        (["run", "--restart", "sometimes", BUSYBOX], "sometimes"),
        (["run", "--pids-limit", "x", BUSYBOX], "--pids-limit"),
        (["run", "--stop-timeout", "soon", BUSYBOX], "--stop-timeout"),
        (["run", "--network", "nosuchnet", BUSYBOX], "nosuchnet"),
        (["run", "--rm", "--restart", "always", BUSYBOX], "--restart"),
        (["run", "--pull", "sometimes", BUSYBOX], "sometimes"),
        (["run", "--name", "bad name", BUSYBOX], "bad name"),
        (["run", "-u", "nobody-here", BUSYBOX], "nobody-here"),
        (["create", "--cpus", "many", BUSYBOX], "many"),
        (["run"], "IMAGE"),
        (["stop", "--bogus", "x"], "--bogus"),
    ],
)
def test_bad_flags_are_one_line_and_125(engine: Engine, args: list[str], words: str) -> None:
    proc = engine(*args, check=False)
    assert proc.returncode == 125, proc.stderr
    assert words in _one_error_line(proc.stderr)
    assert proc.stdout == ""
    assert engine.ids() == []
    engine.assert_no_leaks()


def test_unknown_containers_and_images_are_one_line(engine: Engine) -> None:
    for command in (["stop"], ["start"], ["kill"], ["rm", "-f"], ["logs"], ["pause"], ["restart"]):
        proc = engine(*command, "nosuch", check=False)
        assert proc.returncode == 1, command
        assert _one_error_line(proc.stderr) == "Error: no such container: nosuch", command
    proc = engine("run", "--pull", "never", "localhost/not-here:1", check=False)
    assert proc.returncode == 125
    assert "localhost/not-here:1" in _one_error_line(proc.stderr)
    # pulled from a server that does not have it: the pull's progress lines, then one error line, 125
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        image = f"127.0.0.1:{server.server_address[1]}/not-here:1"
        proc = engine("run", "--rm", image, "true", check=False)
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 125, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr
    assert image in errors[0]
    engine.assert_no_leaks()


def test_one_name_taken_by_five_at_once(engine: Engine) -> None:
    procs = [
        subprocess.Popen(
            engine.argv("run", "-d", "--name", "same", BUSYBOX, "sleep", "100"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(5)
    ]
    results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
    winners = [out.strip() for code, out, _ in results if code == 0]
    losers = [err for code, _, err in results if code != 0]
    assert len(winners) == 1 and len(losers) == 4, results
    assert all(code in (0, 125) for code, _, _ in results)
    assert all('"same" is already in use' in _one_error_line(err) for err in losers)
    assert engine.ids() == winners
    engine("rm", "-f", "same")
    engine.assert_no_leaks()


# ---------------------------------------------------------------- leaks


def test_fifty_run_rm_and_fifty_detach_rm_f_cycles_leave_nothing(engine: Engine) -> None:
    for i in range(50):
        proc = engine("run", "--rm", BUSYBOX, "echo", str(i))
        assert proc.stdout == f"{i}\n"
    for _ in range(50):
        cid = engine("run", "-d", BUSYBOX, "sleep", "100").stdout.strip()
        engine("rm", "-f", cid)
    assert len(engine.event_ids()) == 100
    assert engine.ids() == []
    engine.assert_no_leaks()


# ---------------------------------------------------------------- other runtimes


@pytest.fixture
def crun_wrapper(tmp_path: Path) -> str:
    """crun 1.8.1 refuses this hybrid host (it takes the cgroup2 mount at /sys/fs/cgroup/unified for
    a v2 host and fails): run it in a private mount namespace without that mount."""
    path = tmp_path / "crun-v1"
    path.write_text('#!/bin/sh\nexec unshare -m sh -c \'umount /sys/fs/cgroup/unified && exec crun "$@"\' crun "$@"\n')
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("which", ["runc", "crun"])
def test_run_stop_rm_under_another_runtime(engine: Engine, which: str, crun_wrapper: str) -> None:
    runtime = crun_wrapper if which == "crun" else "runc"
    proc = engine("run", "--rm", "--runtime", runtime, BUSYBOX, "sh", "-c", "echo hi; echo err >&2; exit 3",
                  check=False)  # fmt: skip
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "hi\n", "err\n")
    script = f"trap 'echo bye; exit 0' TERM; echo ready; {LOOP}"
    cid = engine("run", "-d", "--name", "other", "--runtime", runtime, BUSYBOX, "sh", "-c", script).stdout.strip()
    doc = engine.inspect("other")
    assert doc["State"]["Status"] == "running" and doc["HostConfig"]["Runtime"] == runtime
    assert os.path.exists(f"/sys/fs/cgroup/pids/hull/{cid}") or _processes_in(cid) == []
    engine("pause", "other")
    assert engine.inspect("other")["State"]["Status"] == "paused"
    engine("unpause", "other")
    engine("stop", "other")
    doc = engine.inspect("other")
    assert (doc["State"]["Status"], doc["State"]["ExitCode"]) == ("exited", 0)
    assert "bye" in engine("logs", "other").stdout
    proc = engine("run", "--rm", "--runtime", runtime, BUSYBOX, "no-such-program", check=False)
    assert proc.returncode == 127, proc.stderr
    assert "no-such-program" in _one_error_line(proc.stderr)
    engine("rm", "other")
    engine.assert_no_leaks()
