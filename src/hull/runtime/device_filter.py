"""linux.resources.devices on cgroup v2: an eBPF device program, as runc 1.1's devicefilter and ebpf packages.

cgroup v2 has no devices.allow file; the kernel instead runs every
BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup (and its
ancestors) on each device open and mknod, and refuses the access if any
returns 0 (Documentation/admin-guide/cgroup-v2.rst, "Device controller").

The program is runc's: the rules are first reduced with the same emulator
as cgroup v1 (cgroup_resources.emulate, so both versions allow exactly the
same devices), then each remaining exception becomes one block that matches
type, access, major and minor and returns its verdict; the last instruction
returns the default. Its license string is runc's, "Apache". It is attached
with BPF_F_ALLOW_MULTI and replaces the one hull attached before (update),
as runc's LoadAttachCgroupDeviceFilter does.
"""

from __future__ import annotations

import errno
import os
import struct

from hull.runtime import linux as L
from hull.runtime.errors import SetupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Rule = tuple[bool, str, int, int, str]  # allow, type, major, minor, access
    # (opcode, dst, src, offset or jump label, imm); a label is resolved at assembly.
    Insn = tuple[int, int, int, int | str, int]

LICENSE = "Apache"
# struct bpf_cgroup_dev_ctx (include/uapi/linux/bpf.h): u32 access_type (type in the low
# 16 bits, access in the high 16), u32 major, u32 minor.
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}

# -- a tiny assembler: the eight instructions the program needs ----------------------

R0, R1, R2, R3, R4, R5 = range(6)
_LDX_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_AND32_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
_RSH32_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K
_MOV32_K = 0xB4  # BPF_ALU | BPF_MOV | BPF_K
_MOV32_X = 0xBC  # BPF_ALU | BPF_MOV | BPF_X
_JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K
_JNE_X = 0x5D  # BPF_JMP | BPF_JNE | BPF_X
_EXIT = 0x95  # BPF_JMP | BPF_EXIT


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    # struct bpf_insn: u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm (little-endian hosts).
    imm = (imm + (1 << 31)) % (1 << 32) - (1 << 31)  # a u32 major/minor as Go's int32()
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def assemble(insns: list[Insn], labels: dict[str, int]) -> bytes:
    out = []
    for i, (code, dst, src, off, imm) in enumerate(insns):
        if isinstance(off, str):
            off = labels[off] - (i + 1)  # jumps are relative to the next instruction
        out.append(_insn(code, dst, src, off, imm))
    return b"".join(out)


# -- the program ---------------------------------------------------------------------


def filter_rules(default_allow: bool, state: dict[tuple[str, int, int], str]) -> list[Rule]:
    """The emulated exceptions, ordered as runc's Emulator.Rules: by major, minor, then type."""
    keys = sorted(state, key=lambda k: (k[1], k[2], k[0]))
    return [(not default_allow, kind, major, minor, state[(kind, major, minor)]) for kind, major, minor in keys]


def program(default_allow: bool, rules: list[Rule]) -> bytes:
    """runc's devicefilter.DeviceFilter program for the emulated state: one block per rule."""
    insns: list[Insn] = [
        (_LDX_W, R2, R1, 0, 0),
        (_AND32_K, R2, 0, 0, 0xFFFF),  # R2 = type
        (_LDX_W, R3, R1, 0, 0),
        (_RSH32_K, R3, 0, 0, 16),  # R3 = access
        (_LDX_W, R4, R1, 4, 0),  # R4 = major
        (_LDX_W, R5, R1, 8, 0),  # R5 = minor
    ]
    labels = {}
    for n, (allow, kind, major, minor, access) in enumerate(rules):
        if kind not in _TYPES:
            raise SetupError(f"invalid type {kind!r}")  # "a" never reaches here: the emulator resets on it
        if major >= 1 << 32 or minor >= 1 << 32:
            raise SetupError(f"invalid major {major}" if major >= 1 << 32 else f"invalid minor {minor}")
        bits = 0
        for p in access:
            bits |= _ACCESS[p]
        labels[f"block-{n}"] = len(insns)
        following = f"block-{n + 1}"
        insns.append((_JNE_K, R2, 0, following, _TYPES[kind]))
        if bits != ACC_MKNOD | ACC_READ | ACC_WRITE:
            # Every access asked for must be in the rule's: (R3 & bits) == R3, R1 as scratch.
            insns += [(_MOV32_X, R1, R3, 0, 0), (_AND32_K, R1, 0, 0, bits), (_JNE_X, R1, R3, following, 0)]
        if major >= 0:  # -1: a wildcard ("*")
            insns.append((_JNE_K, R4, 0, following, major))
        if minor >= 0:
            insns.append((_JNE_K, R5, 0, following, minor))
        insns += [(_MOV32_K, R0, 0, 0, int(allow)), (_EXIT, 0, 0, 0, 0)]
    labels[f"block-{len(rules)}"] = len(insns)
    insns += [(_MOV32_K, R0, 0, 0, int(default_allow)), (_EXIT, 0, 0, 0, 0)]
    return assemble(insns, labels)


