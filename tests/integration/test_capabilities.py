"""Process privileges (config.md "process": capabilities, noNewPrivileges, apparmorProfile, selinuxLabel).

Mostly differential: the same bundle under runc 1.1.5 and hull-runtime, and
the Cap*/NoNewPrivs lines of /proc/self/status compared. Then what a user
would check by hand: a capability left out really is missing (chown fails),
one given really works, also for a non-root user through the ambient set;
and the CVE-2022-29162 regression (nothing in the inheritable set the config
did not ask for, so a program with inheritable file capabilities gains none).

Not testable on this host (neither LSM is enabled, see test_host_has_no_lsm):
that an AppArmor profile or SELinux label is actually applied; only that a
config asking for one fails at create as runc's does.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hull.runtime.capabilities import NAMES
from tests.conftest import Runtime
from tests.integration._helpers import chain, run_fails, run_ok, set_process, sh
from tests.integration.test_differential import compare_output, run_both, user_namespace

Edit = Callable[[dict[str, Any]], None]

RUNC_DEFAULT = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
# moby's oci/caps/defaults.go (bounding, effective, permitted; inheritable empty since CVE-2022-24769).
DOCKER_DEFAULT = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
# containers-common's containers.conf default_capabilities (podman).
PODMAN_DEFAULT = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
]
STATUS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")


@pytest.fixture
def both(runc: Runtime, runtime: Runtime) -> dict[str, Runtime]:
    return {"runc": runc, "hull-runtime": runtime}


@pytest.fixture
def cid() -> str:
    return "caps-" + uuid.uuid4().hex[:10]


def host_bounding() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))


def caps(sets: dict[str, list[str]] | None) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        if sets is None:
            config["process"].pop("capabilities", None)
        else:
            config["process"]["capabilities"] = sets

    return edit


def all_sets(names: list[str], kinds: tuple[str, ...] = ("bounding", "effective", "permitted")) -> Edit:
    return caps({k: list(names) for k in kinds})


def status_lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.split(":")[0] in STATUS]


def status(text: str) -> dict[str, int]:
    return {line.split(":")[0]: int(line.split()[1], 16) for line in status_lines(text)}


def mask(*names: str) -> int:
    return sum(1 << NAMES.index(n) for n in names)


HELD = [n for i, n in enumerate(NAMES) if host_bounding() >> i & 1]  # all the runtime itself may give
USER = set_process(user={"uid": 1000, "gid": 1000})
TMP = {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]}


def with_tmp(config: dict[str, Any]) -> None:
    config["mounts"].append(dict(TMP))


# ---------------------------------------------------------------- differential: /proc/self/status


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(None, id="runc-spec-default"),
        pytest.param(all_sets(DOCKER_DEFAULT), id="docker-default"),
        pytest.param(all_sets(PODMAN_DEFAULT), id="podman-default"),
        pytest.param(caps({}), id="empty-object"),
        pytest.param(caps(None), id="no-object"),
        pytest.param(
            chain(
                USER,
                all_sets(["CAP_CHOWN", "CAP_KILL"], ("bounding", "effective", "permitted", "inheritable", "ambient")),
            ),
            id="uid1000-with-ambient",
        ),
        pytest.param(chain(USER, all_sets(PODMAN_DEFAULT)), id="uid1000-without-ambient"),
        pytest.param(USER, id="uid1000-runc-default-ambient-without-inheritable"),
        pytest.param(
            chain(USER, caps({"bounding": HELD, "permitted": HELD, "inheritable": ["CAP_KILL"], "ambient": HELD})),
            id="uid1000-ambient-partly-inheritable",
        ),
        pytest.param(all_sets(HELD, ("bounding", "effective", "permitted", "inheritable", "ambient")), id="all-held"),
        pytest.param(set_process(noNewPrivileges=True), id="no-new-privileges-true"),
        pytest.param(set_process(noNewPrivileges=False), id="no-new-privileges-false"),
        pytest.param(
            caps(
                {"bounding": ["CAP_KILL", "CAP_FOO"], "effective": ["cap_chown", "CAP_KILL"], "permitted": ["CAP_KILL"]}
            ),
            id="unknown-names-ignored",
        ),
        pytest.param(caps({"bounding": ["CAP_KILL"], "bogus": ["CAP_CHOWN"]}), id="unknown-set-ignored"),
        pytest.param(chain(user_namespace(0, 0), all_sets(DOCKER_DEFAULT)), id="userns-docker-default"),
        pytest.param(
            caps({"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL", "CAP_CHOWN"]}), id="permitted-beyond-bounding"
        ),
    ],
)
def test_proc_status_caps(
    both: dict[str, Runtime], make_bundle: Callable[..., Path], cid: str, edit: Edit | None
) -> None:
    bundle = make_bundle(["cat", "/proc/self/status"], edit)
    compare_output("/proc/self/status " + "/".join(STATUS), both, bundle, cid, status_lines)


@pytest.mark.parametrize(
    "edit",
    [
        # This VM's root lacks CAP_SYS_RESOURCE: permitted cannot grow, so capset(2) refuses.
        pytest.param(
            all_sets(list(NAMES), ("bounding", "effective", "permitted", "inheritable", "ambient")), id="all-known"
        ),
        pytest.param(
            caps({"bounding": RUNC_DEFAULT, "permitted": RUNC_DEFAULT, "effective": ["CAP_CHOWN"]}),
            id="effective-beyond-permitted",
        ),
        pytest.param(caps({"bounding": RUNC_DEFAULT, "inheritable": ["CAP_CHOWN"]}), id="inheritable-beyond-bounding"),
    ],
)
def test_impossible_sets_fail_under_both(
    both: dict[str, Runtime], make_bundle: Callable[..., Path], cid: str, edit: Edit
) -> None:
    assert not host_bounding() >> NAMES.index("CAP_SYS_RESOURCE") & 1, "premise: the runtime lacks CAP_SYS_RESOURCE"
    results = run_both(both, make_bundle(["true"], edit), cid)
    assert results["runc"].returncode != 0
    assert "caps" in results["hull-runtime"].stderr or "capset" in results["hull-runtime"].stderr


def test_impossible_set_names_the_field(runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle(
        ["true"], caps({"bounding": RUNC_DEFAULT, "permitted": RUNC_DEFAULT, "effective": ["CAP_CHOWN"]})
    )
    err = run_fails(runtime, bundle)
    assert "process.capabilities.effective[0]: CAP_CHOWN is not in process.capabilities.permitted" in err
    assert runtime("list", "-q").stdout.strip() == ""  # nothing was left behind


def test_unknown_names_warn_and_run(runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle(
        ["cat", "/proc/self/status"], caps({"bounding": ["CAP_KILL", "CAP_FOO"], "permitted": ["CAP_KILL"]})
    )
    proc = runtime("run", "--bundle", str(bundle), "c1")
    assert status(proc.stdout)["CapBnd"] == mask("CAP_KILL") == status(proc.stdout)["CapPrm"]
    assert "ignoring unknown or unavailable capabilities: [CAP_FOO] (process.capabilities.bounding[1])" in proc.stderr


def test_absent_object_means_no_capabilities(runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    # runc gives an empty set of everything when process.capabilities is absent; so does hull-runtime.
    got = status(run_ok(runtime, make_bundle(["cat", "/proc/self/status"], caps(None))))
    assert [got[k] for k in STATUS[:5]] == [0, 0, 0, 0, 0]


def test_no_new_privileges_is_visible(runtime: Runtime, make_bundle: Callable[..., Path]) -> None:
    on = status(run_ok(runtime, make_bundle(["cat", "/proc/self/status"], set_process(noNewPrivileges=True)), "on"))
    off = status(run_ok(runtime, make_bundle(["cat", "/proc/self/status"], set_process(noNewPrivileges=False)), "off"))
    assert (on["NoNewPrivs"], off["NoNewPrivs"]) == (1, 0)


# ---------------------------------------------------------------- a dropped capability is really missing

CHOWN_SCRIPT = "touch /tmp/f && chown 2000 /tmp/f && stat -c %u /tmp/f"


@pytest.mark.parametrize("name", ["hull-runtime", "runc"])
@pytest.mark.parametrize(
    ("edit", "works"),
    [
        pytest.param(None, False, id="root-default-without-chown"),
        pytest.param(all_sets([*RUNC_DEFAULT, "CAP_CHOWN"]), True, id="root-with-chown"),
        pytest.param(chain(USER, all_sets(["CAP_CHOWN"])), False, id="uid1000-chown-not-ambient"),
        pytest.param(
            chain(USER, all_sets(["CAP_CHOWN"], ("bounding", "effective", "permitted", "inheritable", "ambient"))),
            True,
            id="uid1000-chown-ambient",
        ),
    ],
)
def test_chown_needs_cap_chown(
    both: dict[str, Runtime], make_bundle: Callable[..., Path], name: str, edit: Edit | None, works: bool
) -> None:
    bundle = make_bundle(sh(CHOWN_SCRIPT), chain(with_tmp, *([edit] if edit else [])))
    proc = both[name]("run", "--bundle", str(bundle), "c1", check=False)
    if works:
        assert (proc.returncode, proc.stdout) == (0, "2000\n"), proc.stderr
    else:
        assert proc.returncode != 0 and "Operation not permitted" in proc.stderr, (proc.stdout, proc.stderr)


# ---------------------------------------------------------------- CVE-2022-29162

VFS_CAP_REVISION_2 = 0x02000000
VFS_CAP_FLAGS_EFFECTIVE = 0x1


def add_file_caps_busybox(bundle: Path, inheritable: int) -> None:
    """/bin/busybox-fcaps: busybox with file capabilities inheritable=``inheritable``, effective bit set.

    A copy (the rootfs's busybox is a copy too): the host's binary is never touched.
    """
    path = bundle / "rootfs" / "bin" / "busybox-fcaps"
    shutil.copy2(bundle / "rootfs" / "bin" / "busybox", path)
    data = struct.pack(
        "<IIIII", VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, 0, inheritable & 0xFFFFFFFF, 0, inheritable >> 32
    )
    os.setxattr(path, "security.capability", data)


@pytest.mark.parametrize("name", ["hull-runtime", "runc"])
@pytest.mark.parametrize(
    ("inheritable", "gained"),
    [
        pytest.param(None, 0, id="cve-2022-29162-default-config-gains-nothing"),
        # The control, so the test can fail: with an inheritable set (what runc < 1.1.2 put
        # there by default) the same exec gains the capabilities.
        pytest.param(RUNC_DEFAULT, mask(*RUNC_DEFAULT), id="control-inheritable-given-is-gained"),
    ],
)
def test_cve_2022_29162_inheritable_not_populated(
    both: dict[str, Runtime], make_bundle: Callable[..., Path], name: str, inheritable: list[str] | None, gained: int
) -> None:
    def edit(config: dict[str, Any]) -> None:
        config["process"]["user"] = {"uid": 1000, "gid": 1000}
        config["process"]["noNewPrivileges"] = False  # let file capabilities count at all
        if inheritable is not None:
            config["process"]["capabilities"]["inheritable"] = inheritable

    # The default config: `spec`'s, whose sets leave inheritable out.
    bundle = make_bundle(["/bin/busybox-fcaps", "cat", "/proc/self/status"], edit)
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["capabilities"].get("inheritable") == inheritable
    add_file_caps_busybox(bundle, mask(*RUNC_DEFAULT))
    got = status(run_ok(both[name], bundle))
    assert got["CapInh"] == (mask(*inheritable) if inheritable else 0)
    assert (got["CapPrm"], got["CapEff"]) == (gained, gained)


# ---------------------------------------------------------------- AppArmor, SELinux


def test_host_has_no_lsm() -> None:
    """The premise of the next tests: this VM has neither AppArmor nor SELinux enabled."""
    enabled = Path("/sys/module/apparmor/parameters/enabled")
    assert not (enabled.exists() and enabled.read_text().startswith("Y"))
    assert not Path("/sys/fs/selinux/enforce").exists()


@pytest.mark.parametrize(
    ("field", "value", "hull_says", "runc_says"),
    [
        pytest.param(
            "apparmorProfile",
            "hull-test-profile",
            "apparmor failed to apply profile: write /proc/self/attr/exec: invalid argument",
            "unable to apply apparmor profile: apparmor failed to apply profile: "
            "write /proc/self/attr/exec: invalid argument",
            id="apparmor",
        ),
        pytest.param(
            "selinuxLabel",
            "system_u:system_r:container_t:s0",
            "process.selinuxLabel: selinux label is specified in config, but selinux is disabled or not supported",
            "selinux label is specified in config, but selinux is disabled or not supported",
            id="selinux",
        ),
    ],
)
def test_lsm_on_a_host_without_it_fails_create(
    both: dict[str, Runtime], make_bundle: Callable[..., Path], field: str, value: str, hull_says: str, runc_says: str
) -> None:
    bundle = make_bundle(["true"], set_process(**{field: value}))
    for name, says in (("runc", runc_says), ("hull-runtime", hull_says)):
        rt = both[name]
        proc = rt("create", "--bundle", str(bundle), "c1", check=False)
        assert proc.returncode != 0 and says in proc.stderr, (name, proc.stderr)
        assert rt("list", "-q").stdout.strip() == ""


# ---------------------------------------------------------------- features


def test_features_list_the_same_capabilities_as_runc(both: dict[str, Runtime]) -> None:
    docs = {name: json.loads(rt("features").stdout)["linux"] for name, rt in both.items()}
    assert docs["hull-runtime"]["capabilities"] == docs["runc"]["capabilities"]
    for key in ("apparmor", "selinux"):
        assert docs["hull-runtime"][key] == docs["runc"][key] == {"enabled": True}
