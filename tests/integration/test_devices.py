"""/dev, masked and read-only paths, sysctls and names (config-linux.md "Devices", "Default Devices",
"Masked Paths", "Readonly Paths", "Sysctl"; config.md "Hostname", "Domainname").
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime
from tests.integration._helpers import (
    chain,
    public_bundle,  # noqa: F401 - fixture
    run_fails,
    run_ok,
    sections,
    set_linux,
    sh,
)

STAT = "stat -c '%n|%F|%t:%T|%a|%u:%g'"


def stat_lines(text: str) -> dict[str, tuple[str, ...]]:
    return {line.split("|")[0]: tuple(line.split("|")[1:]) for line in text.splitlines()}


# config-linux.md "Default Devices", with their Linux device numbers (devices.txt); %t:%T prints hex.
DEFAULTS = {
    "/dev/null": "1:3",
    "/dev/zero": "1:5",
    "/dev/full": "1:7",
    "/dev/random": "1:8",
    "/dev/urandom": "1:9",
    "/dev/tty": "5:0",
}


def test_default_devices_have_their_numbers_and_mode_0666(runtime: Runtime, make_bundle) -> None:
    script = (
        f"{STAT} {' '.join(DEFAULTS)}; head -c 4 /dev/zero | od -An -tx1; "
        "echo x > /dev/null && echo null-ok; echo x > /dev/full"
    )
    proc = runtime("run", "--bundle", str(make_bundle(sh(script))), "c1", check=False)
    *stats, zeros, null_ok = proc.stdout.splitlines()
    got = stat_lines("\n".join(stats))
    assert got == {path: ("character special file", number, "666", "0:0") for path, number in DEFAULTS.items()}
    assert zeros.split() == ["00"] * 4
    assert null_ok == "null-ok"
    assert "No space left on device" in proc.stderr  # /dev/full is the real device


def test_default_dev_links(runtime: Runtime, make_bundle) -> None:
    script = "for l in fd stdin stdout stderr ptmx; do echo $l $(readlink /dev/$l); done; echo via-link >> /dev/stdout"
    out = run_ok(runtime, make_bundle(sh(script))).splitlines()
    assert out == [
        "fd /proc/self/fd",
        "stdin /proc/self/fd/0",
        "stdout /proc/self/fd/1",
        "stderr /proc/self/fd/2",
        "ptmx pts/ptmx",
        "via-link",
    ]


def test_ptmx_link_without_a_dev_pts_mount(runtime: Runtime, make_bundle) -> None:
    # runc's setupPtmx makes /dev/ptmx -> pts/ptmx whatever the mounts.
    edit = lambda c: c.update(mounts=[m for m in c["mounts"] if m["destination"] != "/dev/pts"])
    assert run_ok(runtime, make_bundle(["readlink", "/dev/ptmx"], edit)) == "pts/ptmx\n"


def test_dev_is_a_fresh_tmpfs_without_host_devices(runtime: Runtime, make_bundle) -> None:
    out = run_ok(runtime, make_bundle(sh("ls /dev | sort")))
    # Only the defaults, the links and the configured mounts: no /dev/sda, /dev/kmsg, /dev/mem of the host's.
    expected = {"fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty"}
    assert set(out.split()) - {"core"} == expected | {"urandom", "zero"}


def test_config_devices_char_block_fifo_with_mode_and_owner(runtime: Runtime, make_bundle) -> None:
    devices = [
        {"type": "c", "path": "/dev/mynull", "major": 1, "minor": 3, "fileMode": 0o620, "uid": 1000, "gid": 1001},
        {"type": "b", "path": "/dev/disks/loopx", "major": 7, "minor": 0, "fileMode": 0o660, "uid": 0, "gid": 6},
        {"type": "p", "path": "/dev/myfifo", "fileMode": 0o600, "uid": 65534, "gid": 65534},
        {"type": "u", "path": "/dev/unbuffered", "major": 1, "minor": 5, "fileMode": 0o640},
        # The config wins over a default on the same path.
        {"type": "c", "path": "/dev/zero", "major": 1, "minor": 5, "fileMode": 0o600, "uid": 0, "gid": 0},
    ]
    bundle = make_bundle(
        sh(
            f"{STAT} /dev/mynull /dev/disks/loopx /dev/myfifo /dev/unbuffered /dev/zero; "
            "echo x > /dev/unbuffered && echo ok"
        ),
        set_linux(devices=devices),
    )
    # A config device on a default's path also drops the default's cgroup rule
    # (runc 1.1's createDevices): writing to 1:5 needs a rule of its own.
    config = json.loads((bundle / "config.json").read_text())
    rule = {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"}
    config["linux"]["resources"]["devices"].append(rule)
    (bundle / "config.json").write_text(json.dumps(config))
    *stats, ok = run_ok(runtime, bundle).splitlines()
    assert stat_lines("\n".join(stats)) == {
        "/dev/mynull": ("character special file", "1:3", "620", "1000:1001"),
        "/dev/disks/loopx": ("block special file", "7:0", "660", "0:6"),
        "/dev/myfifo": ("fifo", "0:0", "600", "65534:65534"),
        "/dev/unbuffered": ("character special file", "1:5", "640", "0:0"),
        "/dev/zero": ("character special file", "1:5", "600", "0:0"),
    }
    assert ok == "ok"


def test_config_device_path_through_a_symlink_stays_inside_the_rootfs(runtime: Runtime, make_bundle) -> None:
    """CVE-2021-30465 class, for device nodes: a symlink in the rootfs must not place a node on the host."""
    host_dir = Path("/tmp") / f"hull-devtarget-{uuid.uuid4().hex[:10]}"
    host_dir.mkdir()
    try:
        devices = [{"type": "c", "path": "/evil/node", "major": 1, "minor": 3, "fileMode": 0o666}]
        bundle = make_bundle(sh(f"{STAT} {host_dir}/node"), set_linux(devices=devices))
        os.symlink("../../../.." + str(host_dir), bundle / "rootfs" / "evil")
        out = run_ok(runtime, bundle)
        assert os.listdir(host_dir) == []
        assert stat_lines(out)[f"{host_dir}/node"][:2] == ("character special file", "1:3")
        assert (bundle / "rootfs" / str(host_dir).lstrip("/") / "node").is_char_device()
    finally:
        for name in os.listdir(host_dir):
            os.unlink(host_dir / name)
        host_dir.rmdir()


def test_devices_in_a_user_namespace_are_bind_mounts_of_the_hosts(runtime: Runtime, public_bundle) -> None:  # noqa: F811
    # mknod(2) is not allowed in a user namespace: the host's nodes are bound in, as runc does.
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]

    script = f"{STAT} {' '.join(DEFAULTS)}; echo x > /dev/null && echo ok; echo ==; cat /proc/self/mountinfo"
    stats, info = run_ok(runtime, public_bundle(sh(script), edit)).split("==\n")
    *stats_lines, ok = stats.splitlines()
    got = stat_lines("\n".join(stats_lines))
    # Host root owns the nodes: unmapped, it shows as the overflow IDs.
    assert {p: v[:2] for p, v in got.items()} == {p: ("character special file", n) for p, n in DEFAULTS.items()}
    assert ok == "ok"
    assert all(f" {path} " in info for path in DEFAULTS)


# ---------------------------------------------------------------- maskedPaths, readonlyPaths


def _rootfs_files(bundle: Path) -> None:
    etc = bundle / "rootfs" / "etc"
    (etc / "secret-file").write_text("secret\n")
    (etc / "secret-dir").mkdir()
    (etc / "secret-dir" / "inner").write_text("secret\n")
    (etc / "ro-dir").mkdir()
    (etc / "ro-dir" / "f").write_text("kept\n")


def test_masked_paths_read_empty_and_masked_dirs_are_empty_and_read_only(runtime: Runtime, make_bundle) -> None:
    masked = ["/etc/secret-file", "/etc/secret-dir", "/etc/does-not-exist", "/proc/keys", "/sys/firmware"]
    script = (
        "echo '== file'; cat /etc/secret-file | wc -c; cat /proc/keys | wc -c; "
        "echo '== dir'; ls -A /etc/secret-dir /sys/firmware; "
        "echo '== write'; touch /etc/secret-dir/new 2>&1; echo x > /etc/secret-file && cat /etc/secret-file | wc -c"
    )
    edit = chain(set_linux(maskedPaths=masked), lambda c: c["root"].update(readonly=False))
    bundle = make_bundle(sh(script), edit)
    _rootfs_files(bundle)
    out = sections(run_ok(runtime, bundle))
    assert out["file"].split() == ["0", "0"]
    assert out["dir"].split() == ["/etc/secret-dir:", "/sys/firmware:"]
    # A masked file is /dev/null: writes vanish. A masked directory is a read-only tmpfs.
    assert out["write"].split("\n")[0].endswith("Read-only file system")
    assert out["write"].split("\n")[1] == "0"
    assert (bundle / "rootfs" / "etc" / "secret-dir" / "inner").read_text() == "secret\n"


def test_readonly_paths_reject_writes(runtime: Runtime, make_bundle) -> None:
    script = (
        "touch /etc/ro-dir/new 2>&1; { echo x > /etc/ro-dir/f; } 2>&1; cat /etc/ro-dir/f; "
        "{ echo 1 > /proc/sys/kernel/shmmni; } 2>&1; touch /etc/writable && echo etc-writable"
    )
    edit = chain(
        set_linux(readonlyPaths=["/etc/ro-dir", "/proc/sys", "/missing/is/ignored"]),
        lambda c: c["root"].update(readonly=False),
    )
    bundle = make_bundle(sh(script), edit)
    _rootfs_files(bundle)
    lines = run_ok(runtime, bundle).splitlines()
    assert lines[0] == "touch: /etc/ro-dir/new: Read-only file system"
    assert lines[1].endswith("/etc/ro-dir/f: Read-only file system")
    assert lines[2] == "kept"
    assert lines[3].endswith("/proc/sys/kernel/shmmni: Read-only file system")
    assert lines[4] == "etc-writable"


# ---------------------------------------------------------------- sysctl


def test_sysctls_apply_inside_the_namespaces_and_not_to_the_host(runtime: Runtime, make_bundle) -> None:
    keys = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789", "fs.mqueue.msg_max": "33"}
    paths = {k: "/proc/sys/" + k.replace(".", "/") for k in keys}
    before = {k: Path(p).read_text() for k, p in paths.items()}
    assert before["net.ipv4.ip_forward"] == "0\n" or before["kernel.shmmax"] != "123456789\n"
    out = run_ok(runtime, make_bundle(["cat", *paths.values()], set_linux(sysctl=keys)))
    assert out.split() == list(keys.values())
    assert {k: Path(p).read_text() for k, p in paths.items()} == before


@pytest.mark.parametrize(
    ("sysctl", "edit", "message"),
    [
        pytest.param("kernel.panic", None, "is not in a separate kernel namespace", id="host-wide"),
        pytest.param(
            "net.ipv4.ip_forward",
            lambda c: c["linux"].update(namespaces=[n for n in c["linux"]["namespaces"] if n["type"] != "network"]),
            "needs a network namespace",
            id="no-netns",
        ),
    ],
)
def test_sysctls_that_would_change_the_host_are_refused(
    runtime: Runtime, make_bundle, sysctl: str, edit: Any, message: str
) -> None:
    path = Path("/proc/sys/" + sysctl.replace(".", "/"))
    before = path.read_text()
    value = "0" if before.strip() != "0" else "1"
    bundle = make_bundle(["true"], chain(set_linux(sysctl={sysctl: value}), edit or (lambda c: None)))
    err = run_fails(runtime, bundle)
    assert f"linux.sysctl.{sysctl}" in err and message in err, err
    assert path.read_text() == before


# ---------------------------------------------------------------- hostname, domainname


def test_hostname_and_domainname(runtime: Runtime, make_bundle) -> None:
    script = "hostname; uname -n; cat /proc/sys/kernel/hostname /proc/sys/kernel/domainname"
    edit = lambda c: c.update(hostname="dev-box", domainname="corp.example")
    assert run_ok(runtime, make_bundle(sh(script), edit)).split() == ["dev-box", "dev-box", "dev-box", "corp.example"]


def test_new_uts_namespace_without_hostname_keeps_a_copy_of_the_hosts(runtime: Runtime, make_bundle) -> None:
    edit = lambda c: c.pop("hostname")
    assert run_ok(runtime, make_bundle(["hostname"], edit)).strip() == os.uname().nodename


def test_hostname_without_a_uts_namespace_is_refused(runtime: Runtime, make_bundle) -> None:
    # config.md "Hostname": setting it without a new UTS namespace would rename the host.
    edit = lambda c: c["linux"].update(namespaces=[n for n in c["linux"]["namespaces"] if n["type"] != "uts"])
    err = run_fails(runtime, make_bundle(["true"], edit))
    assert "hostname" in err and "UTS namespace" in err
