"""``exec``: a new process in a created or running container (runc 1.1's ``runc exec``).

What the exec'd process sees (namespaces, PID, user, env, cwd, capabilities,
terminal, fds), what the caller sees (exit status, pid file, errors), and the
two container-breakout classes exec is exposed to: CVE-2019-5736 (the
runtime's interpreter reachable through /proc/<pid>/exe before it execs the
container's program) and CVE-2024-21626 (a runtime or caller fd reachable as
the cwd). The last section runs the same execs under runc and compares.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime
from tests.integration._helpers import (
    chain,
    public_bundle,  # noqa: F401 - fixture
    set_linux,
    set_process,
    sh,
)
from tests.integration._support import alive, wait_for
from tests.integration.test_engines import IMAGE, Podman, _ok, image_tar, podman  # noqa: F401 - fixtures
from tests.integration.test_namespaces import user_ns
from tests.integration.test_process import (
    console_socket,  # noqa: F401 - fixture
    read_until_hangup,
    receive_master,
    status_fields,
    with_fds,
)
from tests.integration.test_seccomp import MKDIR_REPORT, Agent

NS_KINDS = ("pid", "net", "ipc", "uts", "mnt", "cgroup", "time", "user")


@pytest.fixture
def cid() -> str:
    # Unique: cgroup paths (below each hierarchy, named after the ID) are shared by every --root.
    return "exec-" + os.urandom(5).hex()


@contextlib.contextmanager
def running(runtime: Runtime, bundle: Path, cid: str, start: bool = True) -> Iterator[int]:
    """A container running (or only created) ``bundle``; yields its init PID, force-deletes it afterwards."""
    runtime("create", "--bundle", str(bundle), cid)
    try:
        if start:
            runtime("start", cid)
        yield int(json.loads(runtime("state", cid).stdout)["pid"])
    finally:
        runtime("delete", "--force", cid, check=False)


def exec_ok(runtime: Runtime, *args: str, **kw: Any) -> str:
    proc = runtime("exec", *args, check=False, **kw)
    assert proc.returncode == 0, (
        f"exec exited {proc.returncode}: stderr {proc.stderr.strip()!r}, stdout {proc.stdout!r}"
    )
    return proc.stdout


def exec_fails(runtime: Runtime, *args: str, **kw: Any) -> str:
    """An exec that must fail as runc's does (exit status 255); its one error message."""
    proc = runtime("exec", *args, check=False, **kw)
    assert proc.returncode == 255, f"exec exited {proc.returncode}: {proc.stderr!r}, stdout {proc.stdout!r}"
    return error_message(proc.stderr)


