"""Loading a bundle (bundle.md) and the Linux cross-field checks on its config.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hull.runtime.bundle import load
from hull.runtime.errors import ConfigError
from hull.runtime.spec_template import default_spec

Edit = Callable[[dict[str, Any]], None]


def _bundle(tmp_path: Path, edit: Edit | None = None) -> Path:
    """A bundle with runc's default config.json (after ``edit``) and an empty rootfs directory."""
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    doc = default_spec()
    if edit:
        edit(doc)
    (bundle / "config.json").write_text(json.dumps(doc))
    return bundle


def _load_error(bundle: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load(str(bundle))
    return str(info.value)


def _namespaces(*kinds: str, **joined: str) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        entries: list[dict[str, str]] = [{"type": k} for k in kinds]
        entries += [{"type": k, "path": p} for k, p in joined.items()]
        doc["linux"]["namespaces"] = entries

    return edit


def _chain(*edits: Edit) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        for e in edits:
            e(doc)

    return edit


def _set(key: str, value: Any, section: str = "") -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        (doc[section] if section else doc)[key] = value

    return edit


# --- load -----------------------------------------------------------------------------------------------------------


def test_load_returns_raw_document_parsed_config_and_absolute_rootfs(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)

    doc, config, rootfs = load(str(bundle))

    assert doc == default_spec()
    assert config.process is not None and config.process.args == ["sh"]
    assert rootfs == str(bundle / "rootfs")


def test_absolute_root_path_is_used_as_is(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "rootfs"
    elsewhere.mkdir(parents=True)
    bundle = _bundle(tmp_path, lambda d: d["root"].update(path=str(elsewhere)))

    _, _, rootfs = load(str(bundle))

    assert rootfs == str(elsewhere)


def test_root_path_is_normalised_relative_to_the_bundle(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, lambda d: d["root"].update(path="./sub/../rootfs/"))

    _, _, rootfs = load(str(bundle))

    assert rootfs == str(bundle / "rootfs")


def test_missing_config_json_is_reported_like_runc(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()

    message = _load_error(tmp_path)

    assert "JSON specification file config.json not found" in message


def test_config_json_that_is_a_directory_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()

    assert "config.json" in _load_error(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"{", b'{"ociVersion": "1.1.0",}', b"", b"{} {}", b"\xff\xfe\x00garbage"],
    ids=["truncated", "trailing-comma", "empty", "extra-data", "not-utf8"],
)
def test_invalid_json_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "config.json").write_bytes(content)

    message = _load_error(tmp_path)

    assert "config.json" in message
    assert "invalid JSON" in message


def test_json_that_is_not_an_object_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "config.json").write_text("[1, 2]")

    assert "config" in _load_error(tmp_path)


def test_a_parse_error_is_reported_with_the_field_path(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, lambda d: d["process"]["rlimits"][0].update(type="RLIMIT_BOGUS"))

    message = _load_error(bundle)

    assert message.startswith("config.json: process.rlimits[0].type: ")
    assert "RLIMIT_BOGUS" in message


def test_missing_rootfs_directory_names_root_path(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, lambda d: d["root"].update(path="no-such-rootfs"))

    message = _load_error(bundle)

    assert "root.path" in message
    assert "no-such-rootfs" in message


def test_rootfs_that_is_a_file_names_root_path(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, lambda d: d["root"].update(path="rootfs.tar"))
    (bundle / "rootfs.tar").write_bytes(b"")

    assert "root.path" in _load_error(bundle)


def test_config_without_process_cannot_create_a_container(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, lambda d: d.pop("process"))

    assert "config.json: process: " in _load_error(bundle)


# --- validate: cross-field rules -------------------------------------------------------------------------------------

NO_UTS = _namespaces("pid", "network", "ipc", "mount")
USER_MAPS = _chain(
    _set("uidMappings", [{"containerID": 0, "hostID": 100000, "size": 65536}], "linux"),
    _set("gidMappings", [{"containerID": 0, "hostID": 100000, "size": 65536}], "linux"),
)

