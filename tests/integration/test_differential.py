"""Differential tests: the same bundle under runc and hull-runtime, compared by what the container sees.

Each test runs one bundle (the same directory, the same container ID, separate
``--root`` dirs) under runc and then under hull-runtime, in the foreground with
``run``, and compares what the process inside printed. runc's behaviour is the
reference: a failure prints a unified diff, ``-`` lines are runc's and ``+``
lines hull-runtime's.

The default config is ``hull.testing.busybox.default_config``: ``runc spec``'s,
so it has capabilities, noNewPrivileges, an RLIMIT_NOFILE rlimit, a read-only
root, a hostname, the usual /proc, /dev, /sys and cgroup mounts, masked and
read-only paths, and pid/net/ipc/uts/mount namespaces.

Out of scope for now (hull-runtime does not implement them yet, a later issue
does): capabilities (Cap* lines of /proc/self/status), seccomp, cgroup
management (runc puts the container in a cgroup of its own, hull-runtime
does not), AppArmor/SELinux.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hull.testing import busybox
from tests.conftest import Runtime

Edit = Callable[[dict[str, Any]], None] | None

# ---------------------------------------------------------------- helpers


@pytest.fixture
def both(runc: Runtime, runtime: Runtime) -> dict[str, Runtime]:
    """runc first: it is the reference."""
    return {"runc": runc, "hull-runtime": runtime}


@pytest.fixture
def cid() -> str:
    # One ID for both runtimes (their --root dirs differ); unique so that
    # runc's per-container cgroups never collide across tests.
    return "diff-" + uuid.uuid4().hex[:10]


def run_both(
    both: dict[str, Runtime], bundle: Path, cid: str, *, same_exit: bool = True
) -> dict[str, subprocess.CompletedProcess[str]]:
    """``run`` the bundle in the foreground under each runtime; stdout and exit status of each."""
    results = {name: rt("run", "--bundle", str(bundle), cid, check=False) for name, rt in both.items()}
    if same_exit:
        codes = {name: p.returncode for name, p in results.items()}
        if len(set(codes.values())) != 1:
            detail = "\n".join(
                f"  {name}: exit {p.returncode}, stderr: {p.stderr.strip()!r}" for name, p in results.items()
            )
            pytest.fail(f"exit status differs: {codes}\n{detail}", pytrace=False)
    return results


def assert_same(what: str, runc_lines: list[str], hull_lines: list[str]) -> None:
    """Fail with a full unified diff (- runc, + hull-runtime) unless the lines are equal."""
    if runc_lines == hull_lines:
        return
    diff = difflib.unified_diff(
        runc_lines, hull_lines, "runc", "hull-runtime", lineterm="", n=max(len(runc_lines), len(hull_lines))
    )
    pytest.fail(f"{what} differs (- runc, + hull-runtime):\n" + "\n".join(diff), pytrace=False)


def compare_output(
    what: str,
    both: dict[str, Runtime],
    bundle: Path,
    cid: str,
    normalize: Callable[[str], list[str]] = str.splitlines,
) -> None:
    results = run_both(both, bundle, cid)
    for name, proc in results.items():
        assert proc.returncode == 0, f"{name} run failed ({proc.returncode}): {proc.stderr.strip()}"
    assert_same(what, normalize(results["runc"].stdout), normalize(results["hull-runtime"].stdout))


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def drop_namespace(kind: str) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != kind]

    return edit


def without_cgroup_mount(config: dict[str, Any]) -> None:
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]


def user_namespace(host_uid: int, host_gid: int, *, cgroup_mount: bool = True) -> Callable[[dict[str, Any]], None]:
    """A user namespace mapping container 0..65535 to host_uid/host_gid upwards."""

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": host_uid, "size": 65536}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": host_gid, "size": 65536}]
        if not cgroup_mount:
            without_cgroup_mount(config)

    return edit


def chain(*edits: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        for e in edits:
            e(config)

    return edit


def set_process(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config["process"].update(fields)

    return edit


@pytest.fixture
def shifted_bundle(busybox_rootfs: Path) -> Iterator[Callable[[list[str], Edit], Path]]:
    """Bundles for a user namespace whose root is not host root.

    The container's root (host UID 100000) must be able to reach the rootfs,
    and pytest's tmp_path sits below a 0700 directory; so these bundles live in
    a world-searchable directory of their own.
    """
    base = Path(os.environ.get("HULL_DIFF_TMP", "/tmp")) / f"hull-diff-{uuid.uuid4().hex[:10]}"
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    counter = iter(range(1000))

    def make(args: list[str], edit: Edit = None) -> Path:
        config = busybox.default_config(args)
        if edit:
            edit(config)
        dest = base / f"bundle{next(counter)}"
        return Path(busybox.build_bundle(str(dest), args, config, str(busybox_rootfs)))

    yield make
    shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------- /proc/self/mountinfo


def parse_mountinfo(text: str) -> list[dict[str, str]]:
    """proc(5) mountinfo lines as dicts; the parent is named by its mount point, not its kernel ID."""
    rows = []
    for line in text.splitlines():
        fields = line.split()
        sep = fields.index("-")
        rows.append(
            {
                "id": fields[0],
                "parent_id": fields[1],
                "root": fields[3],
                "mount_point": fields[4],
                "options": fields[5],
                # shared:N / master:N / propagate_from:N / unbindable: keep the kind, drop the peer group number.
                "propagation": ",".join(sorted(f.split(":")[0] for f in fields[6:sep])) or "private",
                "fstype": fields[sep + 1],
                "source": fields[sep + 2],
                "super_options": fields[sep + 3] if len(fields) > sep + 3 else "",
            }
        )
    by_id = {r["id"]: r["mount_point"] for r in rows}
    for r in rows:
        r["parent"] = by_id.get(r["parent_id"], "(outside)")
    return rows


def normalize_mountinfo(text: str, region: str) -> list[str]:
    """One line per mount, sorted, without what legitimately differs between two runs:

    - mount and parent IDs (kernel-allocated; the parent is given by its mount point);
    - major:minor (anonymous device numbers are allocated per superblock);
    - peer group numbers of shared/master mounts (only the kind is kept);
    - the root of cgroup mounts: runc bind-mounts the container's own cgroup
      (``/<id>`` under the caller's), hull-runtime manages no cgroups yet;
    - order: the order in which runc masks paths or binds devices is an
      implementation detail (stacking shows in the parent mount point).

    tmpfs sizes need no normalizing: they come from the config (size=65536k) or
    from the host's devtmpfs, identical for both runtimes.
    ``region`` selects the mounts under /sys/fs/cgroup ("cgroup") or all others ("core").
    """
    out = []
    for m in parse_mountinfo(text):
        in_cgroup = m["mount_point"] == "/sys/fs/cgroup" or m["mount_point"].startswith("/sys/fs/cgroup/")
        if in_cgroup != (region == "cgroup"):
            continue
        root = "(cgroup root)" if m["fstype"] in ("cgroup", "cgroup2") else m["root"]
        out.append(
            f"{m['mount_point']} parent={m['parent']} root={root} type={m['fstype']} source={m['source']} "
            f"opts={m['options']} super={m['super_options']} propagation={m['propagation']}"
        )
    return sorted(out)


def _extra_mounts(tmp_path: Path) -> Callable[[dict[str, Any]], None]:
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir(exist_ok=True)
    host_file = tmp_path / "hostfile"
    host_file.write_text("x\n")

    def edit(config: dict[str, Any]) -> None:
        config["mounts"] += [
            {"destination": "/mnt/ro", "type": "bind", "source": str(host_dir), "options": ["rbind", "ro", "nosuid"]},
            {"destination": "/mnt/rw", "type": "none", "source": str(host_dir), "options": ["bind", "nodev", "noexec"]},
            {"destination": "/etc/hostfile", "type": "bind", "source": str(host_file), "options": ["bind", "ro"]},
            {
                "destination": "/mnt/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "noatime", "mode=700", "size=1m"],
            },
            {"destination": "/mnt/private", "type": "bind", "source": str(host_dir), "options": ["rbind", "rprivate"]},
        ]

    return edit


MOUNTINFO_CASES = [
    pytest.param("default", "core", id="default-core"),
    pytest.param("default", "cgroup", id="default-sys-fs-cgroup"),
    pytest.param("userns-identity", "core", id="userns-identity-core"),
    pytest.param("extra-mounts", "core", id="extra-mounts-core"),
]


@pytest.mark.parametrize(("variant", "region"), MOUNTINFO_CASES)
def test_mountinfo(both, make_bundle, cid, tmp_path: Path, variant: str, region: str) -> None:
    edit = {
        "default": None,
        # A user namespace mapping to host root: /dev's nodes become bind mounts of the host's.
        # (Shifted mappings have tests of their own below.)
        "userns-identity": user_namespace(0, 0),
        "extra-mounts": _extra_mounts(tmp_path),
    }[variant]
    bundle = make_bundle(["cat", "/proc/self/mountinfo"], edit)
    compare_output(f"/proc/self/mountinfo ({region})", both, bundle, cid, lambda t: normalize_mountinfo(t, region))


# ---------------------------------------------------------------- /proc/self/status

STATUS_FIELDS = ("Umask", "Uid", "Gid", "Groups", "NoNewPrivs")  # Cap*: capabilities come later; Seccomp: later


def status_fields(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.split(":")[0] in STATUS_FIELDS]


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(None, id="default-root"),
        pytest.param(
            set_process(user={"uid": 65534, "gid": 65534, "additionalGids": [5, 10], "umask": 0o077}),
            id="nobody-additional-gids-umask",
        ),
        pytest.param(set_process(user={"uid": 1000, "gid": 1001}, noNewPrivileges=False), id="unnamed-user-no-nnp"),
    ],
)
def test_proc_status(both, make_bundle, cid, edit: Edit) -> None:
    bundle = make_bundle(["cat", "/proc/self/status"], edit)
    compare_output("/proc/self/status " + "/".join(STATUS_FIELDS), both, bundle, cid, status_fields)


# ---------------------------------------------------------------- uid_map, gid_map (user namespaces)

ID_MAP_SCRIPT = "for f in uid_map gid_map setgroups; do echo $f; cat /proc/self/$f; done; id"


def id_map_lines(text: str) -> list[str]:
    # The kernel pads the columns; compare the numbers.
    return [" ".join(line.split()) for line in text.splitlines()]


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(None, id="no-userns"),
        pytest.param(user_namespace(0, 0), id="userns-identity"),
        pytest.param(user_namespace(0, 0, cgroup_mount=False), id="userns-identity-without-cgroup-mount"),
    ],
)
def test_id_maps(both, make_bundle, cid, edit: Edit) -> None:
    bundle = make_bundle(sh(ID_MAP_SCRIPT), edit)
    compare_output("uid_map/gid_map/setgroups", both, bundle, cid, id_map_lines)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(user_namespace(100000, 200000), id="userns-shifted"),
        pytest.param(
            chain(user_namespace(100000, 200000), set_process(user={"uid": 1000, "gid": 1000})),
            id="userns-shifted-non-root-user",
        ),
    ],
)
def test_id_maps_shifted(both, shifted_bundle, cid, edit: Edit) -> None:
    """Container root is host UID 100000: nothing of the host's root-only files is reachable from init."""
    bundle = shifted_bundle(
        sh(ID_MAP_SCRIPT + "; grep -E '^(Uid|Gid|Groups)' /proc/self/status; ls -ln /dev/null"), edit
    )
    compare_output("uid_map/gid_map in a shifted user namespace", both, bundle, cid, id_map_lines)


# ---------------------------------------------------------------- hostname


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(None, id="default"),
        # No domainname: runtime-spec 1.1 added it, runc 1.1.5 (spec 1.0.2) ignores it.
        pytest.param(lambda c: c.update(hostname="differential-test"), id="set"),
        pytest.param(chain(drop_namespace("uts"), lambda c: c.pop("hostname")), id="host-uts"),
    ],
)
def test_hostname(both, make_bundle, cid, edit: Edit) -> None:
    bundle = make_bundle(sh("hostname; cat /proc/sys/kernel/hostname"), edit)
    compare_output("hostname/domainname", both, bundle, cid)


