"""engine.spec / seccomp_default / seccomp_convert / etcfiles: the config.json ``hull run`` writes, field by field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hull.engine import etcfiles, spec
from hull.engine.options import OptionError, ResolvedMount, RunOptions
from hull.engine.seccomp_convert import convert
from hull.engine.seccomp_default import CLONE_NAMESPACE_FLAGS, default_profile
from hull.engine.spec import DEFAULT_CAPABILITIES, ContainerFiles, build_spec
from hull.image.bundle import User
from hull.oci.image import ExecConfig, ImageConfig, RootFS
from hull.runtime import seccomp as runtime_seccomp
from hull.runtime.capabilities import NAMES

CID = "0123456789abcdef0123456789abcdef"
FILES = ContainerFiles("/c/hosts", "/c/hostname", "/c/resolv.conf")
ROOT = User(0, 0, [])


def image(**config: Any) -> ImageConfig:
    return ImageConfig("amd64", "linux", RootFS([]), config=ExecConfig(**config))


IMAGE = image(env=["PATH=/image/bin", "LANG=C.UTF-8"], entrypoint=["/entry"], cmd=["serve", "--port=80"])


@pytest.fixture(autouse=True)
def host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host facts build_spec reads, fixed: swap accounting, cgroup v1, every capability held, 2 CPUs."""
    monkeypatch.setattr(spec, "_swap_accounting", lambda: True)
    monkeypatch.setattr(spec, "_cgroup_v2_only", lambda: False)
    monkeypatch.setattr(spec, "_own_bounding_set", lambda: -1)
    monkeypatch.setattr("os.cpu_count", lambda: 2)


def build(img: ImageConfig = IMAGE, user: User = ROOT, mounts: list[ResolvedMount] | None = None,
          init_path: str = "", environ: dict[str, str] | None = None, **opts: Any) -> dict[str, Any]:  # fmt: skip
    return build_spec(RunOptions(image="img", **opts), img, user, CID, FILES, mounts or [], init_path,
                      environ=environ or {})  # fmt: skip


def destinations(config: dict[str, Any]) -> list[str]:
    return [m["destination"] for m in config["mounts"]]


def mount_at(config: dict[str, Any], dest: str) -> dict[str, Any]:
    return next(m for m in config["mounts"] if m["destination"] == dest)


# ---------------------------------------------------------------- capabilities


def test_default_capabilities_are_dockers_14() -> None:
    caps = build()["process"]["capabilities"]
    assert len(DEFAULT_CAPABILITIES) == 14
    for kind in ("bounding", "effective", "permitted"):
        assert caps[kind] == list(DEFAULT_CAPABILITIES)
    assert caps["inheritable"] == [] and caps["ambient"] == []
    assert "CAP_SYS_ADMIN" not in caps["bounding"] and "CAP_NET_ADMIN" not in caps["bounding"]


def test_non_root_user_gets_only_the_bounding_set() -> None:
    caps = build(user=User(1000, 1000, []))["process"]["capabilities"]
    assert caps["bounding"] == list(DEFAULT_CAPABILITIES)
    assert caps["effective"] == caps["permitted"] == caps["inheritable"] == caps["ambient"] == []


def test_cap_add_and_drop_as_docker() -> None:
    caps = build(cap_add=["sys_admin", "CAP_NET_ADMIN", "CHOWN"], cap_drop=["chown", "MKNOD"])["process"]
    bounding = caps["capabilities"]["bounding"]
    # docker: the defaults minus the dropped, then the added (an added one wins over its drop)
    assert bounding[-3:] == ["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_CHOWN"]
    assert "CAP_MKNOD" not in bounding
    assert bounding.count("CAP_CHOWN") == 1
    only = build(cap_drop=["ALL"], cap_add=["NET_RAW"])["process"]["capabilities"]
    assert only["bounding"] == only["effective"] == ["CAP_NET_RAW"]
    assert build(cap_drop=["all"])["process"]["capabilities"]["bounding"] == []
    everything = build(cap_add=["ALL"], cap_drop=["MKNOD"])["process"]["capabilities"]["bounding"]
    assert "CAP_SYS_ADMIN" in everything and "CAP_MKNOD" not in everything
    with pytest.raises(OptionError, match='--cap-add: unknown capability: "CAP_FOO"'):
        build(cap_add=["foo"])
    with pytest.raises(OptionError, match="--cap-drop"):
        build(cap_drop=["CAP_NOPE"])


