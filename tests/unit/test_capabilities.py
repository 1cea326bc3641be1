"""Capability names, masks and the calls made through the seam (no root: linux.py is replaced)."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from hull.oci.runtime_config import Process
from hull.runtime import capabilities as C
from hull.runtime import linux as L
from hull.runtime import lsm
from hull.runtime.errors import ConfigError, SetupError

FULL = (1 << 41) - 1
DEFAULT = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]  # `runc spec`'s list


class Kernel:
    """A fake kernel behind the seam: records prctl/capset calls, enforces capset's subset rules."""

    def __init__(self, effective: int = FULL, permitted: int = FULL, inheritable: int = 0, last: int = 40) -> None:
        self.effective, self.permitted, self.inheritable = effective, permitted, inheritable
        self.bounding = (1 << (last + 1)) - 1
        self.ambient = 0
        self.last = last
        self.calls: list[tuple[Any, ...]] = []

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        self.calls.append(("prctl", option, arg2, arg3))
        if option == L.PR_CAPBSET_READ:
            if arg2 > self.last:
                raise OSError(errno.EINVAL, "Invalid argument")
            return self.bounding >> arg2 & 1
        if option == L.PR_CAPBSET_DROP:
            if arg2 > self.last:
                raise OSError(errno.EINVAL, "Invalid argument")
            self.bounding &= ~(1 << arg2)
        if option == L.PR_CAP_AMBIENT:
            if arg2 == L.PR_CAP_AMBIENT_CLEAR_ALL:
                self.ambient = 0
            elif arg2 == L.PR_CAP_AMBIENT_RAISE:
                if not (self.permitted & self.inheritable) >> arg3 & 1:
                    raise OSError(errno.EPERM, "Operation not permitted")
                self.ambient |= 1 << arg3
        return 0

    def capget(self) -> tuple[int, int, int]:
        return self.effective, self.permitted, self.inheritable

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        self.calls.append(("capset", effective, permitted, inheritable))
        ok = (
            permitted & ~self.permitted == 0
            and effective & ~permitted == 0
            and inheritable & ~(self.inheritable | self.bounding) == 0
        )
        if not ok:
            raise OSError(errno.EPERM, "Operation not permitted")
        self.effective, self.permitted, self.inheritable = effective, permitted, inheritable


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Kernel:
    k = Kernel()
    monkeypatch.setattr(L, "prctl", k.prctl)
    monkeypatch.setattr(L, "capget", k.capget)
    monkeypatch.setattr(L, "capset", k.capset)
    monkeypatch.setattr(C, "_last_cap", [k.last])
    return k


def bits(*names: str) -> int:
    return sum(1 << C.NAMES.index(n) for n in names)


def finalize(kernel: Kernel, caps: dict[str, list[str]] | None) -> None:
    C.drop_bounding(caps)
    C.keep_across_user_switch(caps)
    C.apply(caps)


# ---------------------------------------------------------------- names and masks


def test_names_are_the_kernels_numbers() -> None:
    assert len(C.NAMES) == 41 and len(set(C.NAMES)) == 41
    assert C.NAMES[0] == "CAP_CHOWN" and C.NAMES[8] == "CAP_SETPCAP" and C.NAMES[21] == "CAP_SYS_ADMIN"
    assert C.NAMES[40] == "CAP_CHECKPOINT_RESTORE" and C.NAMES[C.CAP_SETPCAP] == "CAP_SETPCAP"


def test_parse_builds_one_mask_per_set(kernel: Kernel) -> None:
    masks, ignored = C.parse({"bounding": DEFAULT, "effective": ["CAP_CHOWN"], "ambient": []})
    assert masks == {
        "bounding": bits(*DEFAULT),
        "effective": 1,
        "inheritable": 0,
        "permitted": 0,
        "ambient": 0,
    }
    assert masks["bounding"] == 0x20000420  # what runc's container shows as CapBnd
    assert ignored == []