# ---------------------------------------------------------------- rlimits


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(None, id="default"),
        pytest.param(
            set_process(
                rlimits=[
                    {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
                    {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                    {"type": "RLIMIT_NPROC", "soft": 500, "hard": 1000},
                    {"type": "RLIMIT_STACK", "soft": 1 << 20, "hard": (1 << 64) - 1},
                    {"type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192},
                ]
            ),
            id="lowered",
        ),
        pytest.param(set_process(rlimits=[]), id="none"),
    ],
)
def test_rlimits(both, make_bundle, cid, edit: Edit) -> None:
    bundle = make_bundle(["cat", "/proc/self/limits"], edit)
    compare_output("/proc/self/limits", both, bundle, cid)


def test_rlimit_raise_hard_limit_fails_alike(both, make_bundle, cid) -> None:
    # Raising a hard limit needs CAP_SYS_RESOURCE: this checks both fail (or both succeed) together.
    edit = set_process(rlimits=[{"type": "RLIMIT_NPROC", "soft": (1 << 64) - 1, "hard": (1 << 64) - 1}])
    run_both(both, make_bundle(["true"], edit), cid)


# ---------------------------------------------------------------- environment and cwd


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(None, id="default-root"),
        pytest.param(set_process(user={"uid": 65534, "gid": 65534}), id="nobody-in-passwd"),
        pytest.param(set_process(user={"uid": 1000, "gid": 1000}), id="uid-not-in-passwd"),
        pytest.param(set_process(env=["HOME=/custom", "PATH=/bin"]), id="explicit-home"),
        pytest.param(set_process(env=["A=1", "B=x", "A=2", "PATH=/bin", "EMPTY="]), id="duplicates-and-empty"),
    ],
)
def test_env(both, make_bundle, cid, edit: Edit) -> None:
    # env itself, not a shell: a shell adds PWD, SHLVL.
    bundle = make_bundle(["/bin/env"], edit)
    compare_output("environment (in order)", both, bundle, cid)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(None, id="root-dir"),
        pytest.param(set_process(cwd="/tmp"), id="tmp"),
        pytest.param(set_process(cwd="/work/made/by/runtime"), id="missing-is-created"),
        pytest.param(set_process(cwd="/tmp", user={"uid": 65534, "gid": 65534}), id="tmp-as-nobody"),
    ],
)
def test_cwd(both, make_bundle, cid, edit: Edit) -> None:
    bundle = make_bundle(sh("pwd; pwd -P; ls -ldn . | cut -c1-10"), edit)
    compare_output("cwd", both, bundle, cid)