def error_message(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert 'level=error msg="' in line, line
    return line.split('msg="', 1)[1].rsplit('"', 1)[0].replace('\\"', '"')


def ns_inodes(text: str) -> dict[str, int]:
    return {kind: int(ino) for kind, ino in (line.split() for line in text.splitlines())}


def print_ns(kinds: tuple[str, ...] = NS_KINDS) -> list[str]:
    return sh(f"for n in {' '.join(kinds)}; do echo $n $(stat -L -c %i /proc/self/ns/$n); done")


def container_pids(runtime: Runtime, cid: str) -> dict[int, str]:
    """PID -> command line of every process in the container, as its own ``ps`` shows them."""
    out = exec_ok(runtime, cid, "ps", "-o", "pid,args")
    rows = [line.split(None, 1) for line in out.splitlines()[1:]]
    return {int(pid): args for pid, args in rows}


# ---------------------------------------------------------------- namespaces, PID, lifecycle


def test_exec_joins_every_namespace_of_the_container(runtime: Runtime, make_bundle, cid: str) -> None:
    edit = set_linux(
        namespaces=[{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup", "time")],
        timeOffsets={"monotonic": {"secs": 86400}},
    )
    with running(runtime, make_bundle(["sleep", "600"], edit), cid) as pid:
        inside = ns_inodes(exec_ok(runtime, cid, *print_ns()))
        host_init = {kind: os.stat(f"/proc/{pid}/ns/{kind}").st_ino for kind in NS_KINDS}
    assert inside == host_init
    # Every listed namespace is the container's own, not the runtime's.
    for kind in ("pid", "net", "ipc", "uts", "mnt", "cgroup", "time"):
        assert inside[kind] != os.stat(f"/proc/self/ns/{kind}").st_ino, kind


def test_exec_in_a_no_pivot_container_lands_in_its_root(runtime: Runtime, make_bundle, cid: str) -> None:
    # Without pivot_root the host's root is still the namespace's bottom mount; setns(2) must
    # give the rootfs moved over it, as it does for runc.
    runtime("run", "-d", "--no-pivot", "--bundle", str(make_bundle(["sleep", "600"])), cid)
    try:
        out = exec_ok(runtime, cid, "sh", "-c", "ls /; awk '$5 == \"/\" {print $4}' /proc/self/mountinfo")
    finally:
        runtime("delete", "--force", cid, check=False)
    lines = out.split()
    assert lines[:-1] == ["bin", "dev", "etc", "home", "proc", "root", "sbin", "sys", "tmp", "usr", "var"]
    assert lines[-1].endswith("/rootfs")


def test_exec_in_a_user_namespace_container(runtime: Runtime, public_bundle, cid: str) -> None:  # noqa: F811
    bundle = public_bundle(["sleep", "600"], user_ns(100000, 100000))
    with running(runtime, bundle, cid) as pid:
        out = exec_ok(runtime, cid, "sh", "-c", "id -u; id -g; cat /proc/self/uid_map")
        inside = ns_inodes(exec_ok(runtime, cid, *print_ns(("user", "mnt", "pid"))))
        host_init = {kind: os.stat(f"/proc/{pid}/ns/{kind}").st_ino for kind in ("user", "mnt", "pid")}
    assert out.split() == ["0", "0", "0", "100000", "65536"]
    assert inside == host_init


def test_exec_process_shows_in_the_container_and_kill_all_reaches_it(
    runtime: Runtime, make_bundle, tmp_path: Path, cid: str
) -> None:
    pid_file = tmp_path / "exec.pid"
    with running(runtime, make_bundle(["sleep", "600"]), cid):
        assert exec_ok(runtime, "-d", "--pid-file", str(pid_file), cid, "sleep", "31") == ""
        host_pid = int(pid_file.read_text())
        assert alive(host_pid)
        # Seen from inside: a PID of the container's namespace, and the process in its ps.
        with open(f"/proc/{host_pid}/status") as f:
            ns_pids = status_fields(f.read(), "NSpid")["NSpid"]
        assert len(ns_pids) == 2 and int(ns_pids[0]) == host_pid
        assert container_pids(runtime, cid)[int(ns_pids[1])] == "sleep 31"
        runtime("kill", "--all", cid, "KILL")
        wait_for(lambda: not alive(host_pid), what="the exec'd process to be killed")


def test_delete_force_kills_exec_processes(runtime: Runtime, make_bundle, tmp_path: Path, cid: str) -> None:
    pid_file = tmp_path / "exec.pid"
    with running(runtime, make_bundle(["sleep", "600"]), cid):
        exec_ok(runtime, "-d", "--pid-file", str(pid_file), cid, "sleep", "32")
        host_pid = int(pid_file.read_text())
        runtime("delete", "--force", cid)
        wait_for(lambda: not alive(host_pid), what="the exec'd process to be gone")


def test_exec_in_a_created_container_leaves_it_created(runtime: Runtime, make_bundle, cid: str) -> None:
    with running(runtime, make_bundle(["sleep", "600"]), cid, start=False):
        assert exec_ok(runtime, cid, "echo", "in-created") == "in-created\n"
        assert json.loads(runtime("state", cid).stdout)["status"] == "created"
        runtime("start", cid)
        assert json.loads(runtime("state", cid).stdout)["status"] == "running"


def test_exec_is_refused_for_a_stopped_or_missing_container(runtime: Runtime, make_bundle, cid: str) -> None:
    with running(runtime, make_bundle(["true"]), cid) as pid:
        wait_for(lambda: not alive(pid), what="the container to stop")
        assert exec_fails(runtime, cid, "true") == "exec failed: cannot exec in a stopped container"
    assert exec_fails(runtime, "nosuch", "true") == "exec failed: container does not exist"


# ---------------------------------------------------------------- exit status, signals, detach


@pytest.mark.parametrize(
    ("script", "status"), [("exit 0", 0), ("exit 7", 7), ("kill -TERM $$", 143), ("kill -KILL $$", 137)]
)
def test_foreground_exit_status(runtime: Runtime, make_bundle, script: str, status: int, cid: str) -> None:
    with running(runtime, make_bundle(["sleep", "600"]), cid):
        assert runtime("exec", cid, "sh", "-c", script, check=False).returncode == status


def test_foreground_exec_forwards_signals(runtime: Runtime, make_bundle, cid: str) -> None:
    with running(runtime, make_bundle(["sleep", "600"]), cid):
        proc = subprocess.Popen(
            [
                *runtime.argv0,
                "--root",
                str(runtime.root),
                "exec",
                cid,
                "sh",
                "-c",
                "trap 'exit 42' USR1; sleep 600 & wait",
            ],
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_for(
                lambda: list(container_pids(runtime, cid).values()).count("sleep 600") == 2,
                what="the exec'd shell's sleep",
            )
            proc.send_signal(signal.SIGUSR1)
            assert proc.wait(timeout=10) == 42
        finally:
            proc.kill()
            proc.wait()


def test_detach_returns_at_once_with_the_pid_file(runtime: Runtime, make_bundle, tmp_path: Path, cid: str) -> None:
    pid_file = tmp_path / "sub" / "exec.pid"
    pid_file.parent.mkdir()
    with running(runtime, make_bundle(["sleep", "600"]), cid) as init:
        started = time.monotonic()
        assert exec_ok(runtime, "--detach", "--pid-file", str(pid_file), cid, "sleep", "33") == ""
        assert time.monotonic() - started < 5
        host_pid = int(pid_file.read_text())
        assert os.stat(f"/proc/{host_pid}/ns/pid").st_ino == os.stat(f"/proc/{init}/ns/pid").st_ino
        with open(f"/proc/{host_pid}/cmdline", "rb") as f:
            assert f.read() == b"sleep\x0033\x00"
        # In the container's cgroups, every hierarchy.
        with open(f"/proc/{host_pid}/cgroup") as mine, open(f"/proc/{init}/cgroup") as inits:
            assert mine.read() == inits.read()
        assert sorted(os.listdir(pid_file.parent)) == ["exec.pid"]


# ---------------------------------------------------------------- the process: overrides and process.json


def test_exec_inherits_the_config_process(runtime: Runtime, make_bundle, cid: str) -> None:
    edit = set_process(
        env=["PATH=/bin:/usr/bin", "FROM_CONFIG=1"], cwd="/tmp", user={"uid": 0, "gid": 0, "additionalGids": [7]}
    )
    with running(runtime, make_bundle(["sleep", "600"], edit), cid):
        out = exec_ok(
            runtime,
            cid,
            "sh",
            "-c",
            "env | sort; pwd; id; grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status; ulimit -n",
        )
    lines = out.splitlines()
    assert "FROM_CONFIG=1" in lines and "HOME=/root" in lines and "PATH=/bin:/usr/bin" in lines
    assert "/tmp" in lines
    assert "uid=0(root) gid=0(root) groups=7" in lines
    assert "NoNewPrivs:\t1" in lines
    assert "CapBnd:\t0000000020000420" in lines  # runc spec's AUDIT_WRITE, KILL, NET_BIND_SERVICE
    assert lines[-1] == "1024"


def test_exec_flags_override_the_config_process(runtime: Runtime, make_bundle, cid: str) -> None:
    edit = set_process(noNewPrivileges=False)
    with running(runtime, make_bundle(["sleep", "600"], edit), cid):
        out = exec_ok(
            runtime,
            *("--env", "A=1", "-e", "B=two words", "--cwd", "/dev", "--user", "1000:1001", "-g", "5", "-g", "6"),
            *("--cap", "CAP_SYS_ADMIN", "-c", "CAP_SYS_CHROOT", "--no-new-privs"),
            cid,
            "sh",
            "-c",
            "echo A=$A; echo B=$B; echo HOME=$HOME; pwd; id -u; id -g; id -G; "
            "grep -E '^(Cap|NoNewPrivs)' /proc/self/status",
        )
        plain = exec_ok(runtime, cid, "grep", "NoNewPrivs", "/proc/self/status")
        root_caps = {
            k: int(v, 16)
            for k, v in (
                line.split(":\t")
                for line in exec_ok(
                    runtime, "--cap", "CAP_SYS_ADMIN", cid, "grep", "Cap", "/proc/self/status"
                ).splitlines()
            )
        }
    lines = out.splitlines()
    assert lines[:7] == ["A=1", "B=two words", "HOME=/", "/dev", "1000", "1001", "1001 5 6"]
    caps = {k: int(v, 16) for k, v in (line.split(":\t") for line in lines[7:] if line.startswith("Cap"))}
    sys_admin, sys_chroot = 1 << 21, 1 << 18
    # runc adds each --cap to the bounding, effective, permitted and ambient sets; not to the
    # inheritable one, so the kernel keeps it out of the ambient set (capabilities(7)), as under runc.
    # A non-root user keeps none past execve but the ambient ones (capabilities(7)).
    assert caps["CapBnd"] & sys_admin and caps["CapBnd"] & sys_chroot
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapAmb"] == 0
    assert "NoNewPrivs:\t1" in lines
    assert plain.split() == ["NoNewPrivs:", "0"]
    # Root's effective set is its permitted one.
    assert root_caps["CapEff"] & sys_admin and root_caps["CapPrm"] & sys_admin
    assert not root_caps["CapInh"] & sys_admin and not root_caps["CapAmb"] & sys_admin


def test_process_json(runtime: Runtime, make_bundle, tmp_path: Path, cid: str) -> None:
    process = {
        "args": ["sh", "-c", "echo $X; pwd; id -u; grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status; ulimit -n"],
        "env": ["PATH=/bin", "X=from-json"],
        "cwd": "/proc",
        "user": {"uid": 3, "gid": 4},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 77, "hard": 77}],
    }
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    with running(runtime, make_bundle(["sleep", "600"]), cid):
        # The command after the ID is ignored with -p, as by runc.
        out = exec_ok(runtime, "-p", str(path), cid, "ignored")
    # Capabilities absent from process.json are the container's; noNewPrivileges absent is false (runc).
    assert out.splitlines() == ["from-json", "/proc", "3", "CapBnd:\t0000000020000420", "NoNewPrivs:\t0", "77"]


@pytest.mark.parametrize(
    ("process", "message"),
    [
        ({"args": [], "cwd": "/"}, "args: must have at least one entry"),
        ({"args": ["true"]}, "cwd: is required"),
        ({"args": ["true"], "cwd": "rel"}, "cwd: must be an absolute path, got 'rel'"),
        ({"args": ["true"], "cwd": "/", "user": {"uid": -1}}, "user.uid: must be an unsigned 32-bit integer, got -1"),
        ({"args": ["true"], "cwd": "/", "env": ["NOEQUALS"]}, "env[0]: must have the form KEY=VALUE, got 'NOEQUALS'"),
    ],
)
def test_process_json_errors_name_the_field(
    runtime: Runtime, make_bundle, tmp_path: Path, process: dict[str, Any], message: str, cid: str
) -> None:
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    with running(runtime, make_bundle(["sleep", "600"]), cid):
        assert exec_fails(runtime, "-p", str(path), cid) == f"exec failed: {path}: {message}"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ((), "process args cannot be empty"),
        (("-u", "x"), 'parsing x as int for uid failed: strconv.Atoi: parsing "x": invalid syntax'),
        (("-u", "0:y"), 'parsing y as int for gid failed: strconv.Atoi: parsing "y": invalid syntax'),
        (("-g", "-1"), "additional-gids must be a positive number -1"),
        (("--cwd", "rel"), "Cwd must be an absolute path"),
        (("-d", "-t"), "cannot allocate tty if runc will detach without setting console socket"),
        (("--console-socket", "/x"), "cannot use console socket if runc will not detach or allocate tty"),
        (("-p", "/nonexistent/process.json"), "open /nonexistent/process.json: no such file or directory"),
        (
            ("--process-label", "system_u:system_r:container_t:s0"),
            "selinux label is specified in config, but selinux is disabled or not supported",
        ),
    ],
)
def test_flag_errors_are_runcs(runtime: Runtime, make_bundle, flags: tuple[str, ...], message: str, cid: str) -> None:
    with running(runtime, make_bundle(["sleep", "600"]), cid):
        args = [*flags, cid] + ([] if flags == () or "-p" in flags else ["true"])
        assert exec_fails(runtime, *args) == f"exec failed: {message}"