REJECTED: list[tuple[str, Edit, str, str]] = [
    # (id, edit, field named in the message, words the message must contain)
    ("no mount namespace", _namespaces("pid", "uts"), "linux.namespaces", "mount"),
    ("hostname without uts namespace", NO_UTS, "hostname", "UTS"),
    (
        "domainname without uts namespace",
        _chain(_set("hostname", ""), _set("domainname", "example.org"), NO_UTS),
        "domainname",
        "UTS",
    ),
    ("user namespace without mappings", _namespaces("mount", "uts", "user"), "linux.uidMappings", "gidMappings"),
    (
        "user namespace with uid mappings only",
        _chain(
            _namespaces("mount", "uts", "user"),
            _set("uidMappings", [{"containerID": 0, "hostID": 1, "size": 1}], "linux"),
        ),
        "linux",
        "gidMappings",
    ),
    ("mappings without user namespace", USER_MAPS, "linux.uidMappings", "user namespace"),
    (
        "gid mappings only without user namespace",
        _set("gidMappings", [{"containerID": 0, "hostID": 1, "size": 1}], "linux"),
        "linux.gidMappings",
        "user namespace",
    ),
    (
        "timeOffsets without time namespace",
        _set("timeOffsets", {"monotonic": {"secs": 10}}, "linux"),
        "linux.timeOffsets",
        "time namespace",
    ),
    (
        "net sysctl without network namespace",
        _chain(_namespaces("mount", "uts", "ipc"), _set("sysctl", {"net.ipv4.ip_forward": "1"}, "linux")),
        "linux.sysctl.net.ipv4.ip_forward",
        "network",
    ),
    (
        "ipc sysctl without ipc namespace",
        _chain(_namespaces("mount", "uts", "network"), _set("sysctl", {"kernel.shmmax": "1"}, "linux")),
        "linux.sysctl.kernel.shmmax",
        "ipc",
    ),
    (
        "mqueue sysctl without ipc namespace",
        _chain(_namespaces("mount", "uts", "network"), _set("sysctl", {"fs.mqueue.msg_max": "20"}, "linux")),
        "linux.sysctl.fs.mqueue.msg_max",
        "ipc",
    ),
    (
        "kernel.hostname sysctl without uts namespace",
        _chain(_set("hostname", ""), NO_UTS, _set("sysctl", {"kernel.hostname": "x"}, "linux")),
        "linux.sysctl.kernel.hostname",
        "uts",
    ),
    (
        "kernel.domainname sysctl without uts namespace",
        _chain(_set("hostname", ""), NO_UTS, _set("sysctl", {"kernel.domainname": "x"}, "linux")),
        "linux.sysctl.kernel.domainname",
        "uts",
    ),
    (
        "vm sysctl is never namespaced",
        _set("sysctl", {"vm.swappiness": "10"}, "linux"),
        "linux.sysctl.vm.swappiness",
        "host",
    ),
    (
        "kernel.pid_max is not namespaced",
        _set("sysctl", {"kernel.pid_max": "4096"}, "linux"),
        "linux.sysctl.kernel.pid_max",
        "host",
    ),
]


@pytest.mark.parametrize(("edit", "field", "words"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
def test_cross_field_rule_violation_names_the_field(tmp_path: Path, edit: Edit, field: str, words: str) -> None:
    message = _load_error(_bundle(tmp_path, edit))

    assert message.startswith(f"config.json: {field}"), message
    assert words in message


def test_kernel_hostname_sysctl_is_rejected_even_with_uts_namespace(tmp_path: Path) -> None:
    # runc (libcontainer/configs/validate): kernel.hostname "is not allowed as it conflicts with the OCI
    # "hostname" field"; the hostname is set from config.hostname only.
    bundle = _bundle(tmp_path, _set("sysctl", {"kernel.hostname": "other"}, "linux"))

    message = _load_error(bundle)

    assert "linux.sysctl.kernel.hostname" in message


ACCEPTED: list[tuple[str, Edit]] = [
    ("runc default config", lambda d: None),
    ("hostname with a joined uts namespace", _namespaces("mount", uts="/proc/1/ns/uts")),
    ("user namespace with both mappings", _chain(_namespaces("mount", "uts", "user"), USER_MAPS)),
    (
        "timeOffsets with a new time namespace",
        _chain(_namespaces("mount", "uts", "time"), _set("timeOffsets", {"boottime": {"secs": 5}}, "linux")),
    ),
    ("net sysctl with network namespace", _set("sysctl", {"net.ipv4.ip_forward": "1"}, "linux")),
    (
        "ipc sysctls with ipc namespace",
        _set("sysctl", {"kernel.shmmax": "1", "kernel.msgmax": "2", "fs.mqueue.msg_max": "3"}, "linux"),
    ),
    ("kernel.domainname with uts namespace", _set("sysctl", {"kernel.domainname": "example.org"}, "linux")),
    ("no hostname and no uts namespace", _chain(_set("hostname", ""), NO_UTS)),
]


@pytest.mark.parametrize("edit", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_valid_configuration_loads(tmp_path: Path, edit: Edit) -> None:
    _, config, _ = load(str(_bundle(tmp_path, edit)))

    assert config.process is not None
