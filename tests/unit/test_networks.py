"""hull.network.networks without root: subnets chosen and refused against other networks and host
routes (injected), the CNI conflist built, the store's files, lock, removal and lease clean-up."""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
from pathlib import Path

import pytest

from hull.network import networks
from hull.network.errors import NetworkError
from hull.network.networks import (
    Network,
    NetworkExists,
    NetworkInUse,
    NetworkNotFound,
    NetworkStore,
    Subnet,
    SubnetConflict,
)

ROUTE_TABLE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth1\t0000640A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth2\t0000650A\t00000000\t0000\t0\t0\t0\t0000FFFF\t0\t0\t0
"""
IPV6_TABLE = """\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
"""  # noqa: E501 - the kernel's lines, as this VM has them


def store_with(tmp_path: Path, routes: list[tuple[str, str]] | None = None) -> NetworkStore:
    return NetworkStore(str(tmp_path / "root"), routes=lambda: list(routes or []))


def net(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr)


# ---------------------------------------------------------------- host routes


def test_host_routes_parses_the_kernel_tables(tmp_path: Path) -> None:
    (tmp_path / "route").write_text(ROUTE_TABLE)
    (tmp_path / "ipv6_route").write_text(IPV6_TABLE)
    routes = networks.host_routes(str(tmp_path / "route"), str(tmp_path / "ipv6_route"))
    # the default routes, the route that is not up (eth2), link-local, multicast and lo are left out
    assert routes == [
        ("192.0.2.0/24", "eth0"),
        ("10.100.0.0/16", "eth1"),
        ("fd00:0000:0000:0000:0000:0000:0000:0000/64", "eth0"),
    ]


def test_host_routes_of_missing_tables_are_none(tmp_path: Path) -> None:
    assert networks.host_routes(str(tmp_path / "nope"), str(tmp_path / "nope6")) == []


# ---------------------------------------------------------------- the default network


def test_default_network_is_hull0_on_10_99(tmp_path: Path) -> None:
    store = store_with(tmp_path, [("192.0.2.0/24", "eth0")])
    default = store.ensure_default()
    assert (default.name, default.bridge, default.driver) == ("hull", "hull0", "bridge")
    assert default.subnets == [Subnet("10.99.0.0/16", "10.99.0.1")]
    assert len(default.id) == 64 and int(default.id, 16) >= 0
    # the pseudo-networks come with it, as docker's host and none
    assert {n.name: n.driver for n in store.list()} == {"host": "host", "hull": "bridge", "none": "null"}
    assert store.ensure_default() == default  # made once


def test_default_network_moves_down_when_a_host_route_covers_10_99(tmp_path: Path) -> None:
    store = store_with(tmp_path, [("10.99.7.0/24", "eth1"), ("10.98.0.0/15", "eth2")])  # 10.98+10.99 taken
    assert store.ensure_default().subnets == [Subnet("10.97.0.0/16", "10.97.0.1")]


def test_default_network_ignores_its_own_bridge_route(tmp_path: Path) -> None:
    # hull0 already up (this root's default, or another root's on the same host): not a conflict
    store = store_with(tmp_path, [("10.99.0.0/16", "hull0")])
    assert store.ensure_default().subnets[0].subnet == "10.99.0.0/16"


def test_default_network_with_every_candidate_taken_is_an_error(tmp_path: Path) -> None:
    store = store_with(tmp_path, [("10.64.0.0/10", "eth1")])
    with pytest.raises(SubnetConflict, match="overlaps a host route"):
        store.ensure_default()
    assert not (tmp_path / "root" / "networks" / "hull.json").exists()


# ---------------------------------------------------------------- user networks: subnets


def test_automatic_subnets_are_the_next_free_10_100_n(tmp_path: Path) -> None:
    store = store_with(tmp_path, [("10.100.1.0/24", "eth1")])
    first = store.create("one")
    second = store.create("two")
    assert first.subnets == [Subnet("10.100.0.0/24", "10.100.0.1")]
    assert second.subnets == [Subnet("10.100.2.0/24", "10.100.2.1")]  # 10.100.1 is the host's
    store.remove("one")
    assert store.create("three").subnets[0].subnet == "10.100.0.0/24"  # freed, used again


def test_automatic_subnet_skips_an_explicit_network_inside_the_pool(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    store.create("wide", subnet="10.100.0.0/22")
    assert store.create("next").subnets[0].subnet == "10.100.4.0/24"


def test_routes_through_another_hull_network_bridge_are_that_networks_own(tmp_path: Path) -> None:
    routes: list[tuple[str, str]] = []
    store = NetworkStore(str(tmp_path / "root"), routes=lambda: routes)
    a = store.create("a")
    routes.append((a.subnets[0].subnet, a.bridge))  # its bridge is up now
    assert store.create("b").subnets[0].subnet == "10.100.1.0/24"
    with pytest.raises(SubnetConflict, match=f"overlaps network a \\({a.subnets[0].subnet}\\)"):
        store.create("c", subnet="10.100.0.128/25")


def test_explicit_subnet_overlapping_a_host_route_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    store = store_with(tmp_path, [("192.168.0.0/16", "wlan0")])
    store.ensure_default()
    before = sorted(os.listdir(store.dir))
    with pytest.raises(SubnetConflict) as err:
        store.create("lan", subnet="192.168.10.0/24")
    assert str(err.value) == "subnet 192.168.10.0/24 overlaps a host route (192.168.0.0/16 dev wlan0)"
    assert sorted(os.listdir(store.dir)) == before
    with pytest.raises(NetworkNotFound):
        store.get("lan")


def test_explicit_subnet_containing_another_network_is_refused(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    store.ensure_default()
    with pytest.raises(SubnetConflict, match=r"subnet 10\.0\.0\.0/8 overlaps network hull \(10\.99\.0\.0/16\)"):
        store.create("big", subnet="10.0.0.0/8")


def test_explicit_subnet_and_gateway(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    network = store.create("n", subnet="172.30.0.0/16", gateway="172.30.5.254")
    assert network.subnets == [Subnet("172.30.0.0/16", "172.30.5.254")]
    assert network.bridge == f"hull-{network.id[:8]}" and len(network.bridge) <= 15


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subnet": "10.1.2.3/24"}, "invalid subnet 10.1.2.3/24: 10.1.2.3/24 has host bits set"),
        ({"subnet": "nonsense"}, "invalid subnet nonsense"),
        ({"subnet": "10.1.2.0/31"}, "subnet 10.1.2.0/31: too small"),
        ({"subnet": "fd12::/64"}, "subnet fd12::/64 is IPv6: add --ipv6"),
        ({"subnet": ["10.1.0.0/24", "10.2.0.0/24"]}, "only one IPv4 subnet per network"),
        ({"subnet": "10.1.0.0/24", "gateway": "10.2.0.1"}, "no matching subnet for gateway 10.2.0.1"),
        ({"gateway": "10.2.0.1"}, "no matching subnet for gateway 10.2.0.1"),
        ({"subnet": "10.1.0.0/24", "gateway": "10.1.0.255"}, "gateway 10.1.0.255: the network or broadcast"),
        ({"subnet": "10.1.0.0/24", "gateway": "x"}, "invalid gateway x: not an IP address"),
    ],
)
def test_bad_subnets_and_gateways(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    store = store_with(tmp_path)
    with pytest.raises(NetworkError) as err:
        store.create("n", **kwargs)  # type: ignore[arg-type]
    assert message in str(err.value)
    assert [n.name for n in store.list()] == ["host", "hull", "none"]


def test_ipv6_adds_a_unique_local_64_clear_of_host_routes(tmp_path: Path) -> None:
    store = store_with(tmp_path, [("fd00::/64", "eth0")])
    network = store.create("v6", ipv6=True)
    v4, v6 = network.subnets
    assert v4.subnet == "10.100.0.0/24"
    prefix = net(v6.subnet)
    assert prefix.prefixlen == 64 and prefix.subnet_of(net("fd00::/8"))  # type: ignore[arg-type]
    assert not prefix.overlaps(net("fd00::/64"))
    assert ipaddress.ip_address(v6.gateway) == prefix.network_address + 1
    assert network.ipv6 and network.inspect()["EnableIPv6"] is True


def test_ipv6_explicit_subnet(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    network = store.create("v6", subnet=["fd12:3456:789a::/64", "10.7.0.0/24"], ipv6=True)
    assert [s.subnet for s in network.subnets] == ["fd12:3456:789a::/64", "10.7.0.0/24"]
    with pytest.raises(SubnetConflict, match="overlaps network v6"):
        store.create("again", subnet="fd12:3456:789a:0:1::/80", ipv6=True)


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["", "-x", ".x", "a b", "a/b", "é", "x" * 201])
def test_invalid_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(NetworkError, match="invalid network name"):
        store_with(tmp_path).create(name)


@pytest.mark.parametrize("name", ["hull", "host", "none"])
def test_predefined_names_exist_already(tmp_path: Path, name: str) -> None:
    with pytest.raises(NetworkExists, match=f"network with name {name} already exists"):
        store_with(tmp_path).create(name)


def test_a_name_in_use_is_refused(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    first = store.create("web_1.a-b")
    with pytest.raises(NetworkExists):
        store.create("web_1.a-b", subnet="172.20.0.0/24")
    assert store.get("web_1.a-b") == first


# ---------------------------------------------------------------- files, lookup, lock


def test_store_round_trip_and_lookup(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    made = store.create("n", internal=True, labels={"app": "web", "empty": ""})
    again = NetworkStore(str(tmp_path / "root")).get("n")
    assert again == made
    assert store.get(made.id) == made and store.get(made.id[:12]) == made
    doc = json.loads((tmp_path / "root" / "networks" / "n.json").read_text())
    assert doc == made.inspect()
    assert doc["Name"] == "n" and doc["Id"] == made.id and doc["Scope"] == "local" and doc["Driver"] == "bridge"
    assert doc["IPAM"]["Driver"] == "default"
    assert doc["IPAM"]["Config"] == [{"Subnet": "10.100.0.0/24", "Gateway": "10.100.0.1"}]
    assert doc["Internal"] is True and doc["EnableIPv6"] is False and doc["Labels"] == {"app": "web", "empty": ""}
    assert doc["Options"] == {"com.docker.network.bridge.name": made.bridge}
    assert doc["Created"].endswith("Z") and doc["Created"][:4].isdigit()
    assert Network.from_inspect(doc) == made
    # no temporary file left beside it
    assert sorted(os.listdir(store.dir)) == [".lock", "host.json", "hull.json", "n.json", "none.json"]


def test_get_unknown_and_ambiguous(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    with pytest.raises(NetworkNotFound, match="network nope not found"):
        store.get("nope")
    with pytest.raises(NetworkNotFound):
        store.get("../networks/hull")
    for name, network_id in (("a", "abc1" + "0" * 60), ("b", "abc2" + "0" * 60)):
        doc = store.create(name).inspect()
        doc["Id"] = network_id
        Path(store.path(name)).write_text(json.dumps(doc))
    with pytest.raises(NetworkError, match=r"network abc is ambiguous \(2 matches found based on ID prefix\)"):
        store.get("abc")
    assert store.get("abc2").name == "b" and store.get("ABC1").name == "a"


def test_get_makes_the_predefined_networks(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    assert store.get("none").driver == "null"
    assert store.get("hull").bridge == "hull0"


def test_create_waits_for_the_store_lock(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    store.ensure_default()
    other = store_with(tmp_path)
    done = threading.Event()

    def create() -> None:
        other.create("late")
        done.set()

    with store.lock():
        thread = threading.Thread(target=create)
        thread.start()
        time.sleep(0.3)
        assert not done.is_set() and not os.path.exists(store.path("late"))
    thread.join(10)
    assert done.is_set() and store.get("late").name == "late"


def test_concurrent_creates_get_distinct_subnets(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def create(i: int) -> None:
        try:
            store_with(tmp_path).create(f"net{i}")
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    store_with(tmp_path).ensure_default()
    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors
    subnets = [n.subnets[0].subnet for n in store_with(tmp_path).list() if n.name.startswith("net")]
    assert len(subnets) == 8 and len(set(subnets)) == 8


# ---------------------------------------------------------------- removal


def test_remove_refuses_predefined_and_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deleted: list[str] = []

    def delete_link(name: str) -> bool:
        deleted.append(name)
        return True

    monkeypatch.setattr(networks, "delete_link", delete_link)
    store = store_with(tmp_path)
    network = store.create("n")
    for name in ("hull", "host", "none"):
        with pytest.raises(NetworkError, match=f"{name} is a pre-defined network and cannot be removed"):
            store.remove(name)
    users = ["a" * 64, "b" * 64]
    with pytest.raises(NetworkInUse) as err:
        store.remove("n", lambda name: users if name == "n" else [])
    assert "has active endpoints" in str(err.value)
    assert "aaaaaaaaaaaa" in str(err.value) and "bbbbbbbbbbbb" in str(err.value)
    assert store.get("n") == network and deleted == []
    leases = Path(store.ipam_dir) / "n"
    leases.mkdir(parents=True)
    (leases / "last_reserved_ip.0").write_text("10.100.0.2")
    assert store.remove(network.id[:12], lambda name: []) == network
    assert deleted == [network.bridge] and not leases.exists()
    with pytest.raises(NetworkNotFound):
        store.remove("n")


def test_prune_removes_unused_user_networks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(networks, "delete_link", lambda name: True)
    store = store_with(tmp_path)
    for name in ("busy", "idle", "kept"):
        store.create(name, labels={"keep": "1"} if name == "kept" else None)
    removed = store.prune(lambda name: ["c" * 64] if name in ("busy", "hull") else [], lambda n: "keep" in n.labels)
    assert removed == ["idle"]
    assert [n.name for n in store.list()] == ["busy", "host", "hull", "kept", "none"]


# ---------------------------------------------------------------- CNI conflist


def test_conflist_of_a_bridge_network(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    network = store.create("n", ipv6=True)
    conf = store.conflist(network, ports=True)
    assert conf.name == "n" and conf.cni_version == "1.0.0"
    bridge, portmap = conf.plugins
    assert [p["type"] for p in store.conflist(network).plugins] == ["bridge"]  # portmap only with -p
    assert bridge["type"] == "bridge" and bridge["bridge"] == network.bridge
    # masquerading is the network's own rule (hull.network.firewall), not the plugin's per container
    assert bridge["isGateway"] is True and bridge["ipMasq"] is False and bridge["hairpinMode"] is True
    assert bridge["capabilities"] == {"ips": True}
    ipam = bridge["ipam"]
    assert ipam["type"] == "host-local"
    assert ipam["dataDir"] == str(tmp_path / "root" / "networks" / "ipam")
    assert ipam["ranges"] == [[{"subnet": s.subnet, "gateway": s.gateway}] for s in network.subnets]
    assert ipam["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}


def test_conflist_of_an_internal_network_has_no_way_out(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    bridge = store.conflist(store.create("n", internal=True)).plugins[0]
    assert bridge["isGateway"] is False and bridge["ipMasq"] is False
    assert "routes" not in bridge["ipam"]


def test_conflist_of_the_default_network(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    bridge = store.conflist(store.ensure_default()).plugins[0]
    assert bridge["bridge"] == "hull0"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.99.0.0/16", "gateway": "10.99.0.1"}]]


@pytest.mark.parametrize("name", ["host", "none"])
def test_pseudo_networks_have_no_conflist(tmp_path: Path, name: str) -> None:
    store = store_with(tmp_path)
    with pytest.raises(NetworkError, match="has no CNI configuration"):
        store.conflist(store.get(name))


# ---------------------------------------------------------------- leases


def test_gc_leases_removes_those_of_gone_containers(tmp_path: Path) -> None:
    leases = tmp_path / "ipam" / "net"
    leases.mkdir(parents=True)
    live, gone = "1" * 64, "2" * 64
    # host-local's format (plugins/ipam/host-local/backend/disk): "ID\r\nIFNAME", file named by the IP
    (leases / "10.99.0.2").write_bytes(f"{live}\r\neth0".encode())
    (leases / "10.99.0.3").write_bytes(f"{gone}\r\neth0".encode())
    (leases / "fd12::3").write_bytes(f"{gone}\r\neth0".encode())
    (leases / "last_reserved_ip.0").write_text("10.99.0.3")
    (leases / "lock").write_text("")
    assert networks.gc_leases(str(tmp_path / "ipam"), "net", {live}) == ["10.99.0.3", "fd12::3"]
    assert sorted(os.listdir(leases)) == ["10.99.0.2", "last_reserved_ip.0", "lock"]
    assert networks.gc_leases(str(tmp_path / "ipam"), "other", {live}) == []