def test_privileged(monkeypatch: pytest.MonkeyPatch) -> None:
    config = build(privileged=True)
    caps = config["process"]["capabilities"]
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    assert caps["bounding"] == caps["effective"] == list(NAMES[: last + 1])
    linux = config["linux"]
    assert "seccomp" not in linux and "maskedPaths" not in linux and "readonlyPaths" not in linux
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert "ro" not in mount_at(config, "/sys")["options"]
    assert "ro" not in mount_at(config, "/sys/fs/cgroup")["options"]
    # Only what the engine holds itself (this machine's root lacks CAP_SYS_RESOURCE).
    monkeypatch.setattr(spec, "_own_bounding_set", lambda: ~(1 << 24))
    assert "CAP_SYS_RESOURCE" not in build(privileged=True)["process"]["capabilities"]["bounding"]


# ---------------------------------------------------------------- process


def test_env_precedence() -> None:
    env = build(tty=True, env=["LANG=fr_FR", "NEW=1", "FROM_HOST", "UNSET"], environ={"FROM_HOST": "h"})["process"][
        "env"
    ]
    # docker's order: PATH, HOSTNAME, TERM first, replaced in place by the image's and the user's.
    assert env == ["PATH=/image/bin", f"HOSTNAME={CID[:12]}", "TERM=xterm", "LANG=fr_FR", "NEW=1", "FROM_HOST=h"]
    plain = build(img=image(cmd=["sh"]))["process"]["env"]
    assert plain == [f"PATH={spec.DEFAULT_PATH}", f"HOSTNAME={CID[:12]}"]  # no TERM without -t
    assert build(env=["HOSTNAME=mine"])["process"]["env"][1] == "HOSTNAME=mine"


def test_terminal_follows_tty() -> None:
    assert build(tty=True)["process"]["terminal"] is True
    assert build()["process"]["terminal"] is False


@pytest.mark.parametrize(
    ("opts", "args"),
    [
        ({}, ["/entry", "serve", "--port=80"]),
        ({"command": ["debug"]}, ["/entry", "debug"]),
        ({"entrypoint": ["/bin/sh"]}, ["/bin/sh"]),  # a new entrypoint resets the image's Cmd
        ({"entrypoint": ["/bin/sh"], "command": ["-c", "true"]}, ["/bin/sh", "-c", "true"]),
        ({"entrypoint": []}, ["serve", "--port=80"]),  # --entrypoint "" keeps the image's Cmd
        ({"entrypoint": [], "command": ["ls"]}, ["ls"]),
    ],
)
def test_entrypoint_and_cmd_rules(opts: dict[str, Any], args: list[str]) -> None:
    assert build(**opts)["process"]["args"] == args


def test_no_command_is_an_error() -> None:
    with pytest.raises(OptionError, match="no command specified"):
        build(img=image())
    with pytest.raises(OptionError, match="no command specified"):
        build(img=image(entrypoint=["/e"]), entrypoint=[])


def test_workdir_and_user() -> None:
    assert build()["process"]["cwd"] == "/"
    assert build(img=image(cmd=["x"], working_dir="/app"))["process"]["cwd"] == "/app"
    assert build(workdir="/srv")["process"]["cwd"] == "/srv"
    with pytest.raises(OptionError, match="-w: .*absolute"):
        build(workdir="srv")
    user = build(user=User(1000, 100, [10, 20]))["process"]["user"]
    assert user == {"uid": 1000, "gid": 100, "additionalGids": [10, 20]}


def test_defaults_docker_leaves_unset() -> None:
    process = build()["process"]
    assert "rlimits" not in process and "oomScoreAdj" not in process
    assert process["noNewPrivileges"] is False


def test_ulimits_become_rlimits() -> None:
    rlimits = build(ulimits=["nofile=1024:2048", "nproc=10", "nofile=512"])["process"]["rlimits"]
    assert rlimits == [
        {"type": "RLIMIT_NOFILE", "hard": 512, "soft": 512},
        {"type": "RLIMIT_NPROC", "hard": 10, "soft": 10},
    ]


def test_init() -> None:
    config = build(init=True, init_path="/usr/bin/tini-static")
    assert config["process"]["args"] == ["/dev/init", "--", "/entry", "serve", "--port=80"]
    assert mount_at(config, "/dev/init") == {
        "destination": "/dev/init",
        "type": "bind",
        "source": "/usr/bin/tini-static",
        "options": ["bind", "ro"],
    }
    with pytest.raises(OptionError, match="--init"):
        build(init=True)


