"""Which namespaces a container creates or joins, and the text written to /proc for ID maps and time offsets."""

from __future__ import annotations

from typing import Any

import pytest

from hull.oci.runtime_config import IDMapping, Linux, parse_config
from hull.runtime import linux as L
from hull.runtime.namespaces import CLONE_FLAGS, format_id_map, format_time_offsets, plan
from hull.runtime.spec_template import default_spec


def _linux(**linux: Any) -> Linux:
    doc = default_spec()
    doc["linux"] = linux
    return parse_config(doc).linux


def test_runc_default_config_creates_five_new_namespaces_and_joins_none() -> None:
    result = plan(parse_config(default_spec()).linux)

    assert result.join == []
    assert result.new_user is False
    assert result.new_flags == L.CLONE_NEWPID | L.CLONE_NEWNET | L.CLONE_NEWIPC | L.CLONE_NEWUTS | L.CLONE_NEWNS


def test_no_namespaces_listed_means_everything_is_inherited() -> None:
    result = plan(_linux(namespaces=[]))

    assert (result.join, result.new_user, result.new_flags) == ([], False, 0)


def test_new_user_namespace_is_flagged_apart_from_the_other_new_namespaces() -> None:
    result = plan(_linux(namespaces=[{"type": "mount"}, {"type": "user"}, {"type": "pid"}]))

    assert result.new_user is True
    assert result.new_flags == L.CLONE_NEWNS | L.CLONE_NEWPID
    assert result.new_flags & L.CLONE_NEWUSER == 0


def test_every_namespace_type_maps_to_its_clone_flag() -> None:
    kinds = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"]
    result = plan(_linux(namespaces=[{"type": k} for k in kinds]))

    expected = (
        L.CLONE_NEWPID
        | L.CLONE_NEWNET
        | L.CLONE_NEWNS
        | L.CLONE_NEWIPC
        | L.CLONE_NEWUTS
        | L.CLONE_NEWCGROUP
        | L.CLONE_NEWTIME
    )
    assert result.new_flags == expected
    assert result.new_user is True
    assert set(CLONE_FLAGS) == set(kinds)


def test_namespace_with_path_is_joined_not_created() -> None:
    result = plan(_linux(namespaces=[{"type": "network", "path": "/var/run/netns/blue"}, {"type": "mount"}]))

    assert result.join == [("network", "/var/run/netns/blue")]
    assert result.new_flags == L.CLONE_NEWNS


def test_user_namespace_is_joined_first_whatever_its_position() -> None:
    # Joining the user namespace first gives the rights to join the namespaces it owns.
    result = plan(
        _linux(
            namespaces=[
                {"type": "network", "path": "/proc/42/ns/net"},
                {"type": "ipc", "path": "/proc/42/ns/ipc"},
                {"type": "mount"},
                {"type": "user", "path": "/proc/42/ns/user"},
            ]
        )
    )

    assert result.join == [
        ("user", "/proc/42/ns/user"),
        ("network", "/proc/42/ns/net"),
        ("ipc", "/proc/42/ns/ipc"),
    ]
    assert result.new_user is False
    assert result.new_flags == L.CLONE_NEWNS


def test_joined_user_namespace_with_new_others() -> None:
    result = plan(_linux(namespaces=[{"type": "pid"}, {"type": "user", "path": "/proc/7/ns/user"}]))

    assert result.join == [("user", "/proc/7/ns/user")]
    assert result.new_user is False
    assert result.new_flags == L.CLONE_NEWPID


@pytest.mark.parametrize(
    ("namespaces", "expected"),
    [
        ([{"type": "pid"}], True),
        ([{"type": "time"}], True),
        ([{"type": "mount"}, {"type": "network"}], False),
        ([{"type": "pid", "path": "/proc/1/ns/pid"}], False),
        ([{"type": "user"}], False),
    ],
    ids=["new-pid", "new-time", "neither", "joined-pid", "user-only"],
)
def test_new_pid_or_time_needs_a_fork_after_unshare(namespaces: list[dict[str, str]], expected: bool) -> None:
    # unshare(CLONE_NEWPID/CLONE_NEWTIME) only affects children: init must be forked afterwards.
    assert plan(_linux(namespaces=namespaces)).new_pid_or_time is expected


def test_format_id_map_writes_one_line_per_mapping() -> None:
    text = format_id_map([IDMapping(0, 1000, 1), IDMapping(1, 100000, 65536)])

    assert text == "0 1000 1\n1 100000 65536\n"


def test_format_id_map_of_nothing_is_empty() -> None:
    assert format_id_map([]) == ""


def test_format_id_map_from_a_parsed_config() -> None:
    linux = _linux(
        namespaces=[{"type": "user"}, {"type": "mount"}],
        uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}],
        gidMappings=[{"containerID": 0, "hostID": 100, "size": 1}, {"containerID": 1, "hostID": 200000, "size": 10}],
    )

    assert format_id_map(linux.uid_mappings) == "0 1000 1\n"
    assert format_id_map(linux.gid_mappings) == "0 100 1\n1 200000 10\n"


def test_format_time_offsets_names_each_clock_with_secs_and_nanosecs() -> None:
    linux = _linux(
        namespaces=[{"type": "time"}, {"type": "mount"}],
        timeOffsets={"monotonic": {"secs": -86400, "nanosecs": 250}, "boottime": {"secs": 3600}},
    )

    lines = format_time_offsets(linux).splitlines()

    assert sorted(lines) == ["boottime 3600 0", "monotonic -86400 250"]
    assert format_time_offsets(linux).endswith("\n")


def test_format_time_offsets_is_deterministic() -> None:
    a = _linux(timeOffsets={"monotonic": {"secs": 1}, "boottime": {"secs": 2}})
    b = _linux(timeOffsets={"boottime": {"secs": 2}, "monotonic": {"secs": 1}})

    assert format_time_offsets(a) == format_time_offsets(b)


def test_format_time_offsets_of_nothing_is_empty() -> None:
    assert format_time_offsets(Linux()) == ""
