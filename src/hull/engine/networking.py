"""A container's network: its namespace, its CNI attachment, the names it resolves, its published ports.

``--network none`` and ``host`` need nothing here (the runtime makes an
empty namespace, or none). A network's name (the default ``hull``, or one
made by ``hull network create``) gets a namespace of its own, persisted under
``<runroot>/netns/<id>`` before the runtime creates the container (its
config.json joins it by path), attached by the network's CNI plugins (ADD)
and released (DEL, with the result cached on disk) when the container is
removed — also after a crash or a reboot. ``container:ID`` joins another
container's namespace. Containers of one network find each other by name
through their /etc/hosts, which the engine keeps current (a built-in
equivalent of the dnsname plugin).
"""

from __future__ import annotations

import os

from hull.engine.containers import Container, ContainerStore
from hull.engine.errors import EngineError
from hull.engine.paths import EnginePaths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from hull.network.networks import Network

IFNAME = "eth0"
PSEUDO = ("none", "host")


def is_cni(network: str) -> bool:
    return network not in PSEUDO and not network.startswith("container:")


def netns_path(paths: EnginePaths, container_id: str) -> str:
    return os.path.join(paths.runroot, "netns", container_id)


def marker_dir(paths: EnginePaths) -> str:
    """Where hull.network.firewall notes, per boot, the networks whose rules are in place."""
    return os.path.join(paths.runroot, "networks")


def _store(paths: EnginePaths) -> Any:
    from hull.network.networks import NetworkStore

    return NetworkStore(paths.root)


def _cni(paths: EnginePaths) -> Any:
    from hull.network.cni import CNI

    return CNI(cache_dir=os.path.join(paths.root, "cni"))


def find_network(paths: EnginePaths, name: str) -> Network:
    """The network ``name`` names (the default one made on first use)."""
    from hull.network.errors import NetworkError

    store = _store(paths)
    try:
        if name == "hull":
            network: Network = store.ensure_default()
            return network
        found: Network = store.get(name)
        return found
    except NetworkError as err:
        raise EngineError(f"--network {name}: {err}") from None


# ---------------------------------------------------------------- ports


def parse_publish(value: str) -> dict[str, Any]:
    """``-p [ip:][hostPort:]containerPort[/proto]`` -> a CNI portMappings entry (hostPort 0: pick one)."""
    spec, _, proto = value.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise EngineError(f'-p {value}: invalid protocol "{proto}" (tcp, udp, sctp)')
    host_ip = ""
    if spec.startswith("["):  # [v6]:host:container
        end = spec.find("]")
        if end < 0 or spec[end + 1 : end + 2] != ":":
            raise EngineError(f"-p {value}: expected [ipv6]:hostPort:containerPort")
        host_ip, spec = spec[1:end], spec[end + 2 :]
        spec = ":" + spec if spec.count(":") == 0 else spec  # "[::1]:80" is hostPort-less: [::1]::80
        host_ip_given = True
    else:
        host_ip_given = False
    parts = spec.split(":")
    if len(parts) == 3 and not host_ip_given:
        host_ip, host, container = parts
    elif len(parts) == 2:
        host, container = parts
    elif len(parts) == 1:
        host, container = "", parts[0]
    else:
        raise EngineError(f"-p {value}: expected [ip:][hostPort:]containerPort[/protocol]")
    if "-" in host or "-" in container:
        raise EngineError(f"-p {value}: port ranges are not supported")
    if host_ip:
        import ipaddress

        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise EngineError(f"-p {value}: invalid host IP {host_ip!r}") from None

    def port(text: str, what: str) -> int:
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise EngineError(f"-p {value}: invalid {what} port {text!r}")
        return int(text)

    return {"hostPort": port(host, "host") if host else 0, "containerPort": port(container, "container"),
            "protocol": proto, "hostIP": host_ip}  # fmt: skip


