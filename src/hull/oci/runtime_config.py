"""The runtime bundle's config.json (runtime-spec config.md, config-linux.md).

``parse_config`` turns decoded JSON into typed records and rejects a known
field whose value is invalid, naming it; unknown properties are ignored as
config.md "Extensibility" requires. Cross-field rules that only matter to a
Linux runtime (a hostname needs a UTS namespace...) live in ``validate``.
"""

from __future__ import annotations

from hull.oci._parse import (
    SpecError,
    check,
    join,
    one_of,
    opt,
    req,
    req_uint,
    str_list,
    str_map,
    uint,
    uint_value,
)
from hull.oci.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAMESPACE_TYPES = frozenset({"pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"})

RLIMIT_TYPES = frozenset(
    "RLIMIT_" + name
    for name in (
        "AS CORE CPU DATA FSIZE LOCKS MEMLOCK MSGQUEUE NICE NOFILE NPROC RSS RTPRIO RTTIME SIGPENDING STACK"
    ).split()
)

PROPAGATIONS = frozenset({"private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"})

DEVICE_TYPES = frozenset({"c", "b", "u", "p"})

HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")

TIME_CLOCKS = frozenset({"monotonic", "boottime"})


@record
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: list[int] = field(default_factory=list)


@record
class Rlimit:
    type: str
    soft: int
    hard: int


@record
class Process:
    args: list[str]
    cwd: str
    env: list[str] = field(default_factory=list)
    terminal: bool = False
    console_height: int = 0
    console_width: int = 0
    user: User = field(default_factory=User)
    rlimits: list[Rlimit] = field(default_factory=list)
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    capabilities: dict[str, list[str]] | None = None
    apparmor_profile: str = ""
    selinux_label: str = ""


@record
class Root:
    path: str
    readonly: bool = False


@record
class Mount:
    destination: str
    type: str = ""
    source: str = ""
    options: list[str] = field(default_factory=list)


@record
class Hook:
    path: str
    args: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    timeout: int | None = None


@record
class Namespace:
    type: str
    path: str = ""


@record
class IDMapping:
    container_id: int
    host_id: int
    size: int


@record
class Device:
    type: str
    path: str
    major: int = 0
    minor: int = 0
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@record
class TimeOffset:
    secs: int = 0
    nanosecs: int = 0


@record
class Linux:
    namespaces: list[Namespace] = field(default_factory=list)
    uid_mappings: list[IDMapping] = field(default_factory=list)
    gid_mappings: list[IDMapping] = field(default_factory=list)
    time_offsets: dict[str, TimeOffset] = field(default_factory=dict)
    devices: list[Device] = field(default_factory=list)
    cgroups_path: str = ""
    resources: dict[str, Any] = field(default_factory=dict)
    rootfs_propagation: str = ""
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    mount_label: str = ""
    sysctl: dict[str, str] = field(default_factory=dict)
    seccomp: dict[str, Any] | None = None

    def namespace(self, kind: str) -> Namespace | None:
        return next((ns for ns in self.namespaces if ns.type == kind), None)


@record
class Config:
    oci_version: str
    root: Root
    process: Process | None = None
    hostname: str = ""
    domainname: str = ""
    mounts: list[Mount] = field(default_factory=list)
    hooks: dict[str, list[Hook]] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    linux: Linux = field(default_factory=Linux)


def parse_config(doc: Any) -> Config:
    """Typed records from a decoded config.json; raises SpecError naming the field."""
    doc = check(doc, dict, "config")
    root = req(doc, "root", dict, "")
    config = Config(
        oci_version=req(doc, "ociVersion", str, ""),
        root=Root(path=req(root, "path", str, "root"), readonly=opt(root, "readonly", bool, "root", False)),
        hostname=opt(doc, "hostname", str, "", ""),
        domainname=opt(doc, "domainname", str, "", ""),
        annotations=str_map(doc, "annotations", ""),
    )
    if not config.root.path:
        raise SpecError("root.path", "must not be empty")
    if doc.get("process") is not None:
        config.process = parse_process(doc["process"])
    config.mounts = [_mount(m, join("mounts", i)) for i, m in enumerate(_objects(doc, "mounts", ""))]
    config.hooks = _hooks(opt(doc, "hooks", dict, "", {}))
    if doc.get("linux") is not None:
        config.linux = _linux(check(doc["linux"], dict, "linux"))
    return config


