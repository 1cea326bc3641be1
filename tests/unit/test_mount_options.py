"""A config mount's ``options`` as mount(2) flags, propagation, mount_setattr(2) attributes and fs data."""

from __future__ import annotations

import pytest

from hull.runtime import linux as L
from hull.runtime.mount_options import MountOptionError, all_option_names, parse_options
from hull.runtime.spec_template import default_spec


def test_no_options_means_no_flags_and_no_data() -> None:
    parsed = parse_options([])

    assert parsed.flags == 0
    assert parsed.propagation == []
    assert (parsed.attr_set, parsed.attr_clr) == (0, 0)
    assert parsed.data_string == ""
    assert not parsed.is_bind


# (option that sets the flag, option that clears it, flag)
FLAG_PAIRS = [
    ("ro", "rw", L.MS_RDONLY),
    ("nosuid", "suid", L.MS_NOSUID),
    ("nodev", "dev", L.MS_NODEV),
    ("noexec", "exec", L.MS_NOEXEC),
    ("sync", "async", L.MS_SYNCHRONOUS),
    ("mand", "nomand", L.MS_MANDLOCK),
    ("noatime", "atime", L.MS_NOATIME),
    ("nodiratime", "diratime", L.MS_NODIRATIME),
    ("relatime", "norelatime", L.MS_RELATIME),
    ("strictatime", "nostrictatime", L.MS_STRICTATIME),
    ("silent", "loud", L.MS_SILENT),
    ("acl", "noacl", L.MS_POSIXACL),
    ("iversion", "noiversion", L.MS_I_VERSION),
    ("lazytime", "nolazytime", L.MS_LAZYTIME),
]


@pytest.mark.parametrize(("setter", "clearer", "flag"), FLAG_PAIRS, ids=[p[0] for p in FLAG_PAIRS])
def test_flag_options_apply_in_order_the_last_one_wins(setter: str, clearer: str, flag: int) -> None:
    assert parse_options([setter]).flags == flag
    assert parse_options([clearer]).flags == 0
    assert parse_options([setter, clearer]).flags & flag == 0
    assert parse_options([clearer, setter]).flags & flag == flag
    assert parse_options([setter, clearer]).data == []


def test_ro_then_rw_is_read_write_and_other_flags_survive() -> None:
    parsed = parse_options(["nosuid", "ro", "nodev", "rw"])

    assert parsed.flags == L.MS_NOSUID | L.MS_NODEV


@pytest.mark.parametrize(
    ("option", "flag"),
    [
        ("bind", L.MS_BIND),
        ("rbind", L.MS_BIND | L.MS_REC),
        ("remount", L.MS_REMOUNT),
        ("dirsync", L.MS_DIRSYNC),
        ("nosymfollow", L.MS_NOSYMFOLLOW),
        ("defaults", 0),
    ],
)
def test_single_flag_options(option: str, flag: int) -> None:
    parsed = parse_options([option])

    assert parsed.flags == flag
    assert parsed.data == []


@pytest.mark.parametrize("option", ["bind", "rbind"])
def test_bind_and_rbind_are_bind_mounts(option: str) -> None:
    assert parse_options(["ro", option]).is_bind


def test_runc_default_dev_tmpfs_options() -> None:
    parsed = parse_options(["nosuid", "strictatime", "mode=755", "size=65536k"])

    assert parsed.flags == L.MS_NOSUID | L.MS_STRICTATIME
    assert parsed.data_string == "mode=755,size=65536k"


def test_unknown_options_are_passed_through_as_filesystem_data_in_order() -> None:
    parsed = parse_options(["mode=755", "nodev", "size=64k", "uid=1000", "newinstance"])

    assert parsed.flags == L.MS_NODEV
    assert parsed.data == ["mode=755", "size=64k", "uid=1000", "newinstance"]
    assert parsed.data_string == "mode=755,size=64k,uid=1000,newinstance"


def test_filesystem_data_values_are_kept_verbatim() -> None:
    # overlayfs options carry paths and ':' lists; they reach the filesystem untouched.
    parsed = parse_options(["lowerdir=/a:/b", "upperdir=/u", "workdir=/w", "xino=off"])

    assert parsed.data_string == "lowerdir=/a:/b,upperdir=/u,workdir=/w,xino=off"
    assert parsed.flags == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("private", L.MS_PRIVATE),
        ("rprivate", L.MS_PRIVATE | L.MS_REC),
        ("shared", L.MS_SHARED),
        ("rshared", L.MS_SHARED | L.MS_REC),
        ("slave", L.MS_SLAVE),
        ("rslave", L.MS_SLAVE | L.MS_REC),
        ("unbindable", L.MS_UNBINDABLE),
        ("runbindable", L.MS_UNBINDABLE | L.MS_REC),
    ],
)
def test_propagation_options_are_separate_from_mount_flags(option: str, value: int) -> None:
    parsed = parse_options(["rbind", option])

    assert parsed.propagation == [value]
    assert parsed.flags == L.MS_BIND | L.MS_REC
    assert parsed.data == []


