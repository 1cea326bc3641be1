"""Failures: a bad config is one line naming the field, and a failed create leaves nothing behind.

"Nothing behind" (runtime.md lifecycle: a failing step must "stop the
container, and continue the lifecycle at step 12", destroy) is checked from
the host: no state directory, no process of the container (found by a tag in
its environment, its cwd or root in the bundle, or its command line), and no
mount under the bundle in our /proc/self/mountinfo. That holds even when
hull-runtime itself is SIGKILLed half-way through ``create``: then
``delete --force`` must clean up.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime
from tests.integration._support import (
    add_tag,
    alive,
    assert_nothing_left,
    leftovers,
    new_id,
    popen,
    state,
    tag_env,
    wait_for,
)

Edit = Callable[[dict[str, Any]], None]


def _set(path: list[str | int], value: Any) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        target = config
        for key in path[:-1]:
            target = target[key]  # type: ignore[index]
        target[path[-1]] = value  # type: ignore[index]

    return edit


def _drop(key: str) -> Edit:
    return lambda config: config.pop(key)


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# ---------------------------------------------------------------- config.json


@pytest.mark.parametrize(
    "edit, field",
    [
        (_set(["process", "rlimits", 0, "type"], "RLIMIT_BOGUS"), "process.rlimits[0].type"),
        (_set(["process", "rlimits", 0, "hard"], "1024"), "process.rlimits[0].hard"),
        (_set(["process", "rlimits", 0, "soft"], 4096), "process.rlimits[0]"),
        (_set(["process", "args"], []), "process.args"),
        (_set(["process", "user", "uid"], "root"), "process.user.uid"),
        (_set(["process", "user", "gid"], -1), "process.user.gid"),
        (_set(["process", "env"], ["PATH=/bin", "NOEQUALS"]), "process.env[1]"),
        (_set(["process", "cwd"], "relative"), "process.cwd"),
        (_set(["process", "terminal"], "yes"), "process.terminal"),
        (_set(["process", "oomScoreAdj"], 5000), "process.oomScoreAdj"),
        (_drop("process"), "process"),
        (_drop("root"), "root"),
        (_set(["root", "path"], "missing-rootfs"), "root.path"),
        (_set(["ociVersion"], 1), "ociVersion"),
        (_set(["mounts"], {}), "mounts"),
        (_set(["mounts", 0, "options"], "ro"), "mounts[0].options"),
        (_set(["linux", "namespaces", 1, "type"], "bogus"), "linux.namespaces[1].type"),
        (_set(["linux", "rootfsPropagation"], "sideways"), "linux.rootfsPropagation"),
        (_set(["linux", "maskedPaths"], ["proc/kcore"]), "linux.maskedPaths[0]"),
        (
            _set(["linux", "devices"], [{"path": "/dev/x", "type": "x", "major": 1, "minor": 3}]),
            "linux.devices[0].type",
        ),
        (_set(["linux", "sysctl"], {"kernel.foo": "1"}), "linux.sysctl.kernel.foo"),
        (_set(["hooks"], {"prestart": [{"path": "/bin/true", "timeout": 0}]}), "hooks.prestart[0].timeout"),
        (_set(["hooks"], {"poststop": [{"args": ["x"]}]}), "hooks.poststop[0].path"),
        (_set(["hooks"], {"createRuntime": [{"path": "true"}]}), "hooks.createRuntime[0].path"),
        (_set(["annotations"], {"a": 1}), "annotations.a"),
        (_set(["linux", "uidMappings"], [{"containerID": 0, "hostID": 1000, "size": 1}]), "linux.uidMappings"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_invalid_config_is_one_line_naming_the_field(runtime: Runtime, make_bundle, edit: Edit, field: str) -> None:
    bundle = make_bundle(["true"])
    config = json.loads((bundle / "config.json").read_text())
    edit(config)
    (bundle / "config.json").write_text(json.dumps(config))
    proc = runtime("create", "--bundle", str(bundle), "c1", check=False)
    assert proc.returncode == 1
    line = _one_line(proc.stderr)
    assert f"{field}:" in line, line
    assert not (runtime.root / "c1").exists()


def test_unknown_properties_are_ignored(runtime: Runtime, make_bundle) -> None:
    # config.md "Extensibility": runtimes MUST ignore unknown properties.
    def edit(config: dict[str, Any]) -> None:
        config["org.example.extension"] = {"anything": [1, 2]}
        config["process"]["org.example.flag"] = True
        config["linux"]["org.example.more"] = "x"
        config["hooks"] = {"org.example.hook": [{"path": "/nope"}]}

    runtime("run", "--bundle", str(make_bundle(["true"], edit=edit)), "c1")


@pytest.mark.parametrize(
    "content, words",
    [
        (b'{"ociVersion": "1.0.0",}', "JSON"),
        (b'{"ociVersion": "1.0.0"', "JSON"),
        (b"", "JSON"),
        (b"\xff\xfe{}", "JSON"),
        (b"[]", "must be an object"),
        (b'{"ociVersion": "1.0.0", "root": {"path": "rootfs"}} trailing', "JSON"),
    ],
    ids=["trailing-comma", "truncated", "empty", "not-utf8", "array", "trailing-data"],
)
def test_config_json_syntax_errors(runtime: Runtime, make_bundle, content: bytes, words: str) -> None:
    bundle = make_bundle(["true"])
    (bundle / "config.json").write_bytes(content)
    proc = runtime("create", "--bundle", str(bundle), "c1", check=False)
    assert proc.returncode == 1
    line = _one_line(proc.stderr)
    assert "config.json" in line and words in line, line
    assert not (runtime.root / "c1").exists()


def test_missing_bundle_and_config(runtime: Runtime, make_bundle, tmp_path: Path) -> None:
    proc = runtime("create", "--bundle", str(tmp_path / "nope"), "c1", check=False)
    assert proc.returncode == 1 and "no such file or directory" in _one_line(proc.stderr)
    bundle = make_bundle(["true"])
    (bundle / "config.json").unlink()
    proc = runtime("create", "--bundle", str(bundle), "c1", check=False)
    # runc: "JSON specification file config.json not found"
    assert proc.returncode == 1 and "config.json not found" in _one_line(proc.stderr)
    for args in (["run", "--bundle", str(bundle), "c1"], ["run", "-d", "--bundle", str(bundle), "c1"]):
        assert runtime(*args, check=False).returncode == 1
    assert not runtime.root.exists() or os.listdir(runtime.root) == []


# ---------------------------------------------------------------- failures half-way through create


def _missing_mount_source(config: dict[str, Any]) -> None:
    config["mounts"].append(
        {"destination": "/data", "type": "bind", "source": "/nonexistent/hull-test", "options": ["rbind"]}
    )


def _failing_create_runtime_hook(config: dict[str, Any]) -> None:
    config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 2"]}]}


def _failing_create_container_hook(config: dict[str, Any]) -> None:
    config["hooks"] = {"createContainer": [{"path": "/bin/false"}]}


def _bad_cwd(config: dict[str, Any]) -> None:
    config["process"]["cwd"] = "/bin/busybox/sub"  # under a file: cannot be created


@pytest.mark.parametrize(
    "args, edit, message",
    [
        (["sleep", "30"], _missing_mount_source, "/nonexistent/hull-test"),
        (["nope"], None, 'exec: "nope": executable file not found in $PATH'),
        (["/bin/nope"], None, 'exec: "/bin/nope": stat /bin/nope: no such file or directory'),
        (["sleep", "30"], _failing_create_runtime_hook, "createRuntime"),
        (["sleep", "30"], _failing_create_container_hook, "createContainer"),
        (["sleep", "30"], _bad_cwd, "process.cwd"),
    ],
    ids=["mount-source", "exec-not-in-path", "exec-missing", "createRuntime-hook", "createContainer-hook", "cwd"],
)
@pytest.mark.parametrize("command", ["create", "run"])
def test_a_failed_create_leaves_nothing(
    runtime: Runtime, make_bundle, args: list[str], edit: Edit | None, message: str, command: str
) -> None:
    tag, cid = new_id("tag"), new_id("fail")

    def tagged(config: dict[str, Any]) -> None:
        add_tag(config, tag)
        if edit:
            edit(config)

    bundle = make_bundle(args, edit=tagged)
    proc = runtime(command, "--bundle", str(bundle), cid, check=False, env=tag_env(tag))
    assert proc.returncode == 1
    line = _one_line(proc.stderr)
    assert message in line.replace('\\"', '"'), line
    assert line.count(f"hull-runtime {command} failed") == 1
    assert_nothing_left(runtime, bundle, cid, tag)


def test_a_failed_create_keeps_an_existing_container(runtime: Runtime, make_bundle) -> None:
    runtime("create", "--bundle", str(make_bundle(["sleep", "30"])), "c1")
    before = state(runtime, "c1")
    proc = runtime("create", "--bundle", str(make_bundle(["nope"])), "c1", check=False)
    assert proc.returncode == 1 and "already exists" in proc.stderr
    assert state(runtime, "c1") == before and alive(before["pid"])


# ---------------------------------------------------------------- hull-runtime killed mid-create


def _sleeping_hook(kind: str, marker: Path, token: str) -> Edit:
    script = f"touch {marker}; exec sleep {token}"

    def edit(config: dict[str, Any]) -> None:
        config["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", script]}]}

    return edit


def _kill_processes_with_arg(arg: str) -> None:
    """The hook's sleep: ours (the test's), not the container's, so the test ends it."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[:2] == [b"sleep", arg.encode()]:
            try:
                os.kill(int(name), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_runtime_killed_during_a_hook_then_delete_force(
    runtime: Runtime, make_bundle, tmp_path: Path, kind: str
) -> None:
    tag, cid = new_id("tag"), new_id("killed")
    marker = tmp_path / "hook-started"
    token = "7.75" if kind == "createRuntime" else "7.5"
    hook = _sleeping_hook(kind, marker, token)

    def edit(config: dict[str, Any]) -> None:
        add_tag(config, tag)
        hook(config)

    bundle = make_bundle(["sleep", "30"], edit=edit)
    create = popen(runtime, "create", "--bundle", str(bundle), cid, env=tag_env(tag))
    try:
        wait_for(lambda: marker.exists() or create.poll() is not None, what=f"the {kind} hook")
        assert create.poll() is None
        create.send_signal(signal.SIGKILL)
        assert create.wait(timeout=5) == -signal.SIGKILL
        # Whatever state it left must not block: state answers, delete --force cleans up.
        got = runtime("state", cid, check=False)
        assert got.returncode == 0 or "container does not exist" in got.stderr
        began = time.monotonic()
        runtime("delete", "--force", cid, timeout=10)
        assert_nothing_left(runtime, bundle, cid, tag)
        assert time.monotonic() - began < 4  # not waiting for the hook's sleep to end
        runtime("create", "--bundle", str(make_bundle(["sleep", "30"])), cid)  # the ID is free again
    finally:
        create.kill()
        create.wait()
        _kill_processes_with_arg(token)


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.02, 0.04, 0.08])
def test_runtime_killed_at_any_moment_of_create(runtime: Runtime, make_bundle, delay: float) -> None:
    tag, cid = new_id("tag"), new_id("killed")

    def edit(config: dict[str, Any]) -> None:
        add_tag(config, tag)

    bundle = make_bundle(["sleep", "30"], edit=edit)
    create = popen(runtime, "create", "--bundle", str(bundle), cid, env=tag_env(tag))
    time.sleep(delay)
    create.send_signal(signal.SIGKILL)
    create.wait(timeout=5)
    runtime("delete", "--force", cid, timeout=10)
    assert_nothing_left(runtime, bundle, cid, tag)


