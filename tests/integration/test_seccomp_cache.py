"""The compiled seccomp filter kept under ``--root`` (hull.runtime.seccomp_cache).

A container whose filter comes from the cache must be filtered exactly as one
whose filter libseccomp built and loaded: each profile runs twice (the first
run compiles and stores the program, the second installs the stored bytes),
the container's behaviour is checked both times, and the filter the kernel
holds for the container's process (ptrace PTRACE_SECCOMP_GET_FILTER) is
compared byte for byte with the one libseccomp's own seccomp_load installs
in a process here, as hull-runtime did before the cache.
"""

from __future__ import annotations

import ctypes
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hull.engine.seccomp_default import default_profile
from hull.engine.spec import DEFAULT_CAPABILITIES
from hull.runtime.seccomp_cache import CACHE_DIR, FORMAT
from tests.conftest import Runtime
from tests.integration import engine_support
from tests.integration.engine_support import BUSYBOX, Engine

engine = engine_support.engine  # the fixture

CLONE_NEWUSER = 0x10000000
EACCES, ENOSYS = 13, 38
SIGSYS_STATUS = 128 + 31

# The policy of ``hull run`` with docker's default capabilities.
DEFAULT = default_profile(list(DEFAULT_CAPABILITIES))
# Rule errnos, the default EPERM of SCMP_ACT_ERRNO, a masked compare on unshare's
# flags (only CLONE_NEWUSER is refused), three architectures.
ERRNOS = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": EACCES},
        {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"},
        {
            "names": ["unshare"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": ENOSYS,
            "args": [{"index": 0, "value": CLONE_NEWUSER, "valueTwo": CLONE_NEWUSER, "op": "SCMP_CMP_MASKED_EQ"}],
        },
    ],
}
KILL = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["rmdir"], "action": "SCMP_ACT_KILL"},
    ],
}
# SCMP_ACT_LOG allows; the LOG and SPEC_ALLOW flags; two extra architectures.
LOG = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
    "syscalls": [{"names": ["mkdir", "mkdirat", "unshare"], "action": "SCMP_ACT_LOG"}],
}
# The default policy with TSYNC, and ENOSYS for what it does not list.
TSYNC_ENOSYS = {**DEFAULT, "defaultErrnoRet": ENOSYS, "flags": ["SECCOMP_FILTER_FLAG_TSYNC"]}

SCRIPT = (
    "echo hello; unshare -U true; echo unshare=$?; mount -t tmpfs none /tmp; echo mount=$?; "
    "(mkdir /dev/shm/d); echo mkdir=$?; (rmdir /dev/shm); echo rmdir=$?; echo done"
)
# Per profile: what the script prints and what its stderr says.
EXPECTED: dict[str, tuple[dict[str, Any], str, list[str]]] = {
    "default": (DEFAULT, "hello\nunshare=1\nmount=1\nmkdir=0\nrmdir=1\ndone\n", ["Operation not permitted"]),
    "errnos": (
        ERRNOS,
        "hello\nunshare=1\nmount=1\nmkdir=1\nrmdir=1\ndone\n",
        ["unshare(0x10000000): Function not implemented", "Permission denied", "Operation not permitted"],
    ),
    "kill": (KILL, f"hello\nunshare=0\nmount=1\nmkdir={SIGSYS_STATUS}\nrmdir={SIGSYS_STATUS}\ndone\n", []),
    "log": (LOG, "hello\nunshare=0\nmount=1\nmkdir=0\nrmdir=1\ndone\n", []),
    "tsync-enosys": (
        TSYNC_ENOSYS,
        "hello\nunshare=1\nmount=255\nmkdir=0\nrmdir=1\ndone\n",
        ["unshare(0x10000000): Function not implemented", "mounting none on /tmp failed: Function not implemented"],
    ),
}


@pytest.fixture
def cid() -> str:
    return "scc-" + uuid.uuid4().hex[:10]


def bundle_with(make_bundle: Callable[..., Path], args: list[str], profile: dict[str, Any], nnp: bool = True) -> Path:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["seccomp"] = profile
        config["process"]["noNewPrivileges"] = nnp

    return make_bundle(args, edit)