# ---------------------------------------------------------------- exit status


@pytest.mark.parametrize(
    ("args", "edit"),
    [
        pytest.param(["true"], None, id="exit-0"),
        pytest.param(sh("exit 3"), None, id="exit-3"),
        pytest.param(sh("exit 255"), None, id="exit-255"),
        # PID 1 of a PID namespace ignores signals it has no handler for, even SIGKILL from inside:
        # without a PID namespace the process can kill itself.
        pytest.param(sh("kill -KILL $$"), drop_namespace("pid"), id="self-sigkill-137"),
        pytest.param(sh("kill -TERM $$"), drop_namespace("pid"), id="self-sigterm-143"),
        pytest.param(sh("kill -SEGV $$"), drop_namespace("pid"), id="self-sigsegv-139"),
        pytest.param(sh("kill -KILL $$; exit 9"), None, id="pid1-ignores-own-sigkill"),
        pytest.param(["/nonexistent"], None, id="missing-executable"),
    ],
)
def test_exit_status(both, make_bundle, cid, args: list[str], edit: Edit) -> None:
    results = run_both(both, make_bundle(args, edit), cid, same_exit=False)
    codes = {name: p.returncode for name, p in results.items()}
    assert codes["hull-runtime"] == codes["runc"], f"exit status differs: {codes}"


