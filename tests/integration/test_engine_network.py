"""Containers on CNI networks through the engine, with Debian's reference plugins (containernetworking-plugins).

What a user checks: containers of one network reach each other by name; a published port answers on the host;
a container reaches a server on the host side of its bridge; ``--network container:ID`` shares a namespace;
a failing plugin leaves nothing behind; nothing leaks over many run/rm cycles (veths, namespaces, leases,
iptables rules).
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.integration import engine_support
from tests.integration.engine_support import BUSYBOX, Engine

engine = engine_support.engine


def _network_leaks(eng: Engine, ids: list[str]) -> list[str]:
    """What a removed container may have left: its veth (named by the bridge plugin), netns file, lease,
    iptables rules mentioning its ID."""
    found = []
    netns_dir = eng.runroot / "netns"
    if netns_dir.exists():
        found += [f"netns {p}" for p in os.listdir(netns_dir)]
    ipam = eng.root / "networks" / "ipam"
    for net in os.listdir(ipam) if ipam.exists() else []:
        for lease in os.listdir(ipam / net):
            if lease[0].isdigit() and not lease.startswith("last_reserved_ip"):
                found.append(f"lease {net}/{lease}")
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    found += [f"iptables rule for {cid[:12]}" for cid in ids if cid in rules]
    return found


def _veths() -> set[str]:
    out = subprocess.run(["ip", "-j", "link", "show", "type", "veth"], capture_output=True, text=True, check=True)
    return {link["ifname"] for link in json.loads(out.stdout or "[]")}


@pytest.fixture
def net(engine: Engine) -> Iterator[str]:
    """A user network of its own (a /24 no other test uses), removed at the end."""
    name = f"t{os.getpid() % 10000}"
    engine("network", "create", "--subnet", f"10.124.{os.getpid() % 200}.0/24", name)
    yield name
    for cid in engine.ids():
        engine("rm", "-f", cid, check=False)
    engine("network", "rm", name, check=False)


def _ip(engine: Engine, ref: str) -> str:
    address: str = engine.inspect(ref)["NetworkSettings"]["IPAddress"]
    return address


def test_two_containers_of_a_network_reach_each_other_by_name(engine: Engine, net: str) -> None:
    engine("run", "-d", "--network", net, "--name", "server", BUSYBOX, "sleep", "60")
    ip = _ip(engine, "server")
    assert ip.startswith("10.124.")
    out = engine("run", "--rm", "--network", net, "--name", "client", BUSYBOX, "ping", "-c1", "-W2", "server")
    # busybox ping names the address it resolved: "PING server (10.124.x.y): 56 data bytes", then a reply.
    assert out.stdout.startswith(f"PING server ({ip})") and "1 packets received" in out.stdout
    # The server's /etc/hosts learnt the client's name while it ran, and forgets it once it is gone.
    hosts = engine("exec", "server", "cat", "/etc/hosts").stdout
    assert "client" not in hosts
    assert "server" in hosts


def test_the_host_reaches_a_published_port(engine: Engine, net: str) -> None:
    serve = "mkdir -p /www && echo hello-from-hull > /www/index.html && httpd -f -p 8080 -h /www"
    engine("run", "-d", "--network", net, "-p", "127.0.0.1::8080", "--name", "web", BUSYBOX, "sh", "-c", serve)
    line = engine("port", "web").stdout.strip()
    assert line.startswith("8080/tcp -> 127.0.0.1:")
    host_port = int(line.rsplit(":", 1)[1])
    body = b""
    for _ in range(50):
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{host_port}/", timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    assert body == b"hello-from-hull\n"
    assert f"127.0.0.1:{host_port}->8080/tcp" in engine("ps", "--format", "{{.Ports}}").stdout


def test_a_container_reaches_a_server_on_the_host_side(engine: Engine, net: str) -> None:
    gateway = engine("network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", net).stdout.strip()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"host-side")

        def log_message(self, *args: object) -> None:
            pass

    engine("run", "--rm", "--network", net, BUSYBOX, "true")  # the bridge (and its gateway address) exists now
    server = http.server.HTTPServer((gateway, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        out = engine("run", "--rm", "--network", net, BUSYBOX, "wget", "-qO-", f"http://{gateway}:{port}/")
        assert out.stdout == "host-side"
    finally:
        server.shutdown()


def test_network_container_shares_the_namespace(engine: Engine, net: str) -> None:
    engine("run", "-d", "--network", net, "--name", "first", BUSYBOX, "sleep", "60")
    ip = _ip(engine, "first")
    out = engine("run", "--rm", "--network", "container:first", BUSYBOX, "ip", "-o", "-4", "addr", "show", "eth0")
    assert f" {ip}/" in out.stdout


def test_none_has_only_loopback_and_the_default_network_egresses(engine: Engine) -> None:
    out = engine("run", "--rm", "--network", "none", BUSYBOX, "ip", "-o", "link").stdout
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    out = engine("run", "--rm", "--network", "hull", BUSYBOX, "ip", "-o", "-4", "addr", "show", "eth0").stdout
    assert " 10.99." in out


def test_a_failing_plugin_leaves_nothing(engine: Engine, net: str) -> None:
    before = _veths()
    # host-local refuses an address outside the network's range: a real plugin error.
    failed = engine("run", "--rm", "--network", net, "--ip", "192.0.2.9", BUSYBOX, "true", check=False)
    assert failed.returncode == 125
    assert failed.stderr.count("Error:") == 1 and "192.0.2.9" in failed.stderr
    assert engine.ids() == []
    assert _veths() == before
    assert _network_leaks(engine, engine.event_ids()) == []


def test_a_port_in_use_is_refused_before_anything_changes(engine: Engine, net: str) -> None:
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        failed = engine("run", "--rm", "--network", net, "-p", f"127.0.0.1:{port}:80", BUSYBOX, "true", check=False)
    finally:
        holder.close()
    assert failed.returncode == 125 and f"{port}" in failed.stderr and "not free" in failed.stderr
    assert engine.ids() == []


def test_fifty_run_rm_cycles_on_a_network_leave_nothing(engine: Engine, net: str) -> None:
    before = _veths()
    for _ in range(25):
        engine("run", "--rm", "--network", net, "-p", "127.0.0.1::80", BUSYBOX, "true")
        cid = engine("run", "-d", "--network", net, BUSYBOX, "sleep", "60").stdout.strip()
        engine("rm", "-f", cid)
    assert _veths() == before
    assert _network_leaks(engine, engine.event_ids()) == []
    engine.assert_no_leaks()


def test_connect_adds_an_interface_that_stays_across_a_restart(engine: Engine, net: str) -> None:
    engine("run", "-d", "--network", net, "--name", "peer", BUSYBOX, "sleep", "60")
    engine("run", "-d", "--name", "roamer", BUSYBOX, "sleep", "60")  # on the default network
    engine("network", "connect", net, "roamer")
    addresses = engine("exec", "roamer", "ip", "-o", "-4", "addr").stdout
    assert " eth0 " in addresses and " eth1 " in addresses and " 10.124." in addresses
    assert "1 packets received" in engine("exec", "roamer", "ping", "-c1", "-W2", "peer").stdout
    assert "roamer" in engine("exec", "peer", "cat", "/etc/hosts").stdout  # peer resolves it too
    engine("stop", "-t", "0", "roamer")
    engine("start", "roamer")  # docker keeps the connection: attached again at the start
    assert " eth1 " in engine("exec", "roamer", "ip", "-o", "-4", "addr").stdout
    engine("network", "disconnect", net, "roamer")
    assert " eth1 " not in engine("exec", "roamer", "ip", "-o", "-4", "addr").stdout
    assert "roamer" not in engine("exec", "peer", "cat", "/etc/hosts").stdout
    refused = engine("network", "connect", net, "peer", check=False)
    assert refused.returncode == 1 and "already connected" in refused.stderr


def test_an_ipv6_network_gives_both_addresses_and_names_for_both(engine: Engine) -> None:
    engine("network", "create", "--ipv6", "--subnet", f"10.124.{os.getpid() % 200 + 1}.0/24", "six")
    try:
        engine("run", "-d", "--network", "six", "--name", "v6peer", BUSYBOX, "sleep", "60")
        doc = engine.inspect("v6peer")["NetworkSettings"]
        assert doc["IPAddress"].startswith("10.124.") and doc["GlobalIPv6Address"].startswith("fd")
        out = engine("run", "--rm", "--network", "six", BUSYBOX, "ping6", "-c1", "-W2", "v6peer").stdout
        assert out.startswith(f"PING v6peer ({doc['GlobalIPv6Address']})") and "1 packets received" in out
    finally:
        for cid in engine.ids():
            engine("rm", "-f", cid, check=False)
        engine("network", "rm", "six", check=False)


def test_a_create_failing_after_the_attach_leaves_nothing_and_poisons_nothing(engine: Engine, net: str) -> None:
    before = _veths()
    # The network is attached (its ADD running) when the user's lookup in the image fails.
    failed = engine("run", "--rm", "--network", net, "-u", "nosuchuser", BUSYBOX, "true", check=False)
    assert failed.returncode == 125 and failed.stderr.count("Error:") == 1 and "nosuchuser" in failed.stderr
    assert engine.ids() == []
    assert engine("run", "--rm", "--network", net, BUSYBOX, "echo", "fine").stdout == "fine\n"
    assert _veths() == before
    assert _network_leaks(engine, engine.event_ids()) == []


def test_a_hostname_cannot_write_lines_into_the_peers_hosts_files(engine: Engine, net: str) -> None:
    engine("run", "-d", "--network", net, "--name", "victim", BUSYBOX, "sleep", "60")
    refused = engine("run", "-d", "--network", net, "--hostname", "x\n6.6.6.6 victim", BUSYBOX, "true", check=False)
    assert refused.returncode == 125 and "invalid hostname format" in refused.stderr
    assert "6.6.6.6" not in engine("exec", "victim", "cat", "/etc/hosts").stdout


def test_a_host_port_published_by_one_container_is_refused_to_another(engine: Engine, net: str) -> None:
    engine("run", "-d", "--network", net, "-p", "127.0.0.1:18391:80", "--name", "first", BUSYBOX, "sleep", "60")
    refused = engine("run", "-d", "--network", net, "-p", "18391:80", BUSYBOX, "sleep", "60", check=False)
    assert refused.returncode == 125 and "already published by container" in refused.stderr
    assert len(engine.ids()) == 1


def test_networks_are_isolated_from_each_other(engine: Engine, net: str) -> None:
    engine("network", "create", "--subnet", f"10.124.{os.getpid() % 200 + 2}.0/24", "other")
    try:
        engine("run", "-d", "--network", "other", "--name", "far", BUSYBOX, "sleep", "60")
        far = _ip(engine, "far")
        out = engine("run", "--rm", "--network", net, BUSYBOX, "ping", "-c1", "-W1", far, check=False)
        assert out.returncode != 0 and "0 packets received" in out.stdout
        # ... while the containers of one network still reach each other
        assert engine("run", "--rm", "--network", "other", BUSYBOX, "ping", "-c1", "-W2", far).returncode == 0
    finally:
        for cid in engine.ids():
            engine("rm", "-f", cid, check=False)
        engine("network", "rm", "other", check=False)


def test_a_hostname_does_not_take_over_another_containers_name(engine: Engine, net: str) -> None:
    engine("run", "-d", "--network", net, "--name", "db", BUSYBOX, "sleep", "60")
    engine("run", "-d", "--network", net, "--name", "impostor", "--hostname", "db", BUSYBOX, "sleep", "60")
    out = engine("run", "--rm", "--network", net, BUSYBOX, "ping", "-c1", "-W2", "db").stdout
    assert out.startswith(f"PING db ({_ip(engine, 'db')})")


@pytest.mark.parametrize("value", ["[::1", "abc::80", "1.2.3.4:99999:80", "80-90:80"])
def test_bad_publish_values_are_one_line(engine: Engine, value: str) -> None:
    failed = engine("run", "--rm", "-p", value, BUSYBOX, "true", check=False)
    assert failed.returncode == 125 and failed.stderr.count("Error:") == 1 and "-p" in failed.stderr
    assert engine.ids() == []
