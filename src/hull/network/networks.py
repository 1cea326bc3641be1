"""hull's networks: ``<root>/networks/<name>.json``, each the document ``docker network inspect`` prints.

Every network is a Linux bridge driven by the CNI plugins of the conflist
``conflist()`` builds (bridge with host-local IPAM, portmap, firewall,
tuning). The store keeps three pre-defined networks, made on first use as
docker's daemon makes bridge/host/none:

- ``hull``: the default, bridge ``hull0``, 10.99.0.0/16 (not podman's
  10.88.0.0/16 nor its 10.89.x user range, so both can run on one host); when
  a host route already covers it, the next free /16 downwards (10.98, ...,
  10.90);
- ``host`` and ``none``: docker's pseudo-networks (drivers ``host``, ``null``),
  listed and inspected, never attached through CNI.

A network made by ``create`` gets bridge ``hull-<first 8 hex digits of its
ID>`` (13 characters, under IFNAMSIZ's 15) and, without ``subnet``, the first
10.100.N.0/24 upwards that neither another hull network nor a host route
(``/proc/net/route``, ``/proc/net/ipv6_route``; routes through a hull
network's own bridge excepted) overlaps; with ``ipv6`` also an RFC 4193
unique local /64 (``fdXX:XXXX:XXXX::/64``, a random global ID). An explicit
subnet that overlaps either is refused before anything is written.

Writes are atomic (written aside, then renamed) under one ``flock`` on
``<root>/networks/.lock``; reads take no lock. host-local keeps its leases
in ``<root>/networks/ipam/<network name>/``: hull's data stays in its tree.
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager

from hull.network.errors import NetworkError
from hull.oci.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing stays out of the engine's run path (as ipaddress does until a subnet is chosen)
    import ipaddress
    from collections.abc import Collection, Iterator, Sequence
    from typing import Any

    from hull.network.cniconf import NetworkConfigList

    IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NETWORKS = "networks"
IPAM_DIR = "ipam"
LOCK = ".lock"
SUFFIX = ".json"
DEFAULT_NETWORK = "hull"
DEFAULT_BRIDGE = "hull0"
DEFAULT_SUBNETS = tuple(f"10.{n}.0.0/16" for n in range(99, 89, -1))  # 10.99 first, then downwards
USER_POOL = "10.100.0.0/14"  # 10.100.0.0 - 10.103.255.255, split into /24s
USER_PREFIX = 24
ULA_PREFIX = 64
BRIDGE_OPTION = "com.docker.network.bridge.name"
PREDEFINED = {DEFAULT_NETWORK: "bridge", "host": "host", "none": "null"}  # name -> driver
CNI_VERSION = "1.0.0"
IFNAMSIZ = 16  # with its NUL: names of at most 15 characters

# moby's (and podman's) rule for names: a letter or digit, then letters, digits, "_", "." or "-".
_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.-")

# IDs of the containers attached to a network (empty: none); the engine answers from its records.
InUse = Callable[[str], list[str]]
# (destination network, interface) of each host route; replaced in tests.
Routes = Callable[[], list[tuple[str, str]]]


class NetworkExists(NetworkError):
    def __init__(self, name: str) -> None:
        super().__init__(f"network with name {name} already exists")  # docker's words
        self.name = name


class NetworkNotFound(NetworkError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"network {ref} not found")
        self.ref = ref


class NetworkInUse(NetworkError):
    def __init__(self, name: str, network_id: str, containers: list[str]) -> None:
        # docker's "network NAME id ID has active endpoints", with the endpoints' containers named
        super().__init__(f"error while removing network: network {name} id {network_id} has active endpoints "
                         f"(containers: {', '.join(c[:12] for c in containers)})")  # fmt: skip
        self.name = name
        self.containers = containers


class SubnetConflict(NetworkError):
    """A subnet overlaps another hull network's or a host route, or no free subnet is left."""


@record
class Subnet:
    subnet: str  # CIDR, its network address: "10.99.0.0/16"
    gateway: str  # "10.99.0.1"