def test_exit_status_killed_from_outside(both, make_bundle, cid) -> None:
    """``run`` in the foreground, init SIGKILLed with ``kill``: runc exits 128+9."""
    bundle = make_bundle(["sleep", "30"])
    codes = {}
    for name, rt in both.items():
        proc = subprocess.Popen(
            [*rt.argv0, "--root", str(rt.root), "run", "--bundle", str(bundle), cid],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_status(rt, cid, "running")
            rt("kill", cid, "KILL")
            codes[name] = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert codes["hull-runtime"] == codes["runc"], f"exit status differs: {codes}"
    # Foreground run deletes the container afterwards.
    for name, rt in both.items():
        assert rt("list", "--quiet").stdout.strip() == "", f"{name} left the container behind"


# ---------------------------------------------------------------- /dev

DEV_SCRIPT = (
    "for f in /dev/* /dev/.[!.]* /dev/pts/* /dev/shm/* /dev/mqueue/* /dev/sub/*; do"
    ' [ -e "$f" ] || [ -L "$f" ] || continue; stat -c "%n|%F|%a|%u|%g|%t,%T|%N" "$f"; done'
)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(None, id="default"),
        pytest.param(user_namespace(0, 0), id="userns-identity"),
        pytest.param(
            lambda c: c["linux"].update(
                devices=[
                    {
                        "path": "/dev/fuse",
                        "type": "c",
                        "major": 10,
                        "minor": 229,
                        "fileMode": 0o600,
                        "uid": 0,
                        "gid": 0,
                    },
                    {"path": "/dev/sub/loopx", "type": "b", "major": 7, "minor": 200, "fileMode": 0o640, "gid": 6},
                    # Overriding a default device's mode. (Not /dev/null: runc then drops /dev/null from
                    # its device cgroup's allow list and fails reopening it; cgroups are out of scope.)
                    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7, "fileMode": 0o600},
                ]
            ),
            id="config-devices",
        ),
        pytest.param(
            lambda c: c.__setitem__("mounts", [m for m in c["mounts"] if m["destination"] != "/dev/pts"]),
            id="no-devpts",
        ),
    ],
)
def test_dev_listing(both, make_bundle, cid, edit: Edit) -> None:
    bundle = make_bundle(sh(DEV_SCRIPT), edit)
    compare_output("/dev listing (name|type|mode|uid|gid|major,minor|link)", both, bundle, cid)


