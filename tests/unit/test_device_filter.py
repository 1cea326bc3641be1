"""The cgroup v2 device program: its encoding, what it allows (run in a small eBPF interpreter), and attaching it."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import pytest

from hull.runtime import device_filter
from hull.runtime import linux as L
from hull.runtime.errors import ConfigError, SetupError

B, C = device_filter.DEV_BLOCK, device_filter.DEV_CHAR
M, R, W = device_filter.ACC_MKNOD, device_filter.ACC_READ, device_filter.ACC_WRITE


def run(code: bytes, kind: int, access: int, major: int, minor: int) -> int:
    """Interpret the program on a bpf_cgroup_dev_ctx: the kernel's semantics for the opcodes it uses."""
    ctx = struct.pack("<III", kind | access << 16, major, minor)
    regs = [0] * 11
    insns = [struct.unpack("<BBhi", code[i : i + 8]) for i in range(0, len(code), 8)]
    pc = 0
    for _ in range(10_000):
        op, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if op == 0x61:
            assert src == 1
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == 0x54:
            regs[dst] = regs[dst] & (imm & 0xFFFFFFFF)
        elif op == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif op == 0xB4:
            regs[dst] = imm & 0xFFFFFFFF
        elif op == 0xBC:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif op == 0x55:
            if regs[dst] != imm % (1 << 64):
                pc += off
        elif op == 0x5D:
            if regs[dst] != regs[src]:
                pc += off
        elif op == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")
    raise AssertionError("no exit")


DENY_ALL = {"devices": [{"allow": False, "access": "rwm"}]}  # runc spec's default


@pytest.mark.parametrize(
    ("resources", "paths", "request_", "allowed"),
    [
        (DENY_ALL, frozenset(), (C, R | W, 1, 3), 1),  # /dev/null, a default rule
        (DENY_ALL, frozenset(), (C, R, 1, 9), 1),  # /dev/urandom
        (DENY_ALL, frozenset(), (C, R, 4, 1), 0),  # a tty: not in the defaults
        (DENY_ALL, frozenset(), (C, M, 4, 1), 1),  # but mknod of any char device is
        (DENY_ALL, frozenset(), (B, M, 8, 0), 1),  # and of any block device
        (DENY_ALL, frozenset(), (B, R, 8, 0), 0),
        (DENY_ALL, frozenset(), (B, R | M, 8, 0), 0),  # every access asked must be allowed
        (DENY_ALL, frozenset(), (C, R | W, 136, 7), 1),  # pts: wildcard minor
        (DENY_ALL, frozenset(), (C, R | W, 10, 200), 1),  # /dev/net/tun
        (DENY_ALL, frozenset({"/dev/null"}), (C, R, 1, 3), 0),  # linux.devices redefines it: default dropped
        ({"devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 4, "access": "r"}]},
         frozenset(), (C, R, 4, 64), 1),
        ({"devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 4, "access": "r"}]},
         frozenset(), (C, W, 4, 64), 0),
        ({"devices": [{"allow": True, "access": "rwm"}]}, frozenset(), (B, R | W | M, 8, 0), 1),  # allow-all
        ({"devices": [{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 4, "minor": 1,
                                                          "access": "w"}]}, frozenset(), (C, W, 4, 1), 0),
        ({"devices": [{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 4, "minor": 1,
                                                          "access": "w"}]}, frozenset(), (C, R, 4, 1), 1),
        # The defaults come after the config's rules: as in runc, they re-allow a denied /dev/null.
        ({"devices": [{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 1, "minor": 3,
                                                          "access": "w"}]}, frozenset(), (C, W, 1, 3), 1),
        # A later rule wins: deny c 1:3 after the defaults' allow is not possible from the config (defaults
        # come last), but allow-then-deny within the config is.
        ({"devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 5, "minor": 1,
                                                           "access": "rw"},
                      {"allow": False, "type": "c", "major": 5, "minor": 1, "access": "w"}]},
         frozenset(), (C, W, 5, 1), 0),
    ],
)  # fmt: skip
def test_program_verdicts(
    resources: dict[str, Any], paths: frozenset[str], request_: tuple[int, int, int, int], allowed: int
) -> None:
    code, _ = device_filter.build(resources, paths)
    assert run(code, *request_) == allowed


