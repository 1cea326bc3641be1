"""The container's process (config.md "Process", runc's --console-socket, --preserve-fds, LISTEN_FDS).

args, env, cwd, user, rlimits, oomScoreAdj, noNewPrivileges, the terminal
handed over a console socket, and which file descriptors the process gets:
exactly 0, 1, 2 and those asked for (a runtime fd left open in the container
is the CVE-2024-21626 class).
"""

from __future__ import annotations

import json
import os
import select
import shlex
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime
from tests.integration._helpers import run_fails, run_ok, sections, set_process, sh


def status_fields(text: str, *names: str) -> dict[str, list[str]]:
    rows = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {n: rows[n].split() for n in names}


def with_fds(runtime: Runtime, redirections: str, env: str = "") -> Runtime:
    """The same runtime, run through a shell that first opens ``redirections`` (``3<file 5</``).

    fds opened this way are inherited by the runtime without close-on-exec,
    as a caller's leaked or deliberately passed fds are.
    """
    argv = " ".join(shlex.quote(a) for a in runtime.argv0)
    return Runtime(["sh", "-c", f'exec {redirections}; {env} exec {argv} "$@"', "sh"], runtime.root)


# ---------------------------------------------------------------- args, env, cwd


def test_args_are_passed_exactly(runtime: Runtime, make_bundle) -> None:
    args = ["sh", "-c", 'echo "[$0]"; for a in "$@"; do echo "[$a]"; done', "zero", "one two", "", " three ", "*"]
    assert run_ok(runtime, make_bundle(args)).splitlines() == ["[zero]", "[one two]", "[]", "[ three ]", "[*]"]


def test_executable_is_looked_up_in_the_container_path(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["echo", "found"], set_process(env=["PATH=/nowhere:/usr/bin:/bin"]))
    assert run_ok(runtime, bundle) == "found\n"
    err = run_fails(runtime, make_bundle(["no-such-program"]), "c2")
    assert "no-such-program" in err and "executable file not found in $PATH" in err


def test_env_is_exactly_the_configs_plus_home(runtime: Runtime, make_bundle) -> None:
    env = ["PATH=/bin", "A=1", "SPACES=a b  c", "EMPTY=", "EQ=x=y"]
    out = run_ok(runtime, make_bundle(["/bin/env"], set_process(env=env)))
    # runc's init adds HOME, from the container's /etc/passwd, when the config has none.
    assert out.splitlines() == [*env, "HOME=/root"]


@pytest.mark.parametrize(
    ("user", "env", "home"),
    [
        pytest.param({"uid": 0, "gid": 0}, ["HOME=/custom"], "/custom", id="config-wins"),
        pytest.param({"uid": 65534, "gid": 65534}, [], "/nonexistent", id="from-passwd"),
        pytest.param({"uid": 4242, "gid": 4242}, [], "/", id="uid-without-passwd-entry"),
    ],
)
def test_home(runtime: Runtime, make_bundle, user: dict[str, int], env: list[str], home: str) -> None:
    bundle = make_bundle(["/bin/env"], set_process(user=user, env=["PATH=/bin", *env]))
    assert [e for e in run_ok(runtime, bundle).splitlines() if e.startswith("HOME=")] == [f"HOME={home}"]


def test_cwd_is_used_and_created_when_missing(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["pwd"], set_process(cwd="/work/made/by/runtime"))
    assert run_ok(runtime, bundle) == "/work/made/by/runtime\n"
    assert (bundle / "rootfs" / "work" / "made" / "by" / "runtime").is_dir()


def test_cwd_through_a_symlink_is_created_inside_the_rootfs(runtime: Runtime, make_bundle, tmp_path: Path) -> None:
    """CVE-2021-30465 class, for process.cwd: creating a missing cwd must not follow a symlink to the host."""
    host = tmp_path / "host-target"
    host.mkdir()
    bundle = make_bundle(["pwd"], set_process(cwd="/evil/work"))
    os.symlink("../../../../../.." + str(host), bundle / "rootfs" / "evil")
    # The symlink resolves inside the container: the cwd is the rootfs's own copy of that path.
    assert run_ok(runtime, bundle) == f"{host}/work\n"
    assert os.listdir(host) == []
    assert (bundle / "rootfs" / str(host).lstrip("/") / "work").is_dir()


