"""Lifecycle hooks (config.md "POSIX-platform Hooks"): state on stdin, exact args and env, exit status, timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hull.oci.runtime_config import Hook
from hull.runtime.errors import HookError
from hull.runtime.hooks import run_hook, run_hooks
from hull.runtime.store import process_start_time

STATE = json.dumps({"ociVersion": "1.1.0", "id": "c1", "status": "creating", "pid": 42, "bundle": "/b"}).encode()


def _script(tmp_path: Path, body: str, name: str = "hook.sh") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body).lstrip())
    path.chmod(0o755)
    return str(path)


def _hook_error(hook: Hook, state: bytes = STATE, name: str = "prestart[0]") -> str:
    with pytest.raises(HookError) as info:
        run_hook(name, hook, state)
    return str(info.value)


# --- what the hook receives ----------------------------------------------------------------------------------------


def test_state_json_arrives_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "stdin"
    run_hook("prestart[0]", Hook(path=_script(tmp_path, f"cat > {out}\n")), STATE)

    assert out.read_bytes() == STATE
    assert json.loads(out.read_bytes())["id"] == "c1"


def test_large_state_arrives_whole_on_stdin(tmp_path: Path) -> None:
    # Annotations can make the state bigger than a pipe buffer (64 KiB); the hook must still get all of it.
    state = json.dumps({"ociVersion": "1.1.0", "id": "c1", "annotations": {"big": "x" * 300_000}}).encode()
    out = tmp_path / "stdin"

    run_hook("createRuntime[0]", Hook(path=_script(tmp_path, f"cat > {out}\n")), state)

    assert out.stat().st_size == len(state)
    assert out.read_bytes() == state


def test_environment_is_exactly_the_hooks_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HULL_RUNTIME_SECRET", "must-not-leak")
    out = tmp_path / "environ"
    # /proc/$$/environ is the environment execve() gave the shell, before it adds anything.
    script = _script(tmp_path, f"cat /proc/$$/environ > {out}\n")

    run_hook("prestart[0]", Hook(path=script, env=["A=1", "B=two words", "C=x=y", "EMPTY="]), STATE)

    assert out.read_bytes().split(b"\0")[:-1] == [b"A=1", b"B=two words", b"C=x=y", b"EMPTY="]


def test_hook_without_env_gets_an_empty_environment(tmp_path: Path) -> None:
    out = tmp_path / "environ"
    run_hook("prestart[0]", Hook(path=_script(tmp_path, f"cat /proc/$$/environ > {out}\n")), STATE)

    assert out.read_bytes() == b""


def test_args_are_exactly_the_hooks_args_including_argv0(tmp_path: Path) -> None:
    # config.md: args has the semantics of execv's argv, so args[0] is argv[0], not an extra argument.
    out = tmp_path / "argv"
    code = f"import sys, json; open({str(out)!r}, 'w').write(json.dumps(sys.orig_argv))"
    hook = Hook(path=sys.executable, args=["custom-argv0", "-c", code, "two words", "", "--flag"])

    run_hook("poststart[0]", hook, STATE)

    assert json.loads(out.read_text()) == ["custom-argv0", "-c", code, "two words", "", "--flag"]


def test_hook_arguments_reach_a_shell_script(tmp_path: Path) -> None:
    out = tmp_path / "args"
    script = _script(tmp_path, f'printf "%s\\n" "$@" > {out}\n')

    run_hook("prestart[0]", Hook(path=script, args=[script, "first", "second arg"]), STATE)

    assert out.read_text().splitlines() == ["first", "second arg"]


def test_runtime_file_descriptors_do_not_leak_into_the_hook(tmp_path: Path) -> None:
    out = tmp_path / "fds"
    leak = os.open(tmp_path, os.O_RDONLY)
    high = os.dup2(leak, 87, inheritable=True)
    try:
        run_hook("prestart[0]", Hook(path=_script(tmp_path, f"ls /proc/$$/fd/ > {out}\n")), STATE)
    finally:
        os.close(high)
        os.close(leak)

    assert "87" not in out.read_text().split()


# --- success and failure -------------------------------------------------------------------------------------------


def test_successful_hook_runs_to_completion_before_run_hook_returns(tmp_path: Path) -> None:
    marker = tmp_path / "done"
    run_hook("prestart[0]", Hook(path=_script(tmp_path, f"sleep 0.2\ntouch {marker}\nexit 0\n")), STATE)

    assert marker.exists()


def test_non_zero_exit_raises_with_status_and_last_stderr_line(tmp_path: Path) -> None:
    script = _script(tmp_path, "echo 'first complaint' >&2\necho 'the real reason' >&2\nexit 3\n")

    message = _hook_error(Hook(path=script), name="createContainer[1]")

    assert "createContainer[1]" in message
    assert "exit status 3" in message
    assert message.endswith("the real reason")
    assert "first complaint" not in message


def test_non_zero_exit_without_stderr_still_names_the_status(tmp_path: Path) -> None:
    message = _hook_error(Hook(path=_script(tmp_path, "exit 42\n")))

    assert "exit status 42" in message
    assert message.rstrip().endswith("42")


def test_hook_stderr_larger_than_a_pipe_buffer_does_not_deadlock(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        "i=0\nwhile [ $i -lt 4000 ]; do echo 'noise noise noise noise noise noise'>&2; "
        "i=$((i+1)); done\necho 'final line' >&2\nexit 1\n",
    )
    started = time.monotonic()

    message = _hook_error(Hook(path=script, timeout=20))

    assert message.endswith("final line")
    assert time.monotonic() - started < 15


def test_hook_killed_by_a_signal_fails(tmp_path: Path) -> None:
    message = _hook_error(Hook(path=_script(tmp_path, "kill -9 $$\n")))

    assert "prestart[0]" in message


@pytest.mark.parametrize("problem", ["missing", "not-executable"])
def test_hook_that_cannot_be_executed_fails_with_the_reason(tmp_path: Path, problem: str) -> None:
    path = tmp_path / "hook"
    if problem == "not-executable":
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o644)
        reason = "Permission denied"
    else:
        reason = "No such file or directory"

    message = _hook_error(Hook(path=str(path)))

    assert str(path) in message
    assert reason in message


def test_hook_env_entry_without_equals_fails_the_hook_and_nothing_else(tmp_path: Path) -> None:
    # The forked child must never return into the caller's code, whatever goes wrong before exec.
    # Run in a separate interpreter so that a child escaping into Python would show as a second report.
    program = textwrap.dedent(
        """
        import os
        from hull.oci.runtime_config import Hook
        from hull.runtime.hooks import run_hook
        try:
            run_hook("prestart[0]", Hook(path="/bin/true", env=["OK=1", "NOEQUALS"]), b"{}")
            outcome = "returned"
        except BaseException as err:
            outcome = type(err).__name__
        print(os.getpid(), outcome, flush=True)
        """
    )
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30, cwd=tmp_path)

    reports = proc.stdout.split("\n")[:-1]
    assert len(reports) == 1, f"more than one process reported: {reports!r} stderr={proc.stderr!r}"
    assert reports[0].split()[1] == "HookError"


# --- stdin that is never read; timeouts ------------------------------------------------------------------------------


def test_hook_that_never_reads_stdin_does_not_block(tmp_path: Path) -> None:
    script = _script(tmp_path, "sleep 0.2\nexit 0\n")
    big_state = b'{"annotations": {"a": "' + b"x" * 1_000_000 + b'"}}'
    started = time.monotonic()

    run_hook("poststart[0]", Hook(path=script, timeout=30), big_state)

    assert time.monotonic() - started < 10


def test_hook_that_closes_stdin_at_once_does_not_kill_the_runtime_with_sigpipe(tmp_path: Path) -> None:
    script = _script(tmp_path, "exec 0<&-\nexit 0\n")

    run_hook("poststart[0]", Hook(path=script), b"x" * 200_000)


def test_timeout_kills_the_hook_and_raises(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = _script(tmp_path, f"echo $$ > {pid_file}\nexec sleep 60\n")
    started = time.monotonic()

    message = _hook_error(Hook(path=script, timeout=1), name="createRuntime[0]")

    elapsed = time.monotonic() - started
    assert "timed out" in message
    assert "createRuntime[0]" in message
    assert 0.9 <= elapsed < 10
    assert process_start_time(int(pid_file.read_text())) is None  # killed and reaped


def test_fast_hook_with_a_timeout_succeeds(tmp_path: Path) -> None:
    run_hook("prestart[0]", Hook(path=_script(tmp_path, "exit 0\n"), timeout=5), STATE)


def test_background_child_holding_stderr_does_not_delay_the_runtime(tmp_path: Path) -> None:
    pid_file = tmp_path / "bg"
    script = _script(tmp_path, f"sleep 30 >&2 &\necho $! > {pid_file}\nexit 0\n")
    started = time.monotonic()
    try:
        run_hook("poststart[0]", Hook(path=script), STATE)
        assert time.monotonic() - started < 10
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 9)


# --- run_hooks ----------------------------------------------------------------------------------------------------


def test_run_hooks_runs_in_order_and_stops_at_the_first_failure(tmp_path: Path) -> None:
    log = tmp_path / "log"
    hooks = [
        Hook(path=_script(tmp_path, f"echo one >> {log}\n", "one.sh")),
        Hook(path=_script(tmp_path, f"echo two >> {log}\nexit 1\n", "two.sh")),
        Hook(path=_script(tmp_path, f"echo three >> {log}\n", "three.sh")),
    ]

    with pytest.raises(HookError) as info:
        run_hooks("prestart", hooks, STATE)

    assert log.read_text().splitlines() == ["one", "two"]
    assert "prestart[1]" in str(info.value)