def _free_port(proto: str, host_ip: str) -> int:
    """A host port nothing listens on now (the kernel's pick), as podman does for ``-p CONTAINERPORT``."""
    import _socket

    family = _socket.AF_INET6 if ":" in host_ip else _socket.AF_INET
    kind = _socket.SOCK_DGRAM if proto == "udp" else _socket.SOCK_STREAM
    sock = _socket.socket(family, kind)
    try:
        sock.bind((host_ip, 0))
        port: int = sock.getsockname()[1]
        return port
    finally:
        sock.close()


def port_mappings(container: Container, exposed: list[str]) -> list[dict[str, Any]]:
    """``-p`` and ``-P`` (every EXPOSEd port of the image) as CNI portMappings, host ports chosen."""
    opts = container.options
    mappings = [parse_publish(p) for p in opts.publish]
    if opts.publish_all:
        taken = {(m["containerPort"], m["protocol"]) for m in mappings}
        for item in exposed:
            number, _, proto = item.partition("/")
            if number.isdigit() and (int(number), proto or "tcp") not in taken:
                mappings.append({"hostPort": 0, "containerPort": int(number), "protocol": proto or "tcp",
                                 "hostIP": ""})  # fmt: skip
    for m in mappings:
        if not m["hostPort"]:
            m["hostPort"] = _free_port(m["protocol"], m["hostIP"])
    _check_ports_free(mappings)
    return mappings


def _check_not_published(containers: ContainerStore, container: Container, mappings: list[dict[str, Any]]) -> None:
    """A host port another container publishes holds no socket (portmap's DNAT rules do the work):
    bind() cannot see it, the records can. Called under the ports lock, before the record is written."""
    wanted = {(m["hostPort"], m["protocol"]) for m in mappings}
    for other in containers.all():
        if other.id == container.id:
            continue
        for m in published(other):
            if (m["hostPort"], m["protocol"]) in wanted:
                raise EngineError(f"-p: host port {m['hostPort']}/{m['protocol']} is already published by container "
                                  f"{other.short_id} ({other.name})")  # fmt: skip


