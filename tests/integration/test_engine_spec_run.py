"""engine.spec's config.json run for real, under hull-runtime and runc side by side.

Each test builds the document ``hull run`` would hand the runtime
(``build_spec`` on a busybox rootfs, with the engine's /etc files), runs it in
the foreground under both runtimes and checks what a user of ``docker run``
would: ordinary commands work under the default seccomp profile and
capabilities, what docker denies is denied, and the flags show inside.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hull.engine import etcfiles
from hull.engine.options import ResolvedMount, RunOptions
from hull.engine.spec import ContainerFiles, build_spec
from hull.image.bundle import User
from hull.oci.image import ExecConfig, ImageConfig, RootFS
from tests.conftest import Runtime

TINI = "/usr/bin/tini-static"
IMAGE = ImageConfig("amd64", "linux", RootFS([]), config=ExecConfig(env=["PATH=/bin:/usr/bin"], cmd=["sh"]))
ROOT = User(0, 0, [])

Run = Callable[..., "tuple[int, str]"]


@pytest.fixture(params=["hull-runtime", "runc"])
def rt(request: pytest.FixtureRequest, runtime: Runtime, runc: Runtime) -> Runtime:
    return runtime if request.param == "hull-runtime" else runc


@pytest.fixture
def run(rt: Runtime, tmp_path: Path, busybox_rootfs: Path) -> Iterator[Run]:
    """Build the spec for ``opts`` (the command in ``opts.command``) and run it; (exit status, stdout+stderr)."""
    counter = iter(range(100))

    def go(opts: RunOptions, user: User = ROOT, mounts: list[ResolvedMount] | None = None) -> tuple[int, str]:
        n = next(counter)
        cid = f"spec-{uuid.uuid4().hex[:12]}"
        bundle = tmp_path / f"bundle{n}"
        shutil.copytree(busybox_rootfs, bundle / "rootfs", symlinks=True)
        files = ContainerFiles(str(bundle / "hosts"), str(bundle / "hostname"), str(bundle / "resolv.conf"))
        (bundle / "hosts").write_text(etcfiles.hosts_content(cid[:12], opts.add_hosts, opts.network))
        (bundle / "hostname").write_text(etcfiles.hostname_content(cid[:12]))
        (bundle / "resolv.conf").write_text(etcfiles.resolv_conf_content(opts.dns, opts.network))
        spec = build_spec(opts, IMAGE, user, cid, files, mounts or [], TINI if opts.init else "")
        (bundle / "config.json").write_text(json.dumps(spec))
        proc = rt("run", "--bundle", str(bundle), cid, check=False, timeout=60)
        return proc.returncode, proc.stdout + proc.stderr

    yield go


def sh(script: str, **kw: Any) -> RunOptions:
    return RunOptions(image="busybox", command=["sh", "-c", script], **kw)


def test_ordinary_commands_work_under_the_default_profile(run: Run) -> None:
    script = (
        "ls / >/dev/null && ps >/dev/null && id && date >/dev/null && hostname && "
        "wget --help 2>&1 | grep Usage; cat /etc/hosts /etc/resolv.conf; echo $HOSTNAME; "
        "mkdir /tmp/d && echo x > /tmp/d/f && cat /tmp/d/f; sleep 0.1 & wait $!; echo done"
    )
    code, out = run(sh(script))
    assert code == 0, out
    assert "uid=0(root) gid=0(root)" in out
    assert "Usage: wget" in out
    assert "127.0.0.1\tlocalhost" in out and "nameserver" in out
    assert out.rstrip().endswith("done")


def test_default_profile_and_capabilities_deny_what_docker_denies(run: Run) -> None:
    code, out = run(sh("unshare -U true; echo unshare=$?; mount -t tmpfs none /tmp; echo mount=$?; "
                       "wc -c < /proc/timer_list; echo 1 > /proc/sys/kernel/ns_last_pid; echo sysctl=$?; "
                       "grep CapEff /proc/self/status"))  # fmt: skip
    assert code == 0, out
    assert "unshare=1" in out and "Operation not permitted" in out
    assert "mount=255" in out or "mount=1" in out
    assert "permission denied" in out  # busybox mount's words for EPERM
    lines = out.splitlines()
    assert "0" in lines, f"/proc/timer_list not masked: {out}"
    assert "sysctl=1" in out and "Read-only file system" in out
    assert "CapEff:\t00000000a80425fb" in out  # docker's 14 default capabilities


def test_user_flag_runs_as_that_user_without_effective_caps(run: Run) -> None:
    code, out = run(sh("id; grep CapEff /proc/self/status", user="65534:65534"), user=User(65534, 65534, []))
    assert code == 0, out
    assert "uid=65534(nobody) gid=65534(nogroup)" in out
    assert "CapEff:\t0000000000000000" in out


def test_cap_drop_all_makes_chown_fail(run: Run) -> None:
    code, out = run(sh("chown 65534 /tmp && echo chowned"))
    assert code == 0 and "chowned" in out, out
    code, out = run(sh("chown 65534 /tmp && echo chowned", cap_drop=["ALL"]))
    assert code != 0, out
    assert "Operation not permitted" in out


def test_memory_limit_shows_in_the_memory_cgroup(run: Run) -> None:
    code, out = run(sh("cat /sys/fs/cgroup/memory/memory.limit_in_bytes", memory=64 << 20))
    assert code == 0, out
    assert out.split() == [str(64 << 20)]


def test_init_runs_tini_as_pid_1(run: Run) -> None:
    code, out = run(sh("echo pid=$$; grep PPid /proc/$$/status; tr '\\0' ' ' < /proc/1/cmdline", init=True))
    assert code == 0, out
    # runc's init leaves a few PIDs used in the namespace (hull's child is PID 2): the parent is what counts.
    assert "pid=1\n" not in out
    assert "PPid:\t1" in out
    assert "/dev/init -- sh -c" in out


def test_read_only_root(run: Run) -> None:
    code, out = run(sh("touch /x; echo root=$?; touch /dev/shm/x; echo shm=$?; echo h > /etc/hosts; echo hosts=$?",
                       read_only=True))  # fmt: skip
    assert code == 0, out
    assert "root=1" in out and "Read-only file system" in out
    assert "shm=0" in out
    assert "hosts=1" in out  # docker binds the /etc files read-only too


def test_seccomp_profile_file_in_docker_format(run: Run, tmp_path: Path) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            # Excluded for a container holding CAP_CHOWN (the default): chown keeps working.
            {"names": ["fchownat", "chown", "lchown"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_CHOWN"]}},
        ],
    }  # fmt: skip
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    code, out = run(sh("mkdir /tmp/d; echo mkdir=$?; chown 65534 /tmp; echo chown=$?",
                       security_opt=[f"seccomp={path}"]))  # fmt: skip
    assert code == 0, out
    assert "mkdir=1" in out and "Operation not permitted" in out
    assert "chown=0" in out


def test_privileged_may_mount(run: Run) -> None:
    code, out = run(sh("mount -t tmpfs none /tmp && echo mounted; wc -c < /proc/timer_list", privileged=True))
    assert code == 0, out
    assert "mounted" in out
    assert out.splitlines()[-1].strip() != "0"  # nothing masked


def test_bind_and_tmpfs_mounts(run: Run, tmp_path: Path) -> None:
    host = tmp_path / "data"
    host.mkdir()
    (host / "f").write_text("from the host\n")
    mounts = [ResolvedMount("bind", "/data", str(host), ["ro"]), ResolvedMount("tmpfs", "/scratch", "", ["size=1m"])]
    code, out = run(sh("cat /data/f; touch /data/g; echo bind=$?; touch /scratch/x && echo tmpfs-ok; "
                       "grep -E ' /(data|scratch) ' /proc/self/mounts"), mounts=mounts)  # fmt: skip
    assert code == 0, out
    assert "from the host" in out
    assert "bind=1" in out
    assert "tmpfs-ok" in out
    scratch = next(line for line in out.splitlines() if " /scratch " in line)
    assert "noexec" in scratch and "nosuid" in scratch and "nodev" in scratch


def test_host_files_are_left_alone(run: Run) -> None:
    """The container's writes to its /etc files land in the engine's copies, never the host's."""
    before = Path("/etc/hosts").read_text()
    code, out = run(sh("echo 10.0.0.1 extra >> /etc/hosts && cat /etc/hosts"))
    assert code == 0 and "extra" in out, out
    assert Path("/etc/hosts").read_text() == before
    assert os.path.exists("/etc/hosts")
