"""The one thin seam over raw Linux calls that Python's os module lacks.

Everything here is a direct ctypes call that raises OSError (with the path
where there is one) on failure. Logic modules call these functions through
the module (``linux.mount(...)``) so unit tests can replace them and record
the calls without root.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_POSIXACL = 1 << 16
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
AT_RECURSIVE = 0x8000
AT_EMPTY_PATH = 0x1000

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_LOWER = 3
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
PROC_SUPER_MAGIC = 0x9FA0

KEYCTL_JOIN_SESSION_KEYRING = 1

_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "keyctl": 250, "mount_setattr": 442, "capget": 125, "capset": 126, "bpf": 321},
    "aarch64": {"pivot_root": 41, "keyctl": 219, "mount_setattr": 442, "capget": 90, "capset": 91, "bpf": 280},
}
_NR = _SYSCALLS.get(os.uname().machine, _SYSCALLS["x86_64"])

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(result: int, path: str | None = None, path2: str | None = None) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path, None, path2)
    return result


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)), target)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), target)


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(_NR["pivot_root"], _b(new_root), _b(put_old)), new_root)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags))


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype))


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)))


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, len(raw)))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    args = [ctypes.c_ulong(a) for a in (arg2, arg3, arg4, arg5)]
    return _check(_libc.prctl(option, *args))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def capget() -> tuple[int, int, int]:
    """This thread's (effective, permitted, inheritable) sets as 64-bit masks (capget(2), version 3)."""
    data = (_CapData * 2)()
    _check(_libc.syscall(_NR["capget"], ctypes.byref(_CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)), data))
    lo, hi = data
    return (
        lo.effective | hi.effective << 32,
        lo.permitted | hi.permitted << 32,
        lo.inheritable | hi.inheritable << 32,
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's three capability sets from 64-bit masks (capset(2), version 3)."""
    low, high = 0xFFFFFFFF, 32
    data = (_CapData * 2)(
        _CapData(effective & low, permitted & low, inheritable & low),
        _CapData(effective >> high, permitted >> high, inheritable >> high),
    )
    _check(_libc.syscall(_NR["capset"], ctypes.byref(_CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)), data))


def fstatfs_type(fd: int) -> int:
    """The f_type of the filesystem ``fd`` is on (fstatfs(2)); f_type is struct statfs's first word."""
    buf = (ctypes.c_long * 32)()
    _check(_libc.fstatfs(fd, buf))
    return buf[0] & 0xFFFFFFFF


def join_session_keyring(name: str) -> None:
    _check(_libc.syscall(_NR["keyctl"], KEYCTL_JOIN_SESSION_KEYRING, _b(name)))


RLIM_INFINITY = (1 << 64) - 1

# RLIMIT_* numbers of asm-generic/resource.h (x86_64 and aarch64 agree).
RLIMIT = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}


class _Rlimit(ctypes.Structure):
    _fields_ = [("cur", ctypes.c_uint64), ("max", ctypes.c_uint64)]


def prlimit(resource: int, new: tuple[int, int] | None = None) -> tuple[int, int]:
    """prlimit(2) on this process: set ``new`` (soft, hard) if given; return the previous limits.

    ctypes rather than the resource module, whose import is a shared-object
    load on every create; and the spec's values are the kernel's unsigned
    64-bit ones, RLIM_INFINITY included, with no conversion.
    """
    old = _Rlimit()
    new_ref = ctypes.byref(_Rlimit(*new)) if new is not None else None
    _check(_libc.prlimit(0, resource, new_ref, ctypes.byref(old)))
    return old.cur, old.max


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def mount_setattr(path: str, attr_set: int, attr_clr: int, recursive: bool = True) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    result = _libc.syscall(_NR["mount_setattr"], -100, _b(path), flags, ctypes.byref(attr), ctypes.sizeof(attr))
    _check(result, path)


# -- openat2(2): path resolution the kernel keeps inside a directory (hull cp) ------

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
_NR_OPENAT2 = 437  # the same on every architecture (a syscall added after the table unification)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """openat2(2); ``resolve`` RESOLVE_IN_ROOT treats ``dirfd`` as "/" for every symlink and "..", atomically."""
    how = _OpenHow(flags, mode, resolve)
    return _check(_libc.syscall(_NR_OPENAT2, dirfd, _b(path), ctypes.byref(how), ctypes.sizeof(how)), path)


