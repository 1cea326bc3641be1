"""The container's filesystem (config.md "Root", "Mounts"; config-linux.md "Rootfs Mount Propagation").

Mounts of every type a config can name, what their options do, pivot_root and
--no-pivot, a read-only root, root propagation, and regression tests for
mount destinations that try to lead out of the rootfs through symlinks
(the CVE-2021-30465 class).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime
from tests.integration._helpers import (
    add_mounts,
    chain,
    created,
    mountinfo,
    run_ok,
    sections,
    sh,
)


def host_mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def host_umount(path: Path | str) -> None:
    subprocess.run(["umount", "-R", "-l", str(path)], check=False)


@pytest.fixture
def host_tmp() -> Iterator[Path]:
    """A fresh directory on the host outside any bundle, removed afterwards (with anything mounted in it)."""
    path = Path("/tmp") / f"hull-host-{uuid.uuid4().hex[:10]}"
    path.mkdir()
    yield path
    with open("/proc/self/mountinfo") as f:
        for mount_point in sorted((line.split()[4] for line in f), reverse=True):
            if mount_point.startswith(str(path) + "/"):
                host_umount(mount_point)
    shutil.rmtree(path, ignore_errors=True)


def host_mounts_under(path: Path | str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


# ---------------------------------------------------------------- pivot_root, --no-pivot, readonly root


@pytest.mark.parametrize("flags", [pytest.param((), id="pivot_root"), pytest.param(("--no-pivot",), id="no-pivot")])
def test_root_is_the_rootfs_and_the_host_root_is_out_of_reach(
    runtime: Runtime, make_bundle, host_tmp: Path, flags: tuple[str, ...]
) -> None:
    (host_tmp / "host-only").write_text("host\n")
    script = (
        f"echo '== ls'; ls /; echo '== host'; ls {host_tmp}/host-only 2>&1; "
        "echo '== inodes'; stat -c %i / /..; echo '== mountinfo'; cat /proc/self/mountinfo"
    )
    bundle = make_bundle(sh(script))
    (bundle / "rootfs" / "only-in-rootfs").write_text("")
    out = sections(run_ok(runtime, bundle, "c1", *flags))
    assert "only-in-rootfs" in out["ls"].split()
    assert "No such file or directory" in out["host"]
    root_ino, parent_ino = out["inodes"].split()
    assert root_ino == parent_ino, "/.. leads above the container's root"
    mounts = mountinfo(out["mountinfo"])
    assert mounts["/"]["root"] == str(bundle / "rootfs")
    # Nothing of the host's own tree is mounted in the container: every mount is under "/", a
    # bind of the rootfs or a filesystem of its own, none is the host's "/" itself.
    with open("/proc/self/mountinfo") as f:
        host_root = mountinfo(f.read())["/"]
    assert not any(m["root"] == "/" and m["source"] == host_root["source"] for m in mounts.values())


def test_readonly_root_rejects_writes_but_tmpfs_mounts_stay_writable(runtime: Runtime, make_bundle) -> None:
    script = (
        "touch /new-file; touch /tmp/new-file; mkdir /etc/new-dir; "
        "touch /dev/shm/ok && touch /scratch/ok && touch /dev/ok && echo writable; "
        "awk '$5 == \"/\"' /proc/self/mountinfo"
    )
    edit = add_mounts({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})
    bundle = make_bundle(sh(script), chain(lambda c: c["root"].update(readonly=True), edit))
    proc = runtime("run", "--bundle", str(bundle), "c1", check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("Read-only file system") == 3, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "writable"
    assert "ro" in lines[1].split()[5].split(",")
    assert not (bundle / "rootfs" / "new-file").exists()


def test_writable_root_when_readonly_is_false(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(sh("echo hi > /new-file"), lambda c: c["root"].update(readonly=False))
    run_ok(runtime, bundle)
    assert (bundle / "rootfs" / "new-file").read_text() == "hi\n"


# ---------------------------------------------------------------- rootfsPropagation


@pytest.fixture
def shared_rootfs(tmp_path: Path, busybox_rootfs: Path) -> Iterator[Path]:
    """A rootfs that is itself a shared mount point on the host (as an engine's overlay usually is)."""
    path = tmp_path / "shared-rootfs"
    path.mkdir()
    host_mount("-t", "tmpfs", "tmpfs", str(path))
    try:
        host_mount("--make-shared", str(path))
        shutil.copytree(busybox_rootfs, path, symlinks=True, dirs_exist_ok=True)
        yield path
    finally:
        host_umount(path)


def _peer_group(path: Path) -> str:
    with open("/proc/self/mountinfo") as f:
        optional = mountinfo(f.read())[str(path)]["optional"]
    return next(o for o in optional if o.startswith("shared:")).split(":")[1]


@pytest.mark.parametrize(
    ("propagation", "expected"),
    [
        pytest.param("shared", "shared", id="shared"),
        pytest.param("rshared", "shared", id="rshared"),
        pytest.param("private", "private", id="private"),
        pytest.param("rslave", "slave", id="rslave"),
        pytest.param(None, "slave", id="unset-is-rslave-like-runc"),
    ],
)
def test_rootfs_propagation_shows_in_mountinfo_and_container_mounts_never_reach_the_host(
    runtime: Runtime, make_bundle, shared_rootfs: Path, propagation: str | None, expected: str
) -> None:
    def edit(config: dict[str, Any]) -> None:
        config["root"]["path"] = str(shared_rootfs)
        if propagation:
            config["linux"]["rootfsPropagation"] = propagation

    out = run_ok(runtime, make_bundle(["cat", "/proc/self/mountinfo"], edit))
    optional = mountinfo(out)["/"]["optional"]
    if expected == "shared":
        assert [o.split(":")[0] for o in optional] == ["shared"], optional
    elif expected == "private":
        assert optional == [], optional
    else:
        # A slave of the host's peer group: the host's mounts propagate in, the container's do not go out.
        assert optional == [f"master:{_peer_group(shared_rootfs)}"], optional
    # The rootfs's parent is made private before its bind mount (runc's rootfsParentMountPrivate):
    # /proc, /dev, ... mounted in the container must not appear on the host, whatever the propagation.
    assert host_mounts_under(shared_rootfs) == [str(shared_rootfs)]


def test_rslave_root_receives_mounts_made_on_the_host_later(runtime: Runtime, make_bundle, shared_rootfs: Path) -> None:
    (shared_rootfs / "late").mkdir()
    bundle = make_bundle(["sleep", "30"], lambda c: c["root"].update(path=str(shared_rootfs)))
    with created(runtime, bundle) as pid:
        host_mount("-t", "tmpfs", "-o", "size=1m", "late-tmpfs", str(shared_rootfs / "late"))
        try:
            with open(f"/proc/{pid}/mountinfo") as f:
                mounts = mountinfo(f.read())
        finally:
            host_umount(shared_rootfs / "late")
    assert mounts["/late"]["source"] == "late-tmpfs"


# ---------------------------------------------------------------- mounts of each type


def _bind(dest: str, source: str, *options: str, kind: str = "bind") -> dict[str, Any]:
    return {"destination": dest, "type": kind, "source": source, "options": list(options)}


@pytest.mark.parametrize(
    ("options", "kind", "want"),
    [
        pytest.param(["bind"], "bind", {"rw"}, id="bind"),
        pytest.param(["bind", "ro"], "none", {"ro"}, id="bind-ro-type-none"),
        pytest.param(
            ["rbind", "nosuid", "nodev", "noexec"],
            "bind",
            {"rw", "nosuid", "nodev", "noexec"},
            id="rbind-nosuid-nodev-noexec",
        ),
        pytest.param(["rbind", "ro", "nosuid", "rprivate"], "bind", {"ro", "nosuid"}, id="rbind-ro-rprivate"),
        pytest.param(["rbind", "noatime"], "bind", {"noatime"}, id="rbind-noatime"),
    ],
)
def test_bind_mount_options_show_in_mountinfo(
    runtime: Runtime, make_bundle, host_tmp: Path, options: list[str], kind: str, want: set[str]
) -> None:
    (host_tmp / "file").write_text("from host\n")
    edit = add_mounts(_bind("/mnt/vol", str(host_tmp), *options, kind=kind))
    out = sections(
        run_ok(runtime, make_bundle(sh("echo == m; cat /proc/self/mountinfo; echo == f; cat /mnt/vol/file"), edit))
    )
    vol = mountinfo(out["m"])["/mnt/vol"]
    assert vol["root"] == str(host_tmp)
    assert want <= vol["options"], vol["options"]
    assert not ({"ro", "nosuid", "nodev", "noexec"} - want) & vol["options"], vol["options"]
    if "rprivate" in options:
        assert vol["optional"] == []
    assert out["f"] == "from host\n"


def test_bind_mount_flags_take_effect(runtime: Runtime, make_bundle, host_tmp: Path) -> None:
    script = host_tmp / "script"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o755)
    edit = add_mounts(
        _bind("/mnt/ro", str(host_tmp), "rbind", "ro"),
        _bind("/mnt/noexec", str(host_tmp), "rbind", "noexec"),
        _bind("/mnt/plain", str(host_tmp), "rbind"),
    )
    checks = "touch /mnt/ro/x; /mnt/noexec/script; /mnt/plain/script && touch /mnt/plain/written"
    proc = runtime("run", "--bundle", str(make_bundle(sh(checks), edit)), "c1", check=False)
    assert proc.stdout == "ran\n"
    assert "touch: /mnt/ro/x: Read-only file system" in proc.stderr
    assert "/mnt/noexec/script: Permission denied" in proc.stderr
    assert (host_tmp / "written").exists() and not (host_tmp / "x").exists()