# ---------------------------------------------------------------- privileges the runtime lacks


def test_root_here_lacks_cap_sys_resource() -> None:
    """The premise of the next two tests: the VM's root has every capability but CAP_SYS_RESOURCE."""
    with open("/proc/self/status") as f:
        effective = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    assert not effective & (1 << 24)  # CAP_SYS_RESOURCE


def test_raising_a_hard_rlimit_needs_cap_sys_resource(runtime: Runtime, make_bundle) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard != resource.RLIM_INFINITY
    tag, cid = new_id("tag"), new_id("rlimit")

    def edit(config: dict[str, Any]) -> None:
        add_tag(config, tag)
        config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard + 1000}]

    bundle = make_bundle(["sleep", "30"], edit=edit)
    proc = runtime("create", "--bundle", str(bundle), cid, check=False, env=tag_env(tag))
    assert proc.returncode == 1
    line = _one_line(proc.stderr)
    assert "process.rlimits" in line and "RLIMIT_NOFILE" in line and "CAP_SYS_RESOURCE" in line, line
    assert_nothing_left(runtime, bundle, cid, tag)


def test_lowering_a_hard_rlimit_works(runtime: Runtime, make_bundle) -> None:
    def edit(config: dict[str, Any]) -> None:
        config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]

    proc = runtime("run", "--bundle", str(make_bundle(["sh", "-c", "ulimit -Sn; ulimit -Hn"], edit=edit)), "c1")
    assert proc.stdout.split() == ["100", "200"]