# ---------------------------------------------------------------- mounts and root


def test_default_mounts() -> None:
    config = build()
    assert destinations(config) == [
        "/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm",
        "/etc/resolv.conf", "/etc/hostname", "/etc/hosts",
    ]  # fmt: skip
    pts = mount_at(config, "/dev/pts")
    assert pts["type"] == "devpts"
    assert {"newinstance", "ptmxmode=0666", "mode=0620", "gid=5"} <= set(pts["options"])
    shm = mount_at(config, "/dev/shm")
    assert shm["type"] == "tmpfs" and f"size={64 << 20}" in shm["options"]
    assert "ro" in mount_at(config, "/sys")["options"] and "ro" in mount_at(config, "/sys/fs/cgroup")["options"]
    assert mount_at(config, "/etc/hosts") == {
        "destination": "/etc/hosts",
        "type": "bind",
        "source": "/c/hosts",
        "options": ["rbind", "rprivate"],
    }
    assert config["root"] == {"path": "rootfs", "readonly": False}


def test_image_volumes_are_left_to_the_caller() -> None:
    config = build(img=image(cmd=["x"], volumes=["/data"]))
    assert "/data" not in destinations(config)


def test_read_only_root_makes_etc_files_read_only() -> None:
    config = build(read_only=True)
    assert config["root"]["readonly"] is True
    assert "ro" in mount_at(config, "/etc/resolv.conf")["options"]
    assert "ro" not in mount_at(config, "/dev/shm")["options"]


def test_user_mounts() -> None:
    mounts = [
        ResolvedMount("bind", "/data/sub", "/host/sub", ["ro", "Z"]),
        ResolvedMount("bind", "/data", "/var/lib/hull/volumes/v/_data", [], volume="v"),
        ResolvedMount("tmpfs", "/dev/shm", "", ["size=1g", "exec"]),
        ResolvedMount("bind", "/etc/hosts", "/my/hosts", ["rslave"]),
    ]
    config = build(mounts=mounts)
    dests = destinations(config)
    assert dests.count("/dev/shm") == 1 and dests.count("/etc/hosts") == 1  # the user's replace docker's
    assert dests.index("/data") < dests.index("/data/sub")  # parents first
    assert mount_at(config, "/data/sub")["options"] == ["rbind", "ro", "rprivate"]  # no SELinux z/Z
    assert mount_at(config, "/data")["source"] == "/var/lib/hull/volumes/v/_data"
    assert mount_at(config, "/dev/shm") == {
        "destination": "/dev/shm",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "nodev", "size=1g", "exec"],
    }
    assert mount_at(config, "/etc/hosts")["options"] == ["rbind", "rslave"]
    assert config["linux"]["rootfsPropagation"] == "rslave"


# ---------------------------------------------------------------- linux


def test_namespaces_cgroups_path_masked_paths() -> None:
    config = build()
    linux = config["linux"]
    assert [n["type"] for n in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "network"]
    assert linux["cgroupsPath"] == f"/hull/{CID}"
    assert "/proc/kcore" in linux["maskedPaths"] and "/sys/firmware" in linux["maskedPaths"]
    assert linux["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    assert config["hostname"] == CID[:12]
    assert build(hostname="web")["hostname"] == "web"


def test_cgroup_namespace_on_a_cgroup_v2_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec, "_cgroup_v2_only", lambda: True)
    assert {"type": "cgroup"} in build()["linux"]["namespaces"]


def test_host_network() -> None:
    import os

    config = build(network="host")
    assert "network" not in [n["type"] for n in config["linux"]["namespaces"]]
    assert "hostname" not in config
    assert f"HOSTNAME={os.uname().nodename}" in config["process"]["env"]
    assert build(network="host", hostname="x")["hostname"] == "x"
    with pytest.raises(OptionError, match="--network"):
        build(network="bridge")