# ---------------------------------------------------------------- user, umask, rlimits, oomScoreAdj, noNewPrivileges


def test_user_uid_gid_additional_gids_and_umask(runtime: Runtime, make_bundle) -> None:
    user = {"uid": 1000, "gid": 1001, "additionalGids": [5, 10, 4242], "umask": 0o027}
    script = "cat /proc/self/status; echo == umask; umask; touch /dev/shm/f; stat -c '%a %u %g' /dev/shm/f"
    out = sections(run_ok(runtime, make_bundle(sh(script), set_process(user=user))))
    fields = status_fields(out[""], "Uid", "Gid", "Groups", "Umask")
    assert fields["Uid"] == ["1000"] * 4
    assert fields["Gid"] == ["1001"] * 4
    assert fields["Groups"] == ["5", "10", "4242"]
    assert fields["Umask"] == ["0027"]
    assert out["umask"].split() == ["0027", "640", "1000", "1001"]


def test_default_user_is_root_without_supplementary_groups(runtime: Runtime, make_bundle) -> None:
    fields = status_fields(run_ok(runtime, make_bundle(["cat", "/proc/self/status"])), "Uid", "Gid", "Groups")
    assert fields == {"Uid": ["0"] * 4, "Gid": ["0"] * 4, "Groups": []}


def _limits(text: str) -> dict[str, tuple[str, str]]:
    """/proc/self/limits: {"Max open files": (soft, hard)}."""
    out = {}
    for line in text.splitlines()[1:]:
        name, soft, hard = line[:26].strip(), line[26:47].strip(), line[47:68].strip()
        out[name] = (soft, hard)
    return out


