"""runc 1.1's command line: global flags, every command's flags, and the messages callers match.

Engines drive runc by its command line and read its words (containerd,
podman and conmon look for "container does not exist", "not stopped" ...), so
where a caller could depend on a message or an exit code, hull-runtime's are
runc 1.1.5's; where this file says "runc" it was checked against runc 1.1.5.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime
from tests.integration._support import alive, new_id, popen, state, wait_for, wait_for_status

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"


def _no_pid_ns(config: dict[str, Any]) -> None:
    # Without a PID namespace the process is not a namespace's init, which the
    # kernel protects from signals it has no handler for.
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"]


def _writable(config: dict[str, Any]) -> None:
    config["root"]["readonly"] = False


def _error_line(stderr: str) -> str:
    """The one logrus text record on stderr; its msg, unescaped."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    match = re.fullmatch(rf'time="{STAMP}" level=error msg="(?P<msg>.*)"', lines[0])
    assert match, lines[0]
    return match.group("msg").replace('\\"', '"').replace("\\\\", "\\")


# ---------------------------------------------------------------- global flags


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version(runtime: Runtime, flag: str) -> None:
    proc = runtime(flag)
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"hull-runtime version \S+", lines[0])
    assert re.fullmatch(r"spec: 1\.\d+\.\d+", lines[1])


def test_root_keeps_state_apart(runtime: Runtime, make_bundle, tmp_path: Path) -> None:
    other = Runtime(runtime.argv0, tmp_path / "other-root")
    bundle = make_bundle(["sleep", "30"])
    runtime("create", "--bundle", str(bundle), "c1")
    assert (runtime.root / "c1" / "state.json").is_file()
    assert other("list", "--quiet").stdout == ""
    assert "container does not exist" in other("state", "c1", check=False).stderr
    # The same ID under another root is another container.
    other("create", "--bundle", str(make_bundle(["sleep", "30"])), "c1")
    try:
        assert state(other, "c1")["pid"] != state(runtime, "c1")["pid"]
    finally:
        other("delete", "--force", "c1")