def _objects(obj: dict[str, Any], key: str, path: str) -> list[dict[str, Any]]:
    items = opt(obj, key, list, path, [])
    where = join(path, key)
    return [check(item, dict, join(where, i)) for i, item in enumerate(items)]


def _absolute(value: str, path: str) -> str:
    if not value.startswith("/"):
        raise SpecError(path, f"must be an absolute path, got {value!r}")
    return value


def parse_process(doc: Any, path: str = "process") -> Process:
    """A process object (config.md "Process"): config.json's, or one on its own
    (runc exec's process.json, with ``path`` "" so errors name its top-level fields)."""
    doc = check(doc, dict, path or "process")
    args = str_list(doc, "args", path)
    if not args:
        # config.md: on Linux at least one entry of args is REQUIRED.
        raise SpecError(join(path, "args"), "must have at least one entry")
    proc = Process(args=args, cwd=_absolute(req(doc, "cwd", str, path), join(path, "cwd")))
    proc.env = _env(doc, path)
    proc.terminal = opt(doc, "terminal", bool, path, False)
    size = opt(doc, "consoleSize", dict, path, {})
    proc.console_height = req_uint(size, "height", join(path, "consoleSize")) if size else 0
    proc.console_width = req_uint(size, "width", join(path, "consoleSize")) if size else 0
    proc.user = _user(opt(doc, "user", dict, path, {}), join(path, "user"))
    proc.rlimits = _rlimits(doc, path)
    proc.no_new_privileges = opt(doc, "noNewPrivileges", bool, path, False)
    if doc.get("oomScoreAdj") is not None:
        proc.oom_score_adj = check(doc["oomScoreAdj"], int, join(path, "oomScoreAdj"))
        if not -1000 <= proc.oom_score_adj <= 1000:
            raise SpecError(join(path, "oomScoreAdj"), f"must be between -1000 and 1000, got {proc.oom_score_adj}")
    caps = opt(doc, "capabilities", dict, path, None)
    if caps is not None:
        where = join(path, "capabilities")
        proc.capabilities = {k: str_list(caps, k, where) for k in caps}
    proc.apparmor_profile = opt(doc, "apparmorProfile", str, path, "")
    proc.selinux_label = opt(doc, "selinuxLabel", str, path, "")
    return proc


def _env(doc: dict[str, Any], path: str) -> list[str]:
    env = str_list(doc, "env", path)
    for i, entry in enumerate(env):
        if "=" not in entry:
            raise SpecError(join(join(path, "env"), i), f"must have the form KEY=VALUE, got {entry!r}")
    return env


def _user(doc: dict[str, Any], path: str) -> User:
    user = User(uid=uint(doc, "uid", path, 0) or 0, gid=uint(doc, "gid", path, 0) or 0)
    user.umask = uint(doc, "umask", path)
    gids = opt(doc, "additionalGids", list, path, [])
    user.additional_gids = [uint_value(g, join(join(path, "additionalGids"), i)) for i, g in enumerate(gids)]
    return user


def _rlimits(doc: dict[str, Any], process_path: str) -> list[Rlimit]:
    out: list[Rlimit] = []
    seen: set[str] = set()
    for i, item in enumerate(_objects(doc, "rlimits", process_path)):
        path = join(join(process_path, "rlimits"), i)
        kind = one_of(req(item, "type", str, path), RLIMIT_TYPES, f"{path}.type")
        if kind in seen:
            raise SpecError(f"{path}.type", f"{kind} is given more than once")
        seen.add(kind)
        soft, hard = req_uint(item, "soft", path, bits=64), req_uint(item, "hard", path, bits=64)
        if soft > hard:
            raise SpecError(path, f"soft limit {soft} exceeds hard limit {hard}")
        out.append(Rlimit(kind, soft, hard))
    return out


def _mount(doc: dict[str, Any], path: str) -> Mount:
    destination = req(doc, "destination", str, path)
    if not destination:
        raise SpecError(f"{path}.destination", "must not be empty")
    return Mount(
        # config.md "Mounts" (1.1): on Linux a relative destination is relative to "/".
        destination=destination if destination.startswith("/") else "/" + destination,
        type=opt(doc, "type", str, path, ""),
        source=opt(doc, "source", str, path, ""),
        options=str_list(doc, "options", path),
    )