def test_rbind_carries_submounts_and_bind_does_not(runtime: Runtime, make_bundle, host_tmp: Path) -> None:
    (host_tmp / "sub").mkdir()
    host_mount("-t", "tmpfs", "-o", "size=1m", "sub-tmpfs", str(host_tmp / "sub"))
    (host_tmp / "sub" / "in-submount").write_text("")
    edit = add_mounts(
        _bind("/mnt/r", str(host_tmp), "rbind"),
        _bind("/mnt/b", str(host_tmp), "bind"),
        # "ro" changes only the top mount; "rro" (mount_setattr(2), AT_RECURSIVE) every one.
        _bind("/mnt/ro", str(host_tmp), "rbind", "ro"),
        _bind("/mnt/rro", str(host_tmp), "rbind", "rro"),
    )
    out = run_ok(runtime, make_bundle(sh("ls /mnt/r/sub /mnt/b/sub; echo ==; cat /proc/self/mountinfo"), edit))
    listing, info = out.split("==\n")
    assert listing.split() == ["/mnt/b/sub:", "/mnt/r/sub:", "in-submount"]
    mounts = mountinfo(info)
    assert "/mnt/b/sub" not in mounts
    assert mounts["/mnt/r/sub"]["source"] == "sub-tmpfs" and "rw" in mounts["/mnt/r/sub"]["options"]
    assert "ro" in mounts["/mnt/ro"]["options"] and "rw" in mounts["/mnt/ro/sub"]["options"]
    assert "ro" in mounts["/mnt/rro"]["options"] and "ro" in mounts["/mnt/rro/sub"]["options"]