def test_resources() -> None:
    res = build(memory=256 << 20, cpus=1.5, cpu_shares=512, pids_limit=100)["linux"]["resources"]
    assert res["memory"] == {"limit": 256 << 20, "swap": 512 << 20}  # docker: swap as large as memory
    assert res["cpu"] == {"shares": 512, "quota": 150000, "period": 100000}
    assert res["pids"] == {"limit": 100}
    assert res["devices"][0] == {"allow": False, "access": "rwm"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} in res["devices"]
    assert build(memory=64 << 20, memory_swap=-1)["linux"]["resources"]["memory"]["swap"] == -1
    assert build(memory=64 << 20, memory_swap=100 << 20)["linux"]["resources"]["memory"]["swap"] == 100 << 20
    plain = build(pids_limit=-1)["linux"]["resources"]
    assert "memory" not in plain and "cpu" not in plain and "pids" not in plain


def test_resource_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(OptionError, match="Minimum memory limit allowed is 6MB"):
        build(memory=1 << 20)
    with pytest.raises(OptionError, match="always set the Memory limit"):
        build(memory_swap=1 << 30)
    with pytest.raises(OptionError, match="larger than memory limit"):
        build(memory=1 << 30, memory_swap=1 << 29)
    with pytest.raises(OptionError, match="Range of CPUs is from 0.01 to 2.00"):
        build(cpus=3.0)
    monkeypatch.setattr(spec, "_swap_accounting", lambda: False)
    assert build(memory=64 << 20)["linux"]["resources"]["memory"] == {"limit": 64 << 20}


def test_sysctls() -> None:
    assert build(sysctls={"net.ipv4.ip_forward": "1", "kernel.shmmax": "1"})["linux"]["sysctl"] == {
        "net.ipv4.ip_forward": "1",
        "kernel.shmmax": "1",
    }
    with pytest.raises(OptionError, match="not whitelisted"):
        build(sysctls={"kernel.hostname": "x"})
    with pytest.raises(OptionError, match="cannot be used with --net=host"):
        build(sysctls={"net.core.somaxconn": "1"}, network="host")


# ---------------------------------------------------------------- security options and seccomp


