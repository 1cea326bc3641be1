"""CNI network configuration files (CNI SPEC section 1; libcni conf.go)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hull.network.cniconf import load_dir, load_file, parse_conf, parse_conflist, parse_version
from hull.network.errors import ConfigError


def conflist(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": "dbnet",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "10.1.0.0/16"}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    doc.update(over)
    return doc


def test_conflist_fields() -> None:
    net = parse_conflist(json.dumps(conflist(disableCheck=True)).encode(), "x.conflist")
    assert net.name == "dbnet"
    assert net.cni_version == "1.0.0"
    assert [p["type"] for p in net.plugins] == ["bridge", "portmap"]
    assert net.plugins[0]["ipam"]["subnet"] == "10.1.0.0/16"  # plugin keys kept as they are
    assert net.disable_check is True and net.disable_gc is False
    assert net.raw["name"] == "dbnet"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}, "f.conflist: name: missing"),
        (conflist(name=3), "f.conflist: name: must be a string, not int"),
        (conflist(name="-bad"), "f.conflist: name: invalid network name '-bad'"),
        (conflist(name="a/b"), "f.conflist: name: invalid network name 'a/b'"),
        (conflist(plugins=[{"type": "bridge"}, {"bridge": "x"}]), "f.conflist: plugins[1].type: missing"),
        (conflist(plugins=[{"type": "../bin/sh"}]), "f.conflist: plugins[0].type: invalid plugin name '../bin/sh'"),
        (conflist(plugins=[]), "f.conflist: plugins: no plugins in list"),
        (conflist(plugins={"type": "bridge"}), "f.conflist: plugins: must be a list, not dict"),
        (conflist(plugins=["bridge"]), "f.conflist: plugins[0]: a plugin configuration must be a JSON object"),
        (
            conflist(plugins=[{"type": "portmap", "capabilities": {"portMappings": "yes"}}]),
            "f.conflist: plugins[0].capabilities: must be an object of capability names to true/false",
        ),
        (conflist(disableCheck="maybe"), "f.conflist: disableCheck: must be true or false, not 'maybe'"),
        (conflist(cniVersion="0.2.0"), "f.conflist: cniVersion: version '0.2.0' is not supported"),
        (conflist(cniVersion="one"), "f.conflist: cniVersion: invalid version 'one'"),
        (conflist(cniVersion=1), "f.conflist: cniVersion: must be a string, not int"),
        (conflist(cniVersion="2.0.0"), "f.conflist: cniVersion: version '2.0.0' is newer than 1.1.0"),
        (conflist(cniVersions="1.0.0"), "f.conflist: cniVersions: must be a list of versions, not str"),
        (conflist(cniVersions=["1.0.0", "x"]), "f.conflist: cniVersions[1]: invalid version 'x'"),
    ],
)
def test_conflist_errors_name_the_file_and_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_conflist(doc, "f.conflist")
    assert str(err.value).startswith(message)


def test_missing_cni_version() -> None:
    doc = conflist()
    del doc["cniVersion"]
    with pytest.raises(ConfigError, match="^f: cniVersion: missing$"):
        parse_conflist(doc, "f")


def test_bad_json_names_the_file() -> None:
    with pytest.raises(ConfigError, match=r"^/etc/cni/net\.d/a\.conflist: invalid JSON: Expecting"):
        parse_conflist(b'{"name": "x",', "/etc/cni/net.d/a.conflist")
    with pytest.raises(ConfigError, match="must be a JSON object, not list"):
        parse_conflist(b"[]", "f")


def test_duplicate_keys_last_wins_as_go() -> None:
    # Go's encoding/json (libcni) keeps the last of duplicate keys; so does hull.
    net = parse_conflist(b'{"cniVersion": "0.4.0", "name": "a", "name": "b", "plugins": [{"type": "loopback"}]}')
    assert net.name == "b"


def test_cni_versions_picks_the_highest_implemented() -> None:
    # SPEC "Version considerations": the highest of cniVersion and cniVersions; as libcni,
    # versions above what the runtime implements are ignored.
    net = parse_conflist(conflist(cniVersion="0.4.0", cniVersions=["1.0.0", "2.0.0", "0.3.1", "1.1.0"]))
    assert net.cni_version == "1.1.0"
    assert net.cni_versions == ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    doc = conflist(cniVersions=["0.4.0", "1.0.0"])
    del doc["cniVersion"]
    assert parse_conflist(doc).cni_version == "1.0.0"


def test_bool_strings_as_libcni() -> None:
    net = parse_conflist(conflist(disableCheck="TRUE", disableGC="false"))
    assert net.disable_check is True and net.disable_gc is False


def test_single_conf_is_wrapped_in_a_list() -> None:
    conf = {"cniVersion": "0.3.1", "name": "lo", "type": "loopback", "extra": 1}
    net = parse_conf(json.dumps(conf).encode(), "lo.conf")
    assert (net.name, net.cni_version) == ("lo", "0.3.1")
    assert net.plugins == [conf]
    assert net.raw == {"name": "lo", "cniVersion": "0.3.1", "plugins": [conf]}
    with pytest.raises(ConfigError, match="^lo.conf: type: missing$"):
        parse_conf({"cniVersion": "0.3.1", "name": "lo"}, "lo.conf")


def test_version_parsing() -> None:
    assert parse_version("1.0") == (1, 0, 0)
    assert parse_version("") == (0, 1, 0)
    with pytest.raises(ValueError):
        parse_version("1.0.0.0")


def write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def test_load_file_by_content(tmp_path: Path) -> None:
    single = write(tmp_path / "a.json", {"cniVersion": "1.0.0", "name": "one", "type": "loopback"})
    listed = write(tmp_path / "b.conf", conflist(name="two"))
    assert [p["type"] for p in load_file(str(single)).plugins] == ["loopback"]
    assert load_file(str(listed)).name == "two"
    with pytest.raises(ConfigError, match="cannot read"):
        load_file(str(tmp_path / "missing.conflist"))


def test_load_file_appends_sibling_plugins(tmp_path: Path) -> None:
    # SPEC loadOnlyInlinedPlugins false (the default): plugins from <dir>/<name>/*.conf, appended.
    listed = write(tmp_path / "10-net.conflist", conflist(name="net"))
    (tmp_path / "net").mkdir()
    write(tmp_path / "net" / "2-tuning.conf", {"type": "tuning"})
    write(tmp_path / "net" / "1-firewall.conf", {"type": "firewall"})
    write(tmp_path / "net" / "ignored.txt", {"type": "nope"})
    assert [p["type"] for p in load_file(str(listed)).plugins] == ["bridge", "portmap", "firewall", "tuning"]
    only = write(tmp_path / "10-net.conflist", conflist(name="net", loadOnlyInlinedPlugins=True))
    assert [p["type"] for p in load_file(str(only)).plugins] == ["bridge", "portmap"]
    bare = write(tmp_path / "10-net.conflist", {"cniVersion": "1.0.0", "name": "net"})
    assert [p["type"] for p in load_file(str(bare)).plugins] == ["firewall", "tuning"]


def test_load_dir_sorted_by_file_name(tmp_path: Path) -> None:
    write(tmp_path / "20-b.conflist", conflist(name="b"))
    write(tmp_path / "10-a.conf", {"cniVersion": "0.4.0", "name": "a", "type": "loopback"})
    write(tmp_path / "30-c.json", conflist(name="c"))
    write(tmp_path / "05-skip.txt", "not a config")
    (tmp_path / "00-dir.conf").mkdir()
    assert [n.name for n in load_dir(str(tmp_path))] == ["a", "b", "c"]
    assert load_dir(str(tmp_path / "none")) == []
    write(tmp_path / "40-bad.conflist", "{")
    with pytest.raises(ConfigError, match="40-bad.conflist: invalid JSON"):
        load_dir(str(tmp_path))
