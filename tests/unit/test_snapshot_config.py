"""Image config -> runtime config (image-spec conversion.md) and Config.User resolution, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from hull.image.bundle import User, UserNotFound, image_annotations, resolve_user, runtime_config
from hull.image.errors import InvalidImage
from hull.oci.digest import Digest
from hull.oci.image import ExecConfig, ImageConfig, RootFS

PASSWD = """root:x:0:0:root:/root:/bin/sh
# a comment, then a malformed line
broken:x
app:x:1000:1001:App:/home/app:/bin/sh
daemon:x:2:2::/usr/sbin:/bin/false
"""
GROUP = """root:x:0:
wheel:x:10:app,daemon
appgrp:x:1001:
audio:x:29:daemon,app
video:x:44:
appdup:x:1001:app
"""

DIFF = Digest("sha256:" + "a" * 64)


def image(exec_config: ExecConfig | None = None, **fields: Any) -> ImageConfig:
    return ImageConfig("amd64", "linux", RootFS([DIFF]), config=exec_config, **fields)


ROOT = User(0, 0, [])


@pytest.mark.parametrize(
    ("spec", "uid", "gid", "extra", "home"),
    [
        ("", 0, 0, [], "/root"),  # not defined: implementation-defined, root as umoci and docker
        ("app", 1000, 1001, [10, 29], "/home/app"),  # name: passwd ids, groups listing it minus the primary
        ("1000", 1000, 1001, [], "/home/app"),  # numeric uid: verbatim, gid from its entry, no supplementary
        ("4242", 4242, 0, [], ""),  # numeric uid without an entry: allowed, gid 0
        ("app:audio", 1000, 29, [], "/home/app"),  # a group given: no supplementary groups
        ("app:44", 1000, 44, [], "/home/app"),
        ("1000:wheel", 1000, 10, [], "/home/app"),
        ("4242:4343", 4242, 4343, [], ""),  # both numeric: verbatim, need not exist
        ("daemon", 2, 2, [10, 29], "/usr/sbin"),
    ],
)
def test_user_forms(spec: str, uid: int, gid: int, extra: list[int], home: str) -> None:
    assert resolve_user(spec, PASSWD, GROUP) == User(uid, gid, extra, home)


@pytest.mark.parametrize(
    ("spec", "passwd", "group", "message"),
    [
        ("nobody", PASSWD, GROUP, "no user 'nobody' in /etc/passwd"),
        ("app:nogroup", PASSWD, GROUP, "no group 'nogroup' in /etc/group"),
        ("app", None, None, "no user 'app' in the image (it has no /etc/passwd)"),
        ("0:staff", PASSWD, None, "no group 'staff' in the image (it has no /etc/group)"),
        ("broken", PASSWD, GROUP, "no user 'broken'"),  # a malformed line is no user
        ("app:", PASSWD, GROUP, "empty group"),
    ],
)
def test_unknown_users_are_errors(spec: str, passwd: str | None, group: str | None, message: str) -> None:
    # conversion.md: "If Config.User does not correspond to a user in the container's context, the converter
    # MUST return an error."
    with pytest.raises(UserNotFound, match="config.User") as err:
        resolve_user(spec, passwd, group)
    assert message in str(err.value)


def test_numeric_user_needs_no_passwd() -> None:
    assert resolve_user("7:8", None, None) == User(7, 8, [])


CASES: list[tuple[str, ExecConfig | None, dict[str, Any], dict[str, Any]]] = [
    # (name, exec config, expected process fields, expected annotations subset)
    ("no config: defaults stay", None, {"args": ["sh"], "cwd": "/"}, {}),
    (
        "entrypoint + cmd appended (note 2)",
        ExecConfig(entrypoint=["/bin/echo", "a"], cmd=["b", "c"]),
        {"args": ["/bin/echo", "a", "b", "c"]},
        {},
    ),
    ("cmd alone", ExecConfig(cmd=["/bin/true"]), {"args": ["/bin/true"]}, {}),
    ("entrypoint alone", ExecConfig(entrypoint=["/bin/false"]), {"args": ["/bin/false"]}, {}),
    ("working dir verbatim", ExecConfig(working_dir="/srv/app"), {"cwd": "/srv/app"}, {}),
    (
        "env: image value replaces the default of that name, others appended in order",
        ExecConfig(env=["PATH=/opt/bin", "A=1", "EMPTY="]),
        {"env": ["PATH=/opt/bin", "TERM=xterm", "A=1", "EMPTY="]},
        {},
    ),
    (
        "stop signal and ports as annotations",
        ExecConfig(stop_signal="SIGQUIT", exposed_ports=["80/tcp", "53/udp"]),
        {},
        {"org.opencontainers.image.stopSignal": "SIGQUIT", "org.opencontainers.image.exposedPorts": "53/udp,80/tcp"},
    ),
    (
        "labels win over implicit annotations",
        ExecConfig(labels={"org.opencontainers.image.os": "mine", "x": "y"}),
        {},
        {"org.opencontainers.image.os": "mine", "x": "y", "org.opencontainers.image.architecture": "amd64"},
    ),
]


@pytest.mark.parametrize(("name", "ec", "process", "annotations"), CASES, ids=[c[0] for c in CASES])
def test_conversion(name: str, ec: ExecConfig | None, process: dict[str, Any], annotations: dict[str, str]) -> None:
    spec = runtime_config(image(ec), ROOT, terminal=False)
    for key, value in process.items():
        assert spec["process"][key] == value, key
    for key, value in annotations.items():
        assert spec.get("annotations", {})[key] == value, key
    assert spec["process"]["terminal"] is False
    assert spec["root"] == {"path": "rootfs", "readonly": False}


def test_implicit_annotations_from_every_field() -> None:
    img = image(
        ExecConfig(stop_signal="SIGTERM"),
        variant="v8",
        os_version="10.0.1",
        os_features=["a", "b"],
        author="me",
        created="2024-01-02T03:04:05Z",
    )
    p = "org.opencontainers.image."
    assert image_annotations(img) == {
        p + "os": "linux",
        p + "architecture": "amd64",
        p + "variant": "v8",
        p + "os.version": "10.0.1",
        p + "os.features": "a,b",
        p + "author": "me",
        p + "created": "2024-01-02T03:04:05Z",
        p + "stopSignal": "SIGTERM",
    }
    # absent fields give no annotation (umoci writes empty ones)
    assert set(image_annotations(image())) == {p + "os", p + "architecture"}


def test_user_home_and_groups_go_to_process() -> None:
    spec = runtime_config(image(ExecConfig(user="app")), User(1000, 1001, [10, 29], "/home/app"))
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1001, "additionalGids": [10, 29]}
    assert "HOME=/home/app" in spec["process"]["env"]
    # an image's own HOME is never changed (note 1: no default may change an image variable)
    spec = runtime_config(image(ExecConfig(env=["HOME=/x"])), User(1000, 1001, [], "/home/app"))
    assert [e for e in spec["process"]["env"] if e.startswith("HOME=")] == ["HOME=/x"]


def test_volumes_become_tmpfs_mounts() -> None:
    spec = runtime_config(image(ExecConfig(volumes=["/var/lib/db", "/data"])), ROOT)
    tail = spec["mounts"][-2:]
    assert [m["destination"] for m in tail] == ["/data", "/var/lib/db"]
    assert all(m["type"] == "tmpfs" and "noexec" in m["options"] for m in tail)


def test_bad_env_names_the_field() -> None:
    with pytest.raises(InvalidImage, match=r"config.Env\[1\]: 'NOEQUALS' is not NAME=VALUE"):
        runtime_config(image(ExecConfig(env=["A=1", "NOEQUALS"])), ROOT)
    with pytest.raises(InvalidImage, match=r"config.Env\[0\]"):
        runtime_config(image(ExecConfig(env=["=value"])), ROOT)


def test_defaults_are_the_runtime_spec_template() -> None:
    from hull.runtime.spec_template import default_spec

    spec = runtime_config(image(ExecConfig(cmd=["/bin/true"])), ROOT)
    base = default_spec()
    assert spec["mounts"] == base["mounts"]
    assert spec["linux"] == base["linux"]
    assert spec["process"]["capabilities"] == base["process"]["capabilities"]
    assert spec["process"]["terminal"] is True  # as runc spec and umoci
