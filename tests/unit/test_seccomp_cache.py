"""The compiled seccomp filter cache (hull.runtime.seccomp_cache) and loading a compiled program.

libseccomp compiles without privileges, so the programs here are real; the
load goes through the seam (linux.py), replaced by a recorder.
"""

from __future__ import annotations

import copy
import errno
import os
import types
from pathlib import Path
from typing import Any

import pytest

from hull.engine.seccomp_default import default_profile
from hull.engine.spec import DEFAULT_CAPABILITIES
from hull.oci.runtime_config import Process
from hull.runtime import capabilities, libseccomp, privileges, process, seccomp, seccomp_cache
from hull.runtime import linux as L
from hull.runtime.errors import SetupError

DEFAULT = default_profile(list(DEFAULT_CAPABILITIES))
CUSTOM = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
    "flags": ["SECCOMP_FILTER_FLAG_LOG"],
    "syscalls": [
        {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"},
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        },
    ],
}


def cache_dir(root: Path) -> Path:
    return root / seccomp_cache.CACHE_DIR


def entries(root: Path) -> list[Path]:
    return sorted(cache_dir(root).iterdir())


# ---------------------------------------------------------------- compiling and caching


@pytest.mark.parametrize("profile", [DEFAULT, CUSTOM], ids=["default", "custom"])
def test_program_is_libseccomps_export_every_time(tmp_path: Path, profile: dict[str, Any]) -> None:
    first = seccomp_cache.compile_program(profile, libseccomp)
    assert first == seccomp_cache.compile_program(profile, libseccomp)
    assert len(first) % 8 == 0
    assert seccomp_cache.program_for(profile, str(tmp_path)) == first  # a miss: compiled and stored
    assert seccomp_cache.program_for(profile, str(tmp_path)) == first  # a hit
    (entry,) = entries(tmp_path)
    assert entry.name == seccomp_cache.entry_name(profile, libseccomp)
    assert entry.read_bytes().endswith(first)


def test_a_hit_does_not_compile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = seccomp_cache.program_for(DEFAULT, str(tmp_path))

    def refuse(*_: Any) -> bytes:
        raise AssertionError("compiled on a hit")

    monkeypatch.setattr(seccomp_cache, "compile_program", refuse)
    monkeypatch.setattr(seccomp, "build", refuse)
    assert seccomp_cache.program_for(copy.deepcopy(DEFAULT), str(tmp_path)) == program


def test_cache_files_are_private(tmp_path: Path) -> None:
    seccomp_cache.program_for(DEFAULT, str(tmp_path))
    (entry,) = entries(tmp_path)
    assert cache_dir(tmp_path).stat().st_mode & 0o777 == 0o700
    assert entry.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in cache_dir(tmp_path).iterdir()] == [entry.name]  # no temporary file left


def test_key_is_canonical_and_covers_every_input() -> None:
    name = seccomp_cache.entry_name(CUSTOM, libseccomp)
    reordered = {k: CUSTOM[k] for k in reversed(list(CUSTOM))}
    reordered["syscalls"] = [{k: r[k] for k in reversed(list(r))} for r in CUSTOM["syscalls"]]
    assert seccomp_cache.entry_name(reordered, libseccomp) == name

    def changed(edit: Any) -> str:
        profile = copy.deepcopy(CUSTOM)
        edit(profile)
        return seccomp_cache.entry_name(profile, libseccomp)

    variants = [
        changed(lambda p: p.update(defaultErrnoRet=1)),
        changed(lambda p: p.update(defaultAction="SCMP_ACT_KILL")),
        changed(lambda p: p["architectures"].reverse()),
        changed(lambda p: p.update(flags=[])),
        changed(lambda p: p["syscalls"][2]["args"][0].update(value=0x7E020001)),
        changed(lambda p: p["syscalls"][2]["args"][0].update(valueTwo=1)),
        changed(lambda p: p["syscalls"][2]["args"][0].update(op="SCMP_CMP_EQ")),
        changed(lambda p: p["syscalls"][0]["names"].append("close")),
        changed(lambda p: p["syscalls"][1].update(action="SCMP_ACT_KILL_THREAD")),
        changed(lambda p: p["syscalls"].reverse()),
    ]
    assert len({name, *variants}) == len(variants) + 1


@pytest.mark.parametrize(
    "override",
    [{"version": lambda: (2, 5, 5)}, {"api_get": lambda: 3}, {"arch_native": lambda: 0x40000003}],
    ids=["version", "api-level", "native-arch"],
)
def test_key_covers_the_library(override: dict[str, Any]) -> None:
    other = types.ModuleType("libseccomp")
    other.__dict__.update(libseccomp.__dict__)
    other.__dict__.update(override)
    assert seccomp_cache.entry_name(DEFAULT, other) != seccomp_cache.entry_name(DEFAULT, libseccomp)


