"""``hull network create|ls|inspect|rm|prune|connect|disconnect``: docker's names, flags and output
over hull.network.networks.

- ``create [--subnet CIDR] [--gateway IP] [--ipv6] [--internal] [--label K=V] [-d bridge] NAME``
  prints the new network's ID. ``--subnet``/``--gateway`` may be given once per IP version;
  without ``--subnet`` hull picks a free 10.100.N.0/24 (and with ``--ipv6`` a unique local /64).
  A subnet that overlaps another network's or a host route is refused, nothing created.
- ``ls``: docker's table (NETWORK ID, NAME, DRIVER, SCOPE) sorted by name, the default
  network ``hull`` and the ``host``/``none`` pseudo-networks included as docker lists
  bridge/host/none; ``-q`` IDs only; ``--filter driver=|id=|label=|name=|scope=|type=``;
  ``--format`` a Go template, ``table ...`` or ``json``; ``--no-trunc`` full IDs.
- ``inspect``: a JSON array of docker's documents ("Containers" from the engine's records),
  or ``--format`` per network.
- ``rm``: each name removed is printed; the pre-defined networks and a network with
  containers are refused (the containers named).
- ``prune [--filter label=...]``: every user network without containers; docker's
  "Deleted Networks:" list. hull never prompts, so ``-f`` changes nothing.

Errors of the network layer (hull.network.errors.NetworkError) become one ``Error:`` line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hull.engine.errors import EngineError
from hull.engine.paths import EnginePaths

NETWORK_HEADERS = {
    "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
    "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT",
}  # fmt: skip
LS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
LS_FILTERS = ("driver", "id", "label", "name", "scope", "type")


def add_parsers(add: Any, sub: str | None = None) -> None:
    group = add("network", "manage networks")
    if not isinstance(group, argparse.ArgumentParser):
        return  # another command's invocation
    subs = group.add_subparsers(dest="sub", parser_class=type(group), required=True, metavar="COMMAND")

    def command(name: str, help: str, *aliases: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = subs.add_parser(name, help=help, aliases=list(aliases))
        p.set_defaults(command=f"network_{name}")
        return p

    p = command("create", "create a network")
    p.add_argument("name", metavar="NETWORK")
    p.add_argument("--subnet", action="append", default=[], help="CIDR (one per IP version)")
    p.add_argument("--gateway", action="append", default=[], help="IP in a --subnet (default: its first)")
    p.add_argument("--ipv6", action="store_true", help="an IPv6 subnet too (a unique local /64 by default)")
    p.add_argument("--internal", action="store_true", help="no route out of the network")
    p.add_argument("-l", "--label", action="append", default=[])
    p.add_argument("-d", "--driver", default="bridge")
    p = command("ls", "list networks", "list")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format", default="")
    p.add_argument("--no-trunc", action="store_true")
    p = command("inspect", "show networks as JSON")
    p.add_argument("refs", nargs="+", metavar="NETWORK")
    p.add_argument("-f", "--format", default="")
    p = command("rm", "remove networks", "remove")
    p.add_argument("refs", nargs="+", metavar="NETWORK")
    p.add_argument("-f", "--force", action="store_true", help="no error for a network that does not exist")
    p = command("prune", "remove every network no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt (hull never prompts)")
    p.add_argument("--filter", action="append", default=[])
    p = command("connect", "connect a container to a network")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--ip", default="")
    p.add_argument("--alias", action="append", default=[])
    p = command("disconnect", "disconnect a container from a network")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("-f", "--force", action="store_true")


@contextmanager
def _one_line() -> Iterator[None]:
    """The network layer's errors as the engine's (one ``Error:`` line, exit 1)."""
    from hull.network.errors import NetworkError

    try:
        yield
    except NetworkError as err:
        raise EngineError(str(err)) from None


def _store(paths: EnginePaths) -> Any:
    from hull.network.networks import NetworkStore

    return NetworkStore(paths.root)


def _attached(paths: EnginePaths) -> list[Any]:
    from hull.engine import lifecycle

    return [c for c in lifecycle.container_store(paths).all() if c.network.get("name")]


def in_use_by(paths: EnginePaths) -> Callable[[str], list[str]]:
    """NetworkStore's ``in_use``: IDs of the containers attached to a network, read when asked."""

    def users(name: str) -> list[str]:
        def on(c: Any) -> bool:
            return c.network.get("name") == name or any(e["name"] == name for e in c.network.get("extra") or [])

        return [c.id for c in _attached(paths) if on(c)]

    return users


# ---------------------------------------------------------------- create


def cmd_network_create(paths: EnginePaths, args: Any) -> int:
    from hull.engine import parse

    if args.driver != "bridge":
        raise EngineError(f'plugin "{args.driver}" not found: hull networks use the bridge driver')
    labels = parse.parse_labels(args.label)
    with _one_line():
        network = _store(paths).create(args.name, subnet=args.subnet, gateway=args.gateway, ipv6=args.ipv6,
                                       internal=args.internal, labels=labels)  # fmt: skip
    print(network.id)
    return 0


# ---------------------------------------------------------------- ls


def go_time(created: str) -> str:
    """docker's CreatedAt column: Go's time.String() (``2006-01-02 15:04:05.999999999 +0000 UTC``)."""
    if not created.endswith("Z") or "T" not in created:
        return created
    return created[:-1].replace("T", " ") + " +0000 UTC"