def test_allow_all_is_the_bare_default() -> None:
    code, _ = device_filter.build({"devices": [{"allow": True, "access": "rwm"}]})
    # Six loads of the context, then "r0 = 1; exit": the defaults add nothing to an allow-all cgroup.
    assert len(code) == 8 * 8
    assert code[-16:] == bytes.fromhex("b4000000010000009500000000000000")


def test_one_block_encoding() -> None:
    # c 1:3 rw, allowed, over deny-all: the kernel ABI's bytes for runc's block.
    code = device_filter.program(False, [(True, "c", 1, 3, "rw")])
    block = code[6 * 8 :]
    assert block == bytes.fromhex(
        "5502070002000000"  # if r2 != 2 (char) goto default (+7)
        "bc31000000000000"  # w1 = w3
        "5401000006000000"  # w1 &= r|w
        "5d31040000000000"  # if r1 != r3 goto default (+4)
        "5504030001000000"  # if r4 != 1 goto default (+3)
        "5505020003000000"  # if r5 != 3 goto default (+2)
        "b400000001000000"  # w0 = 1
        "9500000000000000"  # exit
        "b400000000000000"  # w0 = 0 (default deny)
        "9500000000000000"  # exit
    )


def test_rules_sorted_as_runc() -> None:
    state = {("c", 5, 0): "rwm", ("c", -1, -1): "m", ("b", -1, -1): "m", ("c", 1, 3): "rwm"}
    assert device_filter.filter_rules(False, state) == [
        (True, "b", -1, -1, "m"),
        (True, "c", -1, -1, "m"),
        (True, "c", 1, 3, "rwm"),
        (True, "c", 5, 0, "rwm"),
    ]


def test_major_beyond_u32_refused() -> None:
    # As runc, a number is compared as the sign-extended 32-bit immediate of a 64-bit JNE;
    # one that does not fit 32 bits is refused before loading.
    with pytest.raises(SetupError, match="invalid major 4294967296"):
        device_filter.program(False, [(True, "c", 1 << 32, -1, "rwm")])
    with pytest.raises(SetupError, match="invalid minor 4294967296"):
        device_filter.program(False, [(True, "c", 1, 1 << 32, "rwm")])


# -- attaching -------------------------------------------------------------------------


