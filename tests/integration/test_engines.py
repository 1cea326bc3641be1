"""Real engines on hull-runtime: podman, containerd (ctr) and dockerd, from Debian's packages.

Each engine runs with private state (its own root, run and socket paths under
the test's temporary directory) and an image made from the test fixtures'
busybox rootfs, so nothing on the host is used or changed. The same command
runs with runc first where that tells a broken engine set-up from a hull-runtime
bug.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.testing import podman as podman_setup

HULL_RUNTIME = os.path.join(os.path.dirname(sys.executable), "hull-runtime")
IMAGE = "localhost/busybox:test"


def _run(args: list[str], timeout: float = 120, **kw: object) -> subprocess.CompletedProcess[str]:
    """A command's result, its output read from files: a detached container may hold inherited pipes."""
    with open(os.devnull) as null:
        proc = subprocess.run(
            args,
            stdin=kw.pop("stdin", null),  # type: ignore[arg-type]
            capture_output=True,
            text=True,
            timeout=timeout,
            **kw,  # type: ignore[call-overload]
        )
    return proc  # type: ignore[no-any-return]


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{' '.join(proc.args)} exited {proc.returncode}: {proc.stderr.strip()}"
    return proc.stdout


def _tar_rootfs(rootfs: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w") as tar:
        for entry in sorted(rootfs.iterdir()):
            tar.add(entry, arcname=entry.name)
    return dest


def _wait_socket(path: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited {proc.returncode}: {log.read_text()[-2000:]}")
        if path.exists():
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(str(path))
                    return
                except OSError:
                    pass
        time.sleep(0.05)
    raise AssertionError(f"{proc.args[0]} did not listen on {path}: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def image_tar(busybox_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    return _tar_rootfs(busybox_rootfs, tmp_path_factory.mktemp("image") / "rootfs.tar")


# ---------------------------------------------------------------- podman


class Podman:
    def __init__(self, base: Path) -> None:
        self.env = podman_setup.conf_env(base / "containers.conf")
        self.argv = podman_setup.storage_argv(str(base / "root"), str(base / "run"), str(base / "tmp"))

    def __call__(self, *args: str, runtime: str = HULL_RUNTIME, **kw: object) -> subprocess.CompletedProcess[str]:
        return _run([*self.argv, "--runtime", runtime, *args], env=self.env, **kw)


@pytest.fixture(scope="module")
def podman(image_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed (scripts/setup.sh installs it)")
    engine = Podman(tmp_path_factory.mktemp("podman"))
    _ok(engine("import", str(image_tar), IMAGE))
    yield engine
    engine("rm", "--all", "--force", "--time", "0")
    engine("system", "reset", "--force")


def test_podman_run_rm_prints_and_returns_the_exit_status(podman: Podman) -> None:
    assert _ok(podman("run", "--rm", "--network", "none", IMAGE, "echo", "hello from hull")) == "hello from hull\n"
    proc = podman("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "exit 7")
    assert proc.returncode == 7, proc.stderr
    assert _ok(podman("ps", "--all", "--quiet")) == ""


def test_podman_runs_the_same_container_as_with_runc(podman: Podman) -> None:
    # What the process sees of itself: identity, hostname, root mount, /dev.
    probe = "id; hostname; ls /dev | sort | tr '\\n' ' '; grep -c . /proc/self/mountinfo"
    outputs = {}
    for name, path in (("runc", "/usr/bin/runc"), ("hull", HULL_RUNTIME)):
        outputs[name] = _ok(
            podman("run", "--rm", "--network", "none", "--hostname", "box", IMAGE, "sh", "-c", probe, runtime=path)
        )
    assert outputs["hull"] == outputs["runc"]


def test_podman_detached_stop_and_rm(podman: Podman) -> None:
    cid = _ok(podman("run", "-d", "--name", "d1", "--network", "none", IMAGE, "sleep", "100")).strip()
    try:
        status = _ok(podman("inspect", "--format", "{{.State.Status}} {{.State.Pid}}", "d1")).split()
        assert status[0] == "running" and int(status[1]) > 0
        assert os.path.exists(f"/proc/{status[1]}")
        # sleep as PID 1 ignores SIGTERM (no handler): podman escalates to SIGKILL after the timeout.
        _ok(podman("stop", "--time", "1", "d1"))
        assert _ok(podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "d1")).split() == [
            "exited",
            "137",
        ]
        assert not os.path.exists(f"/proc/{status[1]}")
    finally:
        _ok(podman("rm", "--force", cid))
    assert _ok(podman("ps", "--all", "--quiet")) == ""


def test_podman_run_with_a_tty(podman: Podman) -> None:
    # `script` gives podman a terminal on its stdin, as a user's shell would;
    # podman then has conmon take the pty master over hull-runtime's --console-socket.
    command = " ".join([*podman.argv, "--runtime", HULL_RUNTIME, "run", "--rm", "-it", "--network", "none", IMAGE])
    script = ["script", "-qec", f"{command} sh -c 'tty; stty size; test -t 0 && echo stdin-is-a-tty'", "/dev/null"]
    # script's stdin stays open (a pipe we hold) until it is done: at EOF on its
    # stdin, script may end the session before the container's output is read.
    with tempfile.TemporaryFile("w+") as out_file:
        proc = subprocess.Popen(
            script, stdin=subprocess.PIPE, stdout=out_file, stderr=subprocess.STDOUT, text=True,
            env={**podman.env, "COLUMNS": "90", "LINES": "30"},
        )  # fmt: skip
        try:
            code = proc.wait(timeout=120)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
        out_file.seek(0)
        out = out_file.read().replace("\r", "")
    assert code == 0, out
    assert "/dev/pts/0\n" in out
    assert "stdin-is-a-tty\n" in out


# ---------------------------------------------------------------- containerd


class Containerd:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.address = base / "containerd.sock"
        config = base / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{base}/root"\n'
            f'state = "{base}/state"\n'
            f'[grpc]\n  address = "{self.address}"\n'
            f'[ttrpc]\n  address = "{base}/containerd-ttrpc.sock"\n'
            # Private: no plugins that listen on ports or look for CNI and CRI state.
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        )
        self.log = base / "containerd.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                ["containerd", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _wait_socket(self.address, self.proc, self.log)

    def ctr(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return _run(["ctr", "--address", str(self.address), *args], **kw)


@pytest.fixture(scope="module")
def containerd(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    if shutil.which("containerd") is None:
        pytest.fail("containerd is not installed (scripts/setup.sh installs it)")
    base = tmp_path_factory.mktemp("containerd")
    daemon = Containerd(base)
    try:
        archive = base / "busybox-oci.tar"
        _ok(podman("save", "--format", "oci-archive", "--output", str(archive), IMAGE))
        _ok(daemon.ctr("images", "import", "--base-name", "localhost/busybox", str(archive)))
        yield daemon
    finally:
        _stop(daemon.proc)


def test_containerd_runc_shim_runs_hull_runtime(containerd: Containerd) -> None:
    # --runc-binary is the runc shim's BinaryName option: the shim drives hull-runtime as it would runc.
    out = _ok(containerd.ctr("run", "--rm", "--runc-binary", HULL_RUNTIME, IMAGE, "ctr1", "sh", "-c", "echo $((6*7))"))
    assert out == "42\n"
    proc = containerd.ctr("run", "--rm", "--runc-binary", HULL_RUNTIME, IMAGE, "ctr2", "sh", "-c", "exit 3")
    assert proc.returncode == 3, proc.stderr
    assert _ok(containerd.ctr("containers", "list", "--quiet")) == ""


def test_containerd_detached_task_kill_and_delete(containerd: Containerd) -> None:
    ctr = containerd.ctr
    _ok(ctr("run", "--detach", "--runc-binary", HULL_RUNTIME, IMAGE, "ctr3", "sleep", "100"))
    try:
        tasks = _ok(ctr("tasks", "list")).splitlines()
        row = next(line.split() for line in tasks if line.startswith("ctr3"))
        assert row[2] == "RUNNING" and os.path.exists(f"/proc/{row[1]}")
        _ok(ctr("tasks", "kill", "--signal", "SIGKILL", "ctr3"))
        deadline = time.monotonic() + 10
        while "STOPPED" not in _ok(ctr("tasks", "list")):
            assert time.monotonic() < deadline, "task never stopped"
            time.sleep(0.05)
        _ok(ctr("tasks", "delete", "ctr3"))
    finally:
        ctr("tasks", "delete", "--force", "ctr3")
        _ok(ctr("containers", "delete", "ctr3"))


# ---------------------------------------------------------------- docker


class Docker:
    def __init__(self, base: Path, containerd: Containerd) -> None:
        self.sock = base / "docker.sock"
        self.log = base / "dockerd.log"
        args = ["dockerd", "--data-root", str(base / "data"), "--exec-root", str(base / "exec")]
        args += ["--host", f"unix://{self.sock}", "--pidfile", str(base / "docker.pid")]
        # No bridge or iptables: the host's network stays as it is (networking is the CNI issue's).
        args += ["--iptables=false", "--ip-masq=false", "--bridge=none"]
        args += ["--containerd", str(containerd.address), "--add-runtime", f"hull={HULL_RUNTIME}"]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_socket(self.sock, self.proc, self.log)

    def __call__(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        # Debian's client: /usr/local/bin may hold another docker.
        return _run(["/usr/bin/docker", "--host", f"unix://{self.sock}", *args], **kw)


@pytest.fixture(scope="module")
def docker(containerd: Containerd, image_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    if not os.path.exists("/usr/sbin/dockerd"):
        pytest.fail("dockerd is not installed (scripts/setup.sh installs docker.io)")
    daemon = Docker(tmp_path_factory.mktemp("docker"), containerd)
    try:
        _ok(daemon("import", str(image_tar), "busybox:test"))
        yield daemon
        daemon("rm", "--force", *_ok(daemon("ps", "--all", "--quiet")).split())
    finally:
        _stop(daemon.proc)


def test_docker_run_with_the_hull_runtime(docker: Docker) -> None:
    out = _ok(docker("run", "--rm", "--runtime", "hull", "--network", "none", "busybox:test", "echo", "hi docker"))
    assert out == "hi docker\n"
    proc = docker("run", "--rm", "--runtime", "hull", "--network", "none", "busybox:test", "sh", "-c", "exit 5")
    assert proc.returncode == 5, proc.stderr
    probe = "id; hostname; grep -c . /proc/self/mountinfo; ls /dev | sort | tr '\\n' ' '"
    args = ["--network", "none", "-h", "box", "busybox:test", "sh", "-c", probe]
    seen = {rt: _ok(docker("run", "--rm", "--runtime", rt, *args)) for rt in ("runc", "hull")}
    assert seen["hull"] == seen["runc"]


def test_docker_detached_stop_and_rm(docker: Docker) -> None:
    cid = _ok(docker("run", "-d", "--runtime", "hull", "--network", "none", "busybox:test", "sleep", "100")).strip()
    try:
        assert _ok(docker("inspect", "--format", "{{.State.Status}}", cid)).strip() == "running"
        _ok(docker("stop", "--time", "1", cid))
        assert _ok(docker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", cid)).split() == [
            "exited",
            "137",
        ]
    finally:
        _ok(docker("rm", "--force", cid))


# ---------------------------------------------------------------- podman: resources and privileges


def _both(podman: Podman, *args: str) -> dict[str, subprocess.CompletedProcess[str]]:
    """The same podman command under runc and hull-runtime."""
    return {name: podman(*args, runtime=path) for name, path in (("runc", "/usr/bin/runc"), ("hull", HULL_RUNTIME))}


def test_podman_memory_and_pids_limits(podman: Podman) -> None:
    script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max"
    seen = _both(
        podman, "run", "--rm", "--network", "none", "--memory", "64m", "--pids-limit", "50", IMAGE, "sh", "-c", script
    )
    assert _ok(seen["hull"]) == _ok(seen["runc"]) == "67108864\n50\n"
    # The limit holds: more than 50 processes cannot be started.
    # Counted with shell built-ins only: at the limit, nothing more can be forked.
    fork_bomb = (
        "(for i in $(seq 60); do sleep 5 & done) 2>/dev/null; n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n"
    )
    count = int(_ok(podman("run", "--rm", "--network", "none", "--pids-limit", "20", IMAGE, "sh", "-c", fork_bomb)))
    assert 15 <= count <= 20  # forks went on up to the limit, not past it


def test_podman_cap_drop_all(podman: Podman) -> None:
    script = "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; chown 1:1 /tmp && echo chowned || echo refused"
    seen = _both(podman, "run", "--rm", "--network", "none", "--cap-drop", "ALL", IMAGE, "sh", "-c", script)
    out = _ok(seen["hull"])
    assert out == _ok(seen["runc"])
    assert out.splitlines() == ["CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
                                "CapBnd:\t0000000000000000", "refused"]  # fmt: skip


def test_podman_seccomp_profile(podman: Podman, tmp_path: Path) -> None:
    # docker/podman's profile format: allow everything but mkdir/mkdirat, which fail with EACCES (13).
    profile = tmp_path / "seccomp.json"
    profile.write_text(
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"],'
        ' "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}'
    )
    script = "mkdir /tmp/x 2>&1; test -d /tmp/x && echo made || echo not-made"
    args = ["run", "--rm", "--network", "none", "--security-opt", f"seccomp={profile}", IMAGE, "sh", "-c", script]
    seen = _both(podman, *args)
    assert _ok(seen["hull"]) == _ok(seen["runc"])
    assert "Permission denied" in _ok(seen["hull"]) and _ok(seen["hull"]).endswith("not-made\n")
    # And without the option, podman's default profile is in force (a filter in mode 2, SECCOMP_MODE_FILTER).
    seen = _both(podman, "run", "--rm", "--network", "none", IMAGE, "grep", "^Seccomp", "/proc/self/status")
    assert _ok(seen["hull"]) == _ok(seen["runc"])
    assert _ok(seen["hull"]).startswith("Seccomp:\t2\n")


def test_docker_exec(docker: Docker) -> None:
    cid = _ok(docker("run", "-d", "--runtime", "hull", "--network", "none", "busybox:test", "sleep", "100")).strip()
    try:
        assert _ok(docker("exec", "-u", "1000", "-w", "/tmp", cid, "sh", "-c", "id -u; pwd")) == "1000\n/tmp\n"
        assert docker("exec", cid, "sh", "-c", "exit 4").returncode == 4
    finally:
        _ok(docker("rm", "--force", cid))