def test_bind_mount_of_a_single_file(runtime: Runtime, make_bundle, host_tmp: Path) -> None:
    (host_tmp / "hosts").write_text("10.0.0.1 db\n")
    edit = add_mounts(
        _bind("/etc/hosts", str(host_tmp / "hosts"), "rbind", "ro"),
        _bind("/new/dir/file", str(host_tmp / "hosts"), "bind"),
    )
    script = (
        "cat /etc/hosts /new/dir/file; echo x >> /etc/hosts; stat -c %F /new/dir/file; grep hosts /proc/self/mountinfo"
    )
    proc = runtime("run", "--bundle", str(make_bundle(sh(script), edit)), "c1", check=False)
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["10.0.0.1 db", "10.0.0.1 db", "regular file"]
    assert "Read-only file system" in proc.stderr
    assert len(lines[3:]) == 2 and all(line.split()[3] == str(host_tmp / "hosts") for line in lines[3:])


def test_relative_bind_source_is_relative_to_the_bundle(runtime: Runtime, make_bundle, tmp_path: Path) -> None:
    edit = add_mounts(_bind("/mnt/data", "data", "rbind", "ro"))
    bundle = make_bundle(["cat", "/mnt/data/f"], edit)
    (bundle / "data").mkdir()
    (bundle / "data" / "f").write_text("bundle data\n")
    # The runtime runs elsewhere: the source must not be resolved against its working directory.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f").write_text("wrong\n")
    assert run_ok(runtime, bundle, cwd=str(tmp_path)) == "bundle data\n"


