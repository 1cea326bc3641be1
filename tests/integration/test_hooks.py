"""Lifecycle hooks end to end (config.md "POSIX-platform Hooks", runtime.md "Lifecycle").

Every hook here is a small /bin/sh script that records what it saw: the
state on its stdin, its exact environment and command line, its namespaces,
the container's init at that moment, and the order in which hooks ran. The
host's scripts serve prestart, createRuntime, createContainer (whose path is
resolved in the runtime's namespace but which runs in the container's, before
pivot_root), poststart and poststop; startContainer's path is resolved inside
the container, so its script lives in the rootfs and busybox's sh runs it.
They all write into one directory, bind-mounted into the container at /out.

runc 1.1.5 differs from the spec in two ways not copied here: it passes
status "created" to poststart hooks and runs them during ``create`` (a
failing one fails create), and a failing startContainer hook does not make
``start`` fail.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime
from tests.integration._support import alive, assert_nothing_left, new_id, state, wait_for, wait_for_status

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")

RECORDER = """#!/bin/sh
out={out}
kind=$1
# This shell's PID as the mounted /proc numbers it: $$ is the PID in our own
# PID namespace, which for createContainer is not the one /proc was mounted in.
read -r me _ < /proc/self/stat
cat > "$out/$kind.state"
cat /proc/$me/environ > "$out/$kind.env"
cat /proc/$me/cmdline > "$out/$kind.cmdline"
readlink /proc/$me/ns/mnt > "$out/$kind.mnt"
readlink /proc/$me/ns/pid > "$out/$kind.pidns"
cat /proc/$me/mountinfo > "$out/$kind.mountinfo"
cat /proc/sys/kernel/hostname > "$out/$kind.hostname"
pid=$(tr -d ' \\n\\t' < "$out/$kind.state" | sed -n 's/.*"pid":\\([0-9]*\\).*/\\1/p')
if [ "$kind" = startContainer ]; then
    pid=1  # the container's own /proc: init is PID 1
fi
if [ -n "$pid" ] && [ "$pid" != 0 ] && [ -e /proc/$pid ]; then
    cat /proc/$pid/cmdline > "$out/$kind.initcmd"
    readlink /proc/$pid/root > "$out/$kind.initroot"
    cat /proc/$pid/mountinfo > "$out/$kind.initmounts"
