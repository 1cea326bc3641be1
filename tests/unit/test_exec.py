"""exec's choice of process (runc's exec.go getProcess and newInitConfig), without root."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from hull.oci.runtime_config import parse_config
from hull.runtime.errors import ConfigError, RuntimeFailure
from hull.runtime.exec import ExecOptions, load_process
from hull.runtime.spec_template import default_spec

RUNC_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def config(edit: Any = None) -> Any:
    doc = copy.deepcopy(default_spec())
    doc["process"]["user"] = {"uid": 1, "gid": 2, "additionalGids": [3], "umask": 0o27}
    doc["process"]["apparmorProfile"] = "container-default"
    if edit:
        edit(doc)
    return parse_config(doc)


def test_the_config_process_with_the_command_line_args() -> None:
    proc = load_process(config(), ExecOptions(args=["ps", "-ef"]))
    assert proc.args == ["ps", "-ef"]
    assert proc.cwd == "/"
    assert proc.env == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]
    assert (proc.user.uid, proc.user.gid, proc.user.additional_gids, proc.user.umask) == (1, 2, [3], 0o27)
    assert proc.capabilities == {k: RUNC_CAPS for k in ("bounding", "effective", "permitted", "ambient")}
    assert [(r.type, r.soft, r.hard) for r in proc.rlimits] == [("RLIMIT_NOFILE", 1024, 1024)]
    assert proc.no_new_privileges is True
    assert proc.apparmor_profile == "container-default"
    # runc's spec has terminal true; exec's process has a tty only when -t says so.
    assert proc.terminal is False


def test_the_config_is_not_changed() -> None:
    cfg = config()
    load_process(cfg, ExecOptions(args=["x"], env=["A=1"], caps=["CAP_SYS_ADMIN"], additional_gids=[9]))
    assert cfg.process is not None
    assert cfg.process.env[-1] == "TERM=xterm" and cfg.process.user.additional_gids == [3]
    assert cfg.process.capabilities is not None and "CAP_SYS_ADMIN" not in cfg.process.capabilities["bounding"]


def test_overrides() -> None:
    opts = ExecOptions(
        args=["sh"],
        cwd="/tmp",
        env=["A=1", "TERM=dumb"],
        tty=True,
        user="5:6",
        additional_gids=[7, 8],
        caps=["CAP_SYS_ADMIN", "CAP_NET_RAW"],
        no_new_privs=False,
        apparmor="other",
    )
    proc = load_process(config(), opts)
    assert proc.cwd == "/tmp"
    assert proc.env[-2:] == ["A=1", "TERM=dumb"]  # appended, as runc does
    assert proc.terminal is True
    assert (proc.user.uid, proc.user.gid, proc.user.additional_gids) == (5, 6, [3, 7, 8])
    assert proc.capabilities is not None
    for name in ("bounding", "effective", "permitted", "ambient"):
        assert proc.capabilities[name] == [*RUNC_CAPS, "CAP_SYS_ADMIN", "CAP_NET_RAW"]
    assert proc.no_new_privileges is False
    assert proc.apparmor_profile == "other"


def test_user_without_group_keeps_the_configs_group() -> None:
    proc = load_process(config(), ExecOptions(args=["id"], user="1000"))
    assert (proc.user.uid, proc.user.gid) == (1000, 2)


def test_caps_without_a_capabilities_object() -> None:
    proc = load_process(config(lambda d: d["process"].pop("capabilities")), ExecOptions(args=["x"], caps=["CAP_KILL"]))
    assert proc.capabilities == {k: ["CAP_KILL"] for k in ("bounding", "effective", "permitted", "ambient")}


@pytest.mark.parametrize(
    ("user", "want"),
    [("+5", (5, 2)), ("-1", (4294967295, 2)), ("0:-2", (0, 4294967294)), ("007:010", (7, 10))],
)
def test_user_numbers_as_runc_parses_them(user: str, want: tuple[int, int]) -> None:
    proc = load_process(config(), ExecOptions(args=["id"], user=user))
    assert (proc.user.uid, proc.user.gid) == want


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (
            ExecOptions(args=["x"], user="root"),
            'parsing root as int for uid failed: strconv.Atoi: parsing "root": invalid syntax',
        ),
        (
            ExecOptions(args=["x"], user=":5"),
            'parsing  as int for uid failed: strconv.Atoi: parsing "": invalid syntax',
        ),
        (
            ExecOptions(args=["x"], user="1: 5"),
            'parsing  5 as int for gid failed: strconv.Atoi: parsing " 5": invalid syntax',
        ),
        (
            ExecOptions(args=["x"], user="99999999999999999999"),
            'parsing 99999999999999999999 as int for uid failed: strconv.Atoi: parsing "99999999999999999999": '
            "value out of range",
        ),
        (ExecOptions(args=["x"], additional_gids=[1, -3]), "additional-gids must be a positive number -3"),
        (ExecOptions(args=["x"], cwd="tmp"), "Cwd must be an absolute path"),
    ],
)
def test_errors_in_runcs_words(opts: ExecOptions, message: str) -> None:
    with pytest.raises(RuntimeFailure) as err:
        load_process(config(), opts)
    assert str(err.value) == message


def test_process_json_falls_back_to_the_containers_caps_rlimits_apparmor(tmp_path: Path) -> None:
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"args": ["true"], "cwd": "/", "env": ["A=1"]}))
    proc = load_process(config(), ExecOptions(process_path=str(path), args=["ignored"], env=["B=2"], user="9"))
    assert proc.args == ["true"] and proc.env == ["A=1"]
    assert (proc.user.uid, proc.user.gid) == (0, 0)  # process.json's (absent: 0), not the config's nor -u
    assert proc.capabilities == {k: RUNC_CAPS for k in ("bounding", "effective", "permitted", "ambient")}
    assert [r.type for r in proc.rlimits] == ["RLIMIT_NOFILE"]
    assert proc.apparmor_profile == "container-default"
    # runc's newProcess always passes noNewPrivileges: absent is false, whatever the config says.
    assert proc.no_new_privileges is False


def test_process_json_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "process.json"
    path.write_text(
        json.dumps(
            {
                "args": ["true"],
                "cwd": "/x",
                "terminal": True,
                "capabilities": {"bounding": []},
                "rlimits": [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}],
                "noNewPrivileges": True,
            }
        )
    )
    proc = load_process(config(), ExecOptions(process_path=str(path)))
    assert proc.terminal is True and proc.no_new_privileges is True
    assert proc.capabilities == {"bounding": []}
    assert [r.type for r in proc.rlimits] == ["RLIMIT_CORE"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "process: must be an object, got list"),
        (
            '{"args": ["x"], "cwd": "/", "rlimits": [{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]}',
            "rlimits[0].type: unknown value",
        ),
        (
            '{"args": ["x"], "cwd": "/", "user": {"additionalGids": ["a"]}}',
            "user.additionalGids[0]: must be an integer, got str",
        ),
        ('{"args": ["x"], "cwd": "/", "consoleSize": {"height": 1}}', "consoleSize.width: is required"),
        ('{"args": "x", "cwd": "/"}', "args: must be an array, got str"),
        ("{", "invalid JSON"),
    ],
)
def test_process_json_errors_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "process.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_process(config(), ExecOptions(process_path=str(path)))
    assert str(err.value).startswith(f"{path}: {message}")


# ---------------------------------------------------------------- exec_trampoline (no container needed)


def _through_trampoline(path: str, args: list[str], tmp_path: Path) -> tuple[int, bytes, str]:
    """(exit status, status byte, stdout) of running ``path`` through the trampoline in a child."""
    import os

    from hull.runtime import exec_trampoline

    memfd = exec_trampoline.sealed_memfd()
    out = tmp_path / "out"
    status_r, status_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs or exits
        try:
            os.close(status_r)
            fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
            os.dup2(fd, 1)
            os.set_inheritable(status_w, True)
            env = ["PATH=/bin:/usr/bin", "X=1", f"STATUS_FD={status_w}"]
            exec_trampoline.execute(memfd, status_w, path, args, env)
        finally:
            os._exit(99)
    os.close(status_w)
    os.close(memfd)
    status = os.read(status_r, 1)
    os.close(status_r)
    _, code = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(code), status, out.read_text()


def _have_trampoline() -> bool:
    from hull.runtime import exec_trampoline

    # Where there is none (not x86_64 yet), exec falls back to a direct execve and says so here.
    if exec_trampoline.program() is None:
        assert exec_trampoline.sealed_memfd() == -1
        return False
    return True


def test_trampoline_execs_the_program_with_its_argv_and_env(tmp_path: Path) -> None:
    if not _have_trampoline():
        return
    script = 'echo "$0|$1|$X"; [ -e /proc/self/fd/$STATUS_FD ] && echo status-fd-leaked || echo status-fd-closed'
    code, status, out = _through_trampoline("/bin/sh", ["sh", "-c", script, "zero", "one"], tmp_path)
    assert (code, status) == (0, b"")
    assert out.splitlines() == ["zero|one|1", "status-fd-closed"]


def test_trampoline_reports_a_failed_execve(tmp_path: Path) -> None:
    import errno

    if not _have_trampoline():
        return

    assert _through_trampoline("/nonexistent", ["x"], tmp_path)[:2] == (1, bytes([errno.ENOENT]))
    plain = tmp_path / "plain"
    plain.write_text("not executable\n")
    plain.chmod(0o644)
    assert _through_trampoline(str(plain), ["x"], tmp_path)[:2] == (1, bytes([errno.EACCES]))
    plain.chmod(0o755)
    assert _through_trampoline(str(plain), ["x"], tmp_path)[:2] == (1, bytes([errno.ENOEXEC]))


def test_trampoline_memfd_is_sealed() -> None:
    import fcntl
    import os

    from hull.runtime import exec_trampoline

    fd = exec_trampoline.sealed_memfd()
    if fd < 0:
        assert exec_trampoline.program() is None
        return
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SEAL
        with pytest.raises(PermissionError):
            os.write(fd, b"x")
    finally:
        os.close(fd)
