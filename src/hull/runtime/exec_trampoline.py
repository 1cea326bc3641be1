"""The last execve through a sealed in-memory trampoline (CVE-2019-5736).

Until its execve(2), the process that becomes the container's program is a
copy of the runtime: its /proc/self/exe is the host's Python interpreter. A
container program whose first line is "#!/proc/self/exe" (or an ELF naming it
as its loader) makes the kernel start that interpreter inside the container,
where the program can keep the host file open and rewrite it once nothing
runs it. runc 1.1 defends by re-executing itself from a sealed memfd copy
(libcontainer/nsenter/cloned_binary.c); hull-runtime does the same for the
last step only: the process first becomes a ~100-byte static program held in
a sealed memfd, which execve(2)s the container's program. /proc/self/exe is
then that memfd, which cannot be written.

The trampoline is called as ``[chr(status_fd), path, *argv]``: it marks
status_fd close-on-exec, execs ``path`` with ``argv`` and the same
environment, and if that fails writes the errno as one byte to status_fd and
exits 1, so the runtime still reports why (ENOEXEC, EACCES on a noexec
mount...) as runc does for a failed last execve: "exec <path>: <reason>",
the process's exit status 1. Called with fewer than 3 arguments (as the
kernel calls a "#!" interpreter) it exits 1 at once.

x86_64 only for now; elsewhere ``program`` is None and the caller execs
directly.
"""

from __future__ import annotations

import os
import struct

# x86_64 machine code (assembled with GNU as, Intel syntax shown).
_X86_64 = bytes.fromhex(
    "48833c2403"  # cmp qword [rsp], 3           argc < 3: not called by hull
    "724e"  # jb fail
    "488b5c2408"  # mov rbx, [rsp+8]               argv[0]: one byte, the status fd
    "440fb623"  # movzx r12d, byte [rbx]
    "4489e7"  # mov edi, r12d                      fcntl(status_fd, F_SETFD, FD_CLOEXEC)
    "be02000000"  # mov esi, 2
    "ba01000000"  # mov edx, 1
    "b848000000"  # mov eax, 72 (fcntl)
    "0f05"  # syscall
    "488b7c2410"  # mov rdi, [rsp+16]              argv[1]: the path
    "488d742418"  # lea rsi, [rsp+24]              &argv[2]: the program's argv
    "488b0424"  # mov rax, [rsp]                   argc
    "488d54c410"  # lea rdx, [rsp+rax*8+16]        envp
    "b83b000000"  # mov eax, 59 (execve)
    "0f05"  # syscall
    "f7d8"  # neg eax                              errno
    "880424"  # mov [rsp], al
    "4489e7"  # mov edi, r12d                      write(status_fd, &errno, 1)
    "4889e6"  # mov rsi, rsp
    "ba01000000"  # mov edx, 1
    "b801000000"  # mov eax, 1 (write)
    "0f05"  # syscall
    "bf01000000"  # fail: mov edi, 1               exit(1)
    "b83c000000"  # mov eax, 60 (exit)
    "0f05"  # syscall
)

_BASE = 0x400000
_EHDR = 64
_PHDR = 56
PT_LOAD = 1
PT_GNU_STACK = 0x6474E551


def _elf(code: bytes, machine: int) -> bytes:
    """A static ELF64 executable: the header, a read+execute PT_LOAD of the whole file, a non-executable stack."""
    entry_offset = _EHDR + 2 * _PHDR
    size = entry_offset + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, version 1, System V
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", 2, machine, 1, _BASE + entry_offset, _EHDR, 0, 0, _EHDR, _PHDR, 2, 0, 0, 0
    )
    load = struct.pack("<IIQQQQQQ", PT_LOAD, 5, 0, _BASE, _BASE, size, size, 0x1000)
    stack = struct.pack("<IIQQQQQQ", PT_GNU_STACK, 6, 0, 0, 0, 0, 0, 16)
    return header + load + stack + code


def program() -> bytes | None:
    """The trampoline for this machine, or None where there is none yet."""
    if os.uname().machine == "x86_64":
        return _elf(_X86_64, 62)  # EM_X86_64
    return None


def sealed_memfd() -> int:
    """A close-on-exec memfd holding the trampoline, sealed against any change; -1 where there is none."""
    code = program()
    if code is None:
        return -1
    import fcntl

    fd = os.memfd_create("hull-runtime-exec", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, code)
        seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


def execute(memfd: int, status_fd: int, path: str, args: list[str], env: list[str]) -> None:
    """execve ``path`` through the trampoline in ``memfd``; returns only if the trampoline cannot be started.

    ``status_fd`` (below 128, so it fits the one byte of argv[0]) must be
    inheritable; the trampoline closes it on its own execve. execveat(2) on
    the memfd first; where a seccomp profile allows only execve(2), the
    memfd's /proc/self/fd path.
    """
    argv = [chr(status_fd), path, *args]
    environ = dict(e.split("=", 1) for e in env)
    try:
        os.execve(memfd, argv, environ)
    except OSError:
        pass
    os.execve(f"/proc/self/fd/{memfd}", argv, environ)
