"""``hull exec``, ``attach``, ``top``, ``stats``, ``cp``, ``port`` end to end, checked as a docker user would.

Output shapes follow docker's documentation: ``docker top``'s ps columns,
``docker stats``' CONTAINER ID / NAME / CPU % / MEM USAGE / LIMIT / ... table,
``docker cp``'s path rules; exit codes as docker's (126/127 for an exec that
cannot start, the process's own otherwise). The cp tests include the
CVE-2018-15664 class: symlinks in the container (to "/", or climbing with
"..") must never make cp read or write the host.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import tarfile
from pathlib import Path

from tests.integration import engine_support
from tests.integration.engine_support import BUSYBOX, Engine

engine = engine_support.engine  # the fixture: a private engine, leak-checked


def _running(engine: Engine, *flags: str, cmd: tuple[str, ...] = ("sleep", "300")) -> str:
    return engine("run", "-d", *flags, BUSYBOX, *cmd).stdout.strip()


# ---------------------------------------------------------------- exec


def test_exec_inherits_env_user_cwd_and_takes_overrides(engine: Engine) -> None:
    cid = _running(engine, "--name", "ex", "-e", "FOO=bar", "-e", "KEEP=1", "-w", "/tmp")
    out = engine("exec", "ex", "sh", "-c", 'echo "$FOO $KEEP"; pwd; id -u; id -g').stdout.split("\n")
    assert out[:4] == ["bar 1", "/tmp", "0", "0"]
    out = engine("exec", "-e", "FOO=baz", "-u", "1000:1001", "-w", "/", cid[:12], "sh", "-c",
                 'echo "$FOO $KEEP"; pwd; id -u; id -g').stdout.split("\n")  # fmt: skip
    assert out[:4] == ["baz 1", "/", "1000", "1001"]
    # --env-file, and a user by name from the container's /etc/passwd
    env_file = engine.root.parent / "env"
    env_file.write_text("FROM_FILE=yes\n")
    assert engine("exec", "--env-file", str(env_file), "ex", "sh", "-c", "echo $FROM_FILE").stdout == "yes\n"
    assert engine("exec", "-u", "nobody", "ex", "id", "-un").stdout == "nobody\n"


def test_exec_exit_codes_as_docker(engine: Engine) -> None:
    _running(engine, "--name", "codes")
    assert engine("exec", "codes", "sh", "-c", "exit 7", check=False).returncode == 7
    missing = engine("exec", "codes", "no-such-program", check=False)
    assert missing.returncode == 127
    assert "no-such-program" in missing.stderr
    # a directory is not executable: docker's 126
    assert engine("exec", "codes", "/etc", check=False).returncode == 126


def test_exec_stdin_only_with_i_and_detached(engine: Engine) -> None:
    _running(engine, "--name", "io")
    assert engine("exec", "-i", "io", "cat", input="through stdin\n", stdin=None).stdout == "through stdin\n"
    # without -i the process's stdin is empty, as docker's
    assert engine("exec", "io", "cat", input="dropped\n", stdin=None).stdout == ""
    assert engine("exec", "-d", "io", "sh", "-c", "echo bg > /tmp/bg; echo not shown").stdout == ""
    assert engine("exec", "io", "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9; do [ -s /tmp/bg ] && break; sleep 0.2; done;"
                  " cat /tmp/bg").stdout == "bg\n"  # fmt: skip


def test_exec_capabilities_are_the_containers_or_all_when_privileged(engine: Engine) -> None:
    _running(engine, "--name", "caps", "--cap-drop", "CHOWN")
    line = engine("exec", "caps", "grep", "CapEff", "/proc/self/status").stdout
    default = int(line.split()[1], 16)
    assert not default & 1  # CAP_CHOWN (0) dropped from the container: not in exec either
    assert default & (1 << 5)  # CAP_KILL, a docker default
    line = engine("exec", "--privileged", "caps", "grep", "CapEff", "/proc/self/status").stdout
    privileged = int(line.split()[1], 16)
    assert privileged & 1 and privileged & (1 << 21)  # CAP_CHOWN and CAP_SYS_ADMIN


def test_exec_tty_under_script(engine: Engine) -> None:
    _running(engine, "--name", "tt")
    command = "stty cols 91 rows 33; " + shlex.join(engine.argv("exec", "-t", "tt", "sh", "-c",
                                                                "tty; echo $TERM; stty size; exit 4"))  # fmt: skip
    proc = subprocess.run(["script", "-qec", command, "/dev/null"], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    lines = proc.stdout.replace("\r", "").split("\n")
    assert lines[0].startswith("/dev/pts/"), proc.stdout
    assert lines[1:3] == ["xterm", "33 91"]
    assert proc.returncode == 4


def test_exec_tty_with_output_piped(engine: Engine) -> None:
    """No terminal anywhere: the pty still exists in the container, its output copied to ours (CRLF, a tty's)."""
    _running(engine, "--name", "tp")
    argv = engine.argv("exec", "-t", "tp", "sh", "-c", "tty; echo $TERM; exit 5")
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert proc.returncode == 5
    lines = proc.stdout.split(b"\r\n")
    assert lines[0].startswith(b"/dev/pts/") and lines[1] == b"xterm"


def test_exec_it_without_a_terminal_is_refused(engine: Engine) -> None:
    _running(engine, "--name", "nt")
    proc = engine("exec", "-it", "nt", "true", check=False)
    assert proc.returncode == 1
    assert proc.stderr == "Error: the input device is not a TTY\n"


def test_exec_into_a_stopped_container_errors(engine: Engine) -> None:
    cid = engine("run", "-d", "--name", "done", BUSYBOX, "true").stdout.strip()
    engine("wait", "done")
    proc = engine("exec", "done", "true", check=False)
    assert proc.returncode == 1
    assert proc.stderr == f"Error: container {cid[:12]} is not running\n"
    assert engine("exec", "nosuch", "true", check=False).stderr == "Error: no such container: nosuch\n"


# ---------------------------------------------------------------- attach


def test_attach_streams_a_running_containers_output_and_exits_with_its_code(engine: Engine) -> None:
    _running(engine, "--name", "att", cmd=("sh", "-c", "sleep 1; echo out; echo err >&2; exit 3"))
    proc = engine("attach", "att", check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")
    again = engine("attach", "att", check=False)
    assert again.returncode == 1
    assert again.stderr == "Error: You cannot attach to a stopped container, start it first\n"


# ---------------------------------------------------------------- top


def test_top_lists_the_containers_processes_as_docker(engine: Engine) -> None:
    _running(engine, "--name", "tp", cmd=("sh", "-c", "sleep 301 & sleep 302; true"))
    pid = engine.inspect("tp")["State"]["Pid"]
    lines = engine("top", "tp").stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert lines[0].startswith("UID                 PID                 PPID")  # docker's 20-wide columns
    rows = [line.split(None, 7) for line in lines[1:]]
    commands = sorted(r[7] for r in rows)
    assert commands[1:] == ["sleep 301", "sleep 302"]
    assert commands[0].startswith("sh -c sleep 301 &")  # ps may cut a long line at its width
    assert str(pid) in {r[1] for r in rows}
    # ps options pass through; the PID column is what selects the lines
    custom = engine("top", "tp", "-o", "pid,args").stdout.splitlines()
    assert custom[0].split() == ["PID", "COMMAND"]
    assert len(custom) == 4


# ---------------------------------------------------------------- stats


def test_stats_no_stream_shows_the_memory_limit(engine: Engine) -> None:
    cid = _running(engine, "--name", "st", "--memory", "64m")
    out = engine("stats", "--no-stream", "st").stdout.splitlines()
    # docker's header, its columns padded by 3 to at least 10 (a tabwriter of the CLI's formatter)
    assert out[0] == "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O   BLOCK I/O   PIDS"
    assert len(out) == 2
    cells = re.split(r"\s{2,}", out[1].strip())
    assert cells[0] == cid[:12] and cells[1] == "st"
    assert cells[2].endswith("%")
    assert cells[3].endswith(" / 64MiB")
    assert cells[-1] == "1"
    doc = json.loads(engine("stats", "--no-stream", "--format", "json", "st").stdout)
    assert set(doc) == {"ID", "Name", "Container", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"}
    assert doc["NetIO"] == "0B / 0B"  # --network none
    assert engine("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}").stdout == "st 1\n"


# ---------------------------------------------------------------- cp


def _tree(base: Path) -> None:
    (base / "sub").mkdir(parents=True)
    (base / "a").write_text("one\n")
    (base / "a").chmod(0o640)
    (base / "sub" / "b").write_text("two\n")
    os.chown(base / "sub" / "b", 123, 456)
    (base / "run.sh").write_text("#!/bin/sh\n")
    (base / "run.sh").chmod(0o4755)
    os.symlink("a", base / "link")
    os.link(base / "a", base / "hard")


def test_cp_round_trips_content_modes_links_and_owners(engine: Engine, tmp_path: Path) -> None:
    _running(engine, "--name", "cp1")
    _tree(tmp_path / "src")
    engine("cp", str(tmp_path / "src"), "cp1:/tmp/")  # into an existing directory: under its own name
    listing = engine("exec", "cp1", "sh", "-c", "cd /tmp/src; stat -c '%n %a %u:%g %h' a hard run.sh sub/b; "
                     "readlink link; cat sub/b").stdout.splitlines()  # fmt: skip
    # without -a the files belong to the container's root; modes (setuid included) and hard links kept
    assert listing == ["a 640 0:0 2", "hard 640 0:0 2", "run.sh 4755 0:0 1", "sub/b 644 0:0 1", "a", "two"]
    engine("cp", "-a", str(tmp_path / "src"), "cp1:/tmp/kept")  # a new name: the directory becomes it
    assert engine("exec", "cp1", "stat", "-c", "%u:%g", "/tmp/kept/sub/b").stdout == "123:456\n"
    back = tmp_path / "back"
    engine("cp", "-a", "cp1:/tmp/kept", str(back))
    assert (back / "a").read_text() == "one\n" and (back / "a").stat().st_mode & 0o7777 == 0o640
    assert (back / "run.sh").stat().st_mode & 0o7777 == 0o4755
    assert os.readlink(back / "link") == "a"
    assert (back / "hard").stat().st_ino == (back / "a").stat().st_ino
    assert ((back / "sub" / "b").stat().st_uid, (back / "sub" / "b").stat().st_gid) == (123, 456)
    # "/." copies the contents into an existing directory
    (tmp_path / "merge").mkdir()
    engine("cp", "cp1:/tmp/kept/sub/.", str(tmp_path / "merge"))
    assert os.listdir(tmp_path / "merge") == ["b"]
    # a file to a new name, and over an existing file
    engine("cp", "cp1:/tmp/kept/a", str(tmp_path / "renamed"))
    assert (tmp_path / "renamed").read_text() == "one\n"
    engine("cp", str(tmp_path / "renamed"), "cp1:/tmp/kept/sub/b")
    assert engine("exec", "cp1", "cat", "/tmp/kept/sub/b").stdout == "one\n"


def test_cp_sees_the_containers_mounts(engine: Engine, tmp_path: Path) -> None:
    _running(engine, "--name", "mnt", "-h", "myhost", "--tmpfs", "/scratch")
    raw = subprocess.run(engine.argv("cp", "mnt:/etc/hostname", "-"), capture_output=True, timeout=60, check=True)
    with tarfile.open(fileobj=io.BytesIO(raw.stdout)) as tar:
        hostname = tar.extractfile("hostname")
        assert hostname is not None and hostname.read() == b"myhost\n"  # the engine's bind mount, as docker's
    (tmp_path / "f").write_text("in tmpfs")
    engine("cp", str(tmp_path / "f"), "mnt:/scratch/")
    assert engine("exec", "mnt", "cat", "/scratch/f").stdout == "in tmpfs"
    # the container's /proc magic links are not followed (RESOLVE_NO_MAGICLINKS)
    engine("exec", "mnt", "ln", "-s", "/proc/1/root", "/tmp/pr")
    assert engine("cp", "mnt:/tmp/pr/etc/hostname", str(tmp_path / "x"), check=False).returncode == 1


def test_cp_path_rules_and_errors(engine: Engine, tmp_path: Path) -> None:
    _running(engine, "--name", "cp2")
    f = tmp_path / "f"
    f.write_text("x")
    proc = engine("cp", str(f), "cp2:/nonexistent/", check=False)
    assert proc.returncode == 1 and "must exist" in proc.stderr
    proc = engine("cp", "cp2:/etc", str(f), check=False)  # a directory onto a file
    assert proc.returncode == 1 and "cannot copy a directory" in proc.stderr
    proc = engine("cp", "cp2:/no/such", str(tmp_path / "x"), check=False)
    assert proc.returncode == 1 and proc.stderr == "Error: Could not find the file /no/such in container cp2\n"
    assert engine("cp", str(f), str(tmp_path / "g"), check=False).stderr == (
        "Error: must specify at least one container source\n"
    )
    assert "not supported" in engine("cp", "cp2:/a", "cp2:/b", check=False).stderr


def test_cp_tar_streams(engine: Engine, tmp_path: Path) -> None:
    _running(engine, "--name", "cp3")
    engine("exec", "cp3", "sh", "-c", "mkdir -p /d/e; echo hi > /d/e/f; chown 7:8 /d/e/f")
    raw = subprocess.run(engine.argv("cp", "cp3:/d", "-"), capture_output=True, timeout=60, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"d", "d/e", "d/e/f"}
        assert (members["d/e/f"].uid, members["d/e/f"].gid) == (7, 8)
        content = tar.extractfile("d/e/f")
        assert content is not None and content.read() == b"hi\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("in/file")
        info.size = 3
        info.mode = 0o600
        tar.addfile(info, io.BytesIO(b"abc"))
    engine("cp", "-", "cp3:/tmp", input=buf.getvalue().decode("latin-1"), stdin=None)
    assert engine("exec", "cp3", "stat", "-c", "%a %s", "/tmp/in/file").stdout == "600 3\n"


def test_cp_into_and_out_of_a_stopped_container_leaves_no_mount(engine: Engine, tmp_path: Path) -> None:
    engine("run", "--name", "stopped", BUSYBOX, "true")
    (tmp_path / "p").write_text("payload")
    engine("cp", str(tmp_path / "p"), "stopped:/p")
    assert not engine.mounts()
    engine("cp", "stopped:/p", str(tmp_path / "q"))
    assert (tmp_path / "q").read_text() == "payload"
    assert not engine.mounts()
    engine("start", "stopped")  # the rootfs mounts again for the start: the copied file is in it
    engine("wait", "stopped")
    engine("cp", "stopped:/p", str(tmp_path / "r"))
    assert (tmp_path / "r").read_text() == "payload"


def test_cp_symlinks_in_the_container_never_reach_the_host(engine: Engine, tmp_path: Path) -> None:
    _running(engine, "--name", "esc")
    tmp_path = tmp_path / "host"  # beside the engine's own directories
    tmp_path.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    host_dir = str(tmp_path)
    links = f"ln -s / /tmp/root; ln -s ../../../../../../.. /tmp/up; ln -s {secret} /tmp/hostlink; "
    # the same directory exists in the container, so that each copy has somewhere (inside) to land
    engine("exec", "esc", "sh", "-c", links + f"mkdir -p /out {host_dir}; ln -s {host_dir} /out/dir")
    payload = tmp_path / "payload"
    payload.write_text("payload")
    # writes through symlinks land inside the container's rootfs
    for target in (f"esc:/tmp/root{host_dir}/w1", f"esc:/tmp/up{host_dir}/w2", "esc:/out/dir/w3"):
        engine("cp", str(payload), target)
    assert sorted(os.listdir(tmp_path)) == ["payload", "secret"]
    inside = engine("exec", "esc", "sh", "-c", f"cat {host_dir}/w1 {host_dir}/w2 {host_dir}/w3").stdout
    assert inside == "payload" * 3
    # reads through symlinks: the container's files or nothing, never the host's
    for source, flags in ((f"esc:/tmp/up{secret}", []), ("esc:/tmp/hostlink", ["-L"]), (f"esc:/tmp/root{secret}", [])):
        proc = engine("cp", *flags, source, str(tmp_path / "got"), check=False)
        assert proc.returncode == 1 and "Could not find the file" in proc.stderr
        assert not (tmp_path / "got").exists()
    # without -L a symlink is copied as a symlink, not followed
    engine("cp", "esc:/tmp/hostlink", str(tmp_path / "link"))
    assert os.readlink(tmp_path / "link") == str(secret)
    # a copied tree whose symlink points out is copied as it is; nothing is written through it
    engine("exec", "esc", "sh", "-c", f"mkdir -p /t; ln -s {host_dir} /t/x")
    engine("cp", "esc:/t", str(tmp_path / "t"))
    assert os.readlink(tmp_path / "t" / "x") == host_dir


def test_cp_hostile_tar_streams_are_refused(engine: Engine, tmp_path: Path) -> None:
    _running(engine, "--name", "tarx")

    def tar_of(*members: tuple[str, bytes | None, str]) -> str:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data, link in members:
                info = tarfile.TarInfo(name)
                if link:
                    info.type, info.linkname = tarfile.SYMTYPE, link
                    tar.addfile(info)
                else:
                    info.size = len(data or b"")
                    tar.addfile(info, io.BytesIO(data or b""))
        return buf.getvalue().decode("latin-1")

    through_link = tar_of(("x", None, "/"), (f"x{tmp_path}/owned1", b"owned", ""))
    slip = tar_of((f"../../../../../..{tmp_path}/owned2", b"owned", ""))
    for stream in (through_link, slip):
        proc = engine("cp", "-", "tarx:/tmp", input=stream, stdin=None, check=False)
        assert proc.returncode == 1
    assert not (tmp_path / "owned1").exists() and not (tmp_path / "owned2").exists()


# ---------------------------------------------------------------- port


def test_port_prints_nothing_without_published_ports(engine: Engine) -> None:
    _running(engine, "--name", "pt")
    assert engine("port", "pt").stdout == ""
    proc = engine("port", "pt", "80", check=False)
    assert (proc.returncode, proc.stderr) == (1, "Error: No public port '80/tcp' published for pt\n")
    proc = engine("port", "ghost", check=False)
    assert (proc.returncode, proc.stderr) == (1, "Error: no such container: ghost\n")