# -- seccomp(2): installing a compiled filter program (seccomp.load_program) -------

SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_FILTER_FLAG_LOG = 2
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 16
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
_NR_SECCOMP = {"x86_64": 317, "aarch64": 277}.get(os.uname().machine, 317)


class _SockFprog(ctypes.Structure):
    # struct sock_fprog (linux/filter.h)
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_mode_filter(flags: int, program: bytes) -> int:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, prog): ``program`` is an array of struct sock_filter (8 bytes each)."""
    code = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(code))
    args = (ctypes.c_long(_NR_SECCOMP), ctypes.c_long(SECCOMP_SET_MODE_FILTER), ctypes.c_long(flags))
    return _check(_libc.syscall(*args, ctypes.byref(prog)))


def prctl_set_seccomp_filter(program: bytes) -> None:
    """prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog), for a kernel without seccomp(2)."""
    code = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(code))
    zero = ctypes.c_ulong(0)
    _check(_libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(prog), zero, zero))


# -- bpf(2), for the cgroup v2 device filter (device_filter.py) ------------------

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
BPF_F_REPLACE = 4


class _BpfProgLoad(ctypes.Structure):
    # The leading members of union bpf_attr for BPF_PROG_LOAD (include/uapi/linux/bpf.h).
    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
    ]


class _BpfAttach(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32),
        ("attach_bpf_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("replace_bpf_fd", ctypes.c_uint32),
    ]


class _BpfQuery(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("query_flags", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("prog_ids", ctypes.c_uint64),
        ("prog_cnt", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    return _check(_libc.syscall(_NR["bpf"], cmd, ctypes.byref(attr), ctypes.sizeof(attr)))


def bpf_prog_load(prog_type: int, insns: bytes, license: str, log_size: int = 0) -> tuple[int, str]:
    """BPF_PROG_LOAD: (program fd, verifier log); the log is asked for only with ``log_size``."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(log_size) if log_size else None
    attr = _BpfProgLoad(prog_type=prog_type, insn_cnt=len(insns) // 8)
    attr.insns = ctypes.addressof(code)
    attr.license = ctypes.addressof(lic)
    if log is not None:
        attr.log_level, attr.log_size, attr.log_buf = 1, log_size, ctypes.addressof(log)
    try:
        fd = _bpf(BPF_PROG_LOAD, attr)
    except OSError as err:
        text = log.value.decode(errors="replace") if log is not None else ""
        detail = f": {text.strip()}" if text.strip() else ""
        raise OSError(err.errno, f"{err.strerror}{detail}") from None
    return fd, log.value.decode(errors="replace") if log is not None else ""


def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int, replace_fd: int = 0) -> None:
    _bpf(BPF_PROG_ATTACH, _BpfAttach(target_fd, prog_fd, attach_type, flags, replace_fd))


def bpf_prog_detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    _bpf(BPF_PROG_DETACH, _BpfAttach(target_fd, prog_fd, attach_type, 0, 0))


def bpf_prog_query(target_fd: int, attach_type: int) -> list[int]:
    """The IDs of the programs attached to ``target_fd`` (a cgroup directory) for ``attach_type``."""
    size = 64
    for _ in range(10):
        ids = (ctypes.c_uint32 * size)()
        attr = _BpfQuery(target_fd=target_fd, attach_type=attach_type, prog_cnt=size)
        attr.prog_ids = ctypes.addressof(ids)
        try:
            _bpf(BPF_PROG_QUERY, attr)
        except OSError as err:
            if err.errno == 28:  # ENOSPC: prog_cnt now says how many there are
                size = attr.prog_cnt
                continue
            raise
        return list(ids[: attr.prog_cnt])
    raise OSError(28, "could not get complete list of CGROUP_DEVICE programs")


def bpf_prog_get_fd_by_id(prog_id: int) -> int:
    attr = (ctypes.c_uint32 * 3)(prog_id, 0, 0)
    return _check(_libc.syscall(_NR["bpf"], BPF_PROG_GET_FD_BY_ID, ctypes.byref(attr), ctypes.sizeof(attr)))