class FakeBpf:
    """The bpf(2) seam, handing out real descriptors (of /dev/null) and naming them in what it records."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, attached: list[int], fail: dict[str, int] | None = None):
        self.calls: list[tuple[Any, ...]] = []
        self.attached = attached
        self.fail = fail or {}
        self.names: dict[int, str] = {}
        for name in ("bpf_prog_query", "bpf_prog_get_fd_by_id", "bpf_prog_load", "bpf_prog_attach", "bpf_prog_detach"):
            monkeypatch.setattr(L, name, getattr(self, name))

    def _fd(self, name: str) -> int:
        fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        self.names[fd] = name
        return fd

    def _name(self, fd: int) -> str:
        return self.names.get(fd) or ("cgroup" if os.path.isdir(f"/proc/self/fd/{fd}") else f"fd {fd}")

    def _maybe_fail(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        if name in self.fail:
            raise OSError(self.fail.pop(name), "boom")

    def bpf_prog_query(self, fd: int, kind: int) -> list[int]:
        self._maybe_fail("query", self._name(fd), kind)
        return list(self.attached)

    def bpf_prog_get_fd_by_id(self, prog_id: int) -> int:
        self._maybe_fail("get_fd", prog_id)
        return self._fd(f"old {prog_id}")

    def bpf_prog_load(self, kind: int, code: bytes, license: str) -> tuple[int, str]:
        self._maybe_fail("load", kind, license)
        return self._fd("new"), ""

    def bpf_prog_attach(self, target: int, prog: int, kind: int, flags: int, replace: int = 0) -> None:
        self._maybe_fail(
            "attach", self._name(target), self._name(prog), kind, flags, self._name(replace) if replace else None
        )

    def bpf_prog_detach(self, target: int, prog: int, kind: int) -> None:
        self._maybe_fail("detach", self._name(target), self._name(prog), kind)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


ATTACH = ("attach", "cgroup", "new", L.BPF_CGROUP_DEVICE, L.BPF_F_ALLOW_MULTI, None)


def test_first_attach(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = FakeBpf(monkeypatch, [])
    before = open_fds()
    device_filter.attach(str(tmp_path), b"\x95" + b"\0" * 7)
    assert fake.calls == [
        ("query", "cgroup", L.BPF_CGROUP_DEVICE),
        ("load", L.BPF_PROG_TYPE_CGROUP_DEVICE, "Apache"),
        ATTACH,
    ]
    assert open_fds() == before  # the attachment holds the program, not us


def test_one_old_program_is_replaced(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = FakeBpf(monkeypatch, [7])
    before = open_fds()
    device_filter.attach(str(tmp_path), b"")
    flags = L.BPF_F_ALLOW_MULTI | L.BPF_F_REPLACE
    assert fake.calls[-1] == ("attach", "cgroup", "new", L.BPF_CGROUP_DEVICE, flags, "old 7")
    assert open_fds() == before


def test_replace_unsupported_falls_back_to_detach(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = FakeBpf(monkeypatch, [7], fail={"attach": 22})
    device_filter.attach(str(tmp_path), b"")
    assert fake.calls[-2:] == [ATTACH, ("detach", "cgroup", "old 7", L.BPF_CGROUP_DEVICE)]


def test_several_old_programs_are_detached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = FakeBpf(monkeypatch, [7, 8])
    device_filter.attach(str(tmp_path), b"")
    assert fake.calls[-3:] == [
        ATTACH,
        ("detach", "cgroup", "old 7", L.BPF_CGROUP_DEVICE),
        ("detach", "cgroup", "old 8", L.BPF_CGROUP_DEVICE),
    ]


def test_inaccessible_old_program_left_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = FakeBpf(monkeypatch, [7], fail={"get_fd": 1})
    device_filter.attach(str(tmp_path), b"")
    assert fake.calls[-1] == ATTACH


def test_attach_failure_is_fatal_unless_rootless(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    FakeBpf(monkeypatch, [], fail={"load": 1})
    monkeypatch.setattr(device_filter, "in_user_namespace", lambda: False)
    with pytest.raises(SetupError, match=r"^load program: boom$"):
        device_filter.apply(str(tmp_path), DENY_ALL, frozenset(), rootless=False)
    FakeBpf(monkeypatch, [], fail={"attach": 1})
    with pytest.raises(SetupError, match=r"failed to call BPF_PROG_ATTACH \(BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI\)"):
        device_filter.apply(str(tmp_path), DENY_ALL, frozenset(), rootless=False)
    FakeBpf(monkeypatch, [], fail={"load": 1})
    device_filter.apply(str(tmp_path), DENY_ALL, frozenset(), rootless=True)  # runc ignores it for rootless
    FakeBpf(monkeypatch, [], fail={"load": 1})
    monkeypatch.setattr(device_filter, "in_user_namespace", lambda: True)
    device_filter.apply(str(tmp_path), DENY_ALL, frozenset(), rootless=False)  # and inside a user namespace


def test_no_hole_in_a_wildcard_rule() -> None:
    # runc's emulator refuses it on v1 and v2 alike: the wildcard exception cannot be split.
    resources = {
        "devices": [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "access": "rw"},
            {"allow": False, "type": "c", "major": 1, "minor": 9, "access": "w"},
        ]
    }
    with pytest.raises(ConfigError) as err:
        device_filter.build(resources)
    assert str(err.value) == (
        "linux.resources.devices: unable to remove 'allow' exception: requested rule [{99 1 9} w] not supported"
        " by devices cgroupv1 (cannot punch hole in existing wildcard rule [{99 1 -1} rw])"
    )
