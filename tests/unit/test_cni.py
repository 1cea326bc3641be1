"""The CNI execution protocol (CNI SPEC sections 2, 3, 5; libcni api.go and pkg/invoke).

The plugins here are tiny Python scripts written by the test: they record the
environment and stdin they get, and produce the faults a real plugin cannot be
made to produce on demand (hanging, an Error object, garbage, a 1.1.0 plugin
for GC/STATUS). tests/integration/test_cni.py runs the real plugins.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hull.network.cni import CNI, RuntimeConf, convert_result
from hull.network.cniconf import NetworkConfigList, parse_conflist
from hull.network.errors import CNIError, NetworkError

PLUGIN = r"""#!{python}
import json, os, subprocess, sys, time
NAME = {name!r}
VERSIONS = {versions!r}
BEHAVIOUR = {behaviour!r}
LOG = {log!r}
raw = sys.stdin.read()
conf = json.loads(raw)
command = os.environ.get("CNI_COMMAND", "")
env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
with open(LOG, "a") as f:
    f.write(json.dumps({{"plugin": NAME, "env": env, "stdin": conf}}) + "\n")
if command == "VERSION":
    if BEHAVIOUR == "no-version":
        print(json.dumps({{"code": 4, "msg": "unknown CNI_COMMAND: VERSION"}}))
        sys.exit(1)
    print(json.dumps({{"cniVersion": conf["cniVersion"], "supportedVersions": VERSIONS}}))
    sys.exit(0)
if BEHAVIOUR == "hang" and command == "ADD":
    # A child holding stdout as a delegated plugin would: the timeout must kill it too.
    subprocess.Popen(["sleep", "300"])
    time.sleep(300)
if BEHAVIOUR == "error" and command in ("ADD", "GC"):
    sys.stderr.write("log line from " + NAME + "\n")
    print(json.dumps({{"cniVersion": conf["cniVersion"], "code": 7, "msg": "invalid config", "details": "no bridge"}}))
    sys.exit(1)
if BEHAVIOUR == "unavailable" and command == "STATUS":
    print(json.dumps({{"cniVersion": conf["cniVersion"], "code": 50, "msg": "plugin not available"}}))
    sys.exit(1)
if BEHAVIOUR == "garbage-fail" and command == "ADD":
    print("this is not json")
    sys.exit(3)
if BEHAVIOUR == "stderr-fail" and command == "ADD":
    sys.stderr.write("cannot open netns")
    sys.exit(2)
if BEHAVIOUR == "garbage-ok" and command == "ADD":
    print("{{half")
    sys.exit(0)
if command == "ADD":
    version = conf["cniVersion"]
    result = conf.get("prevResult")
    if result is None:
        ip = {{"address": "10.9.0.2/24", "gateway": "10.9.0.1", "interface": 0}}
        if version in ("0.3.0", "0.3.1", "0.4.0"):
            ip["version"] = "4"
        result = {{"cniVersion": version, "interfaces": [{{"name": os.environ["CNI_IFNAME"],
                  "sandbox": os.environ["CNI_NETNS"]}}], "ips": [ip], "dns": {{}}}}
    else:
        result = dict(result, interfaces=result["interfaces"] + [{{"name": NAME}}])
    if BEHAVIOUR == "no-result-version":
        del result["cniVersion"]
    print(json.dumps(result))