def test_propagation_changes_keep_their_order() -> None:
    # mount(2) changes propagation one type per call; the order given is the order applied.
    parsed = parse_options(["rprivate", "shared", "rslave"])

    assert parsed.propagation == [L.MS_PRIVATE | L.MS_REC, L.MS_SHARED, L.MS_SLAVE | L.MS_REC]


# (option, attr_set, attr_clr) for mount_setattr(2)
RECURSIVE = [
    ("rro", L.MOUNT_ATTR_RDONLY, 0),
    ("rrw", 0, L.MOUNT_ATTR_RDONLY),
    ("rnosuid", L.MOUNT_ATTR_NOSUID, 0),
    ("rsuid", 0, L.MOUNT_ATTR_NOSUID),
    ("rnodev", L.MOUNT_ATTR_NODEV, 0),
    ("rdev", 0, L.MOUNT_ATTR_NODEV),
    ("rnoexec", L.MOUNT_ATTR_NOEXEC, 0),
    ("rexec", 0, L.MOUNT_ATTR_NOEXEC),
    ("rnodiratime", L.MOUNT_ATTR_NODIRATIME, 0),
    ("rdiratime", 0, L.MOUNT_ATTR_NODIRATIME),
    ("rnosymfollow", L.MOUNT_ATTR_NOSYMFOLLOW, 0),
    ("rsymfollow", 0, L.MOUNT_ATTR_NOSYMFOLLOW),
    # The atime mode is one field: setting it needs MOUNT_ATTR__ATIME in attr_clr (mount_setattr(2)).
    ("rnoatime", L.MOUNT_ATTR_NOATIME, L.MOUNT_ATTR__ATIME),
    ("rstrictatime", L.MOUNT_ATTR_STRICTATIME, L.MOUNT_ATTR__ATIME),
    ("rrelatime", L.MOUNT_ATTR_RELATIME, L.MOUNT_ATTR__ATIME),
]


@pytest.mark.parametrize(("option", "attr_set", "attr_clr"), RECURSIVE, ids=[r[0] for r in RECURSIVE])
def test_recursive_options_become_mount_setattr_attributes(option: str, attr_set: int, attr_clr: int) -> None:
    parsed = parse_options(["rbind", option])

    assert (parsed.attr_set, parsed.attr_clr) == (attr_set, attr_clr)
    assert parsed.flags == L.MS_BIND | L.MS_REC  # rro is not MS_RDONLY: it applies to every submount
    assert parsed.data == []


@pytest.mark.parametrize("option", ["ratime", "rnorelatime", "rnostrictatime"])
def test_runc_recursive_atime_clearing_options_are_understood(option: str) -> None:
    # runc's recAttrFlags table has these too; passed to the filesystem as data they would fail the mount.
    parsed = parse_options(["rbind", option])

    assert parsed.data == []
    assert option in all_option_names()


def test_combined_recursive_options_accumulate() -> None:
    parsed = parse_options(["rbind", "rro", "rnosuid", "rnodev", "rnoexec"])

    assert parsed.attr_set == L.MOUNT_ATTR_RDONLY | L.MOUNT_ATTR_NOSUID | L.MOUNT_ATTR_NODEV | L.MOUNT_ATTR_NOEXEC
    assert parsed.attr_clr == 0


def test_tmpcopyup_is_accepted_and_not_passed_to_the_filesystem() -> None:
    parsed = parse_options(["tmpcopyup", "mode=755"])

    assert parsed.data == ["mode=755"]
    assert parsed.flags == 0


@pytest.mark.parametrize("option", ["idmap", "ridmap"])
def test_idmapped_mounts_are_reported_unsupported(option: str) -> None:
    with pytest.raises(MountOptionError) as info:
        parse_options(["rbind", option])

    assert option in str(info.value)
    assert "not supported" in str(info.value)


def test_every_mount_of_runc_default_config_parses() -> None:
    for mount in default_spec()["mounts"]:
        parsed = parse_options(mount.get("options", []))
        assert not parsed.is_bind

    sysfs = parse_options(["nosuid", "noexec", "nodev", "ro"])
    assert sysfs.flags == L.MS_NOSUID | L.MS_NOEXEC | L.MS_NODEV | L.MS_RDONLY
    devpts = parse_options(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"])
    assert devpts.data_string == "newinstance,ptmxmode=0666,mode=0620,gid=5"


def test_all_option_names_lists_flags_propagation_and_recursive_names_once_sorted() -> None:
    names = all_option_names()

    assert names == sorted(set(names))
    for name in ("ro", "rw", "bind", "rbind", "nosuid", "rprivate", "rshared", "rro", "rnoexec"):
        assert name in names
    for data_only in ("mode=755", "size=64k"):
        assert data_only not in names