def cache_entries(runtime: Runtime) -> list[Path]:
    return sorted((runtime.root / CACHE_DIR).iterdir())


def program_of(entry: Path) -> bytes:
    data = entry.read_bytes()
    assert data.startswith(FORMAT + entry.name.encode() + b"\n")
    return data.split(b"\n", 3)[3]


# ---------------------------------------------------------------- filters as the kernel holds them

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207
PTRACE_SECCOMP_GET_FILTER, PTRACE_SECCOMP_GET_METADATA = 0x420C, 0x420D
SECCOMP_FILTER_FLAG_LOG = 2
WALL = 0x40000000


def _ptrace(request: int, pid: int, addr: int | None = None, data: Any = None) -> int:
    result = int(_libc.ptrace(request, pid, addr, data))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


Filter = tuple[bytes, int]  # the program and the flags the kernel keeps


Loader = Callable[[dict[str, Any]], tuple[Filter, dict[str, str]]]


class _Metadata(ctypes.Structure):
    # struct seccomp_metadata: the kernel keeps the LOG flag of a filter.
    _fields_ = [("filter_off", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


def installed_filter(pid: int) -> Filter:
    """The seccomp filter ``pid`` runs under (a container's process has just one) and its flags the kernel keeps."""
    assert status_of(pid)["Seccomp_filters"] == "1"
    _ptrace(PTRACE_SEIZE, pid)
    try:
        _ptrace(PTRACE_INTERRUPT, pid)
        os.waitpid(pid, WALL)
        count = _ptrace(PTRACE_SECCOMP_GET_FILTER, pid, 0, None)
        buf = ctypes.create_string_buffer(count * 8)
        _ptrace(PTRACE_SECCOMP_GET_FILTER, pid, 0, buf)
        metadata = _Metadata(0, 0)
        _ptrace(PTRACE_SECCOMP_GET_METADATA, pid, ctypes.sizeof(metadata), ctypes.addressof(metadata))
        return buf.raw, int(metadata.flags)
    finally:
        _libc.ptrace(PTRACE_DETACH, pid, None, None)


def status_of(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


SECCOMP_STATUS = ("Seccomp", "Seccomp_filters", "Speculation_Store_Bypass")


@pytest.fixture
def libseccomp_loaded() -> Iterator[Loader]:
    """The filter (and /proc status lines) of a process that loaded the profile through seccomp_load."""
    children: list[int] = []

    def load(profile: dict[str, Any]) -> tuple[Filter, dict[str, str]]:
        from hull.runtime import libseccomp, seccomp

        pause = ctypes.CDLL(None).pause
        pid = os.fork()
        if pid == 0:
            try:
                ctx = seccomp.build(profile, libseccomp)
                libseccomp.load(ctx)
                while True:  # no Python after the load: it may be refused anything but this
                    pause()
            finally:
                os._exit(1)
        children.append(pid)
        deadline = time.monotonic() + 10
        while status_of(pid).get("Seccomp") != "2":
            assert time.monotonic() < deadline, "the reference process did not load its filter"
            time.sleep(0.01)
        status = status_of(pid)
        return installed_filter(pid), {k: status[k] for k in SECCOMP_STATUS}

    yield load
    for pid in children:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def container_filter(runtime: Runtime, bundle: Path, cid: str) -> tuple[Filter, dict[str, str]]:
    runtime("run", "-d", "--bundle", str(bundle), cid)
    pid = int(json.loads(runtime("state", cid).stdout)["pid"])
    status = status_of(pid)
    return installed_filter(pid), {k: status[k] for k in SECCOMP_STATUS}


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("name", list(EXPECTED))
def test_cached_filter_behaves_as_built(
    runtime: Runtime, make_bundle: Callable[..., Path], cid: str, name: str, libseccomp_loaded: Loader
) -> None:
    profile, stdout, messages = EXPECTED[name]
    bundle = bundle_with(make_bundle, ["sh", "-c", SCRIPT], profile)
    inodes = []
    for attempt in ("miss", "hit"):
        proc = runtime("run", "--bundle", str(bundle), f"{cid}-{attempt}", check=False, timeout=60)
        assert (proc.returncode, proc.stdout) == (0, stdout), f"{attempt}: {proc.stderr!r}"
        for message in messages:
            assert message in proc.stderr, f"{attempt}: {proc.stderr!r}"
        (entry,) = cache_entries(runtime)
        inodes.append(entry.stat().st_ino)
    assert inodes[0] == inodes[1], "the second run rebuilt the entry instead of using it"

    # What the kernel holds for the container (from the cache) is what seccomp_load installs.
    sleeper = bundle_with(make_bundle, ["sleep", "60"], profile)
    theirs, their_status = libseccomp_loaded(profile)
    ours, our_status = container_filter(runtime, sleeper, f"{cid}-sleep")
    assert ours == theirs
    assert ours[0] == program_of(entry)
    assert ours[1] == (SECCOMP_FILTER_FLAG_LOG if "SECCOMP_FILTER_FLAG_LOG" in profile.get("flags", ()) else 0)
    assert our_status == their_status


@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
def test_default_profile_with_and_without_no_new_privileges(
    runtime: Runtime, make_bundle: Callable[..., Path], cid: str, nnp: bool, libseccomp_loaded: Loader
) -> None:
    bundle = bundle_with(make_bundle, ["sh", "-c", SCRIPT], DEFAULT, nnp)
    for attempt in ("miss", "hit"):
        proc = runtime("run", "--bundle", str(bundle), f"{cid}-{attempt}", check=False, timeout=60)
        assert (proc.returncode, proc.stdout) == (0, EXPECTED["default"][1]), proc.stderr
    ours, _ = container_filter(runtime, bundle_with(make_bundle, ["sleep", "60"], DEFAULT, nnp), f"{cid}-sleep")
    assert ours == libseccomp_loaded(DEFAULT)[0]
    pid = int(json.loads(runtime("state", f"{cid}-sleep").stdout)["pid"])
    assert status_of(pid)["NoNewPrivs"] == ("1" if nnp else "0")


@pytest.mark.parametrize("damage", ["flip-program", "flip-digest", "truncate", "empty", "append"])
def test_damaged_entry_is_rebuilt(
    runtime: Runtime, make_bundle: Callable[..., Path], cid: str, damage: str, libseccomp_loaded: Loader
) -> None:
    bundle = bundle_with(make_bundle, ["sh", "-c", SCRIPT], ERRNOS)
    runtime("run", "--bundle", str(bundle), f"{cid}-1", timeout=60)
    (entry,) = cache_entries(runtime)
    good = entry.read_bytes()
    data = bytearray(good)
    if damage == "flip-program":
        data[-5] ^= 0x01  # inside the last instruction's k
    elif damage == "flip-digest":
        header = len(FORMAT) + 65
        data[header] = ord("0") if data[header] != ord("0") else ord("1")
    elif damage == "truncate":
        del data[-8:]
    elif damage == "empty":
        del data[:]
    else:
        data += b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # one more instruction: return ALLOW
    entry.write_bytes(bytes(data))

    proc = runtime("run", "--bundle", str(bundle), f"{cid}-2", check=False, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, EXPECTED["errnos"][1]), proc.stderr
    assert "unshare(0x10000000): Function not implemented" in proc.stderr
    (rebuilt,) = cache_entries(runtime)
    assert rebuilt.read_bytes() == good
    ours, _ = container_filter(runtime, bundle_with(make_bundle, ["sleep", "60"], ERRNOS), f"{cid}-sleep")
    assert ours == libseccomp_loaded(ERRNOS)[0]


def test_cache_is_out_of_the_containers_reach(runtime: Runtime, make_bundle: Callable[..., Path], cid: str) -> None:
    bundle = bundle_with(make_bundle, ["true"], DEFAULT)
    runtime("run", "--bundle", str(bundle), f"{cid}-1", timeout=60)
    cache = runtime.root / CACHE_DIR
    (entry,) = cache_entries(runtime)
    st = cache.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o700)
    assert (entry.stat().st_uid, entry.stat().st_mode & 0o777) == (0, 0o600)
    before = entry.read_bytes()
    script = (
        f"ls {cache} 2>&1; echo x > {cache}/{entry.name} 2>&1; echo write=$?; "
        "find / -path /proc -prune -o -path /sys -prune -o -name '*seccomp-cache*' -print"
    )
    # Writable /dev/shm and root: nothing but the path's absence may stop the write.
    proc = runtime(
        "run", "--bundle", str(bundle_with(make_bundle, ["sh", "-c", script], DEFAULT)), f"{cid}-2", timeout=60
    )
    assert "No such file or directory" in proc.stdout
    assert "write=1" in proc.stdout
    assert "seccomp-cache" not in proc.stdout.replace(str(cache), "")
    assert entry.read_bytes() == before


def test_unusable_cache_directory_is_left_alone(
    runtime: Runtime, make_bundle: Callable[..., Path], cid: str, libseccomp_loaded: Loader
) -> None:
    # A cache directory others may write is never read: a planted program must not be installed.
    runtime.root.mkdir(mode=0o700)
    cache = runtime.root / CACHE_DIR
    cache.mkdir(mode=0o700)
    cache.chmod(0o777)
    bundle = bundle_with(make_bundle, ["sh", "-c", SCRIPT], ERRNOS)
    runtime("run", "--bundle", str(bundle), f"{cid}-1", timeout=60)
    assert cache_entries(runtime) == []
    ours, _ = container_filter(runtime, bundle_with(make_bundle, ["sleep", "60"], ERRNOS), f"{cid}-sleep")
    assert ours == libseccomp_loaded(ERRNOS)[0]


def test_exec_uses_the_cached_filter(
    runtime: Runtime, make_bundle: Callable[..., Path], cid: str, tmp_path: Path, libseccomp_loaded: Loader
) -> None:
    runtime("run", "-d", "--bundle", str(bundle_with(make_bundle, ["sleep", "60"], DEFAULT)), cid, timeout=60)
    (entry,) = cache_entries(runtime)
    inode = entry.stat().st_ino
    proc = runtime("exec", cid, "sh", "-c", "unshare -U true; echo unshare=$?; echo hi", check=False, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "unshare=1\nhi\n"), proc.stderr
    pid_file = tmp_path / "exec.pid"
    runtime("exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "30", timeout=60)
    ours = installed_filter(int(pid_file.read_text()))
    assert ours == libseccomp_loaded(DEFAULT)[0]
    assert ours[0] == program_of(entry)
    assert entry.stat().st_ino == inode


def test_notify_profiles_are_not_cached(
    runtime: Runtime, make_bundle: Callable[..., Path], cid: str, tmp_path: Path
) -> None:
    # The notify fd is a result of libseccomp's load: such a profile is built in init, as before.
    import socket

    listener_path = str(tmp_path / "agent.sock")
    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    agent.bind(listener_path)
    agent.listen(1)
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": listener_path,
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}],
    }
    try:
        runtime("create", "--bundle", str(bundle_with(make_bundle, ["true"], profile)), cid, timeout=60)
    finally:
        agent.close()
        runtime("delete", "--force", cid, check=False)
    assert not (runtime.root / CACHE_DIR).exists() or cache_entries(runtime) == []


def test_engine_runs_and_execs_from_the_cache(engine: Engine) -> None:
    # The engine calls hull-runtime in-process for create and as a binary for exec: one cache, under its runtime root.
    script = "unshare -U true; echo unshare=$?; mount -t tmpfs none /tmp; echo mount=$?"
    inodes = set()
    for _ in range(2):
        proc = engine("run", "--rm", BUSYBOX, "sh", "-c", script)
        assert proc.stdout == "unshare=1\nmount=1\n"
        (cache,) = engine.runroot.rglob(CACHE_DIR)
        (entry,) = sorted(cache.iterdir())
        inodes.add(entry.stat().st_ino)
    assert len(inodes) == 1
    cid = engine("run", "-d", BUSYBOX, "sleep", "60").stdout.strip()
    proc = engine("exec", cid, "sh", "-c", script)
    assert proc.stdout == "unshare=1\nmount=1\n"
    assert sorted(cache.iterdir()) == [entry] and {entry.stat().st_ino} == inodes