def test_tmpfs_mode_size_and_flags(runtime: Runtime, make_bundle) -> None:
    edit = add_mounts(
        {
            "destination": "/mnt/t",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=700", "size=1m"],
        },
        {"destination": "/mnt/sticky", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]},
    )
    out = run_ok(runtime, make_bundle(sh("stat -c %a /mnt/t /mnt/sticky; echo ==; cat /proc/self/mountinfo"), edit))
    modes, info = out.split("==\n")
    assert modes.split() == ["700", "1777"]
    t = mountinfo(info)["/mnt/t"]
    assert t["fstype"] == "tmpfs" and {"nosuid", "nodev"} <= t["options"]
    assert {"size=1024k", "mode=700"} <= t["super"]


def test_default_kernel_filesystems(runtime: Runtime, make_bundle) -> None:
    # proc, sysfs (ro), devpts (a new instance), mqueue, shm: runc's default mounts.
    script = (
        "cat /proc/self/mountinfo; echo ==; ls /dev/pts; cat /proc/1/comm; ls /sys/kernel >/dev/null && echo sys-ok"
    )
    info, rest = run_ok(runtime, make_bundle(sh(script))).split("==\n")
    mounts = mountinfo(info)
    assert mounts["/proc"]["fstype"] == "proc"
    assert mounts["/sys"]["fstype"] == "sysfs" and "ro" in mounts["/sys"]["options"]
    assert (
        mounts["/dev/pts"]["fstype"] == "devpts"
        and {"mode=620", "ptmxmode=666", "gid=5"} <= mounts["/dev/pts"]["super"]
    )
    assert mounts["/dev/mqueue"]["fstype"] == "mqueue"
    assert mounts["/dev/shm"]["fstype"] == "tmpfs" and {"nosuid", "nodev", "noexec"} <= mounts["/dev/shm"]["options"]
    # A new devpts instance holds none of the host's ptys, only ptmx; /proc is the container's PID namespace.
    assert rest.split() == ["ptmx", "sh", "sys-ok"]