fi
if [ -e "{state_dir}" ]; then echo present; else echo absent; fi > "$out/$kind.statedir"
echo "$kind" >> "$out/order"
if [ -n "$FAIL" ]; then echo "$kind hook says no" >&2; exit "$FAIL"; fi
if [ -n "$SLEEP" ]; then exec sleep "$SLEEP"; fi
exit 0
"""

HOOK_ENV = ["WITH_SPACE=a b", "EMPTY=", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]


class Hooked:
    """A bundle whose hooks record into ``out``; ``hook(kind)`` is the config entry for one."""

    def __init__(self, runtime: Runtime, make_bundle: Any, tmp_path: Path) -> None:
        self.runtime = runtime
        self.cid = new_id("hooked")
        self.out = tmp_path / "out"
        self.out.mkdir()
        self.host_script = tmp_path / "record.sh"
        self.host_script.write_text(RECORDER.format(out=self.out, state_dir=runtime.root / self.cid))
        self.host_script.chmod(0o755)
        self._make_bundle = make_bundle

    def hook(self, kind: str, *extra_env: str, timeout: int | None = None, args: list[str] | None = None) -> dict:
        path = "/hooks/record.sh" if kind == "startContainer" else str(self.host_script)
        entry: dict[str, Any] = {
            "path": path,
            "args": args if args is not None else [path, kind, "two words", ""],
            "env": [f"HOOK_KIND={kind}", *HOOK_ENV, *extra_env],
        }
        if timeout is not None:
            entry["timeout"] = timeout
        return entry

    def bundle(self, hooks: dict[str, list[dict]], args: list[str] | None = None) -> Path:
        def edit(config: dict[str, Any]) -> None:
            config["hooks"] = hooks
            config["hostname"] = "hooked"
            config["annotations"] = {"org.example.hooks": "yes"}
            config["mounts"].append(
                {"destination": "/out", "type": "bind", "source": str(self.out), "options": ["rbind", "rw"]}
            )
            config["process"]["args"] = args or ["sleep", "30"]

        bundle: Path = self._make_bundle(edit=edit)
        (bundle / "rootfs" / "out").mkdir()
        (bundle / "rootfs" / "hooks").mkdir()
        script = bundle / "rootfs" / "hooks" / "record.sh"
        script.write_text(RECORDER.format(out="/out", state_dir="/nonexistent"))
        script.chmod(0o755)
        return bundle

    def all_hooks(self) -> dict[str, list[dict]]:
        return {kind: [self.hook(kind)] for kind in KINDS}

    def order(self) -> list[str]:
        path = self.out / "order"
        return path.read_text().split() if path.exists() else []

    def read(self, kind: str, what: str) -> str:
        return (self.out / f"{kind}.{what}").read_text()

    def raw(self, kind: str, what: str) -> bytes:
        return (self.out / f"{kind}.{what}").read_bytes()

    def state(self, kind: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.read(kind, "state"))
        return doc


@pytest.fixture
def hooked(runtime: Runtime, make_bundle: Any, tmp_path: Path) -> Hooked:
    return Hooked(runtime, make_bundle, tmp_path)


def _mount_points(mountinfo: str) -> set[str]:
    return {line.split()[4] for line in mountinfo.splitlines()}


# ---------------------------------------------------------------- the six hooks, in order


def test_every_hook_runs_at_its_moment_with_the_state(runtime: Runtime, hooked: Hooked) -> None:
    bundle = hooked.bundle(hooked.all_hooks())
    rootfs = str(bundle / "rootfs")
    host_mnt = os.readlink("/proc/self/ns/mnt")
    host_pidns = os.readlink("/proc/self/ns/pid")
    cid = hooked.cid

    runtime("create", "--bundle", str(bundle), cid)
    assert hooked.order() == ["prestart", "createRuntime", "createContainer"]
    pid = state(runtime, cid)["pid"]
    init_mnt = os.readlink(f"/proc/{pid}/ns/mnt")
    init_pidns = os.readlink(f"/proc/{pid}/ns/pid")
    assert init_mnt != host_mnt

    runtime("start", cid)
    # start returns after the poststart hooks ran (runtime.md lifecycle step 9).
    assert hooked.order() == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart"]
    runtime("kill", cid, "KILL")
    wait_for_status(runtime, cid, "stopped")
    runtime("delete", cid)
    assert hooked.order() == list(KINDS)

    for kind in KINDS:
        doc = hooked.state(kind)
        assert doc["id"] == cid and doc["bundle"] == str(bundle), kind
        assert doc["ociVersion"] and doc["annotations"] == {"org.example.hooks": "yes"}, kind
        if kind == "poststop":
            assert doc["status"] == "stopped" and doc.get("pid", 0) == 0
        else:
            assert doc["pid"] == pid, kind
    for kind in ("prestart", "createRuntime", "createContainer"):
        assert hooked.state(kind)["status"] == "creating"
    # The spec leaves the status a startContainer hook sees open; runc says "created".
    assert hooked.state("startContainer")["status"] in ("created", "running")
    assert hooked.state("poststart")["status"] == "running"

    # prestart and createRuntime: the runtime's namespaces, init waiting before pivot_root
    # with the config's mounts already made (runtime.md lifecycle steps 2-4).
    for kind in ("prestart", "createRuntime"):
        assert hooked.read(kind, "mnt").strip() == host_mnt, kind
        assert hooked.read(kind, "pidns").strip() == host_pidns, kind
        assert b"hull.cli.runtime" in hooked.raw(kind, "initcmd"), kind  # not yet the user's program
        assert hooked.read(kind, "initroot").strip() == "/", kind
        assert {f"{rootfs}/proc", f"{rootfs}/dev", f"{rootfs}/out"} <= _mount_points(hooked.read(kind, "initmounts"))
    # createContainer: the container's namespaces, before pivot_root (its path was the host's).
    assert hooked.read("createContainer", "mnt").strip() == init_mnt
    assert hooked.read("createContainer", "pidns").strip() == init_pidns
    assert f"{rootfs}/proc" in _mount_points(hooked.read("createContainer", "mountinfo"))
    assert hooked.read("createContainer", "initroot").strip() == "/"
    # startContainer: inside the container after pivot_root, before the user's program.
    assert hooked.read("startContainer", "mnt").strip() == init_mnt
    assert hooked.read("startContainer", "hostname").strip() == "hooked"
    assert b"hull.cli.runtime" in hooked.raw("startContainer", "initcmd")
    assert "/out" in _mount_points(hooked.read("startContainer", "mountinfo"))
    # poststart: the runtime's namespaces, the user's program running.
    assert hooked.read("poststart", "mnt").strip() == host_mnt
    assert hooked.raw("poststart", "initcmd").split(b"\0")[:2] == [b"sleep", b"30"]
    # poststop: after the container is deleted (runtime.md lifecycle step 13).
    assert hooked.read("poststop", "mnt").strip() == host_mnt
    assert hooked.read("poststop", "statedir").strip() == "absent"
    assert not alive(pid)


def test_hooks_get_exactly_their_args_and_env(runtime: Runtime, hooked: Hooked) -> None:
    bundle = hooked.bundle(hooked.all_hooks())
    runtime("run", "--detach", "--bundle", str(bundle), hooked.cid)
    runtime("delete", "--force", hooked.cid)
    assert hooked.order() == list(KINDS)
    for kind in KINDS:
        env = hooked.raw(kind, "env").split(b"\0")[:-1]
        assert env == [f"HOOK_KIND={kind}".encode(), *(e.encode() for e in HOOK_ENV)], kind
        # A script's argv[0] becomes the interpreter and the script's path; the rest is the hook's args[1:].
        argv = hooked.raw(kind, "cmdline").split(b"\0")[:-1]
        assert argv[-3:] == [kind.encode(), b"two words", b""], kind


def test_argv0_is_the_hooks_args0(runtime: Runtime, hooked: Hooked) -> None:
    out = hooked.out / "argv"
    hook = {"path": "/bin/sh", "args": ["custom-argv0", "-c", f"cat /proc/$$/cmdline > {out}", "x"], "env": []}
    bundle = hooked.bundle({"createRuntime": [hook]})
    runtime("create", "--bundle", str(bundle), hooked.cid)
    assert out.read_bytes().split(b"\0")[:-1] == [b"custom-argv0", b"-c", hook["args"][2].encode(), b"x"]


def test_several_hooks_of_a_kind_run_in_order(runtime: Runtime, hooked: Hooked) -> None:
    hooks = {kind: [hooked.hook(kind), hooked.hook(kind, args=["record.sh", f"{kind}2"])] for kind in KINDS}
    hooks["startContainer"][1]["path"] = "/hooks/record.sh"
    bundle = hooked.bundle(hooks)
    runtime("run", "--detach", "--bundle", str(bundle), hooked.cid)
    runtime("delete", "--force", hooked.cid)
    assert hooked.order() == [name for kind in KINDS for name in (kind, f"{kind}2")]


# ---------------------------------------------------------------- failures and timeouts


@pytest.mark.parametrize("failing", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_create_hook_fails_create_and_leaves_nothing(runtime: Runtime, hooked: Hooked, failing: str) -> None:
    hooks = hooked.all_hooks()
    hooks[failing] = [hooked.hook(failing, "FAIL=3")]
    bundle = hooked.bundle(hooks)
    proc = runtime("create", "--bundle", str(bundle), hooked.cid, check=False)
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()
    assert len(error) == 1, proc.stderr
    assert failing in error[0] and "exit status 3" in error[0] and f"{failing} hook says no" in error[0]
    # "generate an error, stop the container, and continue the lifecycle at step 12":
    # destroyed (12), then the poststop hooks (13), and no hook of a later step.
    ran = KINDS[: KINDS.index(failing) + 1]
    assert hooked.order() == [*ran, "poststop"]
    assert hooked.state("poststop")["status"] == "stopped"
    assert_nothing_left(runtime, bundle, hooked.cid)


def test_a_failing_start_container_hook_fails_start(runtime: Runtime, hooked: Hooked) -> None:
    hooks = hooked.all_hooks()
    hooks["startContainer"] = [hooked.hook("startContainer", "FAIL=4")]
    bundle = hooked.bundle(hooks, args=["sh", "-c", "touch /out/program-ran; sleep 30"])
    runtime("create", "--bundle", str(bundle), hooked.cid)
    proc = runtime("start", hooked.cid, check=False)
    assert proc.returncode == 1
    assert "startContainer" in proc.stderr and "startContainer hook says no" in proc.stderr
    # The container is stopped and its program never ran (runtime.md lifecycle step 7).
    wait_for_status(runtime, hooked.cid, "stopped")
    assert not (hooked.out / "program-ran").exists()
    assert "poststart" not in hooked.order()
    runtime("delete", hooked.cid)
    assert hooked.order()[-1] == "poststop"
    assert_nothing_left(runtime, bundle, hooked.cid)


@pytest.mark.parametrize("failing", ["poststart", "poststop"])
def test_failing_poststart_and_poststop_hooks_are_warnings(runtime: Runtime, hooked: Hooked, failing: str) -> None:
    hooks = hooked.all_hooks()
    hooks[failing] = [hooked.hook(failing, "FAIL=5"), hooked.hook(failing, args=["record.sh", f"{failing}2"])]
    bundle = hooked.bundle(hooks)
    runtime("create", "--bundle", str(bundle), hooked.cid)
    started = runtime("start", hooked.cid)
    assert state(runtime, hooked.cid)["status"] == "running"
    deleted = runtime("delete", "--force", hooked.cid)
    warned = started if failing == "poststart" else deleted
    assert "warning" in warned.stderr and f"{failing} hook says no" in warned.stderr
    # "the remaining hooks and lifecycle continue as if the hook had succeeded" (steps 9 and 13).
    assert f"{failing}2" in hooked.order()
    assert hooked.order()[-1] in ("poststop", "poststop2")
    assert_nothing_left(runtime, bundle, hooked.cid)


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_a_create_hook_that_times_out_fails_create(runtime: Runtime, hooked: Hooked, kind: str) -> None:
    hooks = {kind: [hooked.hook(kind, "SLEEP=7.25", timeout=1)], "poststop": [hooked.hook("poststop")]}
    bundle = hooked.bundle(hooks)
    began = time.monotonic()
    proc = runtime("create", "--bundle", str(bundle), hooked.cid, check=False)
    assert time.monotonic() - began < 5
    assert proc.returncode == 1 and kind in proc.stderr and "timed out" in proc.stderr
    assert hooked.order() == [kind, "poststop"]
    assert_nothing_left(runtime, bundle, hooked.cid)
    # The hook itself was killed, not left sleeping.
    wait_for(lambda: not _processes_running(b"7.25"), what="the timed-out hook to be gone")


def test_a_poststart_hook_that_times_out_is_a_warning(runtime: Runtime, hooked: Hooked) -> None:
    bundle = hooked.bundle({"poststart": [hooked.hook("poststart", "SLEEP=7.5", timeout=1)]})
    runtime("create", "--bundle", str(bundle), hooked.cid)
    began = time.monotonic()
    proc = runtime("start", hooked.cid)
    assert time.monotonic() - began < 5
    assert "warning" in proc.stderr and "timed out" in proc.stderr
    assert state(runtime, hooked.cid)["status"] == "running"
    wait_for(lambda: not _processes_running(b"7.5"), what="the timed-out hook to be gone")


def test_a_hook_that_does_not_read_its_stdin(runtime: Runtime, hooked: Hooked) -> None:
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"touch {hooked.out}/ran"]}
    bundle = hooked.bundle({"prestart": [hook]})
    runtime("create", "--bundle", str(bundle), hooked.cid)
    assert (hooked.out / "ran").exists()


def _processes_running(arg: bytes) -> bool:
    for name in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if name.isdigit() and arg in argv:
            return True
    return False