def test_absent_object_is_every_set_empty(kernel: Kernel) -> None:
    masks, ignored = C.parse(None)
    assert set(masks.values()) == {0} and ignored == []


def test_unknown_and_unavailable_names_are_ignored_with_their_fields(kernel: Kernel) -> None:
    kernel.last = 37  # a kernel before CAP_PERFMON (5.8)
    C._last_cap[:] = [37]
    caps = {"bounding": ["CAP_KILL", "CAP_FOO", "CAP_BPF"], "effective": ["cap_chown"], "permitted": ["CAP_AUDIT_READ"]}
    masks, ignored = C.parse(caps)
    assert masks["bounding"] == bits("CAP_KILL")
    assert masks["permitted"] == bits("CAP_AUDIT_READ")
    assert ignored == [
        "process.capabilities.bounding[1]",
        "process.capabilities.bounding[2]",
        "process.capabilities.effective[0]",
    ]


def test_unknown_set_names_are_ignored(kernel: Kernel) -> None:
    # config.md: runtimes MUST ignore unknown properties (runc's JSON decoding does).
    masks, ignored = C.parse({"bounding": ["CAP_KILL"], "bounds": ["CAP_CHOWN"]})
    assert masks["bounding"] == bits("CAP_KILL") and ignored == []


def test_check_warns_like_runc(kernel: Kernel, capfd: pytest.CaptureFixture[str]) -> None:
    C.check({"bounding": ["CAP_KILL", "CAP_FOO"], "effective": ["cap_chown"]})
    err = capfd.readouterr().err
    assert "ignoring unknown or unavailable capabilities: [CAP_FOO cap_chown]" in err
    assert "process.capabilities.bounding[1]" in err and "process.capabilities.effective[0]" in err


def test_check_is_quiet_for_known_names(kernel: Kernel, capfd: pytest.CaptureFixture[str]) -> None:
    C.check({k: list(DEFAULT) for k in ("bounding", "effective", "permitted", "ambient")})
    assert capfd.readouterr().err == ""


def test_effective_outside_permitted_is_a_config_error(kernel: Kernel) -> None:
    caps = {"bounding": DEFAULT, "permitted": DEFAULT, "effective": [*DEFAULT, "CAP_CHOWN"]}
    with pytest.raises(
        ConfigError,
        match=r"^process\.capabilities\.effective\[3\]: CAP_CHOWN is not in process\.capabilities\.permitted",
    ):
        C.check(caps)


def test_inheritable_outside_bounding_is_a_config_error(kernel: Kernel) -> None:
    caps = {"bounding": DEFAULT, "inheritable": ["CAP_KILL", "CAP_SYS_ADMIN"]}
    with pytest.raises(
        ConfigError,
        match=r"^process\.capabilities\.inheritable\[1\]: CAP_SYS_ADMIN is not in process\.capabilities\.bounding",
    ):
        C.check(caps)


def test_inheritable_the_process_already_has_is_allowed(kernel: Kernel) -> None:
    kernel.inheritable = bits("CAP_SYS_ADMIN")
    C.check({"bounding": DEFAULT, "inheritable": ["CAP_SYS_ADMIN"]})


