"""The /etc/hosts, /etc/hostname and /etc/resolv.conf the engine writes per container, as docker does.

The engine writes them under ``containers/<id>/`` and spec.py bind-mounts
them over the image's files, so that the image stays untouched and the
container's own writes to them stay its own.
"""

from __future__ import annotations

from hull.engine.options import OptionError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

# libnetwork etchosts' defaults, written for every network but the host's.
DEFAULT_HOSTS = (
    ("127.0.0.1", "localhost"),
    ("::1", "localhost ip6-localhost ip6-loopback"),
    ("fe00::0", "ip6-localnet"),
    ("ff00::0", "ip6-mcastprefix"),
    ("ff02::1", "ip6-allnodes"),
    ("ff02::2", "ip6-allrouters"),
)
# libnetwork resolvconf: what a container gets when the host's servers are all loopback ones
# (unreachable from the container's network namespace).
DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
# systemd-resolved's stub listener; its real upstream servers are in this file (docker reads it instead).
_RESOLVED_STUB = "127.0.0.53"
_RESOLVED_UPSTREAM = "/run/systemd/resolve/resolv.conf"


def parse_add_host(value: str) -> tuple[str, str]:
    """``--add-host NAME:IP`` (the IP may be IPv6: split at the first ':'), as the docker CLI's ValidateExtraHost."""
    import ipaddress

    name, sep, ip = value.partition(":")
    if not sep or not name or not ip or any(c.isspace() or ord(c) < 0x20 for c in name):
        # No whitespace in the name: it is written into /etc/hosts, a line per entry.
        raise OptionError(f'invalid argument "{value}" for "--add-host" flag: bad format for add-host: "{value}"')
    if ip == "host-gateway":
        raise OptionError('--add-host: "host-gateway" needs a bridge network (not supported yet)')
    try:
        ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        raise OptionError(
            f'invalid argument "{value}" for "--add-host" flag: invalid IP address in add-host: "{ip}"'
        ) from None
    return name, ip.strip("[]")


def hostname_content(hostname: str) -> str:
    return hostname + "\n"


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def hosts_content(hostname: str, add_hosts: Iterable[str], network: str, *, host_hosts: str | None = None) -> str:
    """/etc/hosts: the host's own with ``--network host``, else docker's defaults; then each ``--add-host``.

    ``hostname`` gets a line only with an address to give it: none with
    ``--network none`` (docker writes none either; a bridge network gives the
    container's address, issue 7).
    """
    del hostname  # no address on the networks supported yet
    if network == "host":
        text = _read("/etc/hosts") if host_hosts is None else host_hosts
        if text and not text.endswith("\n"):
            text += "\n"
    else:
        text = "".join(f"{ip}\t{names}\n" for ip, names in DEFAULT_HOSTS)
    for item in add_hosts:
        name, ip = parse_add_host(item)
        text += f"{ip}\t{name}\n"
    return text


def _is_loopback(address: str) -> bool:
    if "." in address and ":" not in address:  # IPv4 without the ipaddress module's import cost
        return address.startswith("127.")
    import ipaddress

    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def host_resolv_conf() -> str:
    """The host's resolver configuration, systemd-resolved's upstream file when /etc/resolv.conf is its stub."""
    text = _read("/etc/resolv.conf")
    servers = [line.split()[1] for line in text.splitlines() if line.split()[:1] == ["nameserver"] and
               len(line.split()) > 1]  # fmt: skip
    if servers == [_RESOLVED_STUB]:
        upstream = _read(_RESOLVED_UPSTREAM)
        if upstream:
            return upstream
    return text


def check_options(add_hosts: Iterable[str], dns: Iterable[str]) -> None:
    """--add-host and --dns checked when the flags are read, before anything is made."""
    for item in add_hosts:
        parse_add_host(item)
    for server in dns:
        if not _valid_ip(server):
            raise OptionError(f'invalid argument "{server}" for "--dns" flag: {server} is not an ip address')


def resolv_conf_content(dns: Iterable[str], network: str, *, host_resolv: str | None = None) -> str:
    """/etc/resolv.conf as docker writes it.

    The host's file; but for ``--network host``, its loopback nameservers
    (127.0.0.0/8, ::1) removed, and 8.8.8.8 and 8.8.4.4 when none is left.
    ``--dns`` replaces the nameservers (search and options lines stay).
    """
    text = host_resolv_conf() if host_resolv is None else host_resolv
    servers = list(dns)
    for server in servers:
        if not _valid_ip(server):
            raise OptionError(f'invalid argument "{server}" for "--dns" flag: {server} is not an ip address')
    kept: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["nameserver"]:
            if servers or (network != "host" and len(words) > 1 and _is_loopback(words[1])):
                continue
        kept.append(line)
    if servers:
        kept.extend(f"nameserver {s}" for s in servers)
    elif (
        network != "host"
        and not any(  # none left, or none at all: docker's defaults
            line.split()[:1] == ["nameserver"] for line in kept
        )
    ):
        kept.extend(f"nameserver {s}" for s in DEFAULT_NAMESERVERS)
    return "\n".join(kept) + "\n" if kept else ""


def _valid_ip(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