def test_rlimits_set_soft_and_hard_and_lowering_works(runtime: Runtime, make_bundle) -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_STACK)[1]
    stack_hard = (1 << 64) - 1 if hard == resource.RLIM_INFINITY else hard
    rlimits = [
        {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_NPROC", "soft": 500, "hard": 1000},
        # The runtime's own hard limit, whatever it is: raising one needs CAP_SYS_RESOURCE.
        {"type": "RLIMIT_STACK", "soft": 1 << 20, "hard": stack_hard},
        {"type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192},
    ]
    limits = _limits(run_ok(runtime, make_bundle(["cat", "/proc/self/limits"], set_process(rlimits=rlimits))))
    assert limits["Max open files"] == ("100", "200")
    assert limits["Max core file size"] == ("0", "0")
    assert limits["Max processes"] == ("500", "1000")
    assert limits["Max stack size"] == (str(1 << 20), "unlimited" if hard == resource.RLIM_INFINITY else str(hard))
    assert limits["Max msgqueue size"] == ("4096", "8192")


def test_rlimit_soft_above_hard_is_an_error(runtime: Runtime, make_bundle) -> None:
    rlimits = [{"type": "RLIMIT_NOFILE", "soft": 300, "hard": 200}]
    err = run_fails(runtime, make_bundle(["true"], set_process(rlimits=rlimits)))
    assert "process.rlimits[0]" in err and "exceeds hard limit" in err


def _has_cap_sys_resource() -> bool:
    with open("/proc/self/status") as f:
        cap_eff = int(status_fields(f.read(), "CapEff")["CapEff"][0], 16)
    return bool(cap_eff & (1 << 24))  # CAP_SYS_RESOURCE


def test_oom_score_adj_raised(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["cat", "/proc/self/oom_score_adj"], set_process(oomScoreAdj=500))
    assert run_ok(runtime, bundle) == "500\n"


def test_oom_score_adj_lowered_below_the_runtimes_needs_cap_sys_resource(runtime: Runtime, make_bundle) -> None:
    current = int(Path("/proc/self/oom_score_adj").read_text())
    bundle = make_bundle(["cat", "/proc/self/oom_score_adj"], set_process(oomScoreAdj=current - 100))
    if _has_cap_sys_resource():
        assert run_ok(runtime, bundle) == f"{current - 100}\n"
    else:
        err = run_fails(runtime, bundle)
        assert "oomScoreAdj" in err and "CAP_SYS_RESOURCE" in err, err
        assert runtime("list", "-q").stdout == ""


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(runtime: Runtime, make_bundle, nnp: bool) -> None:
    bundle = make_bundle(["cat", "/proc/self/status"], set_process(noNewPrivileges=nnp))
    assert status_fields(run_ok(runtime, bundle), "NoNewPrivs")["NoNewPrivs"] == ["1" if nnp else "0"]


# ---------------------------------------------------------------- terminal and --console-socket


@pytest.fixture
def console_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """An AF_UNIX listener like runc's recvtty: it receives the pty master over SCM_RIGHTS."""
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    yield path, server
    server.close()


def receive_master(server: socket.socket) -> int:
    server.settimeout(10)
    conn, _ = server.accept()
    with conn:
        _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    assert len(fds) == 1, "no file descriptor received on the console socket"
    return fds[0]


def read_until_hangup(master: int, timeout: float = 10) -> str:
    """Everything the container writes to its terminal, until its last process closes it (EIO)."""
    out = b""
    deadline = time.monotonic() + timeout
    while True:
        ready, _, _ = select.select([master], [], [], max(0, deadline - time.monotonic()))
        assert ready, f"the container's terminal stayed open; read so far: {out!r}"
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the slave side is closed
            break
        if not chunk:
            break
        out += chunk
    return out.decode().replace("\r\n", "\n")


def wait_stopped(runtime: Runtime, cid: str) -> None:
    for _ in range(500):
        if json.loads(runtime("state", cid).stdout)["status"] == "stopped":
            return
        time.sleep(0.01)
    raise AssertionError(f"{cid} did not stop")


def test_terminal_through_console_socket(runtime: Runtime, make_bundle, console_socket) -> None:
    path, server = console_socket
    script = "tty; stty size; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty; stat -c '%F %t' /dev/console"
    edit = set_process(terminal=True, consoleSize={"height": 25, "width": 100})
    runtime("create", "--console-socket", path, "--bundle", str(make_bundle(sh(script), edit)), "t1")
    master = receive_master(server)
    try:
        assert os.isatty(master)
        runtime("start", "t1")
        out = read_until_hangup(master).splitlines()
    finally:
        os.close(master)
    wait_stopped(runtime, "t1")
    runtime("delete", "t1")
    assert out[0].startswith("/dev/pts/")
    assert out[1] == "25 100"
    assert out[2] == "all-tty"
    assert out[3] == "character special file 88"  # /dev/console is the pty (Unix98 slaves: major 136 = 0x88)


def test_terminal_input_reaches_the_container(runtime: Runtime, make_bundle, console_socket) -> None:
    path, server = console_socket
    edit = set_process(terminal=True)
    runtime(
        "create", "--console-socket", path, "--bundle", str(make_bundle(sh("read line; echo got:$line"), edit)), "t2"
    )
    master = receive_master(server)
    try:
        runtime("start", "t2")
        os.write(master, b"hello\n")
        out = read_until_hangup(master)
    finally:
        os.close(master)
    assert "got:hello" in out.splitlines()


def test_terminal_without_console_socket_is_an_error_on_create(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["true"], set_process(terminal=True))
    proc = runtime("create", "--bundle", str(bundle), "c1", check=False)
    assert proc.returncode != 0
    assert "cannot allocate tty if runc will detach without setting console socket" in proc.stderr
    assert runtime("list", "-q").stdout == ""


def _under_a_terminal(rt: Runtime, *args: str) -> tuple[int, str]:
    """``rt`` run by script(1), so its stdio is a terminal as in a user's shell; (exit status, what it printed)."""
    import shlex
    import subprocess
    import tempfile

    command = shlex.join([*rt.argv0, "--root", str(rt.root), *args])
    with tempfile.TemporaryFile("w+") as out:
        # script's stdin stays open (our pipe) until it is done: at EOF it may end the session early.
        proc = subprocess.Popen(
            ["script", "-qec", command, "/dev/null"], stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "90", "LINES": "30"}, text=True,
        )  # fmt: skip
        assert proc.stdin is not None
        try:
            # Typed at the terminal: relayed to the container's pty (which echoes it, as a terminal does).
            proc.stdin.write("hello\n")
            proc.stdin.flush()
            code = proc.wait(timeout=60)
        finally:
            proc.stdin.close()
        out.seek(0)
        return code, out.read().replace("\r", "")


def test_foreground_run_with_a_terminal_relays_it_as_runc(runtime: Runtime, runc: Runtime, make_bundle) -> None:
    # runc run without --console-socket and with process.terminal: the runtime takes the pty master itself
    # and relays it to its own terminal. (Not the size: script(1) gives its pty none when its stdin is a pipe.)
    script = "tty; test -t 0 && echo stdin-is-a-tty; read line; echo typed: $line; exit 3"
    bundle = make_bundle(["sh", "-c", script], set_process(terminal=True))
    for rt in (runtime, runc):
        code, out = _under_a_terminal(rt, "run", "--bundle", str(bundle), "tty1")
        # The typed line is echoed by the terminals at a moment that varies: leave the echoes out.
        assert (code, [line for line in out.splitlines() if line != "hello"]) == (
            3,
            ["/dev/pts/0", "stdin-is-a-tty", "typed: hello"],
        ), (rt.argv0, out)
    assert runtime("list", "-q").stdout == ""


def test_console_socket_without_terminal_is_an_error(runtime: Runtime, make_bundle, console_socket) -> None:
    path, _ = console_socket
    proc = runtime("create", "--console-socket", path, "--bundle", str(make_bundle(["true"])), "c1", check=False)
    assert proc.returncode != 0
    assert "cannot use console socket if runc will not detach or allocate tty" in proc.stderr


# ---------------------------------------------------------------- file descriptors


def started_fds(caller: Runtime, bundle: Path, *flags: str) -> tuple[dict[int, str], list[str]]:
    """Create and start ``bundle`` (a process that waits) through ``caller``; its fds and environment, from the host.

    Read from /proc/<pid> of the container's process itself: a shell listing
    its own fds would see the pipes and directory handles it opens to do so.
    """
    caller("create", *flags, "--bundle", str(bundle), "fds")
    try:
        caller("start", "fds")
        pid = int(json.loads(caller("state", "fds").stdout)["pid"])
        for _ in range(500):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(b"sleep"):
                    break
            time.sleep(0.01)
        fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read().decode().split("\0")[:-1]
    finally:
        caller("delete", "--force", "fds", check=False)
    return fds, environ


def test_only_stdio_reaches_the_container(runtime: Runtime, make_bundle, tmp_path: Path) -> None:
    """CVE-2024-21626 class: fds the runtime inherited or opened itself never reach the process."""
    (tmp_path / "f").write_text("x")
    leaky = with_fds(runtime, f"3<{tmp_path}/f 5</ 9<{tmp_path}")
    fds, _ = started_fds(leaky, make_bundle(["sleep", "30"]))
    assert sorted(fds) == [0, 1, 2], fds


def test_only_stdio_reaches_a_terminal_container(runtime: Runtime, make_bundle, console_socket) -> None:
    path, server = console_socket
    bundle = make_bundle(["sleep", "30"], set_process(terminal=True))
    leaky = with_fds(runtime, "7</")
    leaky("create", "--console-socket", path, "--bundle", str(bundle), "fds")
    master = receive_master(server)
    try:
        leaky("start", "fds")
        pid = int(json.loads(runtime("state", "fds").stdout)["pid"])
        fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    finally:
        runtime("delete", "--force", "fds", check=False)
        os.close(master)
    assert sorted(fds) == [0, 1, 2], fds
    # The console socket and the pty master stay outside; stdio is the pty slave.
    assert len(set(fds.values())) == 1


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(set_process(cwd="/proc/self/fd/7"), id="cwd"),
        pytest.param(set_process(args=["/proc/self/fd/7/bin/busybox", "cat", "host-secret"]), id="executable"),
    ],
)
def test_a_leaked_host_fd_cannot_be_used_as_cwd_or_executable(
    runtime: Runtime, make_bundle, tmp_path: Path, edit: Any
) -> None:
    """CVE-2024-21626: /proc/self/fd/N naming a host directory the runtime had open must not lead out."""
    host = tmp_path / "host-dir"
    (host / "bin").mkdir(parents=True)
    (host / "host-secret").write_text("TOP-SECRET\n")
    os.symlink("/bin/busybox", host / "bin" / "busybox")
    bundle = make_bundle(["cat", "host-secret"], edit)
    proc = with_fds(runtime, f"7<{host}")("run", "--bundle", str(bundle), "c1", check=False)
    assert "TOP-SECRET" not in proc.stdout
    assert proc.returncode != 0