@record
class Network:
    name: str
    id: str  # 64 hex digits
    driver: str = "bridge"  # "host" / "null" for the pseudo-networks
    bridge: str = ""  # the Linux bridge's interface name
    subnets: list[Subnet] = field(default_factory=list)
    ipv6: bool = False
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    created: str = ""  # RFC 3339 with nanoseconds, as docker's Created

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    def inspect(self) -> dict[str, Any]:
        """``docker network inspect``'s document ("Containers" left empty: the engine knows them)."""
        return {
            "Name": self.name,
            "Id": self.id,
            "Created": self.created,
            "Scope": "local",
            "Driver": self.driver,
            "EnableIPv6": self.ipv6,
            "IPAM": {
                "Driver": "default",
                "Options": {},
                "Config": [{"Subnet": s.subnet, "Gateway": s.gateway} for s in self.subnets],
            },
            "Internal": self.internal,
            "Attachable": False,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": {},
            "Options": {BRIDGE_OPTION: self.bridge} if self.bridge else {},
            "Labels": dict(self.labels),
        }

    @classmethod
    def from_inspect(cls, doc: dict[str, Any]) -> Network:
        ipam = doc.get("IPAM") or {}
        return cls(
            name=str(doc["Name"]),
            id=str(doc["Id"]),
            driver=str(doc.get("Driver") or "bridge"),
            bridge=str((doc.get("Options") or {}).get(BRIDGE_OPTION, "")),
            subnets=[Subnet(str(c["Subnet"]), str(c.get("Gateway", ""))) for c in ipam.get("Config") or []],
            ipv6=bool(doc.get("EnableIPv6")),
            internal=bool(doc.get("Internal")),
            labels=dict(doc.get("Labels") or {}),
            created=str(doc.get("Created", "")),
        )


if TYPE_CHECKING:
    _Networks = list[Network]  # (inside NetworkStore, "list" is its method)
    _Taken = list[tuple[IPNetwork, str]]
    _Names = list[str]


