"""linux.seccomp (config-linux.md "Seccomp"), side by side with runc 1.1.

Each profile runs the same bundle under runc and hull-runtime (``run`` in the
foreground) and compares what the container printed and its exit status. A
container writes to /dev/shm (the root is read-only in ``runc spec``'s config,
which would fail mkdir with EROFS before seccomp is asked).

Known differences, by design: runc 1.1.5 refuses every ``flags`` entry
("seccomp flags are not yet supported by runc") and ignores an errnoRet on an
action without an errno, where config-linux.md asks for support and for an
error; the container process state sent to listenerPath says "creating" under
runc (its filter is loaded during create) and "created" under hull-runtime
(its filter is loaded by ``start``'s signal, before the program runs).
"""

from __future__ import annotations

import array
import ctypes
import fcntl
import json
import os
import select
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime
from tests.integration._support import assert_nothing_left, wait_for_status

Edit = Callable[[dict[str, Any]], None]
EPERM, EACCES, ENOSYS = 1, 13, 38


@pytest.fixture
def both(runc: Runtime, runtime: Runtime) -> dict[str, Runtime]:
    return {"runc": runc, "hull-runtime": runtime}


@pytest.fixture
def cid() -> str:
    return "sc-" + uuid.uuid4().hex[:10]


def bundle_with(make_bundle: Callable[..., Path], script: str, profile: dict[str, Any], nnp: bool = True) -> Path:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["seccomp"] = profile
        config["process"]["noNewPrivileges"] = nnp

    return make_bundle(["sh", "-c", script], edit)


def run_both(both: dict[str, Runtime], bundle: Path, cid: str) -> dict[str, subprocess.CompletedProcess[str]]:
    return {name: rt("run", "--bundle", str(bundle), cid, check=False, timeout=60) for name, rt in both.items()}


def assert_same_as_runc(results: dict[str, subprocess.CompletedProcess[str]]) -> subprocess.CompletedProcess[str]:
    runc, hull = results["runc"], results["hull-runtime"]
    assert (hull.returncode, hull.stdout) == (runc.returncode, runc.stdout), (
        f"runc: exit {runc.returncode} {runc.stdout!r} {runc.stderr!r}\n"
        f"hull-runtime: exit {hull.returncode} {hull.stdout!r} {hull.stderr!r}"
    )
    return hull


MKDIR_REPORT = "mkdir /dev/shm/d 2>/dev/null; echo mkdir=$?; test -d /dev/shm/d && echo made || echo absent"


# ---------------------------------------------------------------- default allow, deny list


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_errno_deny_list(both: dict[str, Runtime], make_bundle, cid: str, nnp: bool) -> None:
    # mkdir/mkdirat fail with the rule's errnoRet, rmdir with the default EPERM.
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": EACCES},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"},
        ],
    }
    script = "mkdir /dev/shm/d; echo mkdir=$?; rmdir /dev/shm; echo rmdir=$?; echo done"
    hull = assert_same_as_runc(run_both(both, bundle_with(make_bundle, script, profile, nnp), cid))
    assert "mkdir=1\nrmdir=1\ndone\n" == hull.stdout
    assert "Permission denied" in hull.stderr and "Operation not permitted" in hull.stderr


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"])
def test_kill(both: dict[str, Runtime], make_bundle, cid: str, action: str) -> None:
    # The shell's child dies of SIGSYS (128+31); the container's own exit status then follows it.
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}]}
    hull = assert_same_as_runc(run_both(both, bundle_with(make_bundle, "mkdir /dev/shm/d; exit $?", profile), cid))
    assert hull.returncode == 128 + 31


def test_argument_filter(both: dict[str, Runtime], make_bundle, cid: str) -> None:
    # personality(PER_LINUX32) is refused, personality(PER_LINUX) is not; args on
    # the same index (two values for arg 0) are ORed, as runc adds them as separate rules.
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "args": [
                    {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": 0x0400000, "op": "SCMP_CMP_EQ"},
                ],
            },
            {
                # kill(1, 0) only: conditions on different arguments are ANDed.
                "names": ["kill"],
                "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}],
            },
        ],
    }
    script = (
        "linux32 true; echo linux32=$?; linux64 true; echo linux64=$?; "
        "kill -0 1 2>/dev/null; echo k0=$?; kill -CONT 1; echo kcont=$?; sleep 1 & kill -0 $!; echo kother=$?"
    )
    hull = assert_same_as_runc(run_both(both, bundle_with(make_bundle, script, profile), cid))
    assert hull.stdout == "linux32=1\nlinux64=0\nk0=1\nkcont=0\nkother=0\n"


