"""The thin ctypes binding over libseccomp.so.2 (seccomp.h of libseccomp 2.5).

Only raw calls, each raising OSError with the errno libseccomp returns as a
negative value. Imported only when a config has a seccomp profile (or by
``features``): loading the library costs a few milliseconds that a container
without a profile should not pay. seccomp.py builds the filter through this
module, so unit tests replace it with a recorder.
"""

from __future__ import annotations

import ctypes
import os

# Actions (seccomp.h); ERRNO and TRACE carry a 16-bit value in their low bits.
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_ERRNO_BASE = 0x00050000
SCMP_ACT_TRACE_BASE = 0x7FF00000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_NOTIFY = 0x7FC00000

# enum scmp_compare
SCMP_CMP_NE = 1
SCMP_CMP_LT = 2
SCMP_CMP_LE = 3
SCMP_CMP_EQ = 4
SCMP_CMP_GE = 5
SCMP_CMP_GT = 6
SCMP_CMP_MASKED_EQ = 7

# enum scmp_filter_attr
SCMP_FLTATR_ACT_DEFAULT = 1
SCMP_FLTATR_ACT_BADARCH = 2
SCMP_FLTATR_CTL_NNP = 3
SCMP_FLTATR_CTL_TSYNC = 4
SCMP_FLTATR_API_TSKIP = 5
SCMP_FLTATR_CTL_LOG = 6
SCMP_FLTATR_CTL_SSB = 7
SCMP_FLTATR_CTL_OPTIMIZE = 8
SCMP_FLTATR_API_SYSRAWRC = 9
SCMP_FLTATR_CTL_WAITKILL = 10  # libseccomp >= 2.6

NR_SCMP_ERROR = -1  # __NR_SCMP_ERROR: the name is not a syscall libseccomp knows


def act_errno(code: int) -> int:
    return SCMP_ACT_ERRNO_BASE | (code & 0xFFFF)


def act_trace(code: int) -> int:
    return SCMP_ACT_TRACE_BASE | (code & 0xFFFF)


class ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


def _load() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError as err:
        raise OSError(f"cannot load libseccomp.so.2: {err}") from None
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.restype = None
    for name in ("seccomp_arch_add", "seccomp_arch_remove"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        getattr(lib, name).restype = ctypes.c_int
    lib.seccomp_arch_native.argtypes = []
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_attr_set.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(ArgCmp),
    ]
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    for name in ("seccomp_load", "seccomp_notify_fd"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = ctypes.c_int
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_export_bpf.restype = ctypes.c_int
    lib.seccomp_api_get.argtypes = []
    lib.seccomp_api_get.restype = ctypes.c_uint
    lib.seccomp_api_set.argtypes = [ctypes.c_uint]
    lib.seccomp_api_set.restype = ctypes.c_int
    lib.seccomp_version.argtypes = []
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    return lib


_lib = _load()


def _check(result: int, what: str) -> int:
    # libseccomp returns -errno (seccomp.h: "negative values on failure").
    if result < 0:
        raise OSError(-result, f"{what}: {os.strerror(-result)}")
    return result


def init(default_action: int) -> int:
    ctx = _lib.seccomp_init(default_action)
    if not ctx:
        raise OSError(0, "seccomp_init failed")
    return int(ctx)


def release(ctx: int) -> None:
    _lib.seccomp_release(ctx)


def arch_add(ctx: int, arch: int) -> None:
    _check(_lib.seccomp_arch_add(ctx, arch), "seccomp_arch_add")


def arch_remove(ctx: int, arch: int) -> None:
    _check(_lib.seccomp_arch_remove(ctx, arch), "seccomp_arch_remove")


def arch_native() -> int:
    return int(_lib.seccomp_arch_native())


def arch_resolve_name(name: str) -> int:
    """The arch token for a libseccomp arch name ("x86_64"), 0 when unknown."""
    return int(_lib.seccomp_arch_resolve_name(name.encode()))


def attr_set(ctx: int, attr: int, value: int) -> None:
    _check(_lib.seccomp_attr_set(ctx, attr, value), "seccomp_attr_set")


def syscall_resolve_name(name: str) -> int:
    """The native syscall number (or libseccomp's negative pseudo number), NR_SCMP_ERROR if unknown."""
    return int(_lib.seccomp_syscall_resolve_name(name.encode()))


def syscall_resolve_name_arch(arch: int, name: str) -> int:
    return int(_lib.seccomp_syscall_resolve_name_arch(arch, name.encode()))


def rule_add_array(ctx: int, action: int, syscall: int, args: list[tuple[int, int, int, int]]) -> None:
    """One rule; args are (index, op, value, valueTwo) and are ANDed by libseccomp."""
    array = (ArgCmp * len(args))(*(ArgCmp(*a) for a in args)) if args else None
    _check(_lib.seccomp_rule_add_array(ctx, action, syscall, len(args), array), "seccomp_rule_add_array")


def load(ctx: int) -> None:
    _check(_lib.seccomp_load(ctx), "seccomp_load")


def export_bpf(ctx: int, fd: int) -> None:
    """Write the filter's BPF program to ``fd``: the very program seccomp_load would install (gen_bpf_generate)."""
    _check(_lib.seccomp_export_bpf(ctx, fd), "seccomp_export_bpf")


def notify_fd(ctx: int) -> int:
    return _check(_lib.seccomp_notify_fd(ctx), "seccomp_notify_fd")


def api_get() -> int:
    return int(_lib.seccomp_api_get())


def api_set(level: int) -> None:
    _check(_lib.seccomp_api_set(level), "seccomp_api_set")


def version() -> tuple[int, int, int]:
    v = _lib.seccomp_version().contents
    return (int(v.major), int(v.minor), int(v.micro))
