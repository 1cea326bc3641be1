"""A network's own iptables rules: masquerade for egress and forwarding to and from its bridge.

One set of rules per network, as netavark and docker install them, instead of
the bridge plugin's ``ipMasq`` and the firewall plugin's per-container chains:
those cost every container start and removal several iptables executions
(20-40 ms here), these cost one check per network per boot. The rules carry
the comment ``hull network NAME`` so that ``remove`` finds exactly them.
Installed on first use after each boot (a marker under the run root, which a
reboot clears, as it clears the rules), removed with the network.
"""

from __future__ import annotations

import os

from hull.network.errors import NetworkError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hull.network.networks import Network

IPTABLES = ("iptables", "ip6tables")


def _comment(network: Network) -> list[str]:
    return ["-m", "comment", "--comment", f"hull network {network.name}"]


def rules(network: Network) -> list[tuple[str, str, str, list[str]]]:
    """(binary, table, chain, rule) for ``network``, in the order they must match: forwarding from its
    bridge to another hull network's bridge dropped (networks are isolated from each other, as docker's
    DOCKER-ISOLATION chains make them), then accepted from its bridge and back for established
    connections — needed where the FORWARD policy is DROP (as docker sets it); its subnets masqueraded
    when leaving them (not for an internal network)."""
    out: list[tuple[str, str, str, list[str]]] = []
    for subnet in network.subnets:
        binary = "ip6tables" if ":" in subnet.subnet else "iptables"
        if not network.internal:
            masq = ["-s", subnet.subnet, "!", "-d", subnet.subnet, *_comment(network), "-j", "MASQUERADE"]
            out.append((binary, "nat", "POSTROUTING", masq))
        # "hull+": every hull bridge (hull0, hull-<id>). Traffic that stays on this bridge is accepted
        # first (iptables takes one -o per rule: no "to hull+ but not to this bridge").
        same = ["-i", network.bridge, "-o", network.bridge, *_comment(network), "-j", "ACCEPT"]
        isolate = ["-i", network.bridge, "-o", "hull+", *_comment(network), "-j", "DROP"]
        out += [(binary, "filter", "FORWARD", same), (binary, "filter", "FORWARD", isolate)]
        forward_in = ["-i", network.bridge, *_comment(network), "-j", "ACCEPT"]
        forward_out = ["-o", network.bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                       *_comment(network), "-j", "ACCEPT"]  # fmt: skip
        if network.internal:
            # An internal network reaches nothing beyond its bridge.
            forward_in = ["-i", network.bridge, "!", "-o", network.bridge, *_comment(network), "-j", "DROP"]
            out.append((binary, "filter", "FORWARD", forward_in))
        else:
            out += [(binary, "filter", "FORWARD", forward_in), (binary, "filter", "FORWARD", forward_out)]
    return out


def _iptables(binary: str, *args: str) -> int:
    import subprocess

    try:
        return subprocess.run([binary, "-w", *args], stdin=subprocess.DEVNULL, capture_output=True).returncode
    except FileNotFoundError:
        raise NetworkError(f"{binary} not found: install iptables") from None


def ensure(network: Network, marker_dir: str) -> None:
    """The network's rules present (checked once per boot: ``marker_dir`` is under the run root)."""
    marker = os.path.join(marker_dir, network.id)
    if os.path.exists(marker):
        return
    # FORWARD rules are inserted at the top (ahead of a DROP that other tools, docker, append): last
    # first, so that they end up in rules()'s order.
    ordered = [r for r in rules(network) if r[2] != "FORWARD"] + [
        r for r in reversed(rules(network)) if r[2] == "FORWARD"
    ]
    for binary, table, chain, rule in ordered:
        if _iptables(binary, "-t", table, "-C", chain, *rule) != 0:
            action = ["-I", chain, "1"] if chain == "FORWARD" else ["-A", chain]
            if _iptables(binary, "-t", table, *action, *rule) != 0:
                raise NetworkError(f"network {network.name}: adding its {table} {chain} rule failed ({binary})")
    os.makedirs(marker_dir, exist_ok=True)
    with open(marker, "w"):
        pass


def remove(network: Network, marker_dir: str) -> None:
    """Every copy of the network's rules deleted, and the marker."""
    for binary, table, chain, rule in rules(network):
        while _iptables(binary, "-t", table, "-C", chain, *rule) == 0:
            if _iptables(binary, "-t", table, "-D", chain, *rule) != 0:
                break
    try:
        os.unlink(os.path.join(marker_dir, network.id))
    except FileNotFoundError:
        pass
