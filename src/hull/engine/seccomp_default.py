"""The default seccomp profile of ``hull run``: docker's/podman's policy, as runtime-spec ``linux.seccomp``.

The policy (docker's "Seccomp security profiles" page, moby profiles/seccomp):
everything not listed fails with EPERM (SCMP_ACT_ERRNO, errnoRet 1); the
ordinary syscalls of a process are allowed, grouped below by what they are
for; the rest is allowed only in the cases a container may use them:

- ``socket`` for every family but AF_VSOCK (a host-wide address space);
- ``personality`` with the values a 32-bit program or ``uname26`` needs, and
  the query 0xffffffff, never a persona that disables ASLR;
- ``clone`` only without namespace flags (a masked compare on the flags
  argument) unless CAP_SYS_ADMIN is granted: namespaces are the kernel attack
  surface a container escape goes through; ``clone3`` passes its flags in a
  struct seccomp cannot read, so without CAP_SYS_ADMIN it fails with ENOSYS
  and libc falls back to ``clone``;
- the syscalls each capability guards (mount, unshare, setns... with
  CAP_SYS_ADMIN; ptrace and friends with CAP_SYS_PTRACE; module loading with
  CAP_SYS_MODULE; ...) only when the container is granted it;
- ``ptrace``, ``process_vm_readv``/``writev`` for everyone: since Linux 4.8
  ptrace cannot be used to bypass seccomp.

Names libseccomp does not know for an architecture are skipped by the
runtime (hull.runtime.seccomp, as runc), so the lists may name syscalls of
other or newer architectures and kernels.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection
    from typing import Any

EPERM = 1
ENOSYS = 38

FILES = (
    "open", "openat", "openat2", "creat", "close", "close_range", "read", "readv", "pread64", "preadv",
    "preadv2", "write", "writev", "pwrite64", "pwritev", "pwritev2", "lseek", "_llseek", "dup", "dup2",
    "dup3", "fcntl", "fcntl64", "flock", "ioctl", "fsync", "fdatasync", "sync", "syncfs",
    "sync_file_range", "fallocate", "fadvise64", "fadvise64_64", "readahead", "truncate", "truncate64",
    "ftruncate", "ftruncate64", "sendfile", "sendfile64", "splice", "tee", "vmsplice", "copy_file_range",
    "pipe", "pipe2", "umask",
)  # fmt: skip
FILE_METADATA = (
    "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "fstatat64", "newfstatat", "statx",
    "statfs", "statfs64", "fstatfs", "fstatfs64", "access", "faccessat", "faccessat2", "chmod", "fchmod",
    "fchmodat", "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32", "utime",
    "utimes", "utimensat", "utimensat_time64", "futimesat", "readlink", "readlinkat",
    "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr", "llistxattr",
    "flistxattr", "removexattr", "lremovexattr", "fremovexattr", "name_to_handle_at",
)  # fmt: skip
DIRECTORIES = (
    "chdir", "fchdir", "getcwd", "getdents", "getdents64", "mkdir", "mkdirat", "rmdir", "mknod", "mknodat",
    "link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat", "rename", "renameat", "renameat2",
)  # fmt: skip
WAITING = (
    "poll", "ppoll", "ppoll_time64", "select", "_newselect", "pselect6", "pselect6_time64",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait", "epoll_wait_old",
    "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4", "inotify_init",
    "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "fanotify_mark", "timerfd_create",
    "timerfd_settime", "timerfd_settime64", "timerfd_gettime", "timerfd_gettime64",
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "io_uring_setup", "io_uring_enter", "io_uring_register",
)  # fmt: skip
PROCESSES = (
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "waitpid",
    "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid",
    "set_tid_address", "set_robust_list", "get_robust_list", "futex", "futex_time64", "futex_waitv",
    "rseq", "restart_syscall", "prctl", "capget", "capset", "seccomp", "getpriority", "setpriority",
    "ioprio_get", "ioprio_set", "getrlimit", "ugetrlimit", "setrlimit", "prlimit64", "getrusage", "times",
    "uname", "sysinfo", "getcpu", "getrandom", "membarrier", "get_thread_area", "set_thread_area",
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    "pidfd_open", "pidfd_send_signal", "ptrace", "process_vm_readv", "process_vm_writev",
)  # fmt: skip
SCHEDULING = (
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getattr", "sched_setattr",
    "sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler",
    "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
)  # fmt: skip
IDENTITY = (
    "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32",
    "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups", "getgroups32",
    "setuid", "setuid32", "setgid", "setgid32", "setreuid", "setreuid32", "setregid", "setregid32",
    "setresuid", "setresuid32", "setresgid", "setresgid32", "setfsuid", "setfsuid32", "setfsgid",
    "setfsgid32", "setgroups", "setgroups32",
)  # fmt: skip
SIGNALS = (
    "kill", "tkill", "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending",
    "rt_sigsuspend", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "sigaltstack", "sigprocmask", "sigreturn", "pause", "alarm",
)  # fmt: skip
TIME = (
    "time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64",
    "clock_nanosleep", "clock_nanosleep_time64", "nanosleep", "getitimer", "setitimer", "timer_create",
    "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "adjtimex", "clock_adjtime", "clock_adjtime64",  # adjtimex only reads without CAP_SYS_TIME
)  # fmt: skip
MEMORY = (
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
    "remap_file_pages", "mlock", "mlock2", "mlockall", "munlock", "munlockall", "memfd_create",
    "memfd_secret", "pkey_alloc", "pkey_free", "pkey_mprotect", "process_mrelease",
)  # fmt: skip
IPC = (
    "ipc", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop", "semtimedop_time64",
    "semctl", "shmget", "shmat", "shmdt", "shmctl", "mq_open", "mq_unlink", "mq_timedsend",
    "mq_timedsend_time64", "mq_timedreceive", "mq_timedreceive_time64", "mq_notify", "mq_getsetattr",
)  # fmt: skip
SOCKETS = (
    "socketpair", "socketcall", "bind", "listen", "accept", "accept4", "connect", "shutdown",
    "getsockname", "getpeername", "getsockopt", "setsockopt", "send", "sendto", "sendmsg", "sendmmsg",
    "recv", "recvfrom", "recvmsg", "recvmmsg", "recvmmsg_time64",
)  # fmt: skip
ALLOWED = (FILES, FILE_METADATA, DIRECTORIES, WAITING, PROCESSES, SCHEDULING, IDENTITY, SIGNALS, TIME, MEMORY,
           IPC, SOCKETS)  # fmt: skip

# Go architecture names (what docker profiles use) -> syscalls only that architecture family has.
BY_ARCH: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("amd64", "x32"), ("arch_prctl",)),
    (("amd64", "x32", "x86", "386"), ("modify_ldt",)),
    (("arm", "arm64"), ("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
                        "cacheflush", "set_tls")),
)  # fmt: skip

# A capability -> the syscalls it unlocks (docker's "includes.caps" rules).
BY_CAPABILITY: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("CAP_DAC_READ_SEARCH", ("open_by_handle_at",)),
    ("CAP_SYS_ADMIN", (
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
        "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
        "umount2", "unshare",
    )),
    ("CAP_SYS_BOOT", ("reboot",)),
    ("CAP_SYS_CHROOT", ("chroot",)),
    ("CAP_SYS_MODULE", ("init_module", "finit_module", "delete_module")),
    ("CAP_SYS_PACCT", ("acct",)),
    ("CAP_SYS_PTRACE", ("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
                        "ptrace")),
    ("CAP_SYS_RAWIO", ("iopl", "ioperm")),
    ("CAP_SYS_TIME", ("settimeofday", "stime", "clock_settime", "clock_settime64")),
    ("CAP_SYS_TTY_CONFIG", ("vhangup",)),
    ("CAP_SYS_NICE", ("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node")),
    ("CAP_SYSLOG", ("syslog",)),
    ("CAP_BPF", ("bpf",)),
    ("CAP_PERFMON", ("perf_event_open",)),
)  # fmt: skip

AF_VSOCK = 40
# personality(2): PER_LINUX, UNAME26, PER_LINUX32, PER_LINUX32|UNAME26, and 0xffffffff (query only).
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

# uname -m -> the architectures a filter covers: the native one and those it runs binaries of.
ARCHITECTURES = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "arm64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "i686": ("SCMP_ARCH_X86",),
    "i386": ("SCMP_ARCH_X86",),
    "armv7l": ("SCMP_ARCH_ARM",),
}


def _allow(names: Collection[str], *args: dict[str, Any]) -> dict[str, Any]:
    rule: dict[str, Any] = {"names": list(names), "action": "SCMP_ACT_ALLOW"}
    if args:
        rule["args"] = list(args)
    return rule


def _arg(index: int, value: int, op: str) -> dict[str, Any]:
    return {"index": index, "value": value, "op": op}


def default_profile(capabilities: Collection[str], *, machine: str | None = None) -> dict[str, Any]:
    """``linux.seccomp`` for a container granted ``capabilities`` (its bounding set), on ``machine`` (uname -m)."""
    from hull.engine.seccomp_convert import native_goarch

    if machine is None:
        import os

        machine = os.uname().machine
    arch = native_goarch(machine)
    allowed = [name for group in ALLOWED for name in group]
    for arches, names in BY_ARCH:
        if arch in arches:
            allowed.extend(names)
    for cap, names in BY_CAPABILITY:
        if cap in capabilities:
            allowed.extend(n for n in names if n not in allowed)
    rules = [
        _allow(allowed),
        _allow(["socket"], _arg(0, AF_VSOCK, "SCMP_CMP_NE")),
        # One rule per value: conditions on one argument are ORed only as separate rules.
        *(_allow(["personality"], _arg(0, value, "SCMP_CMP_EQ")) for value in PERSONALITIES),
    ]
    if "CAP_SYS_ADMIN" not in capabilities:
        # s390's clone takes the flags as its second argument.
        flags_index = 1 if arch.startswith("s390") else 0
        mask = {"index": flags_index, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
        rules.append(_allow(["clone"], mask))
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    profile: dict[str, Any] = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": EPERM}
    architectures = ARCHITECTURES.get(machine)
    if architectures:
        profile["architectures"] = list(architectures)
    profile["syscalls"] = rules
    return profile