def check_name(name: str) -> None:
    if not name or name[0] not in _NAME_FIRST or not set(name) <= _NAME_REST:
        raise NetworkError(f"invalid network name {name!r}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    if len(name) > 200:  # a file name (and host-local's directory) of its own
        raise NetworkError(f"invalid network name {name[:20]!r}...: longer than 200 characters")


def created_now() -> str:
    """Go's RFC3339Nano of now, in UTC (docker's daemon writes its local time; UTC has no zone to look up)."""
    ns = time.time_ns()
    tm = time.gmtime(ns // 1_000_000_000)
    fraction = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + (f".{fraction}" if fraction else "") + "Z"


# ---------------------------------------------------------------- host routes


def _hex_ipv4(word: str) -> str:
    """/proc/net/route's address: 8 hex digits of the 32-bit value in host (little-endian) order."""
    value = int(word, 16)
    return ".".join(str((value >> shift) & 0xFF) for shift in (0, 8, 16, 24))


def host_routes(ipv4_table: str = "/proc/net/route", ipv6_table: str = "/proc/net/ipv6_route") -> list[tuple[str, str]]:
    """(destination CIDR, interface) of the host's routes, IPv4 and IPv6, read from the kernel's
    tables; default routes, and IPv6 link-local, multicast and loopback ones, left out (no
    network's subnet can clash with them)."""
    routes: list[tuple[str, str]] = []
    try:
        with open(ipv4_table) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        lines = []
    for line in lines:
        cols = line.split()
        if len(cols) < 8 or not int(cols[3], 16) & 1:  # RTF_UP
            continue
        mask = int(cols[7], 16)
        prefix = bin(mask).count("1")
        if prefix:
            routes.append((f"{_hex_ipv4(cols[1])}/{prefix}", cols[0]))
    try:
        with open(ipv6_table) as f:
            lines6 = f.read().splitlines()
    except OSError:
        lines6 = []
    for line in lines6:
        cols = line.split()
        if len(cols) < 10 or cols[9] == "lo":
            continue
        prefix = int(cols[1], 16)
        dest = cols[0]
        if not prefix or dest.startswith(("fe8", "fe9", "fea", "feb", "ff")):  # default, link-local, multicast
            continue
        address = ":".join(dest[i : i + 4] for i in range(0, 32, 4))
        routes.append((f"{address}/{prefix}", cols[9]))
    return routes


# ---------------------------------------------------------------- the store


class NetworkStore:
    """The networks under one engine data root."""

    def __init__(self, root: str, routes: Routes = host_routes) -> None:
        self.dir = os.path.join(os.path.abspath(root), NETWORKS)
        self.ipam_dir = os.path.join(self.dir, IPAM_DIR)
        self._routes = routes

    # ------------------------------------------------------------ files

    @contextmanager
    def lock(self) -> Iterator[None]:
        import fcntl

        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.dir, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name + SUFFIX)

    def _write(self, network: Network) -> None:
        data = (json.dumps(network.inspect(), indent=2) + "\n").encode()
        tmp = os.path.join(self.dir, f".{network.name}{SUFFIX}.{os.urandom(4).hex()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.path(network.name))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def _read(self, name: str) -> Network | None:
        try:
            with open(self.path(name), "rb") as f:
                doc = json.loads(f.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise NetworkError(f"network {name}: {self.path(name)}: unreadable: {err}") from None
        return Network.from_inspect(doc)

    # ------------------------------------------------------------ reading

    def list(self) -> list[Network]:
        """Every network, sorted by name."""
        try:
            names = sorted(n[: -len(SUFFIX)] for n in os.listdir(self.dir) if n.endswith(SUFFIX) and n[0] != ".")
        except FileNotFoundError:
            return []
        return [n for n in (self._read(name) for name in names) if n is not None]

    def get(self, ref: str) -> Network:
        """The network named ``ref``, or whose ID is or starts with ``ref`` (docker's lookup order);
        a pre-defined network is made on first use."""
        if not ref:
            raise NetworkNotFound(ref)
        if ref in PREDEFINED:
            self.ensure_default()
        if "/" not in ref and ref[0] != ".":
            found = self._read(ref)
            if found is not None:
                return found
        networks = self.list()
        for network in networks:
            if network.id == ref:
                return network
        matches = [n for n in networks if n.id.startswith(ref.lower())]
        if len(matches) > 1:
            raise NetworkError(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)")
        if not matches:
            raise NetworkNotFound(ref)
        return matches[0]

    # ------------------------------------------------------------ making

    def ensure_default(self) -> Network:
        """The default network ``hull`` (and the ``host``/``none`` pseudo-networks), made when missing."""
        found = self._read(DEFAULT_NETWORK)
        if found is not None and all(os.path.exists(self.path(n)) for n in PREDEFINED):
            return found
        with self.lock():
            for name, driver in PREDEFINED.items():
                if name == DEFAULT_NETWORK or self._read(name) is not None:
                    continue
                self._write(Network(name=name, id=self._new_id(), driver=driver, created=created_now()))
            found = self._read(DEFAULT_NETWORK)
            if found is None:
                found = self._make_default()
        return found

    def _make_default(self) -> Network:
        import ipaddress

        taken = self._taken(self.list())
        for cidr in DEFAULT_SUBNETS:
            net = ipaddress.ip_network(cidr)
            if _overlap(net, taken) is None:
                network = Network(
                    name=DEFAULT_NETWORK, id=self._new_id(), bridge=DEFAULT_BRIDGE,
                    subnets=[Subnet(cidr, str(net.network_address + 1))], created=created_now(),
                )  # fmt: skip
                self._write(network)
                return network
        raise SubnetConflict(f"default network {DEFAULT_NETWORK}: every candidate subnet ({DEFAULT_SUBNETS[0]} to "
                             f"{DEFAULT_SUBNETS[-1]}) overlaps a host route")  # fmt: skip

    def create(
        self,
        name: str,
        subnet: str | Sequence[str] = "",
        gateway: str | Sequence[str] = "",
        ipv6: bool = False,
        internal: bool = False,
        labels: dict[str, str] | None = None,
    ) -> Network:
        """A new bridge network; every check (name, subnets, gateways, overlaps) before anything is written.

        ``subnet``/``gateway``: at most one IPv4 and (with ``ipv6``) one IPv6 each, as docker's
        repeated ``--subnet``/``--gateway``; a gateway belongs to the subnet that contains it."""
        import ipaddress

        check_name(name)
        subnets = [subnet] if isinstance(subnet, str) else list(subnet)
        gateways = [gateway] if isinstance(gateway, str) else list(gateway)
        subnets = [s for s in subnets if s]
        gateways = [g for g in gateways if g]
        if name in PREDEFINED:
            raise NetworkExists(name)
        self.ensure_default()
        parsed: list[IPNetwork] = []
        for text in subnets:
            try:
                net = ipaddress.ip_network(text)
            except ValueError as err:
                raise NetworkError(f"invalid subnet {text}: {err}") from None
            if any(p.version == net.version for p in parsed):
                raise NetworkError(f"subnet {text}: only one IPv{net.version} subnet per network")
            if net.version == 6 and not ipv6:
                raise NetworkError(f"subnet {text} is IPv6: add --ipv6")
            if net.prefixlen > net.max_prefixlen - 2:
                raise NetworkError(f"subnet {text}: too small (no address left for a container)")
            parsed.append(net)
        chosen_gw: dict[int, str] = {}
        for text in gateways:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                raise NetworkError(f"invalid gateway {text}: not an IP address") from None
            owner = next((p for p in parsed if address in p), None)
            if owner is None:
                raise NetworkError(f"no matching subnet for gateway {text}")  # docker's words
            if address == owner.network_address or (owner.version == 4 and address == owner.broadcast_address):
                raise NetworkError(f"gateway {text}: the network or broadcast address of {owner}")
            chosen_gw[owner.version] = str(address)
        with self.lock():
            if self._read(name) is not None:
                raise NetworkExists(name)
            existing = self.list()
            taken = self._taken(existing)
            for net in parsed:
                clash = _overlap(net, taken)
                if clash is not None:
                    raise SubnetConflict(f"subnet {net} overlaps {clash}")
            if not any(p.version == 4 for p in parsed):
                parsed.insert(0, _free_ipv4(taken))
            if ipv6 and not any(p.version == 6 for p in parsed):
                parsed.append(_free_ula(taken))
            network_id = self._new_id(existing)
            network = Network(
                name=name,
                id=network_id,
                bridge=f"hull-{network_id[:8]}",
                subnets=[Subnet(str(p), chosen_gw.get(p.version) or str(p.network_address + 1)) for p in parsed],
                ipv6=ipv6,
                internal=internal,
                labels=dict(labels or {}),
                created=created_now(),
            )
            self._write(network)
        return network

    def _new_id(self, existing: _Networks | None = None) -> str:
        """64 random hex digits whose 12-digit short form and bridge name are no other network's."""
        used = {n.id[:12] for n in existing or self.list()}
        while True:
            candidate = os.urandom(32).hex()
            if candidate[:12] not in used and not candidate.isdigit():
                return candidate

    def _taken(self, existing: _Networks) -> _Taken:
        """(subnet, what holds it) of hull's networks and of the host's routes (through any
        interface but a hull network's bridge, whose routes are those networks' own)."""
        import ipaddress

        taken: _Taken = []
        # hull0 is always the default network's, of this root or of another one sharing the host
        bridges = {n.bridge for n in existing if n.bridge} | {DEFAULT_BRIDGE}
        for network in existing:
            for s in network.subnets:
                taken.append((ipaddress.ip_network(s.subnet, strict=False), f"network {network.name} ({s.subnet})"))
        for dest, iface in self._routes():
            if iface in bridges:
                continue
            try:
                net = ipaddress.ip_network(dest, strict=False)
            except ValueError:
                continue
            taken.append((net, f"a host route ({net} dev {iface})"))
        return taken

    # ------------------------------------------------------------ removing

    def remove(self, name: str, in_use: InUse | None = None) -> Network:
        """Remove a network no container is attached to, its bridge and its IPAM leases; the pre-defined
        ones stay. Returns the network removed."""
        if name in PREDEFINED:  # (before the lock: get() would make them, under the lock)
            raise NetworkError(f"{name} is a pre-defined network and cannot be removed")  # docker's words
        with self.lock():
            network = self.get(name)
            if network.predefined:
                raise NetworkError(f"{network.name} is a pre-defined network and cannot be removed")  # docker's words
            users = in_use(network.name) if in_use is not None else []
            if users:
                raise NetworkInUse(network.name, network.id, users)
            os.unlink(self.path(network.name))
        from hull.image.trees import remove_tree

        if os.path.isdir(os.path.join(self.ipam_dir, network.name)):
            remove_tree(os.path.join(self.ipam_dir, network.name))
        if network.bridge:
            delete_link(network.bridge)
        return network

    def prune(self, in_use: InUse, keep: Callable[[Network], bool] | None = None) -> _Names:
        """Remove every user network without containers (and that ``keep`` does not keep); their names."""
        removed: _Names = []
        for network in self.list():
            if network.predefined or in_use(network.name) or (keep is not None and keep(network)):
                continue
            try:
                self.remove(network.name, in_use)
            except (NetworkInUse, NetworkNotFound):
                continue  # attached or removed meanwhile
            removed.append(network.name)
        return removed

    # ------------------------------------------------------------ CNI

    def conflist(self, network: Network, ports: bool = False) -> NetworkConfigList:
        """The network's CNI configuration list for a container (see conflist_dict)."""
        from hull.network.cniconf import parse_conflist

        return parse_conflist(conflist_dict(network, self.ipam_dir, ports), source=self.path(network.name))


def conflist_dict(network: Network, ipam_dir: str, ports: bool = False) -> dict[str, Any]:
    """The CNI conflist a container of a bridge network is attached with: bridge (host-local IPAM,
    leases under ``ipam_dir``), and portmap when it publishes ports (``ports``; the same list must be
    given to DEL as to ADD).

    Masquerading and the FORWARD accepts are the network's own rules (hull.network.firewall), made
    once per boot, not the bridge plugin's ``ipMasq`` or the firewall plugin's per-container chains,
    which cost every container start and removal 20-40 ms of iptables runs. An ``internal`` network
    is docker's: no route out. The bridge holds no address (isGateway false), no default route."""
    if network.driver != "bridge":
        raise NetworkError(f"network {network.name}: driver {network.driver} has no CNI configuration")
    ranges = [[{"subnet": s.subnet, "gateway": s.gateway}] for s in network.subnets]
    ipam: dict[str, Any] = {"type": "host-local", "ranges": ranges, "dataDir": ipam_dir}
    if not network.internal:
        ipam["routes"] = [{"dst": "::/0" if ":" in s.subnet else "0.0.0.0/0"} for s in network.subnets]
    bridge = {
        "type": "bridge",
        "bridge": network.bridge,
        "isGateway": not network.internal,
        "ipMasq": False,
        "hairpinMode": True,
        "ipam": ipam,
        # `--ip`: host-local takes the address asked for from runtimeConfig.ips (CNI CONVENTIONS.md)
        "capabilities": {"ips": True},
    }
    return {
        "cniVersion": CNI_VERSION,
        "name": network.name,
        "plugins": [
            bridge,
            *([{"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}] if ports else []),
        ],
    }


# ---------------------------------------------------------------- subnets


def _overlap(net: IPNetwork, taken: list[tuple[IPNetwork, str]]) -> str | None:
    for other, what in taken:
        if other.version == net.version and net.overlaps(other):
            return what
    return None


def _free_ipv4(taken: list[tuple[IPNetwork, str]]) -> IPNetwork:
    import ipaddress

    for net in ipaddress.ip_network(USER_POOL).subnets(new_prefix=USER_PREFIX):
        if _overlap(net, taken) is None:
            return net
    raise SubnetConflict(f"no free /{USER_PREFIX} subnet left in {USER_POOL}: give one with --subnet")


def _free_ula(taken: list[tuple[IPNetwork, str]]) -> IPNetwork:
    """An RFC 4193 unique local /64: fd00::/8, a random 40-bit global ID, subnet ID 0."""
    import ipaddress

    for _ in range(16):
        global_id = int.from_bytes(os.urandom(5), "big")
        net = ipaddress.IPv6Network(((0xFD << 120) | (global_id << 80), ULA_PREFIX))
        if _overlap(net, taken) is None:
            return net
    raise SubnetConflict("no free IPv6 unique local subnet found: give one with --subnet")


# ---------------------------------------------------------------- leases and links


def gc_leases(ipam_dir: str, network_name: str, valid_container_ids: Collection[str]) -> list[str]:
    """Remove host-local's leases (``<ipam_dir>/<network>/<ip>``, holding ``ID\\r\\nIFNAME``) whose
    container is not in ``valid_container_ids``: what a crash between CNI ADD and DEL leaves. Done
    under host-local's own lock (its ``lock`` file); ``last_reserved_ip.*`` is left as it is.
    Returns the addresses released."""
    import fcntl

    directory = os.path.join(ipam_dir, network_name)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    released = []
    fd = os.open(os.path.join(directory, "lock"), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o750)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        for name in names:
            if name == "lock" or name.startswith(("last_reserved_ip", ".")):
                continue
            path = os.path.join(directory, name)
            try:
                with open(path, "rb") as f:
                    owner = f.read().split(b"\n", 1)[0].strip().decode(errors="replace")
            except (FileNotFoundError, IsADirectoryError):
                continue
            if owner not in valid_container_ids:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                released.append(name)
    finally:
        os.close(fd)
    return sorted(released)


def delete_link(name: str) -> bool:
    """Delete the network interface ``name`` (RTM_DELLINK over rtnetlink, as ``ip link del``); whether
    it existed. The bridge plugin makes a network's bridge and never deletes it; docker deletes it
    with the network, and a bridge left behind would keep its subnet's route on the host."""
    import socket
    import struct

    try:
        index = socket.if_nametoindex(name)
    except OSError:
        return False
    rtm_dellink, nlm_f_request, nlm_f_ack, nlmsg_error = 17, 1, 4, 2
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, 0, 0)  # struct ifinfomsg
    header = struct.pack("=IHHII", 16 + len(body), rtm_dellink, nlm_f_request | nlm_f_ack, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(5.0)
        sock.sendto(header + body, (0, 0))
        reply = sock.recv(65536)
    length, kind = struct.unpack_from("=IH", reply)
    if kind == nlmsg_error:
        (code,) = struct.unpack_from("=i", reply, 16)
        if code == -errno.ENODEV:
            return False
        if code:
            raise NetworkError(f"delete bridge {name}: {os.strerror(-code)}")
    return True