def test_log_json_writes_a_logrus_record_and_the_bare_message_to_stderr(runtime: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    proc = runtime("--log", str(log), "--log-format", "json", "state", "nope", check=False)
    assert proc.returncode == 1
    assert proc.stderr == "container does not exist\n"
    lines = log.read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert list(record) == ["level", "msg", "time"]  # logrus's JSONFormatter order
    assert record["level"] == "error" and record["msg"] == "container does not exist"
    assert re.fullmatch(STAMP, record["time"])


def test_log_text_appends_logrus_text_records(runtime: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text("earlier\n")
    proc = runtime("--log", str(log), "--log-format=text", "start", "nope", check=False)
    assert proc.returncode == 1 and proc.stderr == "container does not exist\n"
    runtime("--log", str(log), "kill", "nope", "KILL", check=False)
    lines = log.read_text().splitlines()
    assert lines[0] == "earlier" and len(lines) == 3
    for line in lines[1:]:
        assert re.fullmatch(rf'time="{STAMP}" level=error msg="container does not exist"', line), line


def test_log_escapes_quotes_in_text_records(runtime: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    runtime("--log", str(log), "create", "--bundle", str(tmp_path), "a b", check=False)
    proc = runtime("--log", str(log), "kill", "x", "NOPE", check=False)
    assert proc.returncode == 1
    assert proc.stderr == 'unknown signal "NOPE"\n'
    assert log.read_text().splitlines()[-1].endswith(r'level=error msg="unknown signal \"NOPE\""')


def test_without_log_the_record_goes_to_stderr(runtime: Runtime) -> None:
    proc = runtime("state", "nope", check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert _error_line(proc.stderr) == "container does not exist"


def test_log_format_must_be_text_or_json(runtime: Runtime) -> None:
    proc = runtime("--log-format", "xml", "list", check=False)
    assert proc.returncode == 1
    assert _error_line(proc.stderr) == "invalid log-format: xml"


def test_debug_is_accepted(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["sleep", "30"])
    runtime("--debug", "create", "--bundle", str(bundle), "c1")
    assert json.loads(runtime("--debug", "state", "c1").stdout)["status"] == "created"
    runtime("--debug", "delete", "c1")


def test_systemd_cgroup_is_refused_clearly(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["sleep", "30"])
    proc = runtime("--systemd-cgroup", "create", "--bundle", str(bundle), "c1", check=False)
    assert proc.returncode == 1
    message = _error_line(proc.stderr)
    assert "systemd" in message and "not supported" in message
    assert runtime("list", "--quiet").stdout == ""


@pytest.mark.parametrize("command", ["checkpoint", "restore"])
def test_checkpoint_and_restore_are_refused_clearly(runtime: Runtime, make_bundle, command: str) -> None:
    bundle = make_bundle(["sleep", "30"])
    runtime("create", "--bundle", str(bundle), "cr1")
    proc = runtime(command, "cr1", check=False)
    assert proc.returncode == 1
    assert _error_line(proc.stderr) == f'"{command}" is not supported by hull-runtime (no CRIU support)'
    assert json.loads(runtime("state", "cr1").stdout)["status"] == "created"  # the container is untouched


def test_unknown_flag_and_command(runtime: Runtime) -> None:
    proc = runtime("--nope", "list", check=False)
    assert proc.returncode == 1 and "flag provided but not defined: -nope" in proc.stderr
    proc = runtime("frobnicate", check=False)
    assert proc.returncode == 1 and "frobnicate" in proc.stderr


@pytest.mark.parametrize("container_id", ["a/b", "..", "a b", "ü"])
def test_invalid_container_ids(runtime: Runtime, make_bundle, container_id: str) -> None:
    bundle = make_bundle(["true"])
    for args in (["create", "--bundle", str(bundle), container_id], ["state", container_id]):
        proc = runtime(*args, check=False)
        assert proc.returncode == 1
        assert "invalid container ID format" in proc.stderr  # runc's words (libcontainer.ErrInvalidID)
    assert not runtime.root.exists() or os.listdir(runtime.root) == []


# ---------------------------------------------------------------- create


@pytest.mark.parametrize("flag", ["-b", "--bundle="])
def test_create_bundle_flag(runtime: Runtime, make_bundle, flag: str) -> None:
    bundle = make_bundle(["sleep", "30"])
    args = [flag + str(bundle)] if flag.endswith("=") else [flag, str(bundle)]
    runtime("create", *args, "c1")
    got = state(runtime, "c1")
    assert got["bundle"] == str(bundle) and got["rootfs"] == str(bundle / "rootfs")


def test_create_defaults_to_the_current_directory(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["sleep", "30"])
    runtime("create", "c1", cwd=bundle)
    assert state(runtime, "c1")["bundle"] == str(bundle)


def test_create_missing_bundle(runtime: Runtime, tmp_path: Path) -> None:
    proc = runtime("create", "--bundle", str(tmp_path / "nope"), "c1", check=False)
    assert proc.returncode == 1 and "no such file or directory" in proc.stderr
    proc = runtime("create", "--bundle", str(tmp_path), "c1", check=False)
    assert proc.returncode == 1 and "config.json" in proc.stderr
    assert runtime("list", "--quiet").stdout == ""


def test_create_twice_with_one_id(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["sleep", "30"])
    runtime("create", "--bundle", str(bundle), "c1")
    proc = runtime("create", "--bundle", str(bundle), "c1", check=False)
    assert proc.returncode == 1
    assert _error_line(proc.stderr) == "hull-runtime create failed: container with given ID already exists"
    assert state(runtime, "c1")["status"] == "created"  # the first one is untouched


@pytest.mark.parametrize("relative", [False, True])
def test_pid_file_holds_the_init_pid(runtime: Runtime, make_bundle, tmp_path: Path, relative: bool) -> None:
    bundle = make_bundle(["sleep", "30"])
    pid_file = tmp_path / "c1.pid"
    runtime(
        "create", "--bundle", str(bundle), "--pid-file", "c1.pid" if relative else str(pid_file), "c1", cwd=tmp_path
    )
    pid = state(runtime, "c1")["pid"]
    assert pid_file.read_text() == str(pid)  # runc writes the number, without a newline
    assert alive(pid)


def test_run_detach_writes_the_pid_file(runtime: Runtime, make_bundle, tmp_path: Path) -> None:
    bundle = make_bundle(["sleep", "30"])
    pid_file = tmp_path / "run.pid"
    runtime("run", "--detach", "--pid-file", str(pid_file), "--bundle", str(bundle), "c1")
    assert int(pid_file.read_text()) == state(runtime, "c1")["pid"]


def test_no_pivot(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["sh", "-c", "cat /etc/passwd | head -1; ls /bin/busybox"])
    proc = runtime("run", "--no-pivot", "--bundle", str(bundle), "c1")
    assert proc.stdout == "root:x:0:0:root:/root:/bin/sh\n/bin/busybox\n"


def _keyring_config(config: dict[str, Any]) -> None:
    # runc's default spec masks /proc/keys; this test needs to read it.
    config["linux"]["maskedPaths"].remove("/proc/keys")


def test_new_session_keyring_is_named_after_the_container(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["cat", "/proc/keys"], edit=_keyring_config)
    cid = new_id("keys")
    keys = runtime("run", "--bundle", str(bundle), cid).stdout
    assert re.search(rf"keyring +{re.escape(cid)}: ", keys), keys
    # Another ID: the first run's keyring may linger in /proc/keys until the kernel's key GC runs.
    other = new_id("keys")
    keys = runtime("run", "--no-new-keyring", "--bundle", str(bundle), other).stdout
    assert other not in keys


def test_preserve_fds(runtime: Runtime, make_bundle, tmp_path: Path) -> None:
    out = tmp_path / "fd3.txt"
    bundle = make_bundle(["sh", "-c", "echo through fd 3 >&3"])
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def as_fd3() -> None:
        os.dup2(fd, 3)

    try:
        kw = {"preexec_fn": as_fd3, "pass_fds": (3,)}
        runtime("run", "--preserve-fds", "1", "--bundle", str(bundle), "c1", **kw)
        assert out.read_text() == "through fd 3\n"
        # Without the flag, fd 3 is not passed into the container.
        proc = runtime("run", "--bundle", str(bundle), "c2", check=False, **kw)
        assert proc.returncode != 0 and out.read_text() == "through fd 3\n"
    finally:
        os.close(fd)


def test_preserve_fds_must_be_a_number(runtime: Runtime, make_bundle) -> None:
    proc = runtime("create", "--preserve-fds", "x", "--bundle", str(make_bundle()), "c1", check=False)
    assert proc.returncode == 1 and "preserve-fds" in proc.stderr
    assert runtime("list", "--quiet").stdout == ""


# ---------------------------------------------------------------- start, state


def test_start_messages(runtime: Runtime, make_bundle) -> None:
    proc = runtime("start", "nope", check=False)
    assert proc.returncode == 1 and _error_line(proc.stderr) == "container does not exist"
    bundle = make_bundle(["sleep", "30"])
    runtime("create", "--bundle", str(bundle), "c1")
    runtime("start", "c1")
    proc = runtime("start", "c1", check=False)
    assert proc.returncode == 1 and _error_line(proc.stderr) == "cannot start an already running container"
    runtime("kill", "c1", "KILL")
    wait_for_status(runtime, "c1", "stopped")
    proc = runtime("start", "c1", check=False)
    assert proc.returncode == 1 and _error_line(proc.stderr) == "cannot start a container that has stopped"


def test_command_argument_counts(runtime: Runtime) -> None:
    for args in (["start"], ["state"], ["delete"], ["create"], ["kill"], ["state", "a", "b"], ["kill", "a", "b", "c"]):
        proc = runtime(*args, check=False)
        assert proc.returncode == 1, args
        assert "requires" in proc.stderr, args


def test_state_document(runtime: Runtime, make_bundle) -> None:
    def annotate(config: dict[str, Any]) -> None:
        config["annotations"] = {"org.example.key": "value", "other": "x y"}

    bundle = make_bundle(["sleep", "30"], edit=annotate)
    before = time.time()
    runtime("create", "--bundle", str(bundle), "c1")
    doc = state(runtime, "c1")
    assert set(doc) == {"ociVersion", "id", "status", "pid", "bundle", "rootfs", "created", "owner", "annotations"}
    assert re.fullmatch(r"1\.\d+\.\d+", doc["ociVersion"])
    assert doc["id"] == "c1" and doc["status"] == "created"
    assert isinstance(doc["pid"], int) and alive(doc["pid"])
    assert doc["bundle"] == str(bundle) and doc["rootfs"] == str(bundle / "rootfs")
    assert doc["annotations"] == {"org.example.key": "value", "other": "x y"}
    assert doc["owner"] == ""  # as runc's state; list fills it in
    created = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{9})Z", doc["created"])
    assert created, doc["created"]
    stamp = time.mktime(time.strptime(created.group(1), "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert before - 1 <= stamp <= time.time() + 1
    # The state is the same document whichever command reads it.
    listed = json.loads(runtime("list", "--format", "json").stdout)
    assert listed == [{**doc, "owner": "root"}]


def test_state_without_annotations_has_none(runtime: Runtime, make_bundle) -> None:
    runtime("create", "--bundle", str(make_bundle(["sleep", "30"])), "c1")
    assert "annotations" not in state(runtime, "c1")


# ---------------------------------------------------------------- kill


def _signal_logger(config: dict[str, Any]) -> None:
    _writable(config)
    config["process"]["args"] = [
        "sh",
        "-c",
        'for s in HUP USR1 USR2 TERM; do trap "echo $s >> /signals" $s; done; touch /ready;'
        " while :; do sleep 0.02; done",
    ]


def test_kill_signal_names_and_numbers(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(edit=_signal_logger)
    runtime("run", "--detach", "--bundle", str(bundle), "c1")
    rootfs = bundle / "rootfs"
    wait_for(lambda: (rootfs / "ready").exists(), what="the container's traps")

    def logged() -> list[str]:
        path = rootfs / "signals"
        return path.read_text().split() if path.exists() else []

    expected: list[str] = []
    # As runc's parseSignal: a number, or a name with or without SIG, in any case; TERM by default.
    for spec, name in [
        ("USR1", "USR1"),
        ("SIGUSR1", "USR1"),
        ("usr1", "USR1"),
        ("10", "USR1"),
        ("HUP", "HUP"),
        ("1", "HUP"),
    ]:
        runtime("kill", "c1", spec)
        expected.append(name)
        wait_for(lambda: len(logged()) == len(expected), what=f"SIG{name}")
        assert logged() == expected, spec
    assert state(runtime, "c1")["status"] == "running"  # a trapped signal does not stop it
    runtime("kill", "c1")
    wait_for(lambda: logged() == [*expected, "TERM"], what="SIGTERM")


@pytest.mark.parametrize("spec", ["KILL", "SIGKILL", "9"])
def test_kill_stops_a_running_container(runtime: Runtime, make_bundle, spec: str) -> None:
    runtime("run", "--detach", "--bundle", str(make_bundle(["sleep", "30"])), "c1")
    runtime("kill", "c1", spec)
    doc = wait_for_status(runtime, "c1", "stopped")
    assert doc["pid"] == 0  # runc reports no pid for a stopped container


def test_kill_a_created_container(runtime: Runtime, make_bundle) -> None:
    runtime("create", "--bundle", str(make_bundle(["sleep", "30"])), "c1")
    runtime("kill", "c1", "KILL")
    wait_for_status(runtime, "c1", "stopped")


def test_kill_signal_zero_probes(runtime: Runtime, make_bundle) -> None:
    # runc passes any number through to kill(2); 0 only checks that init is there.
    runtime("run", "--detach", "--bundle", str(make_bundle(["sleep", "30"])), "c1")
    runtime("kill", "c1", "0")
    assert state(runtime, "c1")["status"] == "running"


def test_kill_messages(runtime: Runtime, make_bundle) -> None:
    proc = runtime("kill", "nope", "KILL", check=False)
    assert proc.returncode == 1 and _error_line(proc.stderr) == "container does not exist"
    runtime("run", "--detach", "--bundle", str(make_bundle(["sleep", "30"])), "c1")
    for bad in ("FOO", "SIGFOO", "KILL9"):
        proc = runtime("kill", "c1", bad, check=False)
        assert proc.returncode == 1 and _error_line(proc.stderr) == f'unknown signal "{bad}"'
    runtime("kill", "c1", "KILL")
    wait_for_status(runtime, "c1", "stopped")
    proc = runtime("kill", "c1", check=False)
    assert proc.returncode == 1 and _error_line(proc.stderr) == "container not running"


@pytest.mark.parametrize("flag", ["--all", "-a"])
def test_kill_all_reaches_every_process(runtime: Runtime, make_bundle, flag: str) -> None:
    # init (PID 1 of the container) has no TERM handler, so the kernel keeps
    # TERM from it; its children die of it, and then init's wait returns.
    bundle = make_bundle(["sh", "-c", "sleep 30 & sleep 30 & touch /ready; wait"], edit=_writable)
    runtime("run", "--detach", "--bundle", str(bundle), "c1")
    wait_for(lambda: (bundle / "rootfs" / "ready").exists(), what="the container's children")
    runtime("kill", "c1", "TERM")
    time.sleep(0.1)
    assert state(runtime, "c1")["status"] == "running"
    runtime("kill", flag, "c1", "TERM")
    wait_for_status(runtime, "c1", "stopped")


# ---------------------------------------------------------------- delete


def test_delete(runtime: Runtime, make_bundle) -> None:
    proc = runtime("delete", "nope", check=False)
    assert proc.returncode == 1 and _error_line(proc.stderr) == "container does not exist"
    assert runtime("delete", "--force", "nope").returncode == 0  # runc: --force ignores a missing container
    bundle = make_bundle(["sleep", "30"])
    runtime("run", "--detach", "--bundle", str(bundle), "c1")
    pid = state(runtime, "c1")["pid"]
    proc = runtime("delete", "c1", check=False)
    assert proc.returncode == 1
    assert _error_line(proc.stderr).rstrip("\\n") == "cannot delete container c1 that is not stopped: running"
    assert state(runtime, "c1")["status"] == "running"
    runtime("delete", "-f", "c1")
    wait_for(lambda: not alive(pid), what="init to be gone")
    assert "container does not exist" in runtime("state", "c1", check=False).stderr
    assert not (runtime.root / "c1").exists()


def test_delete_created_needs_no_force(runtime: Runtime, make_bundle) -> None:
    # runc deletes a created container without --force (delete.go: "case libcontainer.Created").
    runtime("create", "--bundle", str(make_bundle(["sleep", "30"])), "c1")
    pid = state(runtime, "c1")["pid"]
    runtime("delete", "c1")
    wait_for(lambda: not alive(pid), what="init to be gone")


def test_delete_stopped(runtime: Runtime, make_bundle) -> None:
    runtime("run", "--detach", "--bundle", str(make_bundle(["true"])), "c1")
    wait_for_status(runtime, "c1", "stopped")
    runtime("delete", "c1")
    assert runtime("list", "--quiet").stdout == ""


# ---------------------------------------------------------------- run


@pytest.mark.parametrize("code", [0, 3, 255])
def test_run_returns_the_exit_status_and_deletes(runtime: Runtime, make_bundle, code: int) -> None:
    bundle = make_bundle(["sh", "-c", f"echo out; echo err >&2; exit {code}"])
    proc = runtime("run", "--bundle", str(bundle), "c1", check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (code, "out\n", "err\n")
    assert runtime("list", "--quiet").stdout == ""
    assert not (runtime.root / "c1").exists()


def _run_in_background(runtime: Runtime, bundle: Path, cid: str) -> subprocess.Popen[bytes]:
    proc = popen(runtime, "run", "--bundle", str(bundle), cid)
    wait_for(
        lambda: proc.poll() is not None or '"running"' in runtime("state", cid, check=False).stdout,
        what=f"{cid} to run",
    )
    assert proc.poll() is None
    return proc


@pytest.mark.parametrize("sig, pid_ns", [("KILL", True), ("KILL", False), ("TERM", False), ("USR1", False)])
def test_run_killed_by_a_signal_returns_128_plus_n(runtime: Runtime, make_bundle, sig: str, pid_ns: bool) -> None:
    # runc 1.1.5 exits 137, 143, 138 for KILL, TERM and USR1 here.
    bundle = make_bundle(["sleep", "30"], edit=None if pid_ns else _no_pid_ns)
    proc = _run_in_background(runtime, bundle, "c1")
    runtime("kill", "c1", sig)
    assert proc.wait(timeout=10) == 128 + signal.Signals["SIG" + sig]
    assert runtime("list", "--quiet").stdout == ""


def test_run_forwards_signals_to_the_container(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.02; done"])
    proc = _run_in_background(runtime, bundle, "c1")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 42
    assert runtime("list", "--quiet").stdout == ""


def test_run_detach(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["sleep", "30"])
    started = time.monotonic()
    for flag in ("--detach", "-d"):
        cid = f"c{flag}"
        proc = runtime("run", flag, "--bundle", str(bundle), cid)
        assert proc.returncode == 0 and proc.stdout == ""
        assert state(runtime, cid)["status"] == "running"
    assert time.monotonic() - started < 10


def test_run_failure_leaves_nothing(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["nope"])
    for flag in ([], ["--detach"]):
        proc = runtime("run", *flag, "--bundle", str(bundle), "c1", check=False)
        assert proc.returncode == 1
        assert _error_line(proc.stderr).endswith('exec: "nope": executable file not found in $PATH')
        assert runtime("list", "--quiet").stdout == ""


# ---------------------------------------------------------------- list


def test_list_formats(runtime: Runtime, runc: Runtime, make_bundle) -> None:
    # With no containers, byte for byte what runc prints (tabwriter layout; JSON null).
    assert runtime("list").stdout == runc("list").stdout
    assert runtime("list", "--format", "json").stdout == runc("list", "--format", "json").stdout == "null\n"
    bundle = make_bundle(["sleep", "30"])
    runtime("create", "--bundle", str(bundle), "b2")
    runtime("run", "--detach", "--bundle", str(bundle), "a1")
    docs = {d["id"]: d for d in json.loads(runtime("list", "-f", "json").stdout)}
    assert set(docs) == {"a1", "b2"}
    assert docs["a1"]["status"] == "running" and docs["b2"]["status"] == "created"
    for doc in docs.values():
        # list names the owner of the container's state; runc's state leaves it "".
        assert doc == {**state(runtime, doc["id"]), "owner": "root"}
    assert runtime("list", "--quiet").stdout == "a1\nb2\n"
    assert runtime("list", "-q").stdout == "a1\nb2\n"
    table = runtime("list", "--format", "table").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    rows = sorted(line.split() for line in table[1:])
    assert [r[:4] for r in rows] == [
        ["a1", str(docs["a1"]["pid"]), "running", str(bundle)],
        ["b2", str(docs["b2"]["pid"]), "created", str(bundle)],
    ]
    # Columns line up under their headers.
    starts = [table[0].index(h) for h in ("PID", "STATUS", "BUNDLE")]
    for line in table[1:]:
        assert all(line[s - 1] == " " and line[s] != " " for s in starts), line
    proc = runtime("list", "--format", "yaml", check=False)
    assert proc.returncode == 1 and "invalid format option" in proc.stderr


# ---------------------------------------------------------------- spec, features


def test_spec_matches_runc(runtime: Runtime, runc: Runtime, tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    runtime("spec", "--bundle", str(ours))
    runc("spec", "--bundle", str(theirs))
    mine, reference = (json.loads((d / "config.json").read_text()) for d in (ours, theirs))
    for doc in (mine, reference):
        doc.pop("ociVersion")
        doc.pop("hostname")
    assert mine == reference
    proc = runtime("spec", "--bundle", str(ours), check=False)
    assert proc.returncode == 1 and _error_line(proc.stderr) == "File config.json exists. Remove it first"


def test_spec_in_the_current_directory(runtime: Runtime, tmp_path: Path) -> None:
    runtime("spec", cwd=tmp_path)
    doc = json.loads((tmp_path / "config.json").read_text())
    assert doc["root"]["path"] == "rootfs" and doc["process"]["terminal"] is True
    before = (tmp_path / "config.json").read_text()
    proc = runtime("spec", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "File config.json exists. Remove it first" in proc.stderr
    assert (tmp_path / "config.json").read_text() == before


def test_spec_rootless(runtime: Runtime, tmp_path: Path) -> None:
    runtime("spec", "--rootless", "-b", str(tmp_path))
    doc = json.loads((tmp_path / "config.json").read_text())
    kinds = [ns["type"] for ns in doc["linux"]["namespaces"]]
    assert "user" in kinds and "network" not in kinds
    assert doc["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert doc["linux"]["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]


def test_spec_missing_bundle(runtime: Runtime, tmp_path: Path) -> None:
    proc = runtime("spec", "--bundle", str(tmp_path / "nope"), check=False)
    assert proc.returncode == 1 and "no such file or directory" in proc.stderr


def test_features(runtime: Runtime) -> None:
    doc = json.loads(runtime("features").stdout)
    version = re.compile(r"1\.\d+\.\d+")
    assert version.fullmatch(doc["ociVersionMin"]) and version.fullmatch(doc["ociVersionMax"])
    assert tuple(map(int, doc["ociVersionMin"].split("."))) <= tuple(map(int, doc["ociVersionMax"].split(".")))
    assert set(doc["hooks"]) == {
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    }
    options = doc["mountOptions"]
    assert all(isinstance(o, str) for o in options)
    assert {"ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec", "private", "rprivate"} <= set(options)
    assert {"mount", "pid", "network", "ipc", "uts", "user", "cgroup"} <= set(doc["linux"]["namespaces"])
    assert set(doc["linux"]["namespaces"]) <= {"mount", "pid", "network", "ipc", "uts", "user", "cgroup", "time"}
    for value in doc.get("annotations", {}).values():
        assert isinstance(value, str)
