"""engine.copy's path rules and symlink safety on plain directories (no root), and the pure helpers of
``hull exec``, ``top`` and ``stats``."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from hull.cli.container_tools import process_rows, split_cp_arg, stats_row
from hull.engine import copy
from hull.engine.containers import Container
from hull.engine.exec import ExecRequest, build_process, merge_env
from hull.engine.options import RunOptions
from hull.engine.stats import Sample, cpu_percent

# ---------------------------------------------------------------- docker's path grammar


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("/etc", ("/", "etc", False)),
        ("/etc/", ("/", "etc", True)),
        ("/etc/.", ("/etc", ".", True)),
        ("/", ("/", ".", True)),
        ("rel/x", ("rel", "x", False)),
        ("x", (".", "x", False)),
    ],
)
def test_split_source(path: str, want: tuple[str, str, bool]) -> None:
    assert copy.split_source(path) == want


@pytest.mark.parametrize(
    ("arg", "want"),
    [
        ("c1:/etc", ("c1", "/etc")),
        ("c1:etc", ("c1", "etc")),
        ("/abs/a:b", ("", "/abs/a:b")),
        ("./a:b", ("", "./a:b")),
        ("plain", ("", "plain")),
        ("-", ("", "-")),
    ],
)
def test_split_cp_arg_as_docker(arg: str, want: tuple[str, str]) -> None:
    assert split_cp_arg(arg) == want


def test_renamed_and_split_rel() -> None:
    assert copy.renamed("src/a/b", "src", "dst") == "dst/a/b"
    assert copy.renamed("./a", ".", None) == "a"
    assert copy.renamed(".", ".", "new") == "new"
    assert copy.split_rel("./a//b/") == ("a", "b")
    with pytest.raises(copy.CopyError, match="'..'"):
        copy.split_rel("a/../../b")


# ---------------------------------------------------------------- resolving inside a root


def _root(tmp_path: Path) -> tuple[Path, Path, int]:
    root = tmp_path / "rootfs"
    outside = tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("host")
    (root / "etc" / "passwd").write_text("inside")
    os.symlink("/", root / "up")
    os.symlink("../../../../..", root / "dots")
    os.symlink(str(outside), root / "abs")
    return root, outside, os.open(root, os.O_PATH | os.O_DIRECTORY)


def test_container_paths_resolve_inside_the_root(tmp_path: Path) -> None:
    root, outside, fd = _root(tmp_path)
    side = copy.Side(fd, "container t")
    try:
        for path in ("/up/etc/passwd", "/dots/etc/passwd", "/dots/dots/up/etc/passwd"):
            entry = copy.open_source(side, path, follow=False)
            assert os.read(entry.fd, 100) == b"inside"
            os.close(entry.fd)
        with pytest.raises(copy.CopyError, match="Could not find the file /abs/secret in container t"):
            copy.open_source(side, "/abs/secret", follow=False)
        # -L on a symlink to a host path: resolved in the root, where it does not exist
        with pytest.raises(copy.CopyError, match="Could not find"):
            copy.open_source(side, "/abs", follow=True)
        # without -L the link itself is the source
        assert copy.open_source(side, "/abs", follow=False).linkname == str(outside)
        # a destination through links lands inside
        parent, name, st = side.resolve_last("/dots/up/etc/new")
        assert (name, st) == ("new", None)
        assert os.readlink(f"/proc/self/fd/{parent}") == str(root / "etc")
        os.close(parent)
        # a last component that is a symlink to the host is followed inside the root: its
        # directories do not exist there
        with pytest.raises(copy.CopyError, match="Could not find"):
            side.resolve_last("/abs")
        (root / Path(*outside.parts[1:])).mkdir(parents=True)
        parent, name, st = side.resolve_last("/abs")
        assert os.readlink(f"/proc/self/fd/{parent}") == str(root / Path(*outside.parts[1:-1]))
        assert name == "outside" and st is not None
        os.close(parent)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- writing


def _walk_copy(src: Path, dst: Path, top: str | None) -> copy.Writer:
    entry = copy.open_source(copy.Side(None, ""), str(src), follow=False)
    base = os.open(dst, os.O_PATH | os.O_DIRECTORY)
    writer = copy.Writer(base, copy.OWNER_NONE)
    try:
        copy.copy_tree(entry, writer, top)
    finally:
        writer.close()
        os.close(base)
    return writer


def test_tree_copy_keeps_modes_links_and_times(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("data")
    (src / "d" / "f").chmod(0o751)
    os.utime(src / "d", ns=(10**18, 10**18))
    os.link(src / "d" / "f", src / "h")
    os.symlink("/nowhere", src / "s")
    (tmp_path / "dst").mkdir()
    writer = _walk_copy(src, tmp_path / "dst", "copy")
    out = tmp_path / "dst" / "copy"
    assert (out / "d" / "f").read_text() == "data"
    assert (out / "d" / "f").stat().st_mode & 0o7777 == 0o751
    assert (out / "h").stat().st_ino == (out / "d" / "f").stat().st_ino
    assert os.readlink(out / "s") == "/nowhere"
    assert (out / "d").stat().st_mtime_ns == 10**18
    assert writer.copied == 4


def test_writer_never_follows_a_symlink_it_meets(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), dst / "link")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("link/owned")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    buf.seek(0)
    base = os.open(dst, os.O_PATH | os.O_DIRECTORY)
    writer = copy.Writer(base, copy.OWNER_NONE)
    try:
        with pytest.raises(copy.CopyError, match="not a directory"):
            copy.extract_tar(buf, writer)
    finally:
        writer.close()
        os.close(base)
    assert os.listdir(outside) == []


def test_destination_rules(tmp_path: Path) -> None:
    host = copy.Side(None, "")
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    src = tmp_path / "srcdir"
    src.mkdir()
    d = copy.open_source(host, str(src), follow=False)
    f = copy.open_source(host, str(tmp_path / "file"), follow=False)
    try:
        fd, top = copy.destination(host, str(tmp_path / "dir"), d)
        assert top == "srcdir"
        os.close(fd)
        fd, top = copy.destination(host, str(tmp_path / "new"), d)
        assert top == "new"
        os.close(fd)
        with pytest.raises(copy.CopyError, match="cannot copy a directory"):
            copy.destination(host, str(tmp_path / "file"), d)
        with pytest.raises(copy.CopyError, match="must exist"):
            copy.destination(host, str(tmp_path / "missing") + "/", f)
        fd, top = copy.destination(host, str(tmp_path / "file"), f)
        assert top == "file"
        os.close(fd)
    finally:
        os.close(d.fd)
        os.close(f.fd)


# ---------------------------------------------------------------- exec, top, stats helpers


def test_exec_process_from_the_containers() -> None:
    config = {"process": {"args": ["sleep"], "env": ["PATH=/bin", "A=1"], "cwd": "/srv", "user": {"uid": 5, "gid": 6},
                          "capabilities": {"bounding": ["CAP_KILL"]}, "noNewPrivileges": True}}  # fmt: skip
    proc = build_process(config, ExecRequest(["ls"], env=["A=2", "B=3"], tty=True), "/nonexistent")
    assert proc["args"] == ["ls"]
    assert proc["env"] == ["PATH=/bin", "A=2", "TERM=xterm", "B=3"]
    assert (proc["cwd"], proc["user"], proc["terminal"]) == ("/srv", {"uid": 5, "gid": 6}, True)
    assert proc["capabilities"] == {"bounding": ["CAP_KILL"]} and proc["noNewPrivileges"] is True
    proc = build_process(config, ExecRequest(["ls"], workdir="tmp"), "/nonexistent")
    assert proc["cwd"] == "/tmp" and proc["env"] == ["PATH=/bin", "A=1"] and not proc["terminal"]
    assert merge_env(["A=1"], ["A=2", "A=3"]) == ["A=3"]


def test_top_rows_as_moby_parses_ps() -> None:
    out = "UID PID PPID CMD\nroot 10 1 sleep 1 2\nroot 11 1 other\nroot - - thread\nroot 12 10 sh -c x\n"
    assert process_rows(out, {10, 12}) == [["UID", "PID", "PPID", "CMD"], ["root", "10", "1", "sleep 1 2"],
                                           ["root", "12", "10", "sh -c x"]]  # fmt: skip
    with pytest.raises(Exception, match="PID field"):
        process_rows("USER CMD\n", set())


def _sample(cpu: int, system: int, usage: int = 0, limit: int = 0) -> Sample:
    data = {"cpu": {"usage": {"total": cpu, "percpu": [1, 2]}},
            "memory": {"usage": {"usage": usage, "limit": limit}, "raw": {"total_inactive_file": 100}},
            "blkio": {"ioServiceBytesRecursive": [{"op": "Read", "value": 2048}, {"op": "Write", "value": 10},
                                                  {"op": "Total", "value": 2058}]},
            "pids": {"current": 3}}  # fmt: skip
    return Sample(data, system, 2, 1 << 30)


def test_stats_arithmetic_as_dockers_cli() -> None:
    before, now = _sample(1_000, 10_000), _sample(2_000, 20_000, usage=1124, limit=64 << 20)
    assert cpu_percent(before, now) == pytest.approx(20.0)  # 1000/10000 * 2 CPUs * 100
    assert cpu_percent(None, now) == 0.0
    assert (now.mem_usage, now.mem_limit, now.blk_read, now.blk_write, now.pids) == (1024, 64 << 20, 2048, 10, 3)
    assert _sample(0, 0, usage=5, limit=(1 << 63) - 4096).mem_limit == 1 << 30  # no limit: the host's memory
    container = Container(id="a" * 64, name="web", image="i", image_id="", image_digest="", created=0,
                          options=RunOptions(image="i"), args=[], snapshot="", snapshotter="")  # fmt: skip
    row = stats_row(container, before, now, no_trunc=False)
    assert row["ID"] == "a" * 12
    assert (row["CPUPerc"], row["MemUsage"], row["MemPerc"]) == ("20.00%", "1KiB / 64MiB", "0.00%")
    assert (row["BlockIO"], row["NetIO"], row["PIDs"]) == ("2.05kB / 10B", "0B / 0B", "3")
    assert stats_row(container, None, None, no_trunc=True)["MemUsage"] == "-- / --"