def test_log_allows_and_audits(both: dict[str, Runtime], make_bundle, cid: str) -> None:
    # A marker in the kernel log: only records after it count, whatever the ring buffer dropped before.
    marker = f"hull-seccomp-log-test-{os.urandom(6).hex()}"
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write(marker + "\n")

    def logged() -> int:
        # kauditd prints SECCOMP records (type=1326) with the action as code= when auditd is absent.
        text = subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout
        after = text[text.rfind(marker) :] if marker in text else ""
        return sum(
            "type=1326" in line and "code=0x7ffc0000" in line and 'comm="mkdir"' in line for line in after.splitlines()
        )

    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"}],
    }
    hull = assert_same_as_runc(run_both(both, bundle_with(make_bundle, MKDIR_REPORT, profile), cid))
    assert hull.stdout == "mkdir=0\nmade\n"
    # kauditd writes its records asynchronously.
    deadline = time.monotonic() + 5
    while logged() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logged() >= 2, "one audit record per runtime's logged mkdir"


def test_unknown_syscall_names_are_ignored(both: dict[str, Runtime], make_bundle, cid: str) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["hull_no_such_syscall", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }
    hull = assert_same_as_runc(run_both(both, bundle_with(make_bundle, MKDIR_REPORT, profile), cid))
    assert hull.stdout == "mkdir=1\nabsent\n"


def test_rule_with_the_default_action_is_skipped(both: dict[str, Runtime], make_bundle, cid: str) -> None:
    # libseccomp refuses a rule whose action is the default; runc skips it, so must we.
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
        ],
    }
    hull = assert_same_as_runc(run_both(both, bundle_with(make_bundle, MKDIR_REPORT, profile), cid))
    assert hull.stdout == "mkdir=1\nabsent\n"


# ---------------------------------------------------------------- default deny, allow list


# Refused as container engines' default profiles refuse them (kernel, mounts,
# namespaces, tracing, keyrings, clocks), plus mkdir to show the default action.
DENIED = {
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "clone3", "create_module", "delete_module",
    "finit_module", "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mkdir", "mkdirat", "mount",
    "mount_setattr", "move_mount", "move_pages", "nfsservctl", "open_by_handle_at", "open_tree",
    "perf_event_open", "personality", "pivot_root", "process_vm_readv", "process_vm_writev", "ptrace",
    "query_module", "quotactl", "reboot", "request_key", "set_mempolicy", "setns", "settimeofday", "swapoff",
    "swapon", "sysfs", "_sysctl", "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vm86", "vm86old",
    "clone", "fsopen", "fsconfig", "fsmount", "fspick",
}  # fmt: skip
CLONE_NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET


def syscall_names() -> list[str]:
    """Every syscall name of the native architecture that libseccomp knows."""
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    native = lib.seccomp_arch_native()
    names = []
    for nr in range(0, 1024):
        ptr = lib.seccomp_syscall_resolve_num_arch(ctypes.c_uint32(native), nr)
        if ptr:
            names.append(ctypes.string_at(ptr).decode())
            ctypes.CDLL(None).free(ctypes.c_void_p(ptr))
    return names


def default_deny_profile() -> dict[str, Any]:
    allowed = sorted(set(syscall_names()) - DENIED)
    assert len(allowed) > 300
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": allowed, "action": "SCMP_ACT_ALLOW"},
            # clone without namespace flags only (a MASKED_EQ on argument 0).
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
            },
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}],
            },
        ],
    }


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_default_deny_allow_list(both: dict[str, Runtime], make_bundle, cid: str, nnp: bool) -> None:
    script = (
        "echo start; ls / >/dev/null && echo ls=0; cat /proc/self/status | grep -c Seccomp; "
        "grep '^Seccomp:' /proc/self/status; " + MKDIR_REPORT + "; unshare -n true 2>/dev/null; echo unshare=$?; "
        "linux32 true 2>/dev/null; echo linux32=$?; linux64 true; echo linux64=$?; (echo in-subshell); echo end"
    )
    hull = assert_same_as_runc(run_both(both, bundle_with(make_bundle, script, default_deny_profile(), nnp), cid))
    assert "Seccomp:\t2\n" in hull.stdout
    assert "mkdir=1\nabsent\nunshare=1\nlinux32=1\nlinux64=0\nin-subshell\nend\n" in hull.stdout


# ---------------------------------------------------------------- flags (runc 1.1.5 refuses all of them)


def test_flags_are_applied(runtime: Runtime, make_bundle, cid: str) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }
    proc = runtime("run", "--bundle", str(bundle_with(make_bundle, MKDIR_REPORT, profile)), cid, check=False)
    assert (proc.returncode, proc.stdout) == (0, "mkdir=1\nabsent\n"), proc.stderr


# ---------------------------------------------------------------- invalid profiles


