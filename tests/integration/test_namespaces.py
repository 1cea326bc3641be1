"""Namespaces a container gets (config-linux.md "Namespaces", "User namespace mappings", "Offset for Time Namespace").

An entry without ``path`` is a new namespace, one with ``path`` joins that
namespace; a type not listed is the runtime's own. Each test looks from
inside the container (or at its init from the host) at what it got.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import Runtime
from tests.integration._helpers import (
    chain,
    created,
    holder,
    ns_inode,
    public_bundle,  # noqa: F401 - fixture
    run_ok,
    sections,
    set_linux,
    sh,
)


def ns_of_self(kinds: str) -> str:
    """Shell printing ``<kind> <inode>`` for each of /proc/self/ns/<kind>."""
    return f"for n in {kinds}; do echo $n $(stat -L -c %i /proc/self/ns/$n); done"


def parse_ns(text: str) -> dict[str, int]:
    return {kind: int(ino) for kind, ino in (line.split() for line in text.splitlines())}


def test_default_namespaces_are_new_and_others_shared_with_host(runtime: Runtime, make_bundle) -> None:
    # runc's default config: new pid, network, ipc, uts, mount; cgroup, user, time are the host's.
    out = run_ok(runtime, make_bundle(sh(ns_of_self("pid mnt net ipc uts cgroup user time"))))
    inside = parse_ns(out)
    for kind in ("pid", "mnt", "net", "ipc", "uts"):
        assert inside[kind] != ns_inode(f"/proc/self/ns/{kind}"), f"{kind} namespace is the host's"
    for kind in ("cgroup", "user", "time"):
        assert inside[kind] == ns_inode(f"/proc/self/ns/{kind}"), f"{kind} namespace is not the host's"


def test_pid_namespace_container_process_is_pid_1(runtime: Runtime, make_bundle) -> None:
    script = "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '"
    out = run_ok(runtime, make_bundle(sh(script))).splitlines()
    assert out[0] == "1"
    assert out[1].startswith("sh -c echo $$;")
    # Only the container's processes: its shell (1) and the few it forked, none of the host's.
    pids = [int(p) for p in out[2].split()]
    assert pids[0] == 1 and max(pids) < 20, pids


def test_mount_namespace_keeps_container_mounts_off_the_host(runtime: Runtime, make_bundle) -> None:
    bundle = make_bundle(["sleep", "30"])
    rootfs = str(bundle / "rootfs")
    with created(runtime, bundle) as pid:
        assert ns_inode(f"/proc/{pid}/ns/mnt") != ns_inode("/proc/self/ns/mnt")
        with open(f"/proc/{pid}/mountinfo") as f:
            theirs = f.read()
        with open("/proc/self/mountinfo") as f:
            ours = f.read()
    assert " /proc " in theirs and " /dev/pts " in theirs
    assert rootfs not in ours, "the container's mounts are visible in the host's mount namespace"


def test_network_namespace_has_only_loopback_and_it_is_up(runtime: Runtime, make_bundle) -> None:
    script = (
        "ls /sys/class/net; echo ==; cat /proc/net/dev; echo ==; cat /sys/class/net/lo/flags; ip -o -4 addr show lo"
    )
    listing, dev, lo = run_ok(runtime, make_bundle(sh(script))).split("==\n")
    assert listing.split() == ["lo"]
    assert [line.split(":")[0].strip() for line in dev.splitlines()[2:]] == ["lo"]
    # runc configures a "loopback" network for a new network namespace: lo is up, with 127.0.0.1.
    flags, addr = lo.splitlines()
    assert int(flags, 16) & 0x1, f"lo is down (flags {flags})"
    assert "127.0.0.1/8" in addr


def test_ipc_namespace_hides_host_sysv_objects(runtime: Runtime, make_bundle) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    shmid = libc.shmget(0, 4096, 0o600 | 0o1000)  # IPC_PRIVATE, IPC_CREAT
    assert shmid >= 0, os.strerror(ctypes.get_errno())
    try:
        with open("/proc/sysvipc/shm") as f:
            assert any(line.split()[1] == str(shmid) for line in f.readlines()[1:])
        out = run_ok(runtime, make_bundle(sh("tail -n +2 /proc/sysvipc/shm | wc -l; " + ns_of_self("ipc"))))
    finally:
        libc.shmctl(shmid, 0, None)  # IPC_RMID
    count, ns = out.splitlines()
    assert count.strip() == "0"
    assert parse_ns(ns)["ipc"] != ns_inode("/proc/self/ns/ipc")


def test_uts_namespace_hostname_and_domainname(runtime: Runtime, make_bundle) -> None:
    host = (os.uname().nodename, Path("/proc/sys/kernel/domainname").read_text())
    edit = lambda c: c.update(hostname="box.inside", domainname="example.test")
    out = run_ok(runtime, make_bundle(sh("hostname; cat /proc/sys/kernel/domainname; uname -n"), edit))
    assert out.splitlines() == ["box.inside", "example.test", "box.inside"]
    assert (os.uname().nodename, Path("/proc/sys/kernel/domainname").read_text()) == host


def test_cgroup_namespace_roots_the_container_at_its_own_cgroup(runtime: Runtime, make_bundle) -> None:
    with open("/proc/self/cgroup") as f:
        host_paths = [line.split(":", 2)[2] for line in f.read().splitlines()]
    edit = lambda c: c["linux"]["namespaces"].append({"type": "cgroup"})
    out = run_ok(runtime, make_bundle(sh("cat /proc/self/cgroup; echo ==; " + ns_of_self("cgroup")), edit))
    cgroups, ns = out.split("==\n")
    assert parse_ns(ns)["cgroup"] != ns_inode("/proc/self/ns/cgroup")
    # Every hierarchy shows the container's cgroup as "/" (cgroup_namespaces(7)).
    assert [line.split(":", 2)[2] for line in cgroups.splitlines()] == ["/"] * len(host_paths)
    assert cgroups.splitlines()[-1] == "0::/"


def test_time_namespace_offsets_shift_boottime_and_monotonic(runtime: Runtime, make_bundle) -> None:
    boot_offset, mono_offset = 10 * 86400, 3600
    edit = chain(
        lambda c: c["linux"]["namespaces"].append({"type": "time"}),
        set_linux(timeOffsets={"boottime": {"secs": boot_offset}, "monotonic": {"secs": mono_offset, "nanosecs": 500}}),
    )
    bundle = make_bundle(sh("cat /proc/uptime; cat /proc/self/timens_offsets; exec sleep 30"), edit)
    with created(runtime, bundle) as pid:
        # The monotonic clock, read by a host process that enters the container's time namespace.
        before = time.monotonic()
        mono = subprocess.run(
            ["nsenter", f"--time=/proc/{pid}/ns/time", sys.executable, "-c", "import time; print(time.monotonic())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        after = time.monotonic()
        assert before + mono_offset <= float(mono) <= after + mono_offset
    out = run_ok(runtime, make_bundle(sh("cat /proc/uptime; cat /proc/self/timens_offsets"), edit), "c2")
    uptime, *offsets = out.splitlines()
    host_uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert abs(float(uptime.split()[0]) - (host_uptime + boot_offset)) < 5
    assert [line.split() for line in offsets] == [["monotonic", "3600", "500"], ["boottime", "864000", "0"]]


def user_ns(uid: int, gid: int, size: int = 65536) -> Any:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": size}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": size}]
        # A bind of the host's cgroup directories is not what this test is about (see test_rootfs).
        config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]

    return edit


def test_user_namespace_maps_ids_and_files_are_owned_by_the_mapped_host_ids(runtime: Runtime, public_bundle) -> None:  # noqa: F811
    # The destination lies under /tmp (1777): container root, host UID 100000, cannot create
    # directories in the host-root-owned rootfs (nor can it under runc).
    shared = public_bundle.base / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    script = (
        "echo '== maps'; cat /proc/self/uid_map /proc/self/gid_map; "
        "echo '== id'; id -u; id -g; "
        "echo '== files'; touch /tmp/shared/by-root; mkdir /tmp/shared/dir; chown 1000:2000 /tmp/shared/dir; "
        "stat -c '%u %g' /tmp/shared/by-root /bin/busybox; "
        "echo '== ns'; " + ns_of_self("user")
    )
    edit = chain(
        user_ns(100000, 200000),
        # chown needs CAP_CHOWN, which runc's default capabilities leave out.
        lambda c: [caps.append("CAP_CHOWN") for caps in c["process"]["capabilities"].values()],
        lambda c: c["mounts"].append(
            {"destination": "/tmp/shared", "type": "bind", "source": str(shared), "options": ["rbind"]}
        ),
    )
    out = sections(run_ok(runtime, public_bundle(sh(script), edit)))
    assert [line.split() for line in out["maps"].splitlines()] == [["0", "100000", "65536"], ["0", "200000", "65536"]]
    assert out["id"].split() == ["0", "0"]
    # Inside, the file is root's; the host's root (unmapped) shows as the overflow ID.
    assert out["files"].splitlines() == ["0 0", "65534 65534"]
    assert parse_ns(out["ns"])["user"] != ns_inode("/proc/self/ns/user")
    st = (shared / "by-root").stat()
    assert (st.st_uid, st.st_gid) == (100000, 200000)
    st = (shared / "dir").stat()
    assert (st.st_uid, st.st_gid) == (101000, 202000)


def test_user_namespace_container_runs_after_start(runtime: Runtime, public_bundle) -> None:  # noqa: F811
    # Container root is host UID 100000, which may not write the runtime's state directory:
    # whatever init cannot do there, create and start must still take the container to "running".
    bundle = public_bundle(["sleep", "30"], user_ns(100000, 100000))
    with created(runtime, bundle):
        runtime("start", "c1")
        assert json.loads(runtime("state", "c1").stdout)["status"] == "running"


def test_join_network_namespace_by_a_bind_mounted_path(runtime: Runtime, make_bundle, tmp_path: Path) -> None:
    # As `ip netns add` keeps one: the namespace file bind-mounted elsewhere, outlasting its process.
    pinned = tmp_path / "netns"
    pinned.touch()
    with holder("--net", setup="ip addr add 127.0.0.77/8 dev lo") as pid:
        subprocess.run(["mount", "--bind", f"/proc/{pid}/ns/net", str(pinned)], check=True)
    try:

        def edit(config: dict[str, Any]) -> None:
            for ns in config["linux"]["namespaces"]:
                if ns["type"] == "network":
                    ns["path"] = str(pinned)

        out = run_ok(runtime, make_bundle(sh("ip -o -4 addr show lo; " + ns_of_self("net")), edit))
        *addrs, ns = out.splitlines()
        assert parse_ns(ns)["net"] == ns_inode(str(pinned))
        # The address set up in that namespace: it is the one joined, and it was not replaced.
        assert any("127.0.0.77/8" in line for line in addrs), addrs
    finally:
        subprocess.run(["umount", str(pinned)], check=True)


def test_join_uts_namespace_by_path_of_a_holder_process(runtime: Runtime, make_bundle) -> None:
    with holder("--uts", setup="hostname uts-holder") as pid:
        path = f"/proc/{pid}/ns/uts"

        def edit(config: dict[str, Any]) -> None:
            config.pop("hostname", None)  # a hostname would be set in (and change) the joined namespace
            for ns in config["linux"]["namespaces"]:
                if ns["type"] == "uts":
                    ns["path"] = path

        out = run_ok(runtime, make_bundle(sh("hostname; " + ns_of_self("uts")), edit))
        name, ns = out.splitlines()
        assert name == "uts-holder"
        assert parse_ns(ns)["uts"] == ns_inode(path)
    assert os.uname().nodename != "uts-holder"


def test_join_several_namespaces_of_one_holder(runtime: Runtime, make_bundle) -> None:
    # ipc and network joined together; the rest new. Joining happens before creating.
    with holder("--ipc", "--net", setup="true") as pid:

        def edit(config: dict[str, Any]) -> None:
            for ns in config["linux"]["namespaces"]:
                if ns["type"] in ("ipc", "network"):
                    ns["path"] = f"/proc/{pid}/ns/{'net' if ns['type'] == 'network' else 'ipc'}"

        inside = parse_ns(run_ok(runtime, make_bundle(sh(ns_of_self("ipc net uts")), edit)))
        assert inside["ipc"] == ns_inode(f"/proc/{pid}/ns/ipc")
        assert inside["net"] == ns_inode(f"/proc/{pid}/ns/net")
        assert inside["uts"] not in (ns_inode(f"/proc/{pid}/ns/uts"), ns_inode("/proc/self/ns/uts"))