@pytest.mark.parametrize("damage", ["flip-program", "flip-name", "flip-digest", "truncate", "append", "empty", "mode"])
def test_damaged_entry_is_rebuilt(tmp_path: Path, damage: str) -> None:
    program = seccomp_cache.program_for(CUSTOM, str(tmp_path))
    (entry,) = entries(tmp_path)
    good = entry.read_bytes()
    data = bytearray(good)
    at = {"flip-program": -3, "flip-name": len(seccomp_cache.FORMAT) + 3, "flip-digest": len(seccomp_cache.FORMAT) + 70}
    if damage in at:
        data[at[damage]] ^= 0x01
    elif damage == "truncate":
        del data[-8:]
    elif damage == "append":
        data += bytes(8)
    elif damage == "empty":
        del data[:]
    entry.write_bytes(bytes(data))
    if damage == "mode":
        entry.chmod(0o666)  # others could have written it
    assert seccomp_cache.program_for(CUSTOM, str(tmp_path)) == program
    (rebuilt,) = entries(tmp_path)
    assert rebuilt.read_bytes() == good and rebuilt.stat().st_mode & 0o777 == 0o600


def test_entry_renamed_to_another_profile_is_refused(tmp_path: Path) -> None:
    seccomp_cache.program_for(DEFAULT, str(tmp_path))
    (entry,) = entries(tmp_path)
    other = cache_dir(tmp_path) / seccomp_cache.entry_name(CUSTOM, libseccomp)
    entry.rename(other)
    assert seccomp_cache.program_for(CUSTOM, str(tmp_path)) == seccomp_cache.compile_program(CUSTOM, libseccomp)


def test_symlinked_entry_is_not_followed(tmp_path: Path) -> None:
    # A valid entry for the profile, reached through a symlink, is not read: the link is replaced.
    (tmp_path / "elsewhere").mkdir()
    seccomp_cache.program_for(CUSTOM, str(tmp_path / "elsewhere"))
    (target,) = entries(tmp_path / "elsewhere")
    cache_dir(tmp_path).mkdir(mode=0o700)
    link = cache_dir(tmp_path) / target.name
    link.symlink_to(target)
    assert seccomp_cache.program_for(CUSTOM, str(tmp_path)) == seccomp_cache.compile_program(CUSTOM, libseccomp)
    assert not link.is_symlink() and link.read_bytes() == target.read_bytes()


@pytest.mark.parametrize("kind", ["group-writable", "symlink"])
def test_unsafe_cache_directory_is_not_used(tmp_path: Path, kind: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    root = tmp_path / "root"
    root.mkdir()
    if kind == "symlink":
        cache_dir(root).symlink_to(elsewhere)
    else:
        cache_dir(root).mkdir()
        cache_dir(root).chmod(0o770)
    assert seccomp_cache.program_for(DEFAULT, str(root)) == seccomp_cache.compile_program(DEFAULT, libseccomp)
    assert list(elsewhere.iterdir()) == []
    if kind != "symlink":
        assert entries(root) == []


def test_missing_root_still_gives_the_program(tmp_path: Path) -> None:
    program = seccomp_cache.program_for(DEFAULT, str(tmp_path / "absent" / "root"))
    assert program == seccomp_cache.compile_program(DEFAULT, libseccomp)


@pytest.mark.parametrize(
    "profile",
    [
        None,
        {"syscalls": []},
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}],
        },
        {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"},
        {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]},
    ],
    ids=["none", "disabled", "notify", "listener", "wait-killable"],
)
def test_not_compiled_ahead(tmp_path: Path, profile: dict[str, Any] | None) -> None:
    assert seccomp_cache.program_for(profile, str(tmp_path)) is None
    assert not cache_dir(tmp_path).exists()


def test_profile_libseccomp_refuses_is_left_to_init(tmp_path: Path) -> None:
    # A big-endian architecture cannot join an x86_64 filter: init reports it, as without the cache.
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_S390X"]}
    assert seccomp_cache.program_for(profile, str(tmp_path)) is None
    assert entries(tmp_path) == []
    with pytest.raises(SetupError, match="adding architecture SCMP_ARCH_S390X"):
        seccomp.build(profile, libseccomp)


# ---------------------------------------------------------------- loading a compiled program