def _expected_cgroup_mounts() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The host's hierarchies a container gets, by mount point; and the runner's own cgroup paths.

    A unified host: /sys/fs/cgroup alone. A v1 or hybrid one: the v1 hierarchies under it
    (runc 1.1 leaves a hybrid host's cgroup2, /sys/fs/cgroup/unified, out).
    """
    with open("/proc/self/mountinfo") as f:
        mounts = {
            p: m
            for p, m in mountinfo(f.read()).items()
            if m["fstype"] in ("cgroup", "cgroup2") and "/sys/fs/cgroup" in (p, os.path.dirname(p))
        }
    if "/sys/fs/cgroup" not in mounts:
        mounts = {p: m for p, m in mounts.items() if m["fstype"] == "cgroup"}
    with open("/proc/self/cgroup") as f:
        own = {c: p for _, c, p in (line.split(":", 2) for line in f.read().splitlines())}
    return mounts, own


def test_cgroup_mount_shows_each_host_hierarchy_at_the_container_cgroup(runtime: Runtime, make_bundle) -> None:
    host, own = _expected_cgroup_mounts()
    assert host, "the host has cgroup hierarchies under /sys/fs/cgroup"
    out = run_ok(runtime, make_bundle(sh("ls /sys/fs/cgroup; echo ==; cat /proc/self/mountinfo")))
    listing, info = out.split("==\n")
    mounts = mountinfo(info)
    if "/sys/fs/cgroup" not in host:
        # v1 or hybrid: a tmpfs (writable, as runc's) holding one read-only mount per hierarchy,
        # and a symlink per controller of a co-mounted one ("cpu" -> "cpu,cpuacct").
        assert mounts["/sys/fs/cgroup"]["fstype"] == "tmpfs" and "rw" in mounts["/sys/fs/cgroup"]["options"]
        names = {os.path.basename(p) for p in host}
        names |= {c for n in list(names) if "," in n for c in n.split(",")}
        assert sorted(listing.split()) == sorted(names)
    for point, h in host.items():
        m = mounts[point]
        assert m["fstype"] == h["fstype"] and "ro" in m["options"], (point, m)
        if h["fstype"] == "cgroup2":
            path = own.get("", "/")
        else:  # the /proc/self/cgroup line naming this hierarchy's controllers (or name=...)
            path = next(p for c, p in own.items() if c and set(c.split(",")) <= h["super"])
        # A bind of the container's own cgroup (by default its ID, "c1", below the runtime's
        # own, as runc's): the host's tree above it is not visible.
        path = os.path.join(path, "c1")
        assert m["root"] == os.path.normpath(os.path.join("/", os.path.relpath(path, h["root"]))), (point, m, path)


def test_cgroup_mount_in_a_cgroup_namespace_is_rooted_at_it(runtime: Runtime, make_bundle) -> None:
    host, _ = _expected_cgroup_mounts()
    edit = lambda c: c["linux"]["namespaces"].append({"type": "cgroup"})
    mounts = mountinfo(run_ok(runtime, make_bundle(["cat", "/proc/self/mountinfo"], edit)))
    for point, h in host.items():
        assert mounts[point]["fstype"] == h["fstype"] and mounts[point]["root"] == "/", (point, mounts[point])


def test_overlay_mount(runtime: Runtime, make_bundle, host_tmp: Path) -> None:
    for d in ("lower", "upper", "work"):
        (host_tmp / d).mkdir()
    (host_tmp / "lower" / "from-lower").write_text("lower\n")
    options = [f"lowerdir={host_tmp}/lower", f"upperdir={host_tmp}/upper", f"workdir={host_tmp}/work"]
    edit = add_mounts({"destination": "/merged", "type": "overlay", "source": "overlay", "options": options})
    script = (
        "cat /merged/from-lower; echo new > /merged/written; rm /merged/from-lower; ls /merged; "
        "grep ' /merged ' /proc/self/mountinfo"
    )
    out = run_ok(runtime, make_bundle(sh(script), edit)).splitlines()
    assert out[:2] == ["lower", "written"]
    assert " - overlay overlay " in out[2]
    assert (host_tmp / "upper" / "written").read_text() == "new\n"
    assert (host_tmp / "lower" / "from-lower").exists(), "the lower layer was modified"


# ---------------------------------------------------------------- symlinks never lead a mount out of the rootfs


@pytest.fixture
def host_target(host_tmp: Path) -> Path:
    """A host directory an evil rootfs points its symlinks at; it must stay empty."""
    target = host_tmp / "target"
    target.mkdir()
    return target


ESCAPES = {
    # rootfs symlink name -> its target, given the host directory H the attacker aims at.
    "absolute": lambda h: str(h),
    "dotdot": lambda h: "../" * 20 + str(h).lstrip("/"),
    "chained": lambda h: "/hop",  # /hop -> ../../../H, see below
}


def _evil_bundle(make_bundle, host_target: Path, kind: str, args: list[str], edit: Any) -> Path:
    bundle = make_bundle(args, edit)
    rootfs = bundle / "rootfs"
    os.symlink(ESCAPES[kind](host_target), rootfs / "evil")
    if kind == "chained":
        os.symlink("../../.." + str(host_target), rootfs / "hop")
    return bundle


def _inside(bundle: Path, host_path: Path) -> Path:
    """Where a container path equal to host_path lies in the rootfs."""
    return bundle / "rootfs" / str(host_path).lstrip("/")


@pytest.mark.parametrize("kind", ESCAPES)
def test_mount_destination_through_a_symlink_stays_inside_the_rootfs(
    runtime: Runtime, make_bundle, host_target: Path, kind: str
) -> None:
    """CVE-2021-30465 class: a destination below a symlink out of the rootfs must be created and mounted inside it."""
    edit = add_mounts({"destination": "/evil/sub", "type": "tmpfs", "source": "escape-probe", "options": ["size=1m"]})
    script = "echo x > /evil/sub/written; cat /proc/self/mountinfo"
    bundle = _evil_bundle(make_bundle, host_target, kind, sh(script), edit)
    mounts = mountinfo(run_ok(runtime, bundle))
    assert os.listdir(host_target) == [], "the host directory behind the symlink was written to"
    # The mount landed where the symlink leads when resolved inside the rootfs.
    assert mounts[f"{host_target}/sub"]["source"] == "escape-probe"
    assert _inside(bundle, host_target / "sub").is_dir()
    assert not (_inside(bundle, host_target / "sub") / "written").exists(), "the write missed the tmpfs"


@pytest.mark.parametrize("kind", ESCAPES)
def test_mount_destination_that_is_itself_a_symlink_out_of_the_rootfs_stays_inside(
    runtime: Runtime, make_bundle, host_target: Path, kind: str
) -> None:
    edit = add_mounts({"destination": "/evil", "type": "tmpfs", "source": "escape-probe", "options": ["size=1m"]})
    bundle = _evil_bundle(make_bundle, host_target, kind, sh("echo x > /evil/written; cat /proc/self/mountinfo"), edit)
    mounts = mountinfo(run_ok(runtime, bundle))
    assert os.listdir(host_target) == []
    assert mounts[str(host_target)]["source"] == "escape-probe"
    # The rootfs's own directory got the mount (so the write went to the tmpfs, gone now).
    assert _inside(bundle, host_target).is_dir() and os.listdir(_inside(bundle, host_target)) == []


def test_bind_mount_of_a_file_through_a_symlink_stays_inside_the_rootfs(
    runtime: Runtime, make_bundle, host_tmp: Path, host_target: Path
) -> None:
    (host_tmp / "secret").write_text("bound\n")
    edit = add_mounts(_bind("/evil/deep/file", str(host_tmp / "secret"), "bind", "ro"))
    bundle = _evil_bundle(make_bundle, host_target, "dotdot", ["cat", f"{host_target}/deep/file"], edit)
    assert run_ok(runtime, bundle) == "bound\n"
    assert os.listdir(host_target) == []
    assert _inside(bundle, host_target / "deep" / "file").is_file()


def test_dotdot_in_a_mount_destination_stops_at_the_rootfs(runtime: Runtime, make_bundle, host_target: Path) -> None:
    dest = "/../../../../.." + str(host_target) + "/sub"
    edit = add_mounts({"destination": dest, "type": "tmpfs", "source": "escape-probe", "options": ["size=1m"]})
    bundle = make_bundle(["cat", "/proc/self/mountinfo"], edit)
    proc = runtime("run", "--bundle", str(bundle), "c1", check=False)
    # Either refused (a destination must be absolute and clean) or resolved inside: never on the host.
    assert os.listdir(host_target) == []
    if proc.returncode == 0:
        assert mountinfo(proc.stdout)[f"{host_target}/sub"]["source"] == "escape-probe"
        assert _inside(bundle, host_target / "sub").is_dir()


def test_symlink_loop_in_a_mount_destination_fails_cleanly(runtime: Runtime, make_bundle) -> None:
    edit = add_mounts({"destination": "/loop/sub", "type": "tmpfs", "source": "tmpfs"})
    bundle = make_bundle(["true"], edit)
    os.symlink("/loop", bundle / "rootfs" / "loop")
    proc = runtime("run", "--bundle", str(bundle), "c1", check=False)
    assert proc.returncode != 0
    assert "mounts[" in proc.stderr and "/loop/sub" in proc.stderr, proc.stderr
    assert runtime("list", "-q").stdout == ""


@pytest.mark.parametrize("fstype", ["proc", "sysfs"])
def test_proc_or_sysfs_over_a_symlink_is_refused_as_by_runc(
    runtime: Runtime, runc: Runtime, make_bundle, fstype: str
) -> None:
    """CVE-2019-16884 / CVE-2023-27561 class: procfs and sysfs go on an ordinary directory only.

    An image whose /proc is a symlink (here to a directory of its own) would
    get procfs mounted elsewhere while /proc names files of its choosing, so
    writes meant for procfs (an AppArmor exec profile) would be lost.
    """
    dest = "/proc" if fstype == "proc" else "/sys"
    bundle = make_bundle(["true"])
    target = bundle / "rootfs" / dest.lstrip("/")
    if target.exists():
        shutil.rmtree(target)
    (bundle / "rootfs" / "fake").mkdir()
    target.symlink_to("fake")
    for rt in (runtime, runc):
        proc = rt("run", "--bundle", str(bundle), "c1", check=False)
        assert proc.returncode != 0, rt.argv
        message = proc.stderr.replace('\\"', '"')  # logrus escapes the quotes
        assert f'filesystem "{fstype}" must be mounted on ordinary directory' in message, proc.stderr
        assert rt("list", "--quiet").stdout == ""
    # Nothing was mounted on the image's directory (the mount namespace is gone with the failed create).
    assert os.listdir(bundle / "rootfs" / "fake") == []