def network_row(network: Any, no_trunc: bool = False) -> dict[str, Any]:
    """docker/cli's network formatter fields (its ``json``: these keys, strings, sorted)."""
    return {
        "CreatedAt": go_time(network.created),
        "Driver": network.driver,
        "ID": network.id if no_trunc else network.id[:12],
        "IPv6": "true" if network.ipv6 else "false",
        "Internal": "true" if network.internal else "false",
        "Labels": ",".join(f"{k}={v}" for k, v in network.labels.items()),
        "Name": network.name,
        "Scope": "local",
    }


def _ls_filters(values: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise EngineError(f"bad format of filter (expected name=value): {item}")
        if key not in LS_FILTERS:
            raise EngineError(f"invalid filter '{key}'")
        if key == "type" and value not in ("custom", "builtin"):
            raise EngineError(f"invalid filter: 'type'='{value}'")  # moby's words
        out.setdefault(key, []).append(value)
    return out


def _ls_match(network: Any, filters: dict[str, list[str]]) -> bool:
    from hull.cli.volumes import labels_match

    for key, values in filters.items():
        if key == "driver":
            ok = network.driver in values
        elif key == "name":
            ok = any(v in network.name for v in values)  # moby: a substring (regexp) match
        elif key == "id":
            ok = any(v in network.id for v in values)
        elif key == "scope":
            ok = "local" in values
        elif key == "type":
            ok = ("builtin" if network.predefined else "custom") in values
        else:  # label: every one must hold
            ok = labels_match(network.labels, values)
        if not ok:
            return False
    return True


def cmd_network_ls(paths: EnginePaths, args: Any) -> int:
    from hull.cli.volumes import write_rows

    filters = _ls_filters(args.filter)
    store = _store(paths)
    with _one_line():
        store.ensure_default()
        networks = [n for n in store.list() if _ls_match(n, filters)]
    if args.quiet:
        sys.stdout.write("".join(f"{n.id if args.no_trunc else n.id[:12]}\n" for n in networks))
        return 0
    write_rows([network_row(n, args.no_trunc) for n in networks], args.format, LS_TABLE, NETWORK_HEADERS)
    return 0


# ---------------------------------------------------------------- inspect / rm / prune


def _endpoints(paths: EnginePaths, name: str) -> dict[str, Any]:
    """docker's "Containers" of a network: ID -> Name, EndpointID, MacAddress, IPv4Address, IPv6Address."""
    out: dict[str, Any] = {}
    for c in _attached(paths):
        settings = c.network
        if settings.get("name") != name:
            continue
        ipv4, ipv6 = settings.get("ipv4", ""), settings.get("ipv6", "")
        out[c.id] = {
            "Name": c.name,
            "EndpointID": "",
            "MacAddress": settings.get("mac", ""),
            "IPv4Address": f"{ipv4}/{settings.get('ipv4_prefix', 0)}" if ipv4 else "",
            "IPv6Address": f"{ipv6}/{settings.get('ipv6_prefix', 0)}" if ipv6 else "",
        }
    return out


def cmd_network_inspect(paths: EnginePaths, args: Any) -> int:

    from hull.network.errors import NetworkError

    store = _store(paths)
    docs: list[dict[str, Any]] = []
    errors: list[str] = []
    for ref in args.refs:
        try:
            network = store.get(ref)
        except NetworkError as err:
            errors.append(str(err))
            continue
        doc = network.inspect()
        doc["Containers"] = _endpoints(paths, network.name)
        docs.append(doc)
    from hull.cli.documents import print_inspect

    return print_inspect(docs, errors, args.format)


def cmd_network_rm(paths: EnginePaths, args: Any) -> int:
    from hull.engine.networking import marker_dir
    from hull.network import firewall
    from hull.network.errors import NetworkError
    from hull.network.networks import NetworkNotFound

    store = _store(paths)
    users = in_use_by(paths)
    status = 0
    for ref in args.refs:
        try:
            removed = store.remove(ref, users)
            firewall.remove(removed, marker_dir(paths))
        except NetworkNotFound:
            if args.force:
                continue
            sys.stderr.write(f"Error: network {ref} not found\n")
            status = 1
            continue
        except NetworkError as err:
            sys.stderr.write(f"Error: {err}\n")
            status = 1
            continue
        print(ref)
    return status


def cmd_network_prune(paths: EnginePaths, args: Any) -> int:
    from hull.cli.volumes import prune_labels, prune_report

    labels, _ = prune_labels(args.filter)

    def keep(network: Any) -> bool:
        for item in labels:
            negate = item.startswith("!")
            key, sep, want = item.removeprefix("!").partition("=")
            has = key in network.labels and (not sep or network.labels[key] == want)
            if has == negate:
                return True
        return False

    from hull.engine.networking import marker_dir
    from hull.network import firewall

    store = _store(paths)
    before = {n.name: n for n in store.list()}
    with _one_line():
        removed = store.prune(in_use_by(paths), keep)
        for name in removed:
            firewall.remove(before[name], marker_dir(paths))
    report = prune_report("Deleted Networks:", removed)
    if report:
        print(report)
    return 0


# ---------------------------------------------------------------- connect / disconnect (the engine's)


def cmd_network_connect(paths: EnginePaths, args: Any) -> int:
    from hull.engine import lifecycle, networking

    containers = lifecycle.container_store(paths)
    networking.connect(paths, containers, containers.find(args.container), args.network, args.ip)
    return 0


def cmd_network_disconnect(paths: EnginePaths, args: Any) -> int:
    from hull.engine import lifecycle, networking

    containers = lifecycle.container_store(paths)
    networking.disconnect(paths, containers, containers.find(args.container), args.network)
    return 0
