"""Lifecycle and state (runtime-spec runtime.md "State", "Lifecycle", "Operations")."""

from __future__ import annotations

import json
import time

from tests.conftest import Runtime


def _state(runtime: Runtime, cid: str) -> dict:
    return json.loads(runtime("state", cid).stdout)


def test_run_prints_from_inside_and_returns_exit_status(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["sh", "-c", "echo hello from $(hostname); exit 7"])
    proc = runtime("run", "--bundle", str(bundle), "c1", check=False)
    assert proc.stdout == "hello from hull\n"
    assert proc.returncode == 7
    # Foreground run deletes the container when it exits, as runc does.
    assert runtime("list", "--quiet").stdout == ""


def test_create_start_state_delete(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["sleep", "30"])
    runtime("create", "--bundle", str(bundle), "c1")
    state = _state(runtime, "c1")
    assert state["status"] == "created"
    assert state["pid"] > 0 and state["bundle"] == str(bundle) and state["ociVersion"]
    runtime("start", "c1")
    assert _state(runtime, "c1")["status"] == "running"
    proc = runtime("delete", "c1", check=False)
    assert proc.returncode == 1 and "cannot delete container c1 that is not stopped: running" in proc.stderr
    runtime("kill", "c1", "KILL")
    for _ in range(100):
        if _state(runtime, "c1")["status"] == "stopped":
            break
        time.sleep(0.02)
    assert _state(runtime, "c1")["status"] == "stopped"
    runtime("delete", "c1")
    proc = runtime("state", "c1", check=False)
    assert proc.returncode == 1 and "container does not exist" in proc.stderr