@pytest.mark.parametrize("count", [1, 2])
def test_preserve_fds(runtime: Runtime, make_bundle, tmp_path: Path, count: int) -> None:
    for n in (3, 4, 5):
        (tmp_path / f"f{n}").write_text(f"data on fd {n}\n")
    caller = with_fds(runtime, f"3<{tmp_path}/f3 4<{tmp_path}/f4 5<{tmp_path}/f5")
    fds, _ = started_fds(caller, make_bundle(["sleep", "30"]), "--preserve-fds", str(count))
    assert fds == {0: fds[0], 1: fds[1], 2: fds[2], **{n: str(tmp_path / f"f{n}") for n in range(3, 3 + count)}}
    # And the process can read them.
    out = run_ok(
        caller,
        make_bundle(sh("cat <&3; cat /proc/self/fd/4 2>/dev/null || echo no-fd-4")),
        "c1",
        "--preserve-fds",
        str(count),
    )
    assert out.splitlines() == ["data on fd 3", "data on fd 4" if count == 2 else "no-fd-4"]


def test_listen_fds_pass_through_like_runc(runtime: Runtime, make_bundle, tmp_path: Path) -> None:
    # runc (go-systemd activation.Files) takes LISTEN_FDS when LISTEN_PID is its own PID: fds
    # 3.. go in, and the container gets LISTEN_FDS=n and LISTEN_PID=1 (its process is PID 1).
    (tmp_path / "sock").write_text("activation\n")
    caller = with_fds(runtime, f"3<{tmp_path}/sock 4</", env="LISTEN_FDS=1 LISTEN_PID=$$")
    fds, environ = started_fds(caller, make_bundle(["sleep", "30"]))
    assert sorted(fds) == [0, 1, 2, 3] and fds[3] == str(tmp_path / "sock")
    assert [e for e in environ if e.startswith("LISTEN_")] == ["LISTEN_FDS=1", "LISTEN_PID=1"]