def test_missing_executable_and_cwd(runtime: Runtime, make_bundle, cid: str) -> None:
    with running(runtime, make_bundle(["sleep", "600"]), cid):
        assert exec_fails(runtime, cid, "no-such-program") == (
            "exec failed: unable to start container process: "
            'exec: "no-such-program": executable file not found in $PATH'
        )
        assert exec_fails(runtime, "--cwd", "/nonexistent", cid, "true") == (
            'exec failed: unable to start container process: chdir to cwd ("/nonexistent") set in config.json failed:'
            " no such file or directory"
        )
        # Nothing is left behind by a failed exec.
        assert list(container_pids(runtime, cid).values()) == ["sleep 600", "ps -o pid,args"]


# ---------------------------------------------------------------- terminal


def test_tty_through_console_socket(runtime: Runtime, make_bundle, console_socket, cid: str) -> None:  # noqa: F811
    path, server = console_socket
    with running(runtime, make_bundle(["sleep", "600"]), cid):
        script = "tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty; read line; echo got:$line"
        exec_ok(runtime, "-d", "-t", "--console-socket", path, cid, "sh", "-c", script)
        master = receive_master(server)
        try:
            os.write(master, b"hello\n")
            out = read_until_hangup(master).splitlines()
        finally:
            os.close(master)
    assert out[0].startswith("/dev/pts/")
    assert "all-tty" in out and "got:hello" in out


