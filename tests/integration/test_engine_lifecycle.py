"""The engine's container commands end to end, checked as a user of docker checks them.

Every test drives ``hull`` as a separate process with a private --root and
--runroot (the ``engine`` fixture) on the built-in ``localhost/busybox``
image, and looks at what docker's user would: output, exit status, ``ps``,
``inspect``, ``logs`` and what the container sees inside; and after removal,
that nothing is left (mounts, cgroups, monitors, snapshots, state).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration import engine_support
from tests.integration.engine_support import BUSYBOX, Engine

engine = engine_support.engine  # the fixture

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: "), stderr
    return lines[0]


def _inside(engine: Engine, *flags: str, script: str) -> str:
    """stdout of ``sh -c SCRIPT`` in a --rm container run with ``flags``; it must exit 0."""
    proc = engine("run", "--rm", *flags, BUSYBOX, "sh", "-c", script, check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


# ---------------------------------------------------------------- run


def test_run_foreground_output_and_exit_codes(engine: Engine) -> None:
    proc = engine("run", "--rm", BUSYBOX, "echo", "hello world")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "hello world\n", "")
    proc = engine("run", "--rm", BUSYBOX, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")
    proc = engine("run", "--rm", BUSYBOX, "no-such-program", check=False)
    assert proc.returncode == 127
    assert "no-such-program" in _one_error_line(proc.stderr)
    proc = engine("run", "--rm", BUSYBOX, "/etc/passwd", check=False)
    assert proc.returncode == 126
    assert "permission denied" in _one_error_line(proc.stderr)
    # docker run --rm returns once the container is removed, also when it could not start
    assert engine("ps", "-a", "--format", "{{.Command}} {{.Status}}").stdout == ""
    engine.assert_no_leaks()


def test_run_rm_leaves_nothing(engine: Engine) -> None:
    proc = engine("run", "--rm", "-v", "/data", BUSYBOX, "sh", "-c", "echo x > /data/f; cat /data/f")
    assert proc.stdout == "x\n"
    assert len(engine.event_ids()) == 1
    assert engine("ps", "-a", "-q").stdout == ""
    assert engine.volumes() == []  # --rm removes anonymous volumes too
    engine.assert_no_leaks()


def test_detach_prints_the_id_and_a_taken_name_is_one_line(engine: Engine) -> None:
    proc = engine("run", "-d", "--name", "web", BUSYBOX, "sleep", "100")
    cid = proc.stdout.strip()
    assert HEX64.match(cid), proc.stdout
    doc = engine.inspect("web")
    assert doc["Id"] == cid and doc["State"]["Status"] == "running" and doc["State"]["Pid"] > 0
    proc = engine("run", "-d", "--name", "web", BUSYBOX, "true", check=False)
    assert proc.returncode == 125
    assert '"web" is already in use' in _one_error_line(proc.stderr)
    assert engine.ids() == [cid]
    engine("rm", "-f", "web")
    again = engine("run", "-d", "--name", "web", BUSYBOX, "true").stdout.strip()  # a removed name is free
    assert engine.ids() == [again]
    engine("rm", "-f", "web")
    engine.assert_no_leaks()


def test_env_workdir_user_hostname_and_entrypoint(engine: Engine, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nFROM_FILE=file value\n")
    out = _inside(engine, "-e", "FOO=bar", "--env-file", str(env_file), "-w", "/tmp", "-u", "1000:1001",
                  "--hostname", "box1", script='echo "$FOO|$FROM_FILE"; pwd; id -u; id -g; hostname')  # fmt: skip
    assert out.splitlines() == ["bar|file value", "/tmp", "1000", "1001", "box1"]
    proc = engine("run", "--rm", "--entrypoint", "echo", BUSYBOX, "from", "entrypoint")
    assert proc.stdout == "from entrypoint\n"


def test_read_only_memory_and_pids_limit(engine: Engine) -> None:
    out = _inside(engine, "--read-only", "--memory", "64m", "--pids-limit", "10",
                  script="touch /x 2>/dev/null; echo root=$?; touch /tmp/x; echo tmp=$?;"
                  " cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max")  # fmt: skip
    # docker --read-only keeps /tmp on the root: writing there fails too (no implicit tmpfs)
    assert out.split() == ["root=1", "tmp=1", str(64 << 20), "10"], out


def test_capabilities_privileged_and_no_new_privileges(engine: Engine) -> None:
    caps = "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status | tr -s '\\t' ' '"
    default = _inside(engine, script=caps).splitlines()
    assert default == ["CapEff: 00000000a80425fb", "NoNewPrivs: 0"], default
    dropped = _inside(engine, "--cap-drop", "ALL", script=caps + "; chown 65534 /tmp || echo denied")
    assert "CapEff: 0000000000000000" in dropped and "denied" in dropped
    nnp = _inside(engine, "--security-opt", "no-new-privileges", script=caps)
    assert "NoNewPrivs: 1" in nnp
    privileged = _inside(engine, "--privileged", script=caps + "; mount -t tmpfs t /tmp && echo mounted")
    eff = privileged.splitlines()[0].split()[1]
    assert int(eff, 16) >= 0x1FFFFFFFFF and "mounted" in privileged, privileged


def test_init_runs_the_command_under_an_init(engine: Engine) -> None:
    out = _inside(engine, "--init", script="echo pid=$$; tr '\\0' ' ' < /proc/1/cmdline")
    assert "pid=1\n" not in out
    assert "/dev/init -- sh -c" in out


def test_labels_stop_signal_and_stop_timeout(engine: Engine) -> None:
    script = "trap 'echo got USR1; exit 5' USR1; while :; do sleep 0.1; done"
    engine("run", "-d", "--name", "sig", "--label", "tier=web", "--stop-signal", "SIGUSR1", BUSYBOX, "sh", "-c", script)
    doc = engine.inspect("sig")
    assert doc["Config"]["Labels"] == {"tier": "web"}
    assert doc["Config"]["StopSignal"] == "SIGUSR1"
    start = time.monotonic()
    engine("stop", "sig")
    assert time.monotonic() - start < 5
    assert engine.inspect("sig")["State"]["ExitCode"] == 5
    assert engine("logs", "sig").stdout == "got USR1\n"
    # sleep as PID 1 ignores SIGTERM: --stop-timeout 1 means SIGKILL after a second
    engine("run", "-d", "--name", "stubborn", "--stop-timeout", "1", BUSYBOX, "sleep", "100")
    start = time.monotonic()
    engine("stop", "stubborn")
    took = time.monotonic() - start
    assert 1 <= took < 6, took
    assert engine.inspect("stubborn")["State"]["ExitCode"] == 137
    engine("rm", "sig", "stubborn")
    engine.assert_no_leaks()


def test_interactive_reads_piped_stdin(engine: Engine) -> None:
    proc = engine("run", "--rm", "-i", BUSYBOX, "sh", "-c", "tr a-z A-Z; echo done", input="hello\nworld\n",
                  stdin=None)  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, "HELLO\nWORLD\ndone\n")
    # without -i the container's stdin is empty (/dev/null)
    proc = engine("run", "--rm", BUSYBOX, "cat", input="ignored\n", stdin=None)
    assert (proc.returncode, proc.stdout) == (0, "")


def test_tty_under_script(engine: Engine) -> None:
    command = " ".join(engine.argv("run", "--rm", "-t", BUSYBOX, "sh", "-c", "tty; test -t 1 && echo is-a-tty; exit 7"))
    proc = subprocess.run(["timeout", "30", "script", "-qec", command, "/dev/null"], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=40)  # fmt: skip
    assert proc.returncode == 7, proc.stdout + proc.stderr
    # through the container's pty: its line discipline's CRLF
    assert proc.stdout == b"/dev/pts/0\r\nis-a-tty\r\n", proc.stdout
    engine.assert_no_leaks()


def test_pull_never_on_an_unknown_image(engine: Engine) -> None:
    proc = engine("run", "--rm", "--pull", "never", "localhost/no-such-image:1", "true", check=False)
    assert proc.returncode == 125
    assert "localhost/no-such-image:1" in _one_error_line(proc.stderr)
    engine.assert_no_leaks()


# ---------------------------------------------------------------- create / start / stop / kill / restart / rm


def test_create_then_start_and_start_attach(engine: Engine) -> None:
    cid = engine("create", "--name", "c1", BUSYBOX, "sh", "-c", "echo out; echo err >&2; exit 4").stdout.strip()
    assert HEX64.match(cid)
    assert engine("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout == "c1 Created\n"
    assert engine.inspect("c1")["State"]["Status"] == "created"
    proc = engine("start", "-a", "c1", check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (4, "out\n", "err\n")
    doc = engine.inspect("c1")
    assert (doc["State"]["Status"], doc["State"]["ExitCode"]) == ("exited", 4)
    # started again (detached): the same container runs its command once more
    assert engine("start", "c1").stdout == "c1\n"
    assert engine("wait", "c1").stdout == "4\n"
    assert engine("logs", "c1").stdout == "out\nout\n"
    # a created container started without -a runs detached
    engine("create", "--name", "c2", BUSYBOX, "sleep", "100")
    engine("start", "c2")
    assert engine.inspect("c2")["State"]["Status"] == "running"
    # a created container is removed without -f, as docker's
    engine("create", "--name", "c3", BUSYBOX, "true")
    assert engine("rm", "c3").stdout == "c3\n"
    engine("rm", "-f", "c1", "c2")
    engine.assert_no_leaks()


def test_stop_sends_sigterm_that_a_trap_honours(engine: Engine) -> None:
    script = "trap 'echo terminated; exit 0' TERM; echo ready; while :; do sleep 0.1; done"
    engine("run", "-d", "--name", "trapper", BUSYBOX, "sh", "-c", script)
    _wait_log(engine, "trapper", "ready")
    start = time.monotonic()
    assert engine("stop", "-t", "10", "trapper").stdout == "trapper\n"
    assert time.monotonic() - start < 3
    doc = engine.inspect("trapper")
    assert (doc["State"]["Status"], doc["State"]["ExitCode"], doc["State"]["Pid"]) == ("exited", 0, 0)
    assert doc["State"]["FinishedAt"] > doc["State"]["StartedAt"]
    assert engine("logs", "trapper").stdout == "ready\nterminated\n"
    # stop -t: SIGKILL when the stop signal is ignored
    engine("run", "-d", "--name", "killme", BUSYBOX, "sh", "-c", "trap '' TERM; while :; do sleep 0.1; done")
    start = time.monotonic()
    engine("stop", "-t", "1", "killme")
    assert 1 <= time.monotonic() - start < 5
    assert engine.inspect("killme")["State"]["ExitCode"] == 137
    assert "Exited (137)" in engine("ps", "-a", "--filter", "name=k", "--format", "{{.Status}}").stdout
    engine("rm", "trapper", "killme")
    engine.assert_no_leaks()


def test_kill_with_a_signal_and_restart(engine: Engine) -> None:
    script = "trap 'echo usr1' USR1; echo started; while :; do sleep 0.1; done"
    engine("run", "-d", "--name", "killme", BUSYBOX, "sh", "-c", script)
    _wait_log(engine, "killme", "started")
    first = engine.inspect("killme")["State"]
    engine("kill", "-s", "USR1", "killme")
    _wait_log(engine, "killme", "usr1")
    assert engine.inspect("killme")["State"]["Status"] == "running"
    engine("restart", "-t", "1", "killme")
    second = engine.wait_status("killme", "running")["State"]
    assert second["Pid"] != first["Pid"] and second["StartedAt"] > first["StartedAt"]
    _wait_log(engine, "killme", "started\nusr1\nstarted")
    engine("kill", "killme")
    doc = engine.wait_status("killme", "exited")
    assert doc["State"]["ExitCode"] == 137
    # restart also starts an exited container
    engine("restart", "killme")
    assert engine.inspect("killme")["State"]["Status"] == "running"
    engine("kill", "killme")
    engine.wait_status("killme", "exited")
    proc = engine("kill", "killme", check=False)
    assert proc.returncode == 1 and "is not running" in _one_error_line(proc.stderr)
    proc = engine("kill", "-s", "NOSUCHSIG", "killme", check=False)
    assert proc.returncode == 1 and "NOSUCHSIG" in _one_error_line(proc.stderr)
    engine("rm", "killme")
    engine.assert_no_leaks()


def test_rm_running_needs_force_and_v_removes_anonymous_volumes(engine: Engine) -> None:
    engine("run", "-d", "--name", "rmme", "-v", "/anon", "-v", "named:/named", BUSYBOX, "sleep", "100")
    anonymous = [v for v in engine.volumes() if v != "named"]
    assert len(anonymous) == 1 and "named" in engine.volumes()
    proc = engine("rm", "rmme", check=False)
    assert proc.returncode == 1
    line = _one_error_line(proc.stderr)
    assert "cannot remove container" in line and "stop the container before removing or force remove" in line
    assert engine.inspect("rmme")["State"]["Status"] == "running"
    assert engine("rm", "-f", "-v", "rmme").stdout == "rmme\n"
    assert engine.volumes() == ["named"]  # a named volume stays
    proc = engine("rm", "rmme", check=False)
    assert proc.returncode == 1 and "no such container" in _one_error_line(proc.stderr)
    engine.assert_no_leaks()


# ---------------------------------------------------------------- ps / logs / wait / inspect


def test_ps_listing_filters_and_formats(engine: Engine) -> None:
    a = engine("run", "-d", "--name", "alpha", "--label", "tier=web", BUSYBOX, "sleep", "100").stdout.strip()
    b = engine("run", "--name", "beta", "--label", "tier=db", BUSYBOX, "sh", "-c", "exit 2", check=False)
    assert b.returncode == 2
    c = engine("create", "--name", "gamma", BUSYBOX, "true").stdout.strip()
    b_id = engine.inspect("beta")["Id"]

    table = engine("ps").stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(table) == 2 and table[1].startswith(a[:12]) and table[1].endswith("alpha")
    assert '"sleep 100"' in table[1] and "Up " in table[1]
    assert engine("ps", "-q").stdout.split() == [a[:12]]
    assert engine("ps", "-a", "-q").stdout.split() == [c[:12], b_id[:12], a[:12]]  # newest first
    assert engine("ps", "-a", "-q", "--no-trunc").stdout.split() == [c, b_id, a]
    assert engine("ps", "-n", "2", "-q").stdout.split() == [c[:12], b_id[:12]]
    assert engine("ps", "-l", "-q").stdout.split() == [c[:12]]

    def names(*filters: str) -> list[str]:
        args = [x for f in filters for x in ("--filter", f)]
        return sorted(engine("ps", "-a", *args, "--format", "{{.Names}}").stdout.split())

    assert names("status=exited") == ["beta"]
    assert names("status=created") == ["gamma"]
    assert names("status=running") == ["alpha"]
    assert names("name=alp") == ["alpha"]
    assert names("label=tier") == ["alpha", "beta"]
    assert names("label=tier=db") == ["beta"]
    assert names("ancestor=" + BUSYBOX) == ["alpha", "beta", "gamma"]
    assert names("ancestor=no/such") == []
    assert names("exited=2") == ["beta"]
    assert names("status=exited", "status=created") == ["beta", "gamma"]

    exited = engine("ps", "-a", "--filter", "name=beta", "--format", "table {{.Names}}\t{{.Status}}").stdout
    lines = exited.splitlines()
    assert lines[0].split() == ["NAMES", "STATUS"]
    assert re.match(r"beta +Exited \(2\) (Less than a second|\d+ seconds?) ago$", lines[1]), lines
    rows = [json.loads(line) for line in engine("ps", "-a", "--format", "json").stdout.splitlines()]
    assert [r["Names"] for r in rows] == ["gamma", "beta", "alpha"]
    assert rows[2]["State"] == "running" and rows[2]["Labels"] == "tier=web" and rows[2]["ID"] == a[:12]
    long_cmd = engine("ps", "--no-trunc", "--format", "{{.ID}} {{.Command}}").stdout
    assert long_cmd == f'{a} "sleep 100"\n'

    proc = engine("ps", "--filter", "bogus=1", check=False)
    assert proc.returncode == 1 and "bogus" in _one_error_line(proc.stderr)
    engine("rm", "-f", "alpha", "beta", "gamma")
    engine.assert_no_leaks()


def test_logs_streams_tail_timestamps_since_and_follow(engine: Engine) -> None:
    script = "for i in 1 2 3; do echo out$i; sleep 0.05; echo err$i >&2; sleep 0.05; done"
    engine("run", "--name", "logger", BUSYBOX, "sh", "-c", script)
    proc = engine("logs", "logger")
    assert proc.stdout == "out1\nout2\nout3\n" and proc.stderr == "err1\nerr2\nerr3\n"
    proc = engine("logs", "--tail", "2", "logger")
    # docker's --tail counts lines of both streams together
    assert (proc.stdout + proc.stderr).count("\n") == 2
    assert "out3\n" in proc.stdout and "err3\n" in proc.stderr
    stamped = engine("logs", "-t", "logger").stdout.splitlines()
    assert len(stamped) == 3
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z out\d$", line) for line in stamped), stamped
    assert engine("logs", "--since", "2m", "logger").stdout == "out1\nout2\nout3\n"
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    proc = engine("logs", "--since", future, "logger")
    assert proc.stdout == proc.stderr == ""

    # -f follows a running container and returns when it exits
    engine("run", "-d", "--name", "follow", BUSYBOX, "sh", "-c", "echo one; sleep 1; echo two; sleep 0.5")
    start = time.monotonic()
    proc = engine("logs", "-f", "follow", timeout=20)
    assert proc.stdout == "one\ntwo\n"
    assert time.monotonic() - start >= 0.8  # it waited for the second line
    engine("rm", "logger", "follow")
    engine.assert_no_leaks()


def test_wait_prints_the_exit_code(engine: Engine) -> None:
    engine("run", "-d", "--name", "waiter", BUSYBOX, "sh", "-c", "sleep 0.5; exit 9")
    start = time.monotonic()
    assert engine("wait", "waiter").stdout == "9\n"
    assert time.monotonic() - start > 0.2
    assert engine("wait", "waiter").stdout == "9\n"  # an exited container: at once
    proc = engine("wait", "nosuch", check=False)
    assert proc.returncode == 1 and "no such container: nosuch" in _one_error_line(proc.stderr)
    engine("rm", "waiter")


def test_inspect_has_dockers_fields(engine: Engine) -> None:
    cid = engine("run", "-d", "--name", "insp", "--restart", "on-failure:3", "-e", "A=1", "-v", "/vol",
                 "--label", "k=v", BUSYBOX, "sleep", "100").stdout.strip()  # fmt: skip
    doc = engine.inspect("insp")
    state = doc["State"]
    assert doc["Id"] == cid and doc["Name"] == "/insp"
    assert (state["Status"], state["Running"], state["Paused"], state["ExitCode"]) == ("running", True, False, 0)
    assert _pid_runs(state["Pid"], "sleep")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", state["StartedAt"])
    assert state["FinishedAt"] == "0001-01-01T00:00:00Z"
    assert doc["Path"] == "sleep" and doc["Args"] == ["100"]
    assert doc["Config"]["Image"] == BUSYBOX and doc["Config"]["Labels"] == {"k": "v"}
    assert "A=1" in doc["Config"]["Env"]
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert doc["RestartCount"] == 0
    [mount] = doc["Mounts"]
    assert mount["Type"] == "volume" and mount["Destination"] == "/vol" and mount["RW"] is True
    assert os.path.isdir(mount["Source"])
    assert doc["Image"].startswith("sha256:")
    fmt = engine("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.Name}}", "insp").stdout
    assert fmt == "running 0 /insp\n"
    engine("stop", "-t", "0", "insp")
    state = engine.inspect("insp")["State"]
    assert (state["Status"], state["Running"], state["Pid"], state["ExitCode"]) == ("exited", False, 0, 137)
    assert state["FinishedAt"] > state["StartedAt"]
    proc = engine("inspect", "nosuch", check=False)
    assert proc.returncode == 1 and "nosuch" in _one_error_line(proc.stderr)
    engine("rm", "-v", "insp")
    engine.assert_no_leaks()


def test_pause_and_unpause_freeze_the_cgroup(engine: Engine) -> None:
    cid = engine(
        "run", "-d", "--name", "pauser", BUSYBOX, "sh", "-c", "while :; do date +%s%N > /tmp/t; sleep 0.05; done"
    )
    cid_s = cid.stdout.strip()
    freezer = Path(f"/sys/fs/cgroup/freezer/hull/{cid_s}/freezer.state")
    assert freezer.read_text().strip() == "THAWED"
    engine("pause", "pauser")
    assert freezer.read_text().strip() == "FROZEN"
    doc = engine.inspect("pauser")
    assert (doc["State"]["Status"], doc["State"]["Paused"], doc["State"]["Running"]) == ("paused", True, True)
    assert "(Paused)" in engine("ps", "--format", "{{.Status}}").stdout
    proc = engine("pause", "pauser", check=False)
    assert proc.returncode == 1 and "is not running" in _one_error_line(proc.stderr)
    engine("unpause", "pauser")
    assert freezer.read_text().strip() == "THAWED"
    assert engine.inspect("pauser")["State"]["Status"] == "running"
    proc = engine("unpause", "pauser", check=False)
    assert proc.returncode == 1 and "is not paused" in _one_error_line(proc.stderr)
    engine("pause", "pauser")
    engine("stop", "-t", "1", "pauser")  # a paused container stops (thawed to get the signal)
    assert engine.inspect("pauser")["State"]["Status"] == "exited"
    engine("rm", "pauser")
    # kill and rm -f of a paused container: thawed after the signal, as docker's (frozen, it would never die)
    engine("run", "-d", "--name", "frozen", BUSYBOX, "sh", "-c", "trap 'echo usr1' USR1; while :; do sleep 0.1; done")
    engine("pause", "frozen")
    engine("kill", "-s", "USR1", "frozen")
    _wait_log(engine, "frozen", "usr1")
    assert engine.inspect("frozen")["State"]["Status"] == "running"
    engine("pause", "frozen")
    start = time.monotonic()
    engine("rm", "-f", "frozen")
    assert time.monotonic() - start < 5
    engine.assert_no_leaks()


def test_oom_killed_shows_in_inspect(engine: Engine) -> None:
    hog = 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived'
    proc = engine("run", "--name", "hog", "--memory", "8m", BUSYBOX, "sh", "-c", hog, check=False)
    assert proc.returncode == 137 and "survived" not in proc.stdout
    state = engine.inspect("hog")["State"]
    assert (state["OOMKilled"], state["ExitCode"]) == (True, 137)
    engine("run", "--name", "fits", "--memory", "8m", BUSYBOX, "true")
    assert engine.inspect("fits")["State"]["OOMKilled"] is False
    engine("rm", "hog", "fits")
    engine.assert_no_leaks()


# ---------------------------------------------------------------- restart policies


def test_restart_on_failure_gives_up_after_the_maximum(engine: Engine) -> None:
    engine("run", "-d", "--name", "of", "--restart", "on-failure:2", BUSYBOX, "sh", "-c", "echo run; exit 3")
    doc = _wait_for(engine, "of", lambda d: d["State"]["Status"] == "exited" and d["RestartCount"] == 2, 15)
    assert doc["State"]["ExitCode"] == 3
    time.sleep(1)  # and stays so
    doc = engine.inspect("of")
    assert (doc["State"]["Status"], doc["RestartCount"]) == ("exited", 2)
    assert engine("logs", "of").stdout == "run\nrun\nrun\n"
    # exit 0 is no failure: no restart
    engine("run", "-d", "--name", "ok", "--restart", "on-failure", BUSYBOX, "true")
    time.sleep(1)
    doc = engine.inspect("ok")
    assert (doc["State"]["Status"], doc["RestartCount"]) == ("exited", 0)
    engine("rm", "of", "ok")
    engine.assert_no_leaks()


def test_restart_always_and_unless_stopped_until_stop(engine: Engine) -> None:
    for policy, code in (("always", 1), ("unless-stopped", 0)):
        engine("run", "-d", "--name", policy, "--restart", policy, BUSYBOX, "sh", "-c", f"echo run; exit {code}")
    # back-offs 0.2, 0.4, 0.8, 1.6 s, then 3.2 s: stop during a back-off does not wait it out
    _wait_for(engine, "always", lambda d: d["RestartCount"] >= 4 and d["State"]["Status"] == "restarting", 15)
    for policy in ("always", "unless-stopped"):
        start = time.monotonic()
        engine("stop", "-t", "1", policy)
        assert time.monotonic() - start < 2
        doc = engine.inspect(policy)
        assert doc["State"]["Status"] == "exited" and doc["RestartCount"] >= 2, doc["State"]
    count = {p: engine.inspect(p)["RestartCount"] for p in ("always", "unless-stopped")}
    time.sleep(1.5)  # no restart after a user's stop
    for policy in ("always", "unless-stopped"):
        doc = engine.inspect(policy)
        assert (doc["State"]["Status"], doc["RestartCount"]) == ("exited", count[policy])
    # an explicit start brings an always container back
    engine("start", "always")
    _wait_for(engine, "always", lambda d: d["RestartCount"] > count["always"], 15)
    engine("rm", "-f", "always", "unless-stopped")
    engine.assert_no_leaks()


# ---------------------------------------------------------------- helpers


def _wait_log(engine: Engine, ref: str, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in (out := engine("logs", ref).stdout):
        assert time.monotonic() < deadline, f"{text!r} not in the log of {ref}: {out!r}"
        time.sleep(0.05)


def _wait_for(engine: Engine, ref: str, ok: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc = engine.inspect(ref)
        if ok(doc):
            return doc
        assert time.monotonic() < deadline, f"{ref}: {doc['State']} restarts={doc['RestartCount']}"
        time.sleep(0.05)


def _pid_runs(pid: int, comm: str) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == comm
    except OSError:
        return False