@pytest.mark.parametrize(
    ("profile", "words"),
    [
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
                    {"names": ["mkdir"], "action": "SCMP_ACT_FOO"},
                ],
            },
            'linux.seccomp.syscalls[1].action: unknown action "SCMP_ACT_FOO"',
        ),
        ({"defaultAction": "SCMP_ACT_NOPE"}, 'linux.seccomp.defaultAction: unknown action "SCMP_ACT_NOPE"'),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]},
            'linux.seccomp.architectures[0]: unknown architecture "SCMP_ARCH_VAX"',
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["mkdir"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}],
                    }
                ],
            },
            'linux.seccomp.syscalls[0].args[0].op: unknown operator "SCMP_CMP_LIKE"',
        ),
    ],
    ids=["action", "defaultAction", "arch", "op"],
)
def test_invalid_profile_is_one_line_and_leaves_nothing(
    both: dict[str, Runtime], make_bundle, cid: str, profile: dict[str, Any], words: str
) -> None:
    bundle = bundle_with(make_bundle, "true", profile)
    results = {name: rt("create", "--bundle", str(bundle), cid, check=False) for name, rt in both.items()}
    assert results["runc"].returncode != 0, "runc refuses it too"
    hull = results["hull-runtime"]
    assert hull.returncode != 0
    lines = hull.stderr.strip().splitlines()
    # The logrus-style line quotes its msg, escaping the inner quotes.
    assert len(lines) == 1 and words.replace('"', '\\"') in lines[0], hull.stderr
    assert_nothing_left(both["hull-runtime"], bundle, cid)


# ---------------------------------------------------------------- SCMP_ACT_NOTIFY and listenerPath

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif), 80 bytes
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp), 24 bytes


def _complete(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


class Agent:
    """A seccomp agent: takes one container process state and its fd, then answers every
    notification "success, return 0" without doing the syscall."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.state: dict[str, Any] = {}
        self.fd_kind = ""
        self.fds_received = 0
        self.answered: list[int] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
            with conn:
                fds = array.array("i")
                msg, anc, _, _ = conn.recvmsg(1 << 20, socket.CMSG_SPACE(4 * 4))
                for level, kind, data in anc:
                    if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                        fds.frombytes(data[: len(data) - len(data) % 4])
                # The spec allows several sendmsg calls; runc 1.1.5 does not close its
                # connection (a leaked dup), so read until the document is whole, not to EOF.
                while not _complete(msg) and (chunk := conn.recv(1 << 20)):
                    msg += chunk
            self.state = json.loads(msg)
            self.fds_received = len(fds)
            fd = fds[0]
            self.fd_kind = os.readlink(f"/proc/self/fd/{fd}")
            self._answer(fd)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            self.error = err

    def _answer(self, fd: int) -> None:
        try:
            while True:
                ready, _, _ = select.select([fd], [], [], 30)
                if not ready:
                    return
                req = bytearray(80)
                try:
                    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, req)
                except OSError:
                    return  # every task of the filter is gone
                notif_id, _pid, _flags, nr = struct.unpack_from("=QIIi", req)
                self.answered.append(nr)
                fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, bytearray(struct.pack("=QqiI", notif_id, 0, 0, 0)))
        finally:
            os.close(fd)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_notify_sends_state_and_fd_to_listener(
    both: dict[str, Runtime], make_bundle, cid: str, tmp_path: Path, nnp: bool
) -> None:
    # The agent answers mkdir "done" without creating anything: the container sees
    # mkdir succeed and the directory absent, which only the agent can cause.
    seen = {}
    for name, rt in both.items():
        path = tmp_path / f"agent-{name}.sock"
        agent = Agent(path)
        profile = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": str(path),
            "listenerMetadata": "hull-test-metadata",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
        }
        bundle = bundle_with(make_bundle, MKDIR_REPORT, profile, nnp)
        proc = rt("run", "--bundle", str(bundle), cid, check=False, timeout=60)
        agent.thread.join(10)
        agent.close()
        assert agent.error is None, f"{name}: agent failed: {agent.error!r}"
        assert (proc.returncode, proc.stdout) == (0, "mkdir=0\nabsent\n"), f"{name}: {proc.stderr!r}"
        seen[name] = agent
    for name, agent in seen.items():
        doc = agent.state
        assert agent.fd_kind == "anon_inode:seccomp notify", name
        assert agent.fds_received == 1 and doc["fds"] == ["seccompFd"], name
        assert doc["metadata"] == "hull-test-metadata", name
        assert doc["pid"] > 1 and doc["state"]["pid"] == doc["pid"], name
        assert doc["state"]["id"] == cid and doc["state"]["bundle"].startswith(str(tmp_path)), name
        assert doc["state"]["status"] == {"runc": "creating", "hull-runtime": "created"}[name]
        assert doc["ociVersion"] and doc["state"]["ociVersion"], name
        assert agent.answered, f"{name}: the agent saw no notification"


def test_listener_gone_fails_start_and_the_container_does_not_run(
    runtime: Runtime, make_bundle, cid: str, tmp_path: Path
) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": str(tmp_path / "nobody-listens.sock"),
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
    }
    bundle = bundle_with(make_bundle, "sleep 30", profile)
    runtime("create", "--bundle", str(bundle), cid)
    proc = runtime("start", cid, check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "seccomp agent" in lines[0] and "nobody-listens.sock" in lines[0], proc.stderr
    # runtime.md "Errors": the program must not go on without its agent.
    wait_for_status(runtime, cid, "stopped")
    runtime("delete", "--force", cid)
    assert_nothing_left(runtime, bundle, cid)