def test_last_cap_without_proc_probes_the_bounding_set(kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(C, "_last_cap", [])
    kernel.last = 38

    def no_proc(*args: Any, **kwargs: Any) -> Any:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr("builtins.open", no_proc)
    assert C.last_cap() == 38


# ---------------------------------------------------------------- applying


def test_default_caps_end_with_exactly_the_config(kernel: Kernel) -> None:
    caps = {k: list(DEFAULT) for k in ("bounding", "effective", "permitted", "ambient")}
    finalize(kernel, caps)
    assert kernel.bounding == bits(*DEFAULT)
    assert (kernel.effective, kernel.permitted) == (bits(*DEFAULT), bits(*DEFAULT))
    # CVE-2022-29162: nothing in inheritable the config did not ask for; so no ambient either.
    assert kernel.inheritable == 0 and kernel.ambient == 0


def test_order_bounding_keepcaps_then_capset_then_ambient(kernel: Kernel) -> None:
    caps = {k: ["CAP_KILL"] for k in C.SETS}
    finalize(kernel, caps)
    kinds = [
        "drop"
        if c[:2] == ("prctl", L.PR_CAPBSET_DROP)
        else "keep"
        if c[:3] == ("prctl", L.PR_SET_KEEPCAPS, 1)
        else "unkeep"
        if c[:3] == ("prctl", L.PR_SET_KEEPCAPS, 0)
        else "capset"
        if c[0] == "capset"
        else "ambient"
        if c[:2] == ("prctl", L.PR_CAP_AMBIENT)
        else "other"
        for c in kernel.calls
    ]
    compact = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
    assert compact == ["drop", "keep", "unkeep", "capset", "ambient"]
    drops = [c[2] for c in kernel.calls if c[:2] == ("prctl", L.PR_CAPBSET_DROP)]
    assert drops == [n for n in range(41) if n != C.NAMES.index("CAP_KILL")]
    assert kernel.ambient == bits("CAP_KILL")


def test_ambient_without_inheritable_is_silently_not_raised(kernel: Kernel) -> None:
    # runc's default spec: ambient listed, inheritable absent; the kernel refuses, runc ignores.
    caps = {k: ["CAP_KILL", "CAP_CHOWN"] for k in ("bounding", "effective", "permitted", "ambient")}
    caps["inheritable"] = ["CAP_KILL"]
    finalize(kernel, caps)
    assert kernel.ambient == bits("CAP_KILL")


def test_bounding_is_left_alone_without_setpcap(kernel: Kernel) -> None:
    kernel.effective = FULL & ~(1 << C.CAP_SETPCAP)
    C.drop_bounding({"bounding": []})
    assert not any(c[:2] == ("prctl", L.PR_CAPBSET_DROP) for c in kernel.calls)


def test_bounding_drop_failure_names_the_capability(kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(option: int, arg2: int = 0, *rest: int) -> int:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(L, "prctl", refuse)
    with pytest.raises(SetupError, match=r"process\.capabilities\.bounding: unable to drop CAP_CHOWN"):
        C.drop_bounding({"bounding": []})


def test_capset_refusal_says_what_the_runtime_lacks(kernel: Kernel) -> None:
    kernel.permitted = kernel.effective = FULL & ~bits("CAP_SYS_RESOURCE")
    caps = {k: list(C.NAMES) for k in ("bounding", "effective", "permitted")}
    C.drop_bounding(caps)
    with pytest.raises(
        SetupError, match=r"unable to apply caps: Operation not permitted \(this process lacks CAP_SYS_RESOURCE\)"
    ):
        C.apply(caps)


def test_absent_object_drops_everything(kernel: Kernel) -> None:
    kernel.ambient = bits("CAP_KILL")
    finalize(kernel, None)
    assert (kernel.bounding, kernel.effective, kernel.permitted, kernel.inheritable, kernel.ambient) == (0, 0, 0, 0, 0)


# ---------------------------------------------------------------- AppArmor / SELinux


def test_selinux_label_without_selinux_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lsm, "selinux_enabled", lambda: False)
    proc = Process(args=["true"], cwd="/", selinux_label="system_u:system_r:container_t:s0")
    with pytest.raises(
        ConfigError, match=r"^process\.selinuxLabel: selinux label is specified in config, but selinux is disabled"
    ):
        lsm.check(proc)


def test_attr_write_off_procfs_is_refused(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # CVE-2019-16884: a profile written to a file that only looks like /proc/self/attr/exec.
    fake = tmp_path / "exec"
    fake.write_text("")
    with pytest.raises(SetupError, match="is not on procfs"):
        lsm._write_proc_attr(str(fake), "exec foo", "apparmor failed to apply profile")
    assert fake.read_text() == ""