def test_foreground_tty_is_relayed_to_the_callers_terminal(runtime: Runtime, make_bundle, cid: str) -> None:
    with running(runtime, make_bundle(["sleep", "600"]), cid):
        command = " ".join(
            [*runtime.argv0, "--root", str(runtime.root), "exec", "-t", cid, "sh", "-c", "'tty; exit 3'"]
        )
        # script(1) gives the runtime a controlling terminal, as an interactive caller has.
        proc = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3, proc
    assert "/dev/pts/" in proc.stdout


def test_tty_without_a_terminal_fails_as_runcs(runtime: Runtime, make_bundle, cid: str) -> None:
    with running(runtime, make_bundle(["sleep", "600"]), cid):
        proc = runtime("exec", "-t", cid, "true", check=False, start_new_session=True)
    assert proc.returncode == 255
    assert error_message(proc.stderr) == "exec failed: open /dev/tty: no such device or address"


# ---------------------------------------------------------------- CVE-2024-21626


def test_cve_2024_21626_cwd_through_a_runtime_fd_fails_cleanly(runtime: Runtime, make_bundle, cid: str) -> None:
    """--cwd /proc/self/fd/N for every N the runtime could have open must fail, before anything runs."""
    with running(runtime, make_bundle(["sleep", "600"]), cid):
        for fd in range(3, 16):
            message = exec_fails(runtime, "--cwd", f"/proc/self/fd/{fd}", cid, "echo", "ran")
            assert message.startswith(
                f'exec failed: unable to start container process: chdir to cwd ("/proc/self/fd/{fd}")'
            )
        assert list(container_pids(runtime, cid).values()) == ["sleep 600", "ps -o pid,args"]