def build(resources: dict[str, Any], device_paths: frozenset[str] = frozenset()) -> tuple[bytes, list[Rule]]:
    """(program, the config's rules with runc's defaults) for linux.resources.devices."""
    from hull.runtime.cgroup_resources import device_rules, emulate

    rules = device_rules(resources, device_paths)
    default_allow, state = emulate(rules)
    return program(default_allow, filter_rules(default_allow, state)), rules


# -- loading and attaching -------------------------------------------------------------


def attach(directory: str, code: bytes) -> None:
    """Load ``code`` and attach it to the cgroup ``directory``, in place of the program attached before.

    As runc: with exactly one program there already it is replaced
    atomically (BPF_F_REPLACE), so the cgroup is never unfiltered; otherwise
    the new one is attached and every old one detached. A program we may not
    open (an LSM's) is left alone: a second device program can only deny more.
    """
    dir_fd = os.open(directory, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    old: list[int] = []
    prog_fd = -1
    try:
        for prog_id in L.bpf_prog_query(dir_fd, L.BPF_CGROUP_DEVICE):
            try:
                old.append(L.bpf_prog_get_fd_by_id(prog_id))
            except OSError as err:
                if err.errno not in (errno.EPERM, errno.EACCES, errno.ENOENT):
                    raise SetupError(f"cannot fetch program from id: {_errstr(err)}") from None
        try:
            prog_fd, _ = L.bpf_prog_load(L.BPF_PROG_TYPE_CGROUP_DEVICE, code, LICENSE)
        except OSError as err:
            raise SetupError(f"load program: {_errstr(err)}") from None
        flags = L.BPF_F_ALLOW_MULTI
        replaced = False
        if len(old) == 1:
            try:
                L.bpf_prog_attach(dir_fd, prog_fd, L.BPF_CGROUP_DEVICE, flags | L.BPF_F_REPLACE, old[0])
                replaced = True
            except OSError as err:
                if err.errno != errno.EINVAL:  # EINVAL: a kernel before 5.6, without BPF_F_REPLACE
                    raise _attach_error(err) from None
        if not replaced:
            try:
                L.bpf_prog_attach(dir_fd, prog_fd, L.BPF_CGROUP_DEVICE, flags)
            except OSError as err:
                raise _attach_error(err) from None
            for fd in old:
                try:
                    L.bpf_prog_detach(dir_fd, fd, L.BPF_CGROUP_DEVICE)
                except OSError as err:
                    raise SetupError(
                        f"failed to call BPF_PROG_DETACH (BPF_CGROUP_DEVICE) on old filter program: {_errstr(err)}"
                    ) from None
    except OSError as err:
        raise SetupError(f"bpf_prog_query(BPF_CGROUP_DEVICE) failed: {_errstr(err)}") from None
    finally:
        for fd in old + ([prog_fd] if prog_fd >= 0 else []):
            os.close(fd)  # the attachment holds its own reference
        os.close(dir_fd)


def _attach_error(err: OSError) -> SetupError:
    return SetupError(f"failed to call BPF_PROG_ATTACH (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI): {_errstr(err)}")


def apply(path: str, resources: dict[str, Any], device_paths: frozenset[str], rootless: bool) -> None:
    """Build and attach the container's device program (runc's fs2 setDevices)."""
    code, rules = build(resources, device_paths)
    try:
        attach(path, code)
    except SetupError:
        # runc: a rootless container's device errors are ignored (fs2 Set), and a
        # bpf(2) failure may be skipped in a user namespace, or when no rule
        # denies anything (canSkipEBPFError); otherwise it is fatal.
        if rootless or in_user_namespace() or all(allow and set(a) == set("rwm") for allow, _, _, _, a in rules):
            return
        raise


def in_user_namespace() -> bool:
    """runc's userns.RunningInUserNS: any uid_map but the initial namespace's full identity map."""
    try:
        with open("/proc/self/uid_map") as f:
            fields = f.read().split()
    except OSError:
        return False
    return fields != ["0", "0", "4294967295"]


def _errstr(err: OSError) -> str:
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]
