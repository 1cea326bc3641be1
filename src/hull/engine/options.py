"""What ``hull run`` / ``hull create`` were asked, as typed records (docker's flag names in comments).

The CLI fills these from its flags; engine.spec turns them and the image's
config into the runtime's config.json; the record of a container keeps them
(``to_json``/``from_json``) so that ``start`` after an exit, ``inspect`` and the
restart policy see what ``run`` saw.
"""

from __future__ import annotations

from hull.oci.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class OptionError(ValueError):
    """A flag's value is invalid; the message names the flag."""


@record
class MountRequest:
    """One ``-v`` / ``--mount`` / ``--tmpfs``, parsed; ``source`` is a host path, a volume name or ""."""

    type: str  # "bind" | "volume" | "tmpfs"
    destination: str
    source: str = ""
    readonly: bool = False
    options: list[str] = field(default_factory=list)  # bind propagation, tmpfs size/mode, ...


@record
class ResolvedMount:
    """A mount as the runtime gets it: a volume resolved to its host directory."""

    type: str  # "bind" | "tmpfs"
    destination: str
    source: str
    options: list[str] = field(default_factory=list)
    volume: str = ""  # the named (or anonymous) volume this came from, for inspect and rm -v


@record
class RestartPolicy:
    name: str = "no"  # "no" | "on-failure" | "always" | "unless-stopped"
    maximum_retry_count: int = 0  # on-failure:N (0: no limit)


@record
class RunOptions:
    image: str
    command: list[str] | None = None  # None: the image's Cmd
    entrypoint: list[str] | None = None  # None: the image's; [] when --entrypoint ""
    name: str = ""
    env: list[str] = field(default_factory=list)  # -e and --env-file, in order, NAME=VALUE or NAME (from host)
    workdir: str = ""  # -w
    user: str = ""  # -u USER[:GROUP]
    hostname: str = ""  # --hostname (default: the ID's first 12 hex)
    tty: bool = False  # -t
    interactive: bool = False  # -i
    detach: bool = False  # -d
    remove: bool = False  # --rm
    mounts: list[MountRequest] = field(default_factory=list)
    read_only: bool = False  # --read-only
    memory: int | None = None  # --memory, bytes
    memory_swap: int | None = None  # --memory-swap, bytes (-1: unlimited)
    cpus: float | None = None  # --cpus
    cpu_shares: int | None = None  # --cpu-shares
    pids_limit: int | None = None  # --pids-limit (<= 0: unlimited)
    cap_add: list[str] = field(default_factory=list)  # CAP_X or X, "ALL"
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    security_opt: list[str] = field(default_factory=list)  # seccomp=FILE|unconfined, no-new-privileges[:true]
    network: str = "none"  # "none" | "host" | "container:ID" | a network's name (CNI)
    publish: list[str] = field(default_factory=list)  # -p [ip:][hostPort:]containerPort[/proto]
    publish_all: bool = False  # -P: every EXPOSEd port to a free host port
    ip: str = ""  # --ip on the network
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    init: bool = False  # --init
    stop_signal: str = ""  # --stop-signal (default: the image's StopSignal, else SIGTERM)
    stop_timeout: int | None = None  # --stop-timeout seconds (default 10)
    labels: dict[str, str] = field(default_factory=dict)
    pull: str = "missing"  # "missing" | "always" | "never"
    platform: str = ""
    runtime: str = ""  # "" (hull's own), "runc", "crun" or a path
    add_hosts: list[str] = field(default_factory=list)  # --add-host NAME:IP
    dns: list[str] = field(default_factory=list)  # --dns
    ulimits: list[str] = field(default_factory=list)  # --ulimit NAME=SOFT[:HARD]
    sysctls: dict[str, str] = field(default_factory=dict)  # --sysctl
    log_max_size: int = 0  # --log-opt max-size (0: no rotation)
    log_max_file: int = 1  # --log-opt max-file

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in type(self).__annotations__:
            value = getattr(self, name)
            if name == "mounts":
                value = [dict(vars(m)) for m in value]
            elif name == "restart":
                value = dict(vars(value))
            out[name] = value
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RunOptions:
        known = {k: v for k, v in doc.items() if k in cls.__annotations__}
        known["mounts"] = [MountRequest(**m) for m in known.get("mounts", [])]
        known["restart"] = RestartPolicy(**known.get("restart", {}))
        return cls(**known)