def test_cve_2024_21626_a_callers_fd_stays_out(runtime: Runtime, make_bundle, tmp_path: Path, cid: str) -> None:
    host = tmp_path / "host-dir"
    host.mkdir()
    (host / "host-secret").write_text("TOP-SECRET\n")
    leaky = with_fds(runtime, f"7<{host} 8<{host}/host-secret")
    with running(runtime, make_bundle(["sleep", "600"]), cid):
        # The exec'd process's own fds: ls opens one (3) to read the directory.
        assert exec_ok(leaky, cid, "ls", "/proc/self/fd").split() == ["0", "1", "2", "3"]
        proc = leaky("exec", "--cwd", "/proc/self/fd/7", cid, "cat", "host-secret", check=False)
        assert proc.returncode == 255 and "TOP-SECRET" not in proc.stdout
        proc = leaky("exec", cid, "cat", "/proc/self/fd/8", check=False)
        assert "TOP-SECRET" not in proc.stdout
        # What the caller passes with --preserve-fds does reach it.
        passing = with_fds(runtime, f"3<{host}/host-secret")
        assert exec_ok(passing, "--preserve-fds", "1", cid, "cat", "/proc/self/fd/3") == "TOP-SECRET\n"


# ---------------------------------------------------------------- CVE-2019-5736


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _interpreter_files() -> list[str]:
    """The host files an exec'd process is made of until it execs: the interpreter and its libpython."""
    files = {os.path.realpath(sys.executable)}
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "libpython" in path and path.startswith("/"):
                files.add(os.path.realpath(path))
    return sorted(files)


# Runs in the container: try every other process's exe, mem and map_files, as
# fast as busybox sh allows (builtins only, but on the rare paths). A process
# whose exe is the container's busybox is the container's own (an exec'd
# program after its execve), one whose exe is exec's sealed memfd trampoline
# (exec_trampoline) holds nothing of the host's: both are fair game. Any other
# that opens is a breach: "CAUGHT". "denied" marks a process met while it was
# still the runtime.
ATTACKER = r"""
me=$$
own() {  # is fd 5 (an exe just opened) the container's busybox or the trampoline?
  [ /proc/self/fd/5 -ef /bin/busybox ] && return 0
  case "$(readlink /proc/self/fd/5)" in /memfd:hull-runtime-exec*) return 0;; esac
  return 1
}
while [ ! -e /out/stop ]; do
  for p in /proc/[0-9]*; do
    [ "$p" = /proc/$me ] || [ "$p" = /proc/1 ] && continue
    if { command exec 5< "$p/exe"; } 2>/out/err.$me; then
      if own; then exec 5<&-; continue; fi
      echo "CAUGHT read $p $(readlink /proc/self/fd/5)" >> /out/log
      exec 5<&-
    else
      read -r err < /out/err.$me
      case "$err" in *denied*) echo "denied $p" >> /out/log;; *) continue;; esac
    fi
    if command exec 6>> "$p/exe" 2>/dev/null; then echo "CAUGHT write $p" >> /out/log; exec 6>&-; fi
    if command exec 6<> "$p/mem" 2>/dev/null; then
      exec 6>&-
      # Opened: unless the process has just become its program (or the trampoline) meanwhile.
      if command exec 5< "$p/exe" 2>/dev/null; then
        own || echo "CAUGHT mem $p" >> /out/log
        exec 5<&-
      fi
    fi
    for m in "$p"/map_files/*; do
      if command exec 6>> "$m" 2>/dev/null; then
        [ /proc/self/fd/6 -ef /bin/busybox ] || echo "CAUGHT map $m" >> /out/log
        exec 6>&-
      fi
    done
  done
done
echo finished >> /out/log
"""


@pytest.mark.parametrize("user", ["0:0", "1000:1000"])
def test_cve_2019_5736_exec_process_cannot_be_opened_from_inside(
    runtime: Runtime, make_bundle, tmp_path: Path, user: str, cid: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    before = {path: _sha256(path) for path in _interpreter_files()}
    edit = chain(
        lambda c: c["mounts"].append({"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind"]}),
        set_process(user={"uid": int(user.split(":")[0]), "gid": int(user.split(":")[1])}),
    )
    with running(runtime, make_bundle(sh(ATTACKER), edit), cid):
        # Enough for the attacker to meet exec'd processes still in the runtime's hands many times.
        for attempt in range(300):
            exec_ok(runtime, "--user", user, cid, "true")
            log = (out / "log").read_text() if (out / "log").exists() else ""
            if attempt >= 40 and log.count("denied") >= 20:
                break
        (out / "stop").touch()
        wait_for(
            lambda: "finished" in (out / "log").read_text() if (out / "log").exists() else False, 20, "the attacker"
        )
    log = (out / "log").read_text().splitlines()
    assert [line for line in log if line.startswith("CAUGHT")] == []
    # The race was on: the attacker met exec'd processes while they were still the runtime, and was denied.
    assert sum(line.startswith("denied") for line in log) >= 20, log[-5:]
    assert {path: _sha256(path) for path in before} == before


