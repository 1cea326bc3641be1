"""``hull network ...`` end to end (root): networks made, listed, inspected, refused, removed, pruned;
and the default network's conflist run through the real CNI plugins in a namespace of hull.network.netns."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess

from hull.network import netns
from hull.network.networks import NetworkStore, host_routes
from tests.integration import engine_support
from tests.integration.engine_support import Engine

engine = engine_support.engine  # the fixture: a private engine, leak-checked


def ls_rows(engine: Engine, *args: str) -> list[list[str]]:
    return [line.split() for line in engine("network", "ls", *args).stdout.splitlines()]


def network_files(engine: Engine) -> list[str]:
    return sorted(p for p in os.listdir(engine.root / "networks") if p.endswith(".json"))


def test_default_networks_are_listed_as_docker_lists_bridge_host_none(engine: Engine) -> None:
    header, *rows = ls_rows(engine)
    assert header == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [row[1:] for row in rows] == [["host", "host", "local"], ["hull", "bridge", "local"],
                                         ["none", "null", "local"]]  # fmt: skip
    assert all(len(row[0]) == 12 for row in rows)
    (doc,) = json.loads(engine("network", "inspect", "hull").stdout)
    assert doc["Name"] == "hull" and doc["Driver"] == "bridge" and doc["Containers"] == {}
    assert doc["IPAM"]["Config"] == [{"Subnet": "10.99.0.0/16", "Gateway": "10.99.0.1"}]
    assert doc["Options"] == {"com.docker.network.bridge.name": "hull0"}
    assert engine("network", "ls", "-q").stdout.split() == [row[0] for row in rows]


def test_create_inspect_ls_rm(engine: Engine) -> None:
    out = engine("network", "create", "--subnet", "10.123.0.0/24", "--gateway", "10.123.0.254",
                 "--label", "app=web", "front")  # fmt: skip
    network_id = out.stdout.strip()
    assert len(network_id) == 64 and int(network_id, 16) >= 0
    (doc,) = json.loads(engine("network", "inspect", network_id[:12]).stdout)
    assert doc["Name"] == "front" and doc["Id"] == network_id and doc["Scope"] == "local"
    assert doc["IPAM"]["Config"] == [{"Subnet": "10.123.0.0/24", "Gateway": "10.123.0.254"}]
    assert doc["Labels"] == {"app": "web"} and doc["Internal"] is False and doc["EnableIPv6"] is False
    bridge = doc["Options"]["com.docker.network.bridge.name"]
    assert bridge == f"hull-{network_id[:8]}"
    fmt = engine("network", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Labels.app}}", "front").stdout
    assert fmt == "front bridge web\n"
    assert ["front"] == [r[1] for r in ls_rows(engine, "--filter", "label=app=web")[1:]]
    assert ["front"] == [r[1] for r in ls_rows(engine, "--filter", "type=custom")[1:]]
    assert [] == ls_rows(engine, "--filter", "name=nomatch")[1:]
    (row,) = [json.loads(line) for line in engine("network", "ls", "--format", "json", "-f", "name=front")
              .stdout.splitlines()]  # fmt: skip
    assert row["ID"] == network_id[:12] and row["Driver"] == "bridge" and row["Labels"] == "app=web"
    assert engine("network", "rm", "front").stdout == "front\n"
    assert "front.json" not in network_files(engine)
    missing = engine("network", "rm", "front", check=False)
    assert missing.returncode == 1 and missing.stderr == "Error: network front not found\n"
    assert engine("network", "rm", "-f", "front").returncode == 0


def test_automatic_subnets_and_ipv6(engine: Engine) -> None:
    engine("network", "create", "--ipv6", "--internal", "inner")
    (doc,) = json.loads(engine("network", "inspect", "inner").stdout)
    v4, v6 = (ipaddress.ip_network(c["Subnet"]) for c in doc["IPAM"]["Config"])
    assert v4.subnet_of(ipaddress.ip_network("10.100.0.0/14"))  # type: ignore[arg-type]
    assert v6.prefixlen == 64 and v6.subnet_of(ipaddress.ip_network("fd00::/8"))  # type: ignore[arg-type]
    assert doc["EnableIPv6"] is True and doc["Internal"] is True
    engine("network", "rm", "inner")


def test_subnet_conflicts_exit_1_with_one_line_and_create_nothing(engine: Engine) -> None:
    engine("network", "ls")  # the default network exists
    before = network_files(engine)
    route, iface = next((d, i) for d, i in host_routes() if "." in d and not i.startswith("hull"))
    inside = str(next(ipaddress.ip_network(route).subnets(new_prefix=min(ipaddress.ip_network(route).prefixlen + 1,
                                                                               30))))  # fmt: skip
    for subnet, what in ((inside, f"a host route ({route} dev {iface})"), ("10.99.4.0/24", "network hull")):
        failed = engine("network", "create", "--subnet", subnet, "clash", check=False)
        assert failed.returncode == 1 and failed.stdout == ""
        assert failed.stderr.count("\n") == 1 and failed.stderr.startswith(f"Error: subnet {subnet} overlaps {what}")
        assert network_files(engine) == before
    for args, message in (
        (["bad name"], "Error: invalid network name 'bad name'"),
        (["hull"], "Error: network with name hull already exists"),
        (["-d", "overlay", "x"], 'Error: plugin "overlay" not found'),
        (["--gateway", "10.1.1.1", "x"], "Error: no matching subnet for gateway 10.1.1.1"),
    ):
        failed = engine("network", "create", *args, check=False)
        assert failed.returncode == 1 and failed.stderr.count("\n") == 1 and failed.stderr.startswith(message)
    assert network_files(engine) == before


def test_predefined_networks_cannot_be_removed_and_prune_spares_them(engine: Engine) -> None:
    for name in ("hull", "host", "none"):
        failed = engine("network", "rm", name, check=False)
        assert failed.returncode == 1
        assert failed.stderr == f"Error: {name} is a pre-defined network and cannot be removed\n"
    engine("network", "create", "a")
    engine("network", "create", "--label", "keep=1", "b")
    out = engine("network", "prune", "-f", "--filter", "label!=keep").stdout
    assert out == "Deleted Networks:\na\n\n"
    assert [r[1] for r in ls_rows(engine)[1:]] == ["b", "host", "hull", "none"]
    assert engine("network", "prune").stdout == "Deleted Networks:\nb\n\n"
    assert engine("network", "prune").stdout == ""
    assert network_files(engine) == ["host.json", "hull.json", "none.json"]


def _iptables_rules() -> str:
    return "".join(
        subprocess.run([tool], capture_output=True, text=True, check=True, timeout=30).stdout
        for tool in ("iptables-save", "ip6tables-save")
    )


def test_default_network_through_the_cni_plugins(engine: Engine) -> None:
    from hull.network.cni import CNI, RuntimeConf

    store = NetworkStore(str(engine.root))
    conf = store.conflist(store.ensure_default(), ports=True)
    cni = CNI(cache_dir=str(engine.root / "cni"))
    container_id = secrets.token_hex(32)
    path = str(engine.runroot / "netns-test")
    netns.create(path)
    mapping = {"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}
    rt = RuntimeConf(container_id=container_id, netns=path, ifname="eth0", capability_args={"portMappings": [mapping]})
    try:
        result = cni.add_network_list(conf, rt)
        (ip,) = [i["address"] for i in result["ips"]]
        address = ipaddress.ip_interface(ip)
        assert address.ip in ipaddress.ip_network("10.99.0.0/16") and address.network.prefixlen == 16
        shown = subprocess.run(["nsenter", f"--net={path}", "ip", "-j", "addr", "show", "eth0"],
                               capture_output=True, text=True, check=True, timeout=10).stdout  # fmt: skip
        (eth0,) = json.loads(shown)
        assert str(address.ip) in [a["local"] for a in eth0["addr_info"]]
        subprocess.run(["busybox", "ping", "-c1", "-W2", str(address.ip)], check=True, capture_output=True, timeout=10)
        host_veths = [i["name"] for i in result["interfaces"] if not i.get("sandbox") and i["name"] != "hull0"]
        assert len(host_veths) == 1
        assert container_id in _iptables_rules()  # portmap's rules name the container
        leases = engine.root / "networks" / "ipam" / "hull"
        assert (leases / str(address.ip)).read_bytes().split(b"\r\n") == [container_id.encode(), b"eth0"]
    finally:
        cni.del_network_list(conf, rt)
        netns.remove(path)
    assert not os.path.exists(f"/sys/class/net/{host_veths[0]}")
    assert not (leases / str(address.ip)).exists()
    assert container_id not in _iptables_rules()
    assert not os.path.exists(path) and path not in engine.mounts()


def test_rm_deletes_the_bridge_and_its_route(engine: Engine) -> None:
    from hull.network.cni import CNI, RuntimeConf

    engine("network", "create", "--subnet", "10.125.7.0/24", "withbridge")
    store = NetworkStore(str(engine.root))
    network = store.get("withbridge")
    conf = store.conflist(network)
    cni = CNI(cache_dir=str(engine.root / "cni"))
    path = str(engine.runroot / "netns-test")
    netns.create(path)
    rt = RuntimeConf(container_id=secrets.token_hex(32), netns=path, ifname="eth0")
    try:
        cni.add_network_list(conf, rt)
        assert os.path.exists(f"/sys/class/net/{network.bridge}")
        assert ("10.125.7.0/24", network.bridge) in host_routes()
    finally:
        cni.del_network_list(conf, rt)
        netns.remove(path)
    assert os.path.exists(f"/sys/class/net/{network.bridge}")  # the bridge plugin leaves it
    assert engine("network", "rm", "withbridge").stdout == "withbridge\n"
    assert not os.path.exists(f"/sys/class/net/{network.bridge}")
    assert not [r for r in host_routes() if r[0] == "10.125.7.0/24"]
    # the subnet is free again: a new network may take it
    engine("network", "create", "--subnet", "10.125.7.0/24", "again")
    engine("network", "rm", "again")
