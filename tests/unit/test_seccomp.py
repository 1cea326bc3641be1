"""linux.seccomp: validation at create, and the rules built through a fake libseccomp binding (no root)."""

from __future__ import annotations

import copy
import errno
import json
import os
import socket
import subprocess
import sys
import types
from typing import Any

import pytest

from hull.runtime import libseccomp as real_lib
from hull.runtime import seccomp, unixsock
from hull.runtime.errors import ConfigError, SetupError

BASE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
    ],
}


def edited(change: Any) -> dict[str, Any]:
    profile = copy.deepcopy(BASE)
    change(profile)
    return profile


# ---------------------------------------------------------------- check


def test_valid_profiles_pass() -> None:
    seccomp.check(None)
    seccomp.check(BASE)
    seccomp.check({"defaultAction": "SCMP_ACT_KILL_PROCESS"})
    # Every name features.md advertises is accepted where it belongs.
    for action in seccomp.ACTIONS:
        rule = {"names": ["getpid"], "action": action}
        seccomp.check({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock", "syscalls": [rule]})
    for op in seccomp.OPERATORS:
        arg = {"index": 5, "value": 2**64 - 1, "valueTwo": 0, "op": op}
        seccomp.check(
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_LOG", "args": [arg]}]}
        )
    seccomp.check({"defaultAction": "SCMP_ACT_ALLOW", "architectures": list(seccomp.ARCHITECTURES)})
    seccomp.check({"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 0, "flags": ["SECCOMP_FILTER_FLAG_LOG"]})


def test_empty_object_is_no_filter_as_in_runc() -> None:
    # runc 1.1 (specconv.SetupSeccomp): no defaultAction and no syscalls means seccomp is off.
    seccomp.check({})
    assert not seccomp.enabled({})
    assert not seccomp.enabled({"architectures": ["SCMP_ARCH_X86"]})
    assert seccomp.enabled(BASE)


CASES = [
    (
        "action",
        lambda p: p["syscalls"][1].update(action="SCMP_ACT_FOO"),
        'syscalls[1].action: unknown action "SCMP_ACT_FOO"',
    ),
    ("default action", lambda p: p.update(defaultAction="ALLOW"), 'defaultAction: unknown action "ALLOW"'),
    ("no default action", lambda p: p.pop("defaultAction"), "defaultAction: is required"),
    (
        "notify default",
        lambda p: p.update(defaultAction="SCMP_ACT_NOTIFY", listenerPath="/a"),
        "defaultAction: SCMP_ACT_NOTIFY cannot be used as default action",
    ),
    ("arch", lambda p: p["architectures"].append("x86_64"), 'architectures[2]: unknown architecture "x86_64"'),
    ("arch not string", lambda p: p.update(architectures=[1]), "architectures[0]: must be a string"),
    ("archs not list", lambda p: p.update(architectures="SCMP_ARCH_X86"), "architectures: must be an array"),
    (
        "flag",
        lambda p: p.update(flags=["SECCOMP_FILTER_FLAG_NEW_LISTENER"]),
        'flags[0]: unknown flag "SECCOMP_FILTER_FLAG_NEW_LISTENER"',
    ),
    (
        "errnoRet with allow",
        lambda p: p["syscalls"][0].update(action="SCMP_ACT_ALLOW"),
        "syscalls[0].errnoRet: is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE",
    ),
    (
        "defaultErrnoRet with kill",
        lambda p: p.update(defaultAction="SCMP_ACT_KILL", defaultErrnoRet=1),
        "defaultErrnoRet: is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE",
    ),
    (
        "errnoRet negative",
        lambda p: p["syscalls"][0].update(errnoRet=-1),
        "syscalls[0].errnoRet: must be an unsigned integer up to 65535",
    ),
    (
        "errnoRet too big",
        lambda p: p["syscalls"][0].update(errnoRet=65536),
        "syscalls[0].errnoRet: must be an unsigned integer up to 65535",
    ),
    (
        "errnoRet bool",
        lambda p: p["syscalls"][0].update(errnoRet=True),
        "syscalls[0].errnoRet: must be an unsigned integer",
    ),
    (
        "no names",
        lambda p: p["syscalls"][0].update(names=[]),
        "syscalls[0].names: must contain at least one syscall name",
    ),
    ("empty name", lambda p: p["syscalls"][0]["names"].append(""), "syscalls[0].names[2]: must be a non-empty string"),
    ("no action", lambda p: p["syscalls"][0].pop("action"), "syscalls[0].action: is required"),
    ("rule not object", lambda p: p["syscalls"].append("mkdir"), "syscalls[2]: must be an object"),
    ("syscalls not list", lambda p: p.update(syscalls={}), "syscalls: must be an array"),
    (
        "arg index",
        lambda p: p["syscalls"][1]["args"][0].update(index=6),
        "syscalls[1].args[0].index: must be an argument index from 0 to 5",
    ),
    (
        "arg no value",
        lambda p: p["syscalls"][1]["args"][0].pop("value"),
        "syscalls[1].args[0].value: must be an unsigned 64-bit integer",
    ),
    (
        "arg value big",
        lambda p: p["syscalls"][1]["args"][0].update(value=2**64),
        "syscalls[1].args[0].value: must be an unsigned 64-bit integer",
    ),
    (
        "arg valueTwo",
        lambda p: p["syscalls"][1]["args"][0].update(valueTwo=-1),
        "syscalls[1].args[0].valueTwo: must be an unsigned 64-bit integer",
    ),
    (
        "arg op",
        lambda p: p["syscalls"][1]["args"][0].update(op="SCMP_CMP_LIKE"),
        'syscalls[1].args[0].op: unknown operator "SCMP_CMP_LIKE"',
    ),
    ("arg not object", lambda p: p["syscalls"][1].update(args=[1]), "syscalls[1].args[0]: must be an object"),
    (
        "notify without listener",
        lambda p: p["syscalls"][0].update(action="SCMP_ACT_NOTIFY", errnoRet=None),
        "syscalls[0].action: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath",
    ),
    (
        "notify on write",
        lambda p: p.update(listenerPath="/a", syscalls=[{"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}]),
        "syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for the write syscall",
    ),
    (
        "notify on sendmsg",
        lambda p: p.update(listenerPath="/a", syscalls=[{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]),
        "syscalls[0].names[0]: SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall",
    ),
    ("relative listener", lambda p: p.update(listenerPath="agent.sock"), "listenerPath: must be an absolute path"),
    (
        "metadata without listener",
        lambda p: p.update(listenerMetadata="x"),
        "listenerMetadata: must not be set without listenerPath",
    ),
    (
        "metadata not string",
        lambda p: p.update(listenerPath="/a", listenerMetadata=1),
        "listenerMetadata: must be a string",
    ),
]


@pytest.mark.parametrize(("change", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_names_the_field(change: Any, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        seccomp.check(edited(change))
    assert str(err.value).startswith(f"config.json: linux.seccomp.{words}")
    assert "\n" not in str(err.value)


def test_wait_killable_recv_needs_a_newer_libseccomp() -> None:
    # Known (features.md knownFlags) but libseccomp 2.5 has no attribute for it.
    if real_lib.api_get() >= 7:
        seccomp.check({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]})
        return
    with pytest.raises(
        ConfigError, match=r"flags\[0\]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is not supported by libseccomp 2\."
    ):
        seccomp.check({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]})


def test_check_does_not_load_libseccomp() -> None:
    # create pays for check on every container: no ctypes, no libseccomp.
    code = (
        f"import sys; from hull.runtime import bundle, seccomp; seccomp.check({BASE!r}); "
        "print('hull.runtime.libseccomp' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ---------------------------------------------------------------- building the filter


class FakeLib(types.ModuleType):
    """The binding's surface, recording what seccomp.build asks of libseccomp."""

    def __init__(self, unknown: tuple[str, ...] = (), native: str = "x86_64") -> None:
        super().__init__("fake_libseccomp")
        for name in dir(real_lib):
            if name.isupper():
                setattr(self, name, getattr(real_lib, name))
        self.act_errno = real_lib.act_errno
        self.act_trace = real_lib.act_trace
        self.unknown = unknown
        self.native = native
        self.calls: list[tuple[Any, ...]] = []
        self.released = False

    def init(self, default: int) -> int:
        self.calls.append(("init", default))
        return 42

    def release(self, ctx: int) -> None:
        self.released = True

    def arch_resolve_name(self, name: str) -> int:
        return {"x86_64": 1, "x86": 2, "x32": 3, "aarch64": 4}[name]

    def arch_add(self, ctx: int, arch: int) -> None:
        if arch == {"x86_64": 1}.get(self.native):
            raise OSError(errno.EEXIST, "exists")
        self.calls.append(("arch_add", arch))

    def attr_set(self, ctx: int, attr: int, value: int) -> None:
        self.calls.append(("attr_set", attr, value))

    def syscall_resolve_name(self, name: str) -> int:
        return -1 if name in self.unknown else sum(name.encode())

    def rule_add_array(self, ctx: int, action: int, nr: int, args: list[tuple[int, int, int, int]]) -> None:
        self.calls.append(("rule", action, nr, list(args)))


def nr(name: str) -> int:
    return sum(name.encode())


def rules(lib: FakeLib) -> list[tuple[Any, ...]]:
    return [c[1:] for c in lib.calls if c[0] == "rule"]


def test_build_default_arches_nnp_and_rules() -> None:
    lib = FakeLib()
    ctx = seccomp.build(BASE, lib)
    assert ctx == 42 and not lib.released
    assert lib.calls[0] == ("init", real_lib.SCMP_ACT_ALLOW)
    # The native arch is already there (EEXIST is ignored, as libseccomp-golang does).
    assert ("arch_add", 2) in lib.calls and ("arch_add", 1) not in lib.calls
    # no_new_privs is left to process.noNewPrivileges (runc's SetNoNewPrivsBit(false)).
    assert ("attr_set", real_lib.SCMP_FLTATR_CTL_NNP, 0) in lib.calls
    assert rules(lib) == [
        (real_lib.act_errno(13), nr("mkdir"), []),
        (real_lib.act_errno(13), nr("mkdirat"), []),
        (real_lib.act_errno(1), nr("personality"), [(0, real_lib.SCMP_CMP_EQ, 8, 0)]),
    ]


def test_actions_and_errno_defaults() -> None:
    lib = FakeLib()
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [
            {"names": ["a"], "action": "SCMP_ACT_KILL"},
            {"names": ["b"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["c"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["d"], "action": "SCMP_ACT_TRACE"},
            {"names": ["e"], "action": "SCMP_ACT_TRACE", "errnoRet": 5},
            {"names": ["f"], "action": "SCMP_ACT_TRAP"},
            {"names": ["g"], "action": "SCMP_ACT_LOG"},
            {"names": ["h"], "action": "SCMP_ACT_NOTIFY"},
            {"names": ["i"], "action": "SCMP_ACT_ALLOW"},
        ],
    }
    seccomp.build(profile, lib)
    assert lib.calls[0] == ("init", 0x00050000 | 38)
    assert [r[0] for r in rules(lib)] == [
        0x00000000,
        0x00000000,
        0x80000000,
        0x7FF00000 | 1,
        0x7FF00000 | 5,
        0x00030000,
        0x7FFC0000,
        0x7FC00000,
        0x7FFF0000,
    ]


def test_rule_equal_to_default_is_skipped() -> None:
    # libseccomp refuses it; runc skips it. ERRNO(EPERM) equals a default ERRNO without errnoRet.
    lib = FakeLib()
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["a"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["b"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2},
        ],
    }
    seccomp.build(profile, lib)
    assert rules(lib) == [(real_lib.act_errno(2), nr("b"), [])]


def test_unknown_names_are_skipped() -> None:
    lib = FakeLib(unknown=("no_such_call",))
    seccomp.build(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["no_such_call", "getpid"], "action": "SCMP_ACT_LOG"}],
        },
        lib,
    )
    assert rules(lib) == [(real_lib.SCMP_ACT_LOG, nr("getpid"), [])]


def test_args_on_distinct_indexes_are_one_rule_and_repeated_index_splits() -> None:
    eq = real_lib.SCMP_CMP_EQ
    masked = real_lib.SCMP_CMP_MASKED_EQ
    anded = [
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 6, "valueTwo": 2, "op": "SCMP_CMP_MASKED_EQ"},
    ]
    ored = [
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 3, "op": "SCMP_CMP_EQ"},
    ]
    lib = FakeLib()
    seccomp.build(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": anded},
                {"names": ["tkill", "tgkill"], "action": "SCMP_ACT_ERRNO", "args": ored},
            ],
        },
        lib,
    )
    errno_eperm = real_lib.act_errno(1)
    assert rules(lib) == [
        (errno_eperm, nr("kill"), [(0, eq, 1, 0), (1, masked, 6, 2)]),
        (errno_eperm, nr("tkill"), [(0, eq, 1, 0)]),
        (errno_eperm, nr("tkill"), [(0, eq, 2, 0)]),
        (errno_eperm, nr("tkill"), [(1, eq, 3, 0)]),
        (errno_eperm, nr("tgkill"), [(0, eq, 1, 0)]),
        (errno_eperm, nr("tgkill"), [(0, eq, 2, 0)]),
        (errno_eperm, nr("tgkill"), [(1, eq, 3, 0)]),
    ]  # fmt: skip


def test_flags_become_filter_attributes() -> None:
    lib = FakeLib()
    flags = ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    seccomp.build({"defaultAction": "SCMP_ACT_ALLOW", "flags": flags}, lib)
    attrs = [c[1:] for c in lib.calls if c[0] == "attr_set"]
    assert attrs == [
        (real_lib.SCMP_FLTATR_CTL_NNP, 0),
        (real_lib.SCMP_FLTATR_CTL_TSYNC, 1),
        (real_lib.SCMP_FLTATR_CTL_LOG, 1),
        (real_lib.SCMP_FLTATR_CTL_SSB, 1),
    ]


def test_a_refused_rule_is_a_setup_error_and_releases_the_filter() -> None:
    lib = FakeLib()

    def refuse(ctx: int, action: int, nr: int, args: list[tuple[int, int, int, int]]) -> None:
        raise OSError(errno.EEXIST, "File exists")

    lib.rule_add_array = refuse  # type: ignore[method-assign]
    with pytest.raises(SetupError, match="linux.seccomp: adding a rule for syscall mkdir: File exists"):
        seccomp.build(BASE, lib)
    assert lib.released


def test_real_binding_resolves_names_and_builds_a_filter_without_loading() -> None:
    # The ctypes signatures against the installed libseccomp.so.2 (nothing is loaded into the kernel).
    assert real_lib.syscall_resolve_name("mkdir") == 83 or real_lib.arch_native() != real_lib.arch_resolve_name(
        "x86_64"
    )
    assert real_lib.syscall_resolve_name("hull_no_such_syscall") == real_lib.NR_SCMP_ERROR
    assert real_lib.arch_resolve_name("x86") != 0
    assert real_lib.version() >= (2, 5, 0)
    ctx = seccomp.build(BASE, real_lib)
    real_lib.release(ctx)
    ctx = real_lib.init(real_lib.SCMP_ACT_ALLOW)
    try:
        with pytest.raises(OSError) as err:
            real_lib.arch_add(ctx, real_lib.arch_native())
        assert err.value.errno == errno.EEXIST
    finally:
        real_lib.release(ctx)


def test_features_lists_what_check_accepts() -> None:
    doc, version = seccomp.features()
    assert doc["enabled"] is True
    assert set(doc["actions"]) == set(seccomp.ACTIONS)
    assert set(doc["operators"]) == set(seccomp.OPERATORS)
    assert set(doc["archs"]) == set(seccomp.ARCHITECTURES)
    assert set(doc["supportedFlags"]) <= set(doc["knownFlags"]) == set(seccomp.FLAGS)
    assert version == ".".join(map(str, real_lib.version()))


# ---------------------------------------------------------------- the relay of the notify fd (no root)


def test_start_relays_the_notify_fd_to_the_agent_with_the_process_state(tmp_path: Any) -> None:
    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    agent.bind(str(tmp_path / "agent.sock"))
    agent.listen(1)
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "agent.sock"), "listenerMetadata": "m"}
    init_side, start_side = socket.socketpair()
    r, w = os.pipe()  # stands in for the notify fd
    try:
        # init: the fd with its marker, then a failure report, then EOF (as at exec).
        unixsock.send_fd(init_side, r, seccomp.RELAY_MARKER)
        init_side.sendall(b"error boom")
        init_side.close()
        state = b'{"ociVersion": "1.1.0", "id": "c1", "status": "created", "pid": 1234, "bundle": "/b"}'
        reply = seccomp.read_start_reply(start_side, profile, 1234, state)
        assert reply == b"error boom"
        conn, _ = agent.accept()
        data, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(16))
        assert conn.recv(1) == b"", "one message per connection, then closed (config-linux.md)"
        doc = json.loads(data)
        assert doc["fds"] == ["seccompFd"] and doc["pid"] == 1234 and doc["metadata"] == "m"
        assert doc["state"]["status"] == "created" and doc["state"]["id"] == "c1" and doc["ociVersion"]
        ((level, kind, payload),) = anc
        got = int.from_bytes(payload[:4], "little")
        os.write(w, b"x")
        assert os.read(got, 1) == b"x", "the agent holds the same open file"
        os.close(got)
        conn.close()
    finally:
        os.close(r)
        os.close(w)
        start_side.close()
        agent.close()


def test_relay_to_an_absent_agent_is_a_setup_error(tmp_path: Any) -> None:
    init_side, start_side = socket.socketpair()
    r, w = os.pipe()
    try:
        unixsock.send_fd(init_side, r, seccomp.RELAY_MARKER)
        profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "none.sock")}
        with pytest.raises(SetupError, match="failed to connect with seccomp agent .*none.sock"):
            seccomp.read_start_reply(start_side, profile, 1, b"{}")
    finally:
        for fd in (r, w):
            os.close(fd)
        init_side.close()
        start_side.close()