def test_listen_fds_for_another_process_are_not_taken(runtime: Runtime, make_bundle, tmp_path: Path) -> None:
    # sd_listen_fds(3): LISTEN_FDS is meant for the process LISTEN_PID names; runc ignores it otherwise.
    (tmp_path / "sock").write_text("activation\n")
    caller = with_fds(runtime, f"3<{tmp_path}/sock", env="LISTEN_FDS=1 LISTEN_PID=1")
    fds, environ = started_fds(caller, make_bundle(["sleep", "30"]))
    assert sorted(fds) == [0, 1, 2]
    assert [e for e in environ if e.startswith("LISTEN_")] == []


def test_a_program_the_kernel_cannot_execute_fails_as_with_runc(runtime: Runtime, runc: Runtime, make_bundle) -> None:
    # The last execve goes through the sealed trampoline (CVE-2019-5736); its failure still reads as runc's.
    bundle = make_bundle(["/bin/garbage"])
    garbage = bundle / "rootfs" / "bin" / "garbage"
    garbage.write_bytes(b"\x00\x01 not a program\n")
    garbage.chmod(0o755)
    for rt in (runtime, runc):
        proc = rt("run", "--bundle", str(bundle), "garbage", check=False)
        assert proc.returncode == 1, (rt.argv, proc.stderr)
        assert "exec /bin/garbage: exec format error" in proc.stderr, (rt.argv, proc.stderr)
        assert rt("list", "--quiet").stdout == ""