def test_lowering_oom_score_adj_needs_cap_sys_resource(runtime: Runtime, make_bundle) -> None:
    with open("/proc/self/oom_score_adj") as f:
        current = int(f.read())
    assert current > -1000
    tag, cid = new_id("tag"), new_id("oom")

    def edit(config: dict[str, Any]) -> None:
        add_tag(config, tag)
        config["process"]["oomScoreAdj"] = -1000

    bundle = make_bundle(["sleep", "30"], edit=edit)
    proc = runtime("create", "--bundle", str(bundle), cid, check=False, env=tag_env(tag))
    assert proc.returncode == 1
    line = _one_line(proc.stderr)
    assert "process.oomScoreAdj" in line and "CAP_SYS_RESOURCE" in line, line
    assert_nothing_left(runtime, bundle, cid, tag)


def test_raising_oom_score_adj_works(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["cat", "/proc/self/oom_score_adj"], edit=_set(["process", "oomScoreAdj"], 500))
    assert runtime("run", "--bundle", str(bundle), "c1").stdout == "500\n"


def test_leftovers_helper_sees_a_live_container(runtime: Runtime, make_bundle) -> None:
    """The leftover check itself: it must find a container that is there."""
    tag, cid = new_id("tag"), new_id("live")
    bundle = make_bundle(["sleep", "30"], edit=lambda c: add_tag(c, tag))
    runtime("run", "--detach", "--bundle", str(bundle), cid, env=tag_env(tag))
    found = leftovers(runtime, bundle, cid, tag)
    assert found["state"] and found["processes"]
    runtime("delete", "--force", cid)
    assert_nothing_left(runtime, bundle, cid, tag)