def _hooks(doc: dict[str, Any]) -> dict[str, list[Hook]]:
    hooks: dict[str, list[Hook]] = {}
    for name in HOOK_NAMES:
        for i, item in enumerate(_objects(doc, name, "hooks")):
            path = f"hooks.{name}[{i}]"
            hook = Hook(path=_absolute(req(item, "path", str, path), f"{path}.path"))
            hook.args = str_list(item, "args", path)
            hook.env = _env(item, path)
            if item.get("timeout") is not None:
                hook.timeout = check(item["timeout"], int, f"{path}.timeout")
                if hook.timeout <= 0:
                    # config.md "POSIX-platform Hooks": timeout MUST be greater than zero.
                    raise SpecError(f"{path}.timeout", f"must be greater than zero, got {hook.timeout}")
            hooks.setdefault(name, []).append(hook)
    return hooks


def _linux(doc: dict[str, Any]) -> Linux:
    linux = Linux()
    seen: set[str] = set()
    for i, item in enumerate(_objects(doc, "namespaces", "linux")):
        path = f"linux.namespaces[{i}]"
        kind = one_of(req(item, "type", str, path), NAMESPACE_TYPES, f"{path}.type")
        if kind in seen:
            # config-linux.md: duplicated namespaces MUST produce an error.
            raise SpecError(f"{path}.type", f"namespace {kind!r} is given more than once")
        seen.add(kind)
        ns_path = opt(item, "path", str, path, "")
        linux.namespaces.append(Namespace(kind, _absolute(ns_path, f"{path}.path") if ns_path else ""))
    linux.uid_mappings = _id_mappings(doc, "uidMappings")
    linux.gid_mappings = _id_mappings(doc, "gidMappings")
    for clock, offset in opt(doc, "timeOffsets", dict, "linux", {}).items():
        path = f"linux.timeOffsets.{clock}"
        one_of(clock, TIME_CLOCKS, path)
        offset = check(offset, dict, path)
        secs = check(offset.get("secs", 0), int, f"{path}.secs")
        linux.time_offsets[clock] = TimeOffset(secs, uint(offset, "nanosecs", path, 0) or 0)
    linux.devices = [_device(d, f"linux.devices[{i}]") for i, d in enumerate(_objects(doc, "devices", "linux"))]
    linux.cgroups_path = opt(doc, "cgroupsPath", str, "linux", "")
    linux.resources = opt(doc, "resources", dict, "linux", {})
    prop = opt(doc, "rootfsPropagation", str, "linux", "")
    linux.rootfs_propagation = one_of(prop, PROPAGATIONS, "linux.rootfsPropagation") if prop else ""
    linux.masked_paths = [
        _absolute(p, f"linux.maskedPaths[{i}]") for i, p in enumerate(str_list(doc, "maskedPaths", "linux"))
    ]
    linux.readonly_paths = [
        _absolute(p, f"linux.readonlyPaths[{i}]") for i, p in enumerate(str_list(doc, "readonlyPaths", "linux"))
    ]
    linux.mount_label = opt(doc, "mountLabel", str, "linux", "")
    linux.sysctl = str_map(doc, "sysctl", "linux")
    linux.seccomp = opt(doc, "seccomp", dict, "linux", None)
    return linux


def _id_mappings(doc: dict[str, Any], key: str) -> list[IDMapping]:
    out = []
    for i, item in enumerate(_objects(doc, key, "linux")):
        path = f"linux.{key}[{i}]"
        mapping = IDMapping(
            req_uint(item, "containerID", path), req_uint(item, "hostID", path), req_uint(item, "size", path)
        )
        if mapping.size == 0:
            raise SpecError(f"{path}.size", "must be greater than zero")
        out.append(mapping)
    return out


def _device(doc: dict[str, Any], path: str) -> Device:
    dev = Device(
        type=one_of(req(doc, "type", str, path), DEVICE_TYPES, f"{path}.type"),
        path=_absolute(req(doc, "path", str, path), f"{path}.path"),
    )
    if dev.type != "p":
        # config-linux.md "Devices": major and minor are REQUIRED unless type is p.
        dev.major = req_uint(doc, "major", path, bits=64)
        dev.minor = req_uint(doc, "minor", path, bits=64)
    dev.file_mode = uint(doc, "fileMode", path)
    dev.uid = uint(doc, "uid", path)
    dev.gid = uint(doc, "gid", path)
    return dev