def rules_for(profile: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [r for r in profile["syscalls"] if name in r["names"]]


def test_default_seccomp_profile() -> None:
    profile = build()["linux"]["seccomp"]
    runtime_seccomp.check(profile)  # the runtime accepts it
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = {
        n for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and "args" not in r for n in r["names"]
    }
    assert {"read", "execve", "openat", "getrandom", "chroot", "arch_prctl", "ptrace"} <= allowed
    assert not {"mount", "unshare", "setns", "keyctl", "kexec_load", "init_module", "reboot", "bpf"} & allowed
    (clone,) = rules_for(profile, "clone")
    assert clone["args"] == [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    assert CLONE_NAMESPACE_FLAGS == 0x7E020000
    assert rules_for(profile, "clone3") == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    assert sorted(r["args"][0]["value"] for r in rules_for(profile, "personality")) == [
        0, 8, 0x20000, 0x20008, 0xFFFFFFFF
    ]  # fmt: skip
    (socket,) = rules_for(profile, "socket")
    assert socket["args"] == [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]  # no AF_VSOCK


def test_capabilities_unlock_syscalls() -> None:
    profile = build(cap_add=["SYS_ADMIN", "SYS_TIME", "SYS_MODULE", "BPF"])["linux"]["seccomp"]
    runtime_seccomp.check(profile)
    unconditional = {n for r in profile["syscalls"] if "args" not in r and r["action"] == "SCMP_ACT_ALLOW"
                     for n in r["names"]}  # fmt: skip
    assert {"mount", "unshare", "setns", "clone", "clone3", "settimeofday", "init_module", "bpf"} <= unconditional
    assert rules_for(profile, "clone3")[0]["action"] == "SCMP_ACT_ALLOW"
    assert all("args" not in r for r in rules_for(profile, "clone"))
    no_chroot = build(cap_drop=["SYS_CHROOT"])["linux"]["seccomp"]
    assert not rules_for(no_chroot, "chroot")


def test_default_profile_on_arm64() -> None:
    profile = default_profile(set(DEFAULT_CAPABILITIES), machine="aarch64")
    assert profile["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    names = {n for r in profile["syscalls"] for n in r["names"]}
    assert "set_tls" in names and "arch_prctl" not in names and "modify_ldt" not in names


def test_security_opts(tmp_path: Path) -> None:
    assert build(security_opt=["no-new-privileges"])["process"]["noNewPrivileges"] is True
    assert build(security_opt=["no-new-privileges:true"])["process"]["noNewPrivileges"] is True
    assert build(security_opt=["no-new-privileges=false"])["process"]["noNewPrivileges"] is False
    assert "seccomp" not in build(security_opt=["seccomp=unconfined"])["linux"]
    assert "seccomp" not in build(security_opt=["seccomp:unconfined"])["linux"]
    assert "maskedPaths" not in build(security_opt=["systempaths=unconfined"])["linux"]
    build(security_opt=["apparmor=unconfined", "label=disable"])
    with pytest.raises(OptionError, match="invalid --security-opt"):
        build(security_opt=["bogus"])
    with pytest.raises(OptionError, match="opening seccomp profile"):
        build(security_opt=[f"seccomp={tmp_path / 'missing.json'}"])
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(OptionError, match="decoding seccomp profile"):
        build(security_opt=[f"seccomp={bad}"])


def test_seccomp_file_in_docker_format(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "mkdir", "action": "SCMP_ACT_ERRNO", '
        '"comment": "legacy name"}]}'
    )
    assert build(security_opt=[f"seccomp={path}"])["linux"]["seccomp"] == {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}],
    }


def test_convert_includes_excludes_and_arch_map() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["both"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_BPF"]}},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]},
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
            {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
            {"names": ["no_s390"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["s390x"]}},
            {"names": ["future"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.1"}},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        ],
    }  # fmt: skip
    out = convert(profile, {"CAP_SYS_ADMIN"}, machine="x86_64", kernel=(6, 1))
    assert out["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert out["defaultErrnoRet"] == 1
    assert [r["names"][0] for r in out["syscalls"]] == ["read", "mount", "arch_prctl", "no_s390", "ptrace", "clone3"]
    assert out["syscalls"][-1] == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    arm = convert(profile, set(), machine="aarch64", kernel=(4, 4))
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert [r["names"][0] for r in arm["syscalls"]] == ["read", "clone", "set_tls", "no_s390", "clone3"]
    assert arm["syscalls"][1]["args"] == [{"index": 0, "value": 1, "op": "SCMP_CMP_MASKED_EQ"}]


def test_convert_errors() -> None:
    with pytest.raises(OptionError, match="use either 'name' or 'names'"):
        convert({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "X"}]}, set())
    with pytest.raises(OptionError, match="use either 'architectures' or 'archMap'"):
        convert({"defaultAction": "A", "architectures": ["SCMP_ARCH_X86"], "archMap": [{"architecture": "x"}]}, set())
    with pytest.raises(OptionError, match="defaultAction is required"):
        convert({"syscalls": []}, set())


# ---------------------------------------------------------------- /etc files


def test_hosts_content() -> None:
    text = etcfiles.hosts_content("abc", ["db:10.0.0.2", "v6:fe80::1"], "none")
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert lines[1] == "::1\tlocalhost ip6-localhost ip6-loopback"
    assert lines[-2:] == ["10.0.0.2\tdb", "fe80::1\tv6"]
    host = etcfiles.hosts_content("abc", ["db:10.0.0.2"], "host", host_hosts="127.0.0.1 localhost\n10.1.1.1 vm")
    assert host == "127.0.0.1 localhost\n10.1.1.1 vm\n10.0.0.2\tdb\n"
    with pytest.raises(OptionError, match="--add-host"):
        etcfiles.hosts_content("abc", ["db:999.0.0.1"], "none")
    with pytest.raises(OptionError, match="--add-host"):
        etcfiles.hosts_content("abc", ["nocolon"], "none")
    assert etcfiles.hostname_content("abc") == "abc\n"


def test_resolv_conf_content() -> None:
    host = "# generated\nsearch example.com\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n"
    assert etcfiles.resolv_conf_content([], "none", host_resolv=host) == (
        "# generated\nsearch example.com\noptions edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    )
    mixed = "nameserver 127.0.0.1\nnameserver 10.0.0.53\n"
    assert etcfiles.resolv_conf_content([], "none", host_resolv=mixed) == "nameserver 10.0.0.53\n"
    assert etcfiles.resolv_conf_content([], "host", host_resolv=mixed) == mixed
    assert etcfiles.resolv_conf_content(["1.1.1.1", "9.9.9.9"], "none", host_resolv=host) == (
        "# generated\nsearch example.com\noptions edns0\nnameserver 1.1.1.1\nnameserver 9.9.9.9\n"
    )
    with pytest.raises(OptionError, match="--dns"):
        etcfiles.resolv_conf_content(["dns.example"], "none", host_resolv=host)