# ---------------------------------------------------------------- differential: the same execs under runc


@pytest.fixture
def both(runc: Runtime, runtime: Runtime) -> dict[str, Runtime]:
    """runc first: it is the reference."""
    return {"runc": runc, "hull-runtime": runtime}


# Stands for the container ID in exec_both's arguments: each runtime's container has its
# own, since the cgroup directories named after it are shared by every --root.
ID = "<id>"


@contextlib.contextmanager
def running_both(both: dict[str, Runtime], bundle: Path) -> Iterator[dict[str, str]]:
    """The same bundle running under each runtime; yields each one's container ID."""
    ids = {name: f"exec-{name[:4]}-" + os.urandom(4).hex() for name in both}
    try:
        for name, rt in both.items():
            rt("run", "-d", "--bundle", str(bundle), ids[name])
        yield ids
    finally:
        for name, rt in both.items():
            rt("delete", "--force", ids[name], check=False)


def exec_both(both: dict[str, Runtime], ids: dict[str, str], *args: str) -> dict[str, subprocess.CompletedProcess[str]]:
    """``exec`` with ``args`` under each runtime, ``ID`` replaced by its container's ID."""
    return {name: rt("exec", *(ids[name] if a == ID else a for a in args), check=False) for name, rt in both.items()}


def assert_same(results: dict[str, subprocess.CompletedProcess[str]], stderr: bool = False) -> None:
    """Same exit status and stdout (and error message, if asked) under both; - runc, + hull-runtime."""
    runc, hull = results["runc"], results["hull-runtime"]
    seen = {
        name: (p.returncode, p.stdout.splitlines(), error_message(p.stderr) if stderr else "")
        for name, p in results.items()
    }
    if seen["runc"] != seen["hull-runtime"]:
        import difflib

        def lines(p: subprocess.CompletedProcess[str]) -> list[str]:
            return [f"exit {p.returncode}", *p.stdout.splitlines(), *(["stderr " + p.stderr.strip()] if stderr else [])]

        diff = "\n".join(difflib.unified_diff(lines(runc), lines(hull), "runc", "hull-runtime", lineterm=""))
        pytest.fail(f"exec differs (- runc, + hull-runtime):\n{diff}", pytrace=False)


SEES = (
    "id; env | sort; pwd; hostname; grep -E '^(Cap|NoNewPrivs)' /proc/self/status; cat /proc/self/limits; "
    'awk \'$5 == "/" {print "root mount:", $4, $5}\' /proc/self/mountinfo; umask; ls /proc/self/fd | wc -l'
)


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param((), id="defaults"),
        pytest.param(("-u", "1000:1000", "-g", "10", "-g", "20", "--cwd", "/tmp", "-e", "A=1"), id="user-cwd-env"),
        pytest.param(("-u", "65534", "-e", "HOME=/elsewhere", "-e", "PATH=/bin"), id="home-path"),
        # Not "--cap A -c B": runc (urfave/cli) refuses two forms of one flag.
        pytest.param(("--cap", "CAP_SYS_ADMIN", "--cap", "CAP_NET_RAW", "--no-new-privs"), id="caps-nnp"),
    ],
)
def test_differential_what_the_process_sees(both: dict[str, Runtime], make_bundle, flags: tuple[str, ...]) -> None:
    edit = set_process(noNewPrivileges=False, user={"uid": 0, "gid": 0, "additionalGids": [3]})
    with running_both(both, make_bundle(["sleep", "600"], edit)) as ids:
        assert_same(exec_both(both, ids, *flags, ID, "sh", "-c", SEES))


def test_differential_process_json(both: dict[str, Runtime], make_bundle, tmp_path: Path) -> None:
    path = tmp_path / "process.json"
    process = {
        "args": ["sh", "-c", SEES],
        "env": ["PATH=/bin", "Y=2"],
        "cwd": "/dev",
        "user": {"uid": 5, "gid": 6, "additionalGids": [7]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 99, "hard": 99}],
        "noNewPrivileges": True,
    }
    path.write_text(json.dumps(process))
    with running_both(both, make_bundle(["sleep", "600"])) as ids:
        assert_same(exec_both(both, ids, "-p", str(path), ID))


@pytest.mark.parametrize("script", ["exit 0", "exit 7", "exit 255", "kill -TERM $$", "kill -KILL $$", "kill -USR1 $$"])
def test_differential_exit_status(both: dict[str, Runtime], make_bundle, script: str) -> None:
    with running_both(both, make_bundle(["sleep", "600"])) as ids:
        assert_same(exec_both(both, ids, ID, "sh", "-c", script))