class Kernel:
    def __init__(self, fail: list[int] | None = None, result: int = 0) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = list(fail or [])
        self.result = result

    def seccomp(self, flags: int, program: bytes) -> int:
        self.calls.append(("seccomp", flags, program))
        if self.fail:
            code = self.fail.pop(0)
            raise OSError(code, os.strerror(code))
        return self.result

    def prctl_filter(self, program: bytes) -> None:
        self.calls.append(("prctl_filter", program))

    def prctl(self, option: int, *args: int) -> int:
        self.calls.append(("prctl", option, *args))
        return 0


def kernel(monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Kernel:
    k = Kernel(**kw)
    monkeypatch.setattr(L, "seccomp_set_mode_filter", k.seccomp)
    monkeypatch.setattr(L, "prctl_set_seccomp_filter", k.prctl_filter)
    monkeypatch.setattr(L, "prctl", k.prctl)
    return k


PROGRAM = b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # return SECCOMP_RET_ALLOW


@pytest.mark.parametrize(
    ("flags", "bits"),
    [
        ([], 0),
        (["SECCOMP_FILTER_FLAG_LOG"], 2),
        (["SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG"], 6),
        (["SECCOMP_FILTER_FLAG_TSYNC"], 1 | 16),  # with TSYNC_ESRCH, as libseccomp 2.5.4 on Linux >= 5.7
    ],
)
def test_load_passes_the_profiles_flags_and_never_sets_no_new_privs(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], bits: int
) -> None:
    k = kernel(monkeypatch)
    seccomp.install({"defaultAction": "SCMP_ACT_ALLOW", "flags": flags}, b"{}", PROGRAM)
    assert k.calls == [("seccomp", bits, PROGRAM)]


def test_tsync_without_tsync_esrch(monkeypatch: pytest.MonkeyPatch) -> None:
    k = kernel(monkeypatch, fail=[errno.EINVAL])
    seccomp.load_program({"flags": ["SECCOMP_FILTER_FLAG_TSYNC"]}, PROGRAM)
    assert [c[1] for c in k.calls] == [1 | 16, 1]


def test_tsync_left_a_thread_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel(monkeypatch, fail=[errno.EINVAL], result=4242)
    with pytest.raises(SetupError, match="error loading seccomp filter into kernel: No such process"):
        seccomp.load_program({"flags": ["SECCOMP_FILTER_FLAG_TSYNC"]}, PROGRAM)


def test_kernel_without_seccomp_syscall_uses_prctl(monkeypatch: pytest.MonkeyPatch) -> None:
    k = kernel(monkeypatch, fail=[errno.ENOSYS])
    seccomp.load_program({}, PROGRAM)
    assert k.calls == [("seccomp", 0, PROGRAM), ("prctl_filter", PROGRAM)]


def test_refused_load_is_a_setup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel(monkeypatch, fail=[errno.EACCES])
    with pytest.raises(SetupError, match="error loading seccomp filter into kernel: Permission denied"):
        seccomp.load_program({}, PROGRAM)


def test_install_with_a_program_needs_no_libseccomp(monkeypatch: pytest.MonkeyPatch) -> None:
    k = kernel(monkeypatch)

    def no_library() -> Any:
        raise AssertionError("libseccomp used")

    monkeypatch.setattr(seccomp, "_binding", no_library)
    seccomp.install(DEFAULT, b"{}", PROGRAM)
    assert k.calls == [("seccomp", 0, PROGRAM)]


@pytest.mark.parametrize("nnp", [True, False])
def test_finalize_keeps_the_order_with_a_program(monkeypatch: pytest.MonkeyPatch, nnp: bool) -> None:
    # Without no_new_privs the filter comes first (it needs CAP_SYS_ADMIN); with it, last.
    k = kernel(monkeypatch)
    monkeypatch.setattr(capabilities, "drop_bounding", lambda caps: k.calls.append(("drop_bounding",)))
    monkeypatch.setattr(capabilities, "keep_across_user_switch", lambda caps: None)
    monkeypatch.setattr(capabilities, "apply", lambda caps: k.calls.append(("capset",)))
    monkeypatch.setattr(process, "switch_user", lambda proc: k.calls.append(("switch_user",)))
    proc = Process(args=["true"], cwd="/")
    proc.no_new_privileges = nnp
    privileges.finalize(proc, DEFAULT, b"{}", lambda: None, PROGRAM)
    names = [c[0] for c in k.calls]
    if nnp:
        assert names == ["drop_bounding", "switch_user", "capset", "prctl", "seccomp"]
        assert k.calls[3] == ("prctl", L.PR_SET_NO_NEW_PRIVS, 1)
    else:
        assert names == ["seccomp", "drop_bounding", "switch_user", "capset"]