"""

NEW = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
DEBIAN = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]  # containernetworking-plugins 1.1.1


class Plugins:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "bin"
        self.dir.mkdir()
        self.log = tmp / "calls.jsonl"
        self.cache = tmp / "cache"

    def make(self, name: str, versions: list[str] | None = None, behaviour: str = "ok") -> str:
        path = self.dir / name
        text = PLUGIN.format(
            python=sys.executable, name=name, versions=versions or DEBIAN, behaviour=behaviour, log=str(self.log)
        )
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return str(path)

    def calls(self, command: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        entries = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [e for e in entries if command is None or e["env"]["CNI_COMMAND"] == command]

    def cni(self, **kw: Any) -> CNI:
        return CNI(plugin_dirs=[str(self.dir), "/nonexistent"], cache_dir=str(self.cache), **kw)


@pytest.fixture
def plugins(tmp_path: Path) -> Plugins:
    return Plugins(tmp_path)


def netlist(*plugins: dict[str, Any], version: str = "1.0.0", **over: Any) -> NetworkConfigList:
    doc: dict[str, Any] = {"cniVersion": version, "name": "testnet", "plugins": list(plugins)}
    doc.update(over)
    return parse_conflist(doc, "test")


RT = RuntimeConf(
    container_id="c0ffee",
    netns="/run/netns/test",
    ifname="eth0",
    args=[("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")],
    capability_args={"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}], "mac": "aa:bb"},
)


def test_add_env_and_stdin(plugins: Plugins) -> None:
    plugins.make("first")
    plugins.make("second")
    net = netlist(
        {"type": "first", "bridge": "br0", "capabilities": {"mac": True, "ips": True, "bandwidth": False}},
        {"type": "second", "capabilities": {"portMappings": True}, "cni.dev/reserved": 1},
    )
    result = plugins.cni().add_network_list(net, RT)
    first, second = plugins.calls("ADD")
    # SPEC section 2 "Parameters".
    assert first["env"] == {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c0ffee",
        "CNI_NETNS": "/run/netns/test",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web",
        "CNI_PATH": f"{plugins.dir}:/nonexistent",
    }
    # SPEC section 3 "Deriving request configuration": name and cniVersion inserted, the
    # plugin's keys unchanged, runtimeConfig = declared capabilities the runtime passed,
    # no prevResult for the first ADD, no `capabilities`.
    assert first["stdin"] == {
        "type": "first",
        "bridge": "br0",
        "name": "testnet",
        "cniVersion": "1.0.0",
        "runtimeConfig": {"mac": "aa:bb"},
    }
    assert second["stdin"]["runtimeConfig"] == {"portMappings": RT.capability_args["portMappings"]}
    assert "cni.dev/reserved" not in second["stdin"]
    assert second["stdin"]["prevResult"]["interfaces"] == [{"name": "eth0", "sandbox": "/run/netns/test"}]
    assert result["interfaces"][-1] == {"name": "second"}
    assert result["ips"] == [{"address": "10.9.0.2/24", "gateway": "10.9.0.1", "interface": 0}]


def test_no_runtime_config_without_capabilities(plugins: Plugins) -> None:
    plugins.make("only")
    plugins.cni().add_network_list(netlist({"type": "only"}), RT)
    assert "runtimeConfig" not in plugins.calls("ADD")[0]["stdin"]


def test_result_cached_as_libcni(plugins: Plugins) -> None:
    plugins.make("only")
    net = netlist({"type": "only"})
    result = plugins.cni().add_network_list(net, RT)
    path = plugins.cache / "results" / "testnet-c0ffee-eth0"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    entry = json.loads(path.read_text())
    assert entry["kind"] == "cniCacheV1"
    assert (entry["containerId"], entry["ifName"], entry["networkName"], entry["netns"]) == (
        "c0ffee",
        "eth0",
        "testnet",
        "/run/netns/test",
    )
    assert json.loads(base64.b64decode(entry["config"])) == net.raw  # Go's []byte is base64 in JSON
    assert entry["cniArgs"] == [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "web"]]
    assert entry["capabilityArgs"] == RT.capability_args
    assert entry["result"] == result
    assert [p.name for p in path.parent.iterdir()] == ["testnet-c0ffee-eth0"]  # no temporary file left
    fresh = plugins.cni()
    assert fresh.cached_result("testnet", RT) == result
    assert fresh.cached_attachments("testnet") == [("c0ffee", "eth0")]
    assert fresh.cached_attachments("other") == []


def test_del_reverse_order_with_cached_result_after_restart(plugins: Plugins) -> None:
    plugins.make("first")
    plugins.make("second")
    net = netlist({"type": "first"}, {"type": "second", "capabilities": {"portMappings": True}})
    result = plugins.cni().add_network_list(net, RT)
    # A new CNI object: hull restarted; the caller no longer has the capability args.
    plugins.cni().del_network_list(net, RuntimeConf(container_id="c0ffee", netns="/run/netns/test"))
    dels = plugins.calls("DEL")
    assert [d["plugin"] for d in dels] == ["second", "first"]
    assert all(d["stdin"]["prevResult"] == result for d in dels)
    # The capability args and CNI_ARGS of the ADD, from the cache.
    assert dels[0]["stdin"]["runtimeConfig"] == {"portMappings": RT.capability_args["portMappings"]}
    assert dels[0]["env"]["CNI_ARGS"] == "IgnoreUnknown=1;K8S_POD_NAME=web"
    assert not (plugins.cache / "results" / "testnet-c0ffee-eth0").exists()
    # DEL again, without a cache: still sent, without prevResult (SPEC: DEL is best-effort, repeatable).
    plugins.cni().del_network_list(net, RT)
    again = plugins.calls("DEL")[2:]
    assert [d["plugin"] for d in again] == ["second", "first"]
    assert all("prevResult" not in d["stdin"] for d in again)


def test_del_before_0_4_0_has_no_prev_result(plugins: Plugins) -> None:
    plugins.make("only")
    net = netlist({"type": "only"}, version="0.3.1")
    plugins.cni().add_network_list(net, RT)
    plugins.cni().del_network_list(net, RT)
    assert "prevResult" not in plugins.calls("DEL")[0]["stdin"]


def test_corrupt_cache_is_dropped_on_del(plugins: Plugins) -> None:
    plugins.make("only")
    net = netlist({"type": "only"})
    path = plugins.cache / "results" / "testnet-c0ffee-eth0"
    path.parent.mkdir(parents=True)
    path.write_text("{broken")
    plugins.cni().del_network_list(net, RT)
    assert "prevResult" not in plugins.calls("DEL")[0]["stdin"]
    assert not path.exists()


def test_check(plugins: Plugins) -> None:
    plugins.make("first")
    plugins.make("second")
    net = netlist({"type": "first"}, {"type": "second"})
    cni = plugins.cni()
    with pytest.raises(NetworkError, match="no cached result for container c0ffee interface eth0"):
        cni.check_network_list(net, RT)
    result = cni.add_network_list(net, RT)
    cni.check_network_list(net, RT)
    checks = plugins.calls("CHECK")
    assert [c["plugin"] for c in checks] == ["first", "second"]
    assert all(c["stdin"]["prevResult"] == result for c in checks)
    assert checks[0]["env"]["CNI_CONTAINERID"] == "c0ffee"
    # disableCheck: never sent (SPEC section 1).
    cni.check_network_list(netlist({"type": "first"}, {"type": "second"}, disableCheck=True), RT)
    assert len(plugins.calls("CHECK")) == 2
    # CHECK came with 0.4.0.
    with pytest.raises(NetworkError, match='configuration version "0.3.1" does not support the CHECK command'):
        cni.check_network_list(netlist({"type": "first"}, version="0.3.1"), RT)


def test_missing_plugin(plugins: Plugins) -> None:
    plugins.make("first")
    net = netlist({"type": "first"}, {"type": "nope"})
    with pytest.raises(NetworkError) as err:
        plugins.cni().add_network_list(net, RT)
    assert str(err.value) == f'failed to find plugin "nope" in path [{plugins.dir} /nonexistent]'
    assert plugins.calls("ADD") == []  # nothing was changed
    with pytest.raises(NetworkError, match='plugin type="nope" name="testnet" failed \\(delete\\): failed to find'):
        plugins.cni().del_network_list(net, RT)


def test_error_object_stops_the_chain(plugins: Plugins) -> None:
    plugins.make("first")
    plugins.make("broken", behaviour="error")
    plugins.make("third")
    net = netlist({"type": "first"}, {"type": "broken"}, {"type": "third"})
    with pytest.raises(CNIError) as err:
        plugins.cni().add_network_list(net, RT)
    e = err.value
    assert (e.code, e.msg, e.details, e.op) == (7, "invalid config", "no bridge", "add")
    assert e.plugin == 'type="broken" name="testnet"'
    assert e.stderr == "log line from broken"
    assert str(e) == 'plugin type="broken" name="testnet" failed (add): invalid config; no bridge (code 7)'
    assert [c["plugin"] for c in plugins.calls("ADD")] == ["first", "broken"]
    # The first plugin's result is cached for the DEL the caller owes (libcni would cache nothing),
    # marked so that CHECK refuses the failed attachment.
    entry = json.loads((plugins.cache / "results" / "testnet-c0ffee-eth0").read_text())
    assert entry["hullIncomplete"] == 'type="broken" name="testnet"'
    with pytest.raises(NetworkError, match='its ADD failed at plugin type="broken"'):
        plugins.cni().check_network_list(net, RT)
    plugins.cni().del_network_list(net, RT)
    dels = plugins.calls("DEL")
    assert [d["plugin"] for d in dels] == ["third", "broken", "first"]
    assert dels[0]["stdin"]["prevResult"]["interfaces"] == [{"name": "eth0", "sandbox": "/run/netns/test"}]
    assert plugins.cni().cached_result("testnet", RT) is None


def test_garbage_and_silent_failures(plugins: Plugins) -> None:
    plugins.make("garbage", behaviour="garbage-fail")
    plugins.make("silent", behaviour="stderr-fail")
    plugins.make("half", behaviour="garbage-ok")
    with pytest.raises(CNIError) as err:
        plugins.cni().add_network_list(netlist({"type": "garbage"}), RT)
    assert err.value.code == 0
    assert "netplugin failed but error parsing its diagnostic message 'this is not json'" in err.value.msg
    with pytest.raises(CNIError) as err:
        plugins.cni().add_network_list(netlist({"type": "silent"}), RT)
    assert err.value.msg == "netplugin failed: 'cannot open netns': exit status 2"
    with pytest.raises(NetworkError, match=r"failed \(add\): invalid result '\{half'"):
        plugins.cni().add_network_list(netlist({"type": "half"}), RT)


def test_timeout_kills_the_plugin_and_its_children(plugins: Plugins) -> None:
    plugins.make("hang", behaviour="hang")
    start = time.monotonic()
    with pytest.raises(NetworkError, match=r'plugin type="hang" name="testnet" failed \(add\): timed out after 1s'):
        plugins.cni(timeout=1.0).add_network_list(netlist({"type": "hang"}), RT)
    assert time.monotonic() - start < 10
    # The plugin's child (sleep 300, in the plugin's session) is gone too.
    leftover = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if cmdline == b"sleep\x00300\x00":
                leftover.append(pid)
    assert leftover == []


def test_result_without_version_gets_the_configs(plugins: Plugins) -> None:
    plugins.make("old", behaviour="no-result-version")
    result = plugins.cni().add_network_list(netlist({"type": "old"}, version="0.4.0"), RT)
    assert result["cniVersion"] == "0.4.0"  # libcni fixupResultVersion
    assert result["ips"][0]["version"] == "4"


def test_version_check_before_any_change(plugins: Plugins) -> None:
    plugins.make("first")
    plugins.make("fw", versions=["0.4.0", "1.0.0"])  # Debian's firewall plugin speaks only these
    net = netlist({"type": "first"}, {"type": "fw"}, version="0.3.1")
    with pytest.raises(CNIError) as err:
        plugins.cni().add_network_list(net, RT)
    assert err.value.code == 1
    assert str(err.value) == (
        'plugin type="fw" name="testnet" failed (add): incompatible CNI versions; '
        'config is "0.3.1", plugin supports ["0.4.0" "1.0.0"] (code 1)'
    )
    assert plugins.calls("ADD") == []


def test_version_negotiation_with_cni_versions(plugins: Plugins) -> None:
    # SPEC "Version considerations": the runtime MAY consider the plugins' VERSION.
    plugins.make("first")
    plugins.make("second", versions=["0.4.0", "1.0.0"])
    net = netlist({"type": "first"}, {"type": "second"}, version="1.1.0", cniVersions=["0.4.0", "1.0.0", "1.1.0"])
    assert net.cni_version == "1.1.0"
    cni = plugins.cni()
    assert cni.select_version(net) == "1.0.0"
    result = cni.add_network_list(net, RT)
    assert result["cniVersion"] == "1.0.0"
    assert {c["stdin"]["cniVersion"] for c in plugins.calls("ADD")} == {"1.0.0"}
    versions_before = len(plugins.calls("VERSION"))
    cni.del_network_list(net, RT)
    assert len(plugins.calls("VERSION")) == versions_before  # VERSION answers cached per binary


def test_get_version_info(plugins: Plugins) -> None:
    plugins.make("p", versions=["0.4.0", "1.0.0"])
    plugins.make("ancient", behaviour="no-version")
    info = plugins.cni().get_version_info("p", "0.4.0")
    assert info == {"cniVersion": "0.4.0", "supportedVersions": ["0.4.0", "1.0.0"]}
    call = plugins.calls("VERSION")[0]
    assert call["stdin"] == {"cniVersion": "0.4.0"}
    assert call["env"]["CNI_COMMAND"] == "VERSION"
    assert plugins.cni().get_version_info("p")["cniVersion"] == "1.1.0"  # stdin defaults to hull's version
    assert plugins.cni().get_version_info("ancient")["supportedVersions"] == ["0.1.0"]


def test_gc(plugins: Plugins) -> None:
    plugins.make("modern", versions=NEW)
    plugins.make("legacy", versions=DEBIAN)
    net = netlist({"type": "modern"}, {"type": "legacy"}, version="1.1.0", cniVersions=["1.0.0", "1.1.0"])
    cni = plugins.cni()
    # Both plugins must speak the version: with legacy in the list the version is 1.0.0.
    assert cni.select_version(net) == "1.0.0"
    net = netlist({"type": "modern"}, version="1.1.0")
    gone = RuntimeConf("gone", "/run/netns/gone", "eth0")
    kept = RuntimeConf("kept", "/run/netns/kept", "eth1")
    cni.add_network_list(net, gone)
    cni.add_network_list(net, kept)
    cni.gc_network_list(net, [("kept", "eth1")])
    # The stale attachment gets a DEL with its cached parameters (libcni GCNetworkList).
    assert [(d["env"]["CNI_CONTAINERID"], d["env"]["CNI_NETNS"]) for d in plugins.calls("DEL")] == [
        ("gone", "/run/netns/gone")
    ]
    assert cni.cached_attachments("testnet") == [("kept", "eth1")]
    (gc,) = plugins.calls("GC")
    assert gc["stdin"]["cni.dev/valid-attachments"] == [{"containerID": "kept", "ifname": "eth1"}]
    assert gc["stdin"]["cniVersion"] == "1.1.0" and gc["stdin"]["name"] == "testnet"
    assert "prevResult" not in gc["stdin"] and "runtimeConfig" not in gc["stdin"]
    assert gc["env"]["CNI_PATH"] == f"{plugins.dir}:/nonexistent" and gc["env"]["CNI_CONTAINERID"] == ""
    # disableGC: nothing at all.
    cni.gc_network_list(netlist({"type": "modern"}, version="1.1.0", disableGC=True), [])
    assert len(plugins.calls("GC")) == 1 and cni.cached_attachments("testnet") == [("kept", "eth1")]


def test_gc_not_sent_to_plugins_without_1_1_0(plugins: Plugins) -> None:
    plugins.make("legacy", versions=DEBIAN)
    net = netlist({"type": "legacy"}, version="1.0.0")
    cni = plugins.cni()
    cni.add_network_list(net, RT)
    cni.gc_network_list(net, [])
    assert plugins.calls("GC") == []
    assert [d["env"]["CNI_CONTAINERID"] for d in plugins.calls("DEL")] == ["c0ffee"]  # the stale one, DELeted


def test_gc_errors_do_not_stop_the_others(plugins: Plugins) -> None:
    plugins.make("failing", versions=NEW, behaviour="error")
    plugins.make("modern", versions=NEW)
    net = netlist({"type": "failing"}, {"type": "modern"}, version="1.1.0")
    with pytest.raises(NetworkError, match=r'plugin type="failing" name="testnet" failed \(gc\): invalid config'):
        plugins.cni().gc_network_list(net, [])
    assert [g["plugin"] for g in plugins.calls("GC")] == ["failing", "modern"]


def test_status(plugins: Plugins) -> None:
    plugins.make("down", versions=NEW, behaviour="unavailable")
    plugins.make("legacy", versions=DEBIAN, behaviour="unavailable")
    cni = plugins.cni()
    with pytest.raises(CNIError) as err:
        cni.status_network_list(netlist({"type": "down"}, version="1.1.0"))
    assert (err.value.code, err.value.msg, err.value.op) == (50, "plugin not available", "status")
    assert plugins.calls("STATUS")[0]["stdin"] == {"type": "down", "name": "testnet", "cniVersion": "1.1.0"}
    cni.status_network_list(netlist({"type": "down"}, version="1.0.0"))  # before 1.1.0: no STATUS
    cni.status_network_list(netlist({"type": "legacy"}, version="1.1.0", cniVersions=["1.0.0"]))
    assert len(plugins.calls("STATUS")) == 1


@pytest.mark.parametrize(
    ("rt", "message"),
    [
        (RuntimeConf("", "/x"), "invalid container ID ''"),
        (RuntimeConf("-x", "/x"), "invalid container ID '-x'"),
        (RuntimeConf("ok", "/x", ifname="a" * 16), "invalid interface name"),
        (RuntimeConf("ok", "/x", ifname="a/b"), "invalid interface name 'a/b'"),
        (RuntimeConf("ok", "/x", args=[("A;B", "1")]), "invalid CNI_ARGS entry"),
    ],
)
def test_runtime_conf_checked_before_running(plugins: Plugins, rt: RuntimeConf, message: str) -> None:
    plugins.make("only")
    with pytest.raises(NetworkError, match=message):
        plugins.cni().add_network_list(netlist({"type": "only"}), rt)
    assert plugins.calls() == []


def test_convert_result() -> None:
    new = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "aa", "sandbox": "/ns", "mtu": 1500}],
        "ips": [{"address": "10.0.0.2/24", "interface": 0}, {"address": "fd00::2/64", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1", "mtu": 1400}],
        "dns": {"nameservers": ["10.0.0.1"]},
    }
    old = convert_result(new, "0.4.0")
    assert old == {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0", "mac": "aa", "sandbox": "/ns"}],
        "ips": [
            {"address": "10.0.0.2/24", "interface": 0, "version": "4"},
            {"address": "fd00::2/64", "interface": 0, "version": "6"},
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
        "dns": {"nameservers": ["10.0.0.1"]},
    }
    back = convert_result(old, "1.1.0")
    assert back["cniVersion"] == "1.1.0" and all("version" not in ip for ip in back["ips"])
    assert convert_result(old, "0.3.1")["ips"] == old["ips"]
    with pytest.raises(NetworkError):
        convert_result({"cniVersion": "0.2.0", "ip4": {}}, "1.0.0")