@pytest.mark.parametrize(
    ("flags", "command"),
    [
        pytest.param((), ("no-such-program",), id="missing-binary"),
        pytest.param((), ("/bin/no-such-program",), id="missing-binary-path"),
        pytest.param((), ("/etc/passwd",), id="not-executable"),
        pytest.param(("-u", "root"), ("true",), id="bad-user"),
        pytest.param(("-u", "0:wheel"), ("true",), id="bad-group"),
        pytest.param(("-g", "-5"), ("true",), id="negative-gid"),
        pytest.param(("--cwd", "relative"), ("true",), id="relative-cwd"),
        pytest.param(("--cwd", "/nonexistent"), ("true",), id="missing-cwd"),
        pytest.param((), (), id="no-command"),
        pytest.param(("-d", "-t"), ("true",), id="detached-tty-without-socket"),
        pytest.param(("--console-socket", "/x"), ("true",), id="socket-without-tty"),
        pytest.param(("--apparmor", "unconfined"), ("true",), id="apparmor-without-apparmor"),
    ],
)
def test_differential_errors(
    both: dict[str, Runtime], make_bundle, flags: tuple[str, ...], command: tuple[str, ...]
) -> None:
    with running_both(both, make_bundle(["sleep", "600"])) as ids:
        assert_same(exec_both(both, ids, *flags, ID, *command), stderr=True)


def test_differential_exec_failures_after_the_lookup(both: dict[str, Runtime], make_bundle, tmp_path: Path) -> None:
    """execve(2) itself fails (through exec's trampoline for hull): the reason still reaches the caller."""
    bundle = make_bundle(["sleep", "600"])
    garbage = bundle / "rootfs" / "bin" / "garbage"
    garbage.write_bytes(b"\x00\x01 not a program\n")
    garbage.chmod(0o755)
    with running_both(both, bundle) as ids:
        # As runc's: the last words of the process, which exits 1 ("exec" succeeded, the program did not start).
        results = exec_both(both, ids, ID, "/bin/garbage")
        seen = {name: (p.returncode, p.stdout, p.stderr) for name, p in results.items()}
        assert seen["hull-runtime"] == seen["runc"] == (1, "", "exec /bin/garbage: exec format error\n")
        results = exec_both(both, ids, "-d", ID, "/bin/garbage")
        seen = {name: (p.returncode, p.stderr) for name, p in results.items()}
        assert seen["hull-runtime"] == seen["runc"] == (0, "exec /bin/garbage: exec format error\n")
        # The devices tmpfs is noexec: EACCES from execve, after the lookup found it executable.
        assert_same(exec_both(both, ids, ID, "sh", "-c", "cp /bin/busybox /dev/shm/bb && exec /dev/shm/bb true"))


def test_differential_paused_container(both: dict[str, Runtime], make_bundle) -> None:
    with running_both(both, make_bundle(["sleep", "600"])) as ids:
        for name, rt in both.items():
            rt("pause", ids[name])
        results = exec_both(both, ids, ID, "true")
        for name, rt in both.items():
            rt("resume", ids[name])
        assert_same(results, stderr=True)
        assert error_message(results["hull-runtime"].stderr) == (
            "exec failed: cannot exec in a paused container (use --ignore-paused to override)"
        )
        assert_same(exec_both(both, ids, ID, "echo", "resumed"))


def test_differential_stopped_and_missing_container(both: dict[str, Runtime], make_bundle) -> None:
    ids = {name: f"exec-{name[:4]}-" + os.urandom(4).hex() for name in both}
    bundle = make_bundle(["true"])
    try:
        for name, rt in both.items():
            rt("create", "--bundle", str(bundle), ids[name])
            rt("start", ids[name])
            wait_for(lambda rt=rt, name=name: json.loads(rt("state", ids[name]).stdout)["status"] == "stopped")
        assert_same(exec_both(both, ids, ID, "true"), stderr=True)
    finally:
        for name, rt in both.items():
            rt("delete", "--force", ids[name], check=False)
    assert_same(exec_both(both, ids, ID, "true"), stderr=True)


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_differential_seccomp_applies_to_exec(both: dict[str, Runtime], make_bundle, nnp: bool) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }
    bundle = make_bundle(["sleep", "600"], chain(set_linux(seccomp=profile), set_process(noNewPrivileges=nnp)))
    with running_both(both, bundle) as ids:
        results = exec_both(both, ids, ID, "sh", "-c", "grep ^Seccomp: /proc/self/status; " + MKDIR_REPORT)
    assert_same(results)
    assert results["hull-runtime"].stdout.splitlines() == ["Seccomp:\t2", "mkdir=1", "absent"]