# ---------------------------------------------------------------- state


def _state(rt: Runtime, cid: str) -> dict[str, Any]:
    return json.loads(rt("state", cid).stdout)


def _wait_status(rt: Runtime, cid: str, status: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        proc = rt("state", cid, check=False)
        if proc.returncode == 0:
            state = json.loads(proc.stdout)
            if state["status"] == status:
                return state
        if time.monotonic() > deadline:
            raise AssertionError(f"{cid} never reached {status!r}: {proc.stdout or proc.stderr}")
        time.sleep(0.01)


def _state_shape(state: dict[str, Any], bundle: Path, cid: str) -> list[str]:
    """Keys and value types, and the values that must agree; not ociVersion, created or the PID itself.

    ociVersion is each runtime's own spec version (runc 1.1.5: "1.0.2-dev"); created is a timestamp;
    the pid is compared as "nonzero" or 0. ``owner`` is "" in both (only ``list`` fills it in).
    """
    lines = [f"{key}: {type(value).__name__}" for key, value in sorted(state.items())]
    lines += [
        f"id == {state.get('id') == cid}",
        f"status = {state.get('status')}",
        f"bundle == {state.get('bundle') == str(bundle)}",
        f"rootfs == {state.get('rootfs') == str(bundle / 'rootfs')}",
        f"pid {'> 0' if state.get('pid') else '== 0'}",
        f"annotations = {state.get('annotations')}",
        f"owner = {state.get('owner')!r}",
    ]
    return lines


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(None, id="default"),
        pytest.param(lambda c: c.__setitem__("annotations", {"org.example.key": "value"}), id="annotations"),
    ],
)
def test_state_json(both, make_bundle, cid, edit: Edit) -> None:
    bundle = make_bundle(["sleep", "30"], edit)
    shapes: dict[str, list[str]] = {}
    for name, rt in both.items():
        lines = []
        rt("create", "--bundle", str(bundle), cid)
        try:
            lines += ["[created]", *_state_shape(_state(rt, cid), bundle, cid)]
            rt("start", cid)
            lines += ["[running]", *_state_shape(_wait_status(rt, cid, "running"), bundle, cid)]
            rt("kill", cid, "KILL")
            lines += ["[stopped]", *_state_shape(_wait_status(rt, cid, "stopped"), bundle, cid)]
        finally:
            rt("delete", "--force", cid, check=False)
        shapes[name] = lines
    assert_same("state JSON (keys, types, values)", shapes["runc"], shapes["hull-runtime"])