def _ports_lock(paths: EnginePaths) -> int:
    import fcntl

    os.makedirs(os.path.join(paths.root, "networks"), mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(paths.root, "networks", ".ports.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _check_ports_free(mappings: list[dict[str, Any]]) -> None:
    """A host port another program (or container) holds -> a clear error before anything is changed."""
    import _socket

    for m in mappings:
        family = _socket.AF_INET6 if ":" in m["hostIP"] else _socket.AF_INET
        kind = _socket.SOCK_DGRAM if m["protocol"] == "udp" else _socket.SOCK_STREAM
        sock = _socket.socket(family, kind)
        try:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            sock.bind((m["hostIP"], m["hostPort"]))
        except OSError as err:
            where = f"{m['hostIP'] or '0.0.0.0'}:{m['hostPort']}/{m['protocol']}"
            raise EngineError(f"-p: host port {where} is not free: {err.strerror}") from None
        finally:
            sock.close()


# ---------------------------------------------------------------- attach / release


class Pending:
    """A CNI ADD running in a thread (see ``attach``): ``wait`` for it before the container starts."""

    def __init__(self, work: Any) -> None:
        import threading

        self._error: BaseException | None = None

        def run() -> None:
            try:
                work()
            except BaseException as err:  # noqa: BLE001 - handed to wait()
                self._error = err

        self._thread = threading.Thread(target=run, name="hull-cni-add")
        self._thread.start()

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def attach(paths: EnginePaths, containers: ContainerStore, container: Container, exposed: list[str], *,
           background: bool = False) -> tuple[str, Pending | None]:  # fmt: skip
    """Make the container's network before the runtime creates it: the netns path config.json joins
    ("" for none/host). Records the attachment; undone by ``release``.

    The namespace exists on return; the plugins' ADD (~10 ms of program starts and netlink) runs in
    a thread with ``background``, so that it overlaps the container's creation: only its start needs
    the interface (``Pending.wait``)."""
    opts = container.options
    if opts.network in PSEUDO:
        return "", None
    if opts.network.startswith("container:"):
        return _joined(paths, containers, container, opts.network.partition(":")[2]), None
    network = find_network(paths, opts.network)
    path, add = _attach_cni(paths, containers, container, network, port_mappings(container, exposed))
    if background:
        return path, Pending(add)
    add()
    update_hosts(paths, containers, network.name)
    return path, None


def _attach_cni(paths: EnginePaths, containers: ContainerStore, container: Container, network: Network,
                mappings: list[dict[str, Any]]) -> tuple[str, Any]:  # fmt: skip
    """The namespace made and recorded; returns its path and the ADD (with the hosts files' update) to run."""
    from hull.network import firewall, netns
    from hull.network.cni import RuntimeConf
    from hull.network.errors import NetworkError

    opts = container.options
    path = netns_path(paths, container.id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _gc(paths, containers, network)
    try:
        firewall.ensure(network, marker_dir(paths))
    except NetworkError as err:
        raise EngineError(str(err)) from None
    # "attached": it may hold a namespace, a veth, a lease and rules from here on, until release().
    settings: dict[str, Any] = {"name": network.name, "netns": path, "ports": mappings, "ifname": IFNAME,
                                "attached": True}  # fmt: skip
    if container.network.get("extra"):
        settings["extra"] = container.network["extra"]  # connected networks, attached again by ensure()
    ports_lock = _ports_lock(paths) if mappings else -1
    try:
        if mappings:
            _check_not_published(containers, container, mappings)
        containers.update(container.id, lambda c: setattr(c, "network", dict(settings)))  # release() finds it
    finally:
        if ports_lock >= 0:
            os.close(ports_lock)
    netns.create(path)
    capability_args: dict[str, Any] = {}
    if mappings:
        capability_args["portMappings"] = mappings
    if opts.ip:
        capability_args["ips"] = [opts.ip]
    rt = RuntimeConf(container_id=container.id, netns=path, ifname=IFNAME, capability_args=capability_args)
    conflist = _store(paths).conflist(network, ports=bool(mappings))
    container.network = dict(settings)
    lock = _network_lock(paths, container.id)  # held until the ADD is over: a DEL waits for it

    def add() -> None:
        try:
            result = _cni(paths).add_network_list(conflist, rt)
        except NetworkError as err:
            raise EngineError(f"network {network.name}: {err}") from None
        finally:
            os.close(lock)
        settings.update(_addresses(result))
        container.network = dict(settings)
        containers.update(container.id, lambda c: setattr(c, "network", dict(settings)))

    return path, add


def _network_lock(paths: EnginePaths, container_id: str) -> int:
    """The container's network lock, taken (flock): ADD and DEL of one container never overlap, also
    when the ADD runs in a thread of `hull run` while the monitor removes a container that failed."""
    import fcntl

    fd = os.open(os.path.join(paths.container(container_id), "network.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)  # fmt: skip
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _joined(paths: EnginePaths, containers: ContainerStore, container: Container, ref: str) -> str:
    """``--network container:ID``: the other container's namespace, which must be running."""
    from hull.engine import lifecycle

    other = lifecycle.current(paths, containers.find(ref))
    if other.status not in ("running", "paused"):
        raise EngineError(f"--network container:{ref}: container {other.short_id} is not running")
    path = other.network.get("netns") or f"/proc/{other.pid}/ns/net"
    settings = {"container": other.id, "netns": path}
    container.network = settings
    containers.update(container.id, lambda c: setattr(c, "network", dict(settings)))
    return path


def _addresses(result: dict[str, Any]) -> dict[str, Any]:
    """IPAddress, IPPrefixLen, Gateway, MacAddress (docker's NetworkSettings) from a CNI result."""
    interfaces = result.get("interfaces") or []
    out: dict[str, Any] = {}
    for ip in result.get("ips") or []:
        iface = ip.get("interface")
        if iface is not None and iface < len(interfaces) and interfaces[iface].get("sandbox"):
            out.setdefault("mac", interfaces[iface].get("mac", ""))
        address, _, prefix = str(ip.get("address", "")).partition("/")
        key = "ipv6" if ":" in address else "ipv4"
        if key not in out:
            out[key] = address
            out[f"{key}_prefix"] = int(prefix or 0)
            out[f"{key}_gateway"] = ip.get("gateway", "")
    return out


def release(paths: EnginePaths, containers: ContainerStore, container: Container) -> None:
    """Undo ``attach``: the namespace removed, then CNI DEL from the cached result (works after a restart).

    Done when the container exits (by its monitor), as docker and podman release a stopped
    container's network, and again, if need be, at its removal; ``ensure`` attaches it anew.

    The namespace goes first, and DEL is told it is gone (SPEC: CNI_NETNS empty): the kernel then
    destroys the container's veth pair with the namespace, asynchronously, where the bridge plugin
    would delete it itself and wait out an RCU grace period (15-40 ms of every removal here). The
    container's processes are gone by then (the runtime deleted it), so nothing uses the namespace."""
    if not container.network.get("attached"):
        return
    try:
        lock = _network_lock(paths, container.id)
    except FileNotFoundError:
        lock = -1  # its directory is gone: nothing can be adding any more
    try:
        try:
            settings = containers.load(container.id).network  # as the ADD (under the lock) left it
        except EngineError:
            settings = container.network
        if settings.get("attached"):
            _release(paths, containers, container, settings)
            detached = {k: v for k, v in settings.items() if k in ("name", "ports", "ifname")}
            if settings.get("extra"):  # connected networks stay part of its configuration, as docker's
                detached["extra"] = [{"name": e["name"], "ifname": e["ifname"], "ip": e.get("ip", "")}
                                     for e in settings["extra"]]  # fmt: skip
            container.network = detached
            try:
                containers.update(container.id, lambda c: setattr(c, "network", dict(detached)))
            except EngineError:
                pass  # removed meanwhile
    finally:
        if lock >= 0:
            os.close(lock)
    update_hosts(paths, containers, settings["name"])  # the others forget its name


def _release(paths: EnginePaths, containers: ContainerStore, container: Container, settings: dict[str, Any]) -> None:
    from hull.network import netns
    from hull.network.cni import RuntimeConf
    from hull.network.errors import NetworkError

    path = settings.get("netns") or netns_path(paths, container.id)
    # A container joined to this namespace (--network container:) keeps it alive, and the veth in it:
    # the plugins must then delete the interfaces themselves, or its freed address stays in use there.
    shared = _joined_by_others(containers, container) and netns.exists(path)
    for entry in settings.get("extra") or []:
        _del_extra(paths, container, entry, path if shared else "")
    if not shared:
        netns.remove(path)
    ports = settings.get("ports") or []
    try:
        network = _store(paths).get(settings["name"])
        rt = RuntimeConf(container_id=container.id, netns=path if shared else "", ifname=IFNAME,
                         capability_args={"portMappings": ports})  # fmt: skip
        _cni(paths).del_network_list(_store(paths).conflist(network, ports=bool(ports)), rt)
    except NetworkError as err:
        print(f"warning: network {settings['name']}: releasing {container.short_id}: {err}", flush=True)
    if shared:
        netns.remove(path)


def _joined_by_others(containers: ContainerStore, container: Container) -> bool:
    """Whether a running container shares ``container``'s network namespace (``--network container:``)."""
    from hull.engine import lifecycle

    return any(o.network.get("container") == container.id and lifecycle.is_running(o) for o in containers.all())


def ensure(paths: EnginePaths, containers: ContainerStore, container: Container) -> None:
    """Before a (re)start: the container attached again — after its exit released it, or after a
    reboot took its namespace (the run root is gone) while the record still says attached."""
    if not container.network.get("name"):
        return
    from hull.network import netns

    if container.network.get("attached") and netns.exists(container.network.get("netns", "")):
        return
    ports = list(container.network.get("ports") or [])
    extra = list(container.network.get("extra") or [])
    release(paths, containers, container)
    _path, add = _attach_cni(paths, containers, container, find_network(paths, container.network["name"]), ports)
    add()
    again = [_add_extra(paths, container, find_network(paths, e["name"]), e) for e in extra]
    if again:
        containers.update(container.id, lambda c: c.network.__setitem__("extra", again))
    update_hosts(paths, containers, container.network["name"])
    for e in again:
        update_hosts(paths, containers, e["name"])


def _gc(paths: EnginePaths, containers: ContainerStore, network: Network) -> None:
    """Leases and namespaces of containers that no longer exist (a crash between attach and rm)."""
    from hull.network import netns, networks

    valid = _Live(containers)
    try:
        networks.gc_leases(os.path.join(paths.root, "networks", "ipam"), network.name, valid)
    except OSError:
        pass
    directory = os.path.dirname(netns_path(paths, "x"))
    for name in os.listdir(directory) if os.path.isdir(directory) else []:
        if name not in valid:
            netns.remove(os.path.join(directory, name))


class _Live:
    """The containers that exist, asked one by one when the question is put: a snapshot taken first
    would not know a container created meanwhile, whose namespace or lease would then be swept."""

    def __init__(self, containers: ContainerStore) -> None:
        self._dir = containers.directory

    def __contains__(self, container_id: object) -> bool:
        return isinstance(container_id, str) and os.path.exists(os.path.join(self._dir, container_id, "container.json"))

    def __iter__(self) -> Any:
        return iter(())

    def __len__(self) -> int:
        return 0


# ---------------------------------------------------------------- connect / disconnect


def connect(paths: EnginePaths, containers: ContainerStore, container: Container, name: str, ip: str = "") -> None:
    """``hull network connect``: one more interface (eth1, eth2, ...) on ``name`` for a running container
    on a network of its own; kept in its record as docker keeps it (attached again at each start)."""
    from hull.engine import lifecycle

    container = lifecycle.current(paths, container)
    if not container.network.get("attached") or container.status not in ("running", "paused"):
        raise EngineError(f"container {container.short_id} is not running on a network of its own "
                          "(none, host and container: networks take no other)")  # fmt: skip
    network = find_network(paths, name)
    extra = list(container.network.get("extra") or [])
    if network.name == container.network["name"] or any(e["name"] == network.name for e in extra):
        raise EngineError(f"container {container.short_id} is already connected to network {network.name}")
    used = {container.network.get("ifname", IFNAME), *(e["ifname"] for e in extra)}
    ifname = next(f"eth{i}" for i in range(1, 64) if f"eth{i}" not in used)
    entry = _add_extra(paths, container, network, {"name": network.name, "ifname": ifname, "ip": ip})
    containers.update(container.id, lambda c: c.network.setdefault("extra", []).append(entry))
    update_hosts(paths, containers, network.name)


def _add_extra(paths: EnginePaths, container: Container, network: Network, entry: dict[str, Any]) -> dict[str, Any]:
    from hull.network import firewall
    from hull.network.cni import RuntimeConf
    from hull.network.errors import NetworkError

    capability_args = {"ips": [entry["ip"]]} if entry.get("ip") else {}
    rt = RuntimeConf(container_id=container.id, netns=container.network["netns"], ifname=entry["ifname"],
                     capability_args=capability_args)  # fmt: skip
    conflist = _store(paths).conflist(network)
    try:
        firewall.ensure(network, marker_dir(paths))
        result = _cni(paths).add_network_list(conflist, rt)
    except NetworkError as err:
        try:  # what the plugins made before the failure (SPEC: a failed ADD is followed by a DEL)
            _cni(paths).del_network_list(conflist, rt)
        except NetworkError:
            pass
        raise EngineError(f"network {network.name}: {err}") from None
    addresses = {k: v for k, v in _addresses(result).items() if k in ("ipv4", "ipv4_prefix", "ipv6", "mac")}
    return {"name": entry["name"], "ifname": entry["ifname"], "ip": entry.get("ip", ""), **addresses}


def _del_extra(paths: EnginePaths, container: Container, entry: dict[str, Any], netns_path_: str) -> None:
    from hull.network.cni import RuntimeConf
    from hull.network.errors import NetworkError

    try:
        network = _store(paths).get(entry["name"])
        rt = RuntimeConf(container_id=container.id, netns=netns_path_, ifname=entry["ifname"])
        _cni(paths).del_network_list(_store(paths).conflist(network), rt)
    except NetworkError as err:
        print(f"warning: network {entry['name']}: releasing {container.short_id}: {err}", flush=True)


def disconnect(paths: EnginePaths, containers: ContainerStore, container: Container, name: str) -> None:
    """``hull network disconnect``: the interface ``connect`` added removed (its own network stays)."""
    extra = list(container.network.get("extra") or [])
    found = [e for e in extra if e["name"] == name]
    if not found:
        if container.network.get("name") == name:
            raise EngineError(f"container {container.short_id}: its own network {name} cannot be disconnected")
        raise EngineError(f"container {container.short_id} is not connected to network {name}")
    if container.network.get("attached"):
        _del_extra(paths, container, found[0], container.network.get("netns", ""))

    def drop(c: Container) -> None:
        c.network["extra"] = [e for e in c.network.get("extra") or [] if e["name"] != name]

    containers.update(container.id, drop)
    update_hosts(paths, containers, name)


# ---------------------------------------------------------------- names


def hosts_lines(containers: ContainerStore, network: str) -> str:
    """``IP name hostname`` for every container attached to ``network`` (IPv4 and IPv6 addresses)."""
    lines = []
    for c in containers.all():
        attachments = [c.network] if c.network.get("name") == network else []
        attachments += [e for e in c.network.get("extra") or [] if e["name"] == network]
        addresses = [a.get(key, "") for a in attachments for key in ("ipv4", "ipv6")]
        for address in filter(None, addresses):
            # The name and short ID, as docker's DNS answers them: not --hostname, which anyone may
            # choose, and could so take over another container's name on the network.
            lines.append(f"{address}\t{c.name} {c.id[:12]}\n")
    return "".join(lines)


def update_hosts(paths: EnginePaths, containers: ContainerStore, network: str) -> None:
    """Rewrite, in place (the file is bind-mounted: a rename would not be seen), the /etc/hosts of
    every container on ``network`` so that each resolves the others by name. Under one lock per
    root: two commands at once would lose each other's lines or leave a stale tail."""
    import fcntl

    from hull.engine import etcfiles

    os.makedirs(os.path.join(paths.root, "networks"), mode=0o700, exist_ok=True)
    lock = os.open(os.path.join(paths.root, "networks", ".hosts.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        peers = hosts_lines(containers, network)
        for c in containers.all():
            networks = [c.network.get("name"), *(e["name"] for e in c.network.get("extra") or [])]
            if network not in networks:
                continue
            hostname = c.options.hostname or c.id[:12]
            try:
                base = etcfiles.hosts_content(hostname, c.options.add_hosts, c.options.network)
            except ValueError:  # a record made before its flags were checked: never stop the others' update
                base = etcfiles.hosts_content(hostname, [], c.options.network)
            own = f"{c.network['ipv4']}\t{hostname}\n" if c.network.get("ipv4") and hostname != c.name else ""
            # Each of its networks' peers (a container on two networks resolves the containers of both).
            lines = "".join(dict.fromkeys(peers if n == network else hosts_lines(containers, n) for n in networks if n))
            data = (base + own + lines).encode()
            try:
                with open(os.path.join(paths.container(c.id), "hosts"), "r+b") as f:
                    f.write(data)
                    f.truncate(len(data))  # after the write: a reader never sees an empty file
            except FileNotFoundError:
                continue
    finally:
        os.close(lock)


def published(container: Container) -> list[dict[str, Any]]:
    """The ports published now: a stopped container's (released with its network) are not, as docker shows."""
    ports: list[dict[str, Any]] = container.network.get("ports") or []
    return ports if container.network.get("attached") else []


def ports_text(container: Container) -> list[str]:
    """docker port's lines: ``80/tcp -> 0.0.0.0:8080``."""
    return [f"{m['containerPort']}/{m['protocol']} -> {m['hostIP'] or '0.0.0.0'}:{m['hostPort']}"
            for m in published(container)]  # fmt: skip