def test_differential_seccomp_notify_fd_of_an_exec_goes_to_the_agent(
    both: dict[str, Runtime], make_bundle, tmp_path: Path
) -> None:
    """The exec'd process gets its own filter; its notify fd reaches listenerPath as init's does."""
    seen: dict[str, Any] = {}
    for name, rt in both.items():
        path = tmp_path / f"agent-{name}.sock"
        profile = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": str(path),
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
        }
        cid = "exec-" + os.urandom(5).hex()
        bundle = make_bundle(["sleep", "600"], set_linux(seccomp=profile))
        init_agent = Agent(path)
        try:
            rt("run", "-d", "--bundle", str(bundle), cid, timeout=60)
            # Init's fd came first; that agent goes on serving it in its thread.
            wait_for(lambda agent=init_agent: bool(agent.state), 10, "init's notify fd")
            init_agent.close()
            path.unlink()
            agent = Agent(path)
            proc = rt("exec", cid, "sh", "-c", MKDIR_REPORT, check=False, timeout=60)
            agent.thread.join(10)
            agent.close()
        finally:
            rt("delete", "--force", cid, check=False)
        assert agent.error is None, f"{name}: agent failed: {agent.error!r}"
        assert (proc.returncode, proc.stdout) == (0, "mkdir=0\nabsent\n"), f"{name}: {proc.stderr!r}"
        seen[name] = agent
    for name, agent in seen.items():
        assert agent.fd_kind == "anon_inode:seccomp notify", name
        assert agent.state["fds"] == ["seccompFd"], name
        assert agent.state["state"]["status"] == "running", name
        assert agent.answered, name
    assert seen["hull-runtime"].state["pid"] == seen["hull-runtime"].state["state"]["pid"]


# ---------------------------------------------------------------- CVE-2019-5736 through "#!/proc/self/exe"

EVIL = """#!/proc/self/exe
import os
fd = os.open("/proc/self/exe", os.O_RDONLY)
st = os.fstat(fd)
print("held", st.st_dev, st.st_ino)
"""


def _host_library_binds() -> list[dict[str, Any]]:
    """Read-only binds of the host directories the interpreter loads from: loader, libc, libpython, stdlib."""
    dirs = {os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}  # <prefix>: bin/, lib/
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if path.startswith("/") and (".so" in path):
                dirs.add(os.path.dirname(path))
    links = {"/lib64", "/lib"}  # usually symlinks into /usr on the host
    binds = []
    for d in sorted(dirs):
        binds.append({"destination": d, "type": "bind", "source": d, "options": ["rbind", "ro"]})
    for link in sorted(links):
        if os.path.islink(link):
            target = os.path.realpath(link)
            binds.append({"destination": link, "type": "bind", "source": target, "options": ["rbind", "ro"]})
    return binds


def test_cve_2019_5736_proc_self_exe_interpreter_gives_no_host_binary(runtime: Runtime, make_bundle, cid: str) -> None:
    """A program starting "#!/proc/self/exe" must not get the host's interpreter run in the container.

    Until its last execve the process is the runtime's interpreter; exec goes
    through a sealed memfd trampoline (exec_trampoline) so /proc/self/exe is
    never a host file then. The container here has everything the host
    interpreter needs (loader, libc, libpython, stdlib, bound read-only), so
    without the trampoline the script below runs and holds the host file.
    """
    host_python = os.stat(os.path.realpath(sys.executable))
    binds = _host_library_binds()
    bundle = make_bundle(["sleep", "600"], lambda c: c["mounts"].extend(binds))
    (bundle / "rootfs" / "bin" / "evil").write_text(EVIL)
    (bundle / "rootfs" / "bin" / "evil").chmod(0o755)
    with running(runtime, bundle, cid):
        proc = runtime("exec", cid, "/bin/evil", check=False)
    held = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("held")]
    assert [str(host_python.st_dev), str(host_python.st_ino)] not in held, "the container holds the host interpreter"


# ---------------------------------------------------------------- a real engine: podman exec (through conmon)


def test_podman_exec(podman: Podman) -> None:  # noqa: F811
    """conmon drives exec as engines do: --process, --detach, --pid-file, and --console-socket for -t."""
    name = "exec-" + os.urandom(4).hex()
    _ok(podman("run", "-d", "--name", name, "--network", "none", IMAGE, "sleep", "600"))
    try:
        assert _ok(podman("exec", name, "sh", "-c", "echo in; id -u")) == "in\n0\n"
        assert podman("exec", name, "sh", "-c", "exit 9").returncode == 9
        assert _ok(
            podman("exec", "-u", "1000", "-w", "/tmp", "-e", "A=1", name, "sh", "-c", "id -u; pwd; echo $A")
        ) == ("1000\n/tmp\n1\n")
        assert _ok(podman("exec", "-t", name, "tty")).replace("\r", "").startswith("/dev/pts/")
        _ok(podman("exec", "-d", name, "sleep", "98"))
        assert "sleep 98" in _ok(podman("exec", name, "ps", "-o", "args"))
    finally:
        _ok(podman("rm", "--force", "--time", "0", name))


def test_cve_2019_5736_proc_self_exe_interpreter_for_the_container_process(runtime: Runtime, make_bundle) -> None:
    """The same hole through ``run``: the container's own process starting "#!/proc/self/exe"."""
    host_python = os.stat(os.path.realpath(sys.executable))
    binds = _host_library_binds()
    bundle = make_bundle(["/bin/evil"], lambda c: c["mounts"].extend(binds))
    (bundle / "rootfs" / "bin" / "evil").write_text(EVIL)
    (bundle / "rootfs" / "bin" / "evil").chmod(0o755)
    proc = runtime("run", "--bundle", str(bundle), "exec-" + os.urandom(4).hex(), check=False)
    held = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("held")]
    assert [str(host_python.st_dev), str(host_python.st_ino)] not in held, "the container holds the host interpreter"
