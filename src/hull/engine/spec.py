"""``hull run``'s config.json: RunOptions + the image's config -> the runtime-spec document docker 20+ writes.

The image's part follows image-spec conversion.md through
``hull.image.bundle.runtime_config`` (env, entrypoint and cmd, working
directory, user, annotations); on top of it docker's defaults and flags
(moby daemon/oci_linux.go, oci/defaults.go, oci/caps):

- capabilities: docker's 14 in bounding, effective and permitted for root;
  for another user only bounding (moby SetCapabilities: "to match what execve
  does"); inheritable and ambient never (CVE-2022-24769); ``--cap-add`` /
  ``--cap-drop`` with ``ALL`` as docker's TweakCapabilities;
- mounts: /proc, /dev, /dev/pts, /dev/shm (64 MiB), /dev/mqueue, /sys and
  /sys/fs/cgroup read-only; the engine's hosts, hostname and resolv.conf
  bound over /etc's (read-only with ``--read-only``); then the user's, sorted
  parents first, a user mount replacing a default one at the same place;
- masked and read-only /proc and /sys paths; pid, ipc, uts and mount
  namespaces, a network one unless ``--network host``, a cgroup one on a pure
  cgroup v2 host (docker's default cgroupns mode);
- the default seccomp profile (seccomp_default.py) for the granted
  capabilities, or ``seccomp=FILE`` in docker's format, or none;
- ``--privileged``: every capability the kernel has and the engine holds, no seccomp, no masked or
  read-only paths, /sys and cgroups writable, every device allowed in the
  device cgroup (host device nodes are not created yet).

Not set, as docker: process.rlimits (the runtime's are inherited) unless
``--ulimit``, oomScoreAdj, noNewPrivileges unless asked.
"""

from __future__ import annotations

from hull.engine.options import OptionError
from hull.oci.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Mapping
    from typing import Any

    from hull.engine.options import ResolvedMount, RunOptions
    from hull.image.bundle import User
    from hull.oci.image import ImageConfig


@record
class ContainerFiles:
    """Host paths of the files the engine writes per container (etcfiles.py gives their contents)."""

    hosts: str
    hostname: str
    resolv_conf: str


# moby oci/caps/defaults.go, in its order.
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)  # fmt: skip
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",  # docker 25: RAPL energy counters leak (CVE-2020-8694)
)  # fmt: skip
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
SHM_SIZE = 64 << 20
MIN_MEMORY = 6 << 20  # docker: "Minimum memory limit allowed is 6MB"
CPU_PERIOD = 100_000  # µs; docker's --cpus quota is taken over this period
INIT_IN_CONTAINER = "/dev/init"
CGROUP_PARENT = "/hull"
# moby oci/defaults.go: deny all, then the devices every container has (runc adds its own list after these).
DEFAULT_DEVICE_RULES: tuple[tuple[bool, str, int, int], ...] = (
    (True, "c", 1, 5),  # /dev/zero
    (True, "c", 1, 3),  # /dev/null
    (True, "c", 1, 9),  # /dev/urandom
    (True, "c", 1, 8),  # /dev/random
    (True, "c", 5, 0),  # /dev/tty
    (True, "c", 5, 1),  # /dev/console
    (False, "c", 10, 229),  # /dev/fuse: docker denies it explicitly
)
# opts.ValidateSysctl: the namespaced sysctls a container may set.
SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
           "kernel.shmmni", "kernel.shm_rmid_forced")  # fmt: skip
SYSCTL_PREFIXES = ("fs.mqueue.", "net.")
_PROPAGATIONS = ("shared", "rshared", "slave", "rslave", "private", "rprivate")
_NOT_MOUNT_OPTIONS = ("z", "Z", "nocopy", "consistent", "cached", "delegated")
# mount(8) flags that cancel each other: the later one wins in a merged list (moby MergeTmpfsOptions).
_OPPOSITES = {"exec": "noexec", "suid": "nosuid", "dev": "nodev", "ro": "rw", "atime": "noatime"}


def effective_hostname(opts: RunOptions, container_id: str) -> str:
    """--hostname, else the host's with --network host (docker), else the ID's first 12 characters."""
    if opts.hostname:
        return opts.hostname
    if opts.network == "host":
        import os

        return os.uname().nodename
    return container_id[:12]


# ---------------------------------------------------------------- capabilities


def _known_capabilities() -> tuple[str, ...]:
    from hull.runtime.capabilities import NAMES

    return NAMES


def _own_bounding_set() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return -1


def all_capabilities() -> list[str]:
    """Every capability for --privileged and ``--cap-add ALL`` (docker's GetAllCapabilities).

    Docker lists every capability the kernel knows; here, only those the
    engine itself holds in its bounding set: a container cannot be granted
    more, and asking for more makes the runtime fail ("unable to apply caps",
    e.g. in a nested container without CAP_SYS_RESOURCE).
    """
    from hull.runtime.capabilities import NAMES, last_cap

    own = _own_bounding_set()
    return [name for i, name in enumerate(NAMES[: last_cap() + 1]) if own >> i & 1]


def _normalize_caps(names: Collection[str], flag: str) -> list[str]:
    known = _known_capabilities()
    out: list[str] = []
    for name in names:
        cap = name.upper()
        if cap != "ALL" and not cap.startswith("CAP_"):
            cap = "CAP_" + cap
        if cap != "ALL" and cap not in known:
            raise OptionError(f'{flag}: unknown capability: "{cap}"')
        out.append(cap)
    return out


def capability_list(opts: RunOptions) -> list[str]:
    """The container's capabilities as docker's TweakCapabilities computes them."""
    if opts.privileged:
        return all_capabilities()
    add = _normalize_caps(opts.cap_add, "--cap-add")
    drop = _normalize_caps(opts.cap_drop, "--cap-drop")
    if "ALL" in add:
        caps = [c for c in all_capabilities() if c not in drop]
    elif "ALL" in drop:
        caps = list(add)
    else:
        caps = [c for c in DEFAULT_CAPABILITIES if c not in drop] + add
    return list(dict.fromkeys(caps))


def capabilities_object(caps: list[str], uid: int) -> dict[str, list[str]]:
    if uid == 0:
        return {"bounding": list(caps), "effective": list(caps), "permitted": list(caps),
                "inheritable": [], "ambient": []}  # fmt: skip
    # moby: a non-root process gets no effective or permitted capabilities, as execve would give it.
    return {"bounding": list(caps), "effective": [], "permitted": [], "inheritable": [], "ambient": []}


# ---------------------------------------------------------------- process


def _set_env(env: list[str], item: str) -> None:
    name = item.split("=", 1)[0]
    for i, old in enumerate(env):
        if old.split("=", 1)[0] == name:
            env[i] = item
            return
    env.append(item)


def process_args(opts: RunOptions, image: ImageConfig) -> list[str]:
    """Entrypoint + cmd as moby's merge.

    A non-empty --entrypoint drops the image's Cmd; ``--entrypoint ""`` drops
    only the image's Entrypoint and keeps its Cmd.
    """
    ec = image.config
    command = list(opts.command or [])
    entrypoint = opts.entrypoint
    if not entrypoint:
        if not command:
            command = list(ec.cmd or []) if ec else []
        if entrypoint is None:
            entrypoint = list(ec.entrypoint or []) if ec else []
    args = [*entrypoint, *command]
    if not args:
        raise OptionError("no command specified")
    return args


def _rlimits(ulimits: Collection[str]) -> list[dict[str, Any]]:
    from hull.engine.parse import parse_ulimit

    by_type: dict[str, dict[str, Any]] = {}
    for value in ulimits:
        limit = parse_ulimit(value)
        by_type[limit["type"]] = limit  # a later --ulimit of the same name wins (docker keeps a map)
    return list(by_type.values())


# ---------------------------------------------------------------- security options


@record
class SecurityOptions:
    no_new_privileges: bool = False
    seccomp: str = ""  # "" (default profile), "unconfined" or the profile's JSON text
    seccomp_file: str = ""
    system_paths_unconfined: bool = False


def parse_security_opts(values: Collection[str]) -> SecurityOptions:
    """--security-opt as docker's parseSecurityOpts: KEY=VALUE (or the older KEY:VALUE)."""
    out = SecurityOptions()
    for opt in values:
        key, sep, value = opt.partition("=")
        if not sep and key not in ("no-new-privileges",):
            key, sep, value = opt.partition(":")
        if key == "no-new-privileges":
            if not sep or value in ("true", "1"):
                out.no_new_privileges = True
            elif value in ("false", "0"):
                out.no_new_privileges = False
            else:
                raise OptionError(f"--security-opt: invalid --security-opt 2: {opt!r}")
        elif not sep:
            raise OptionError(f"--security-opt: invalid --security-opt 1: {opt!r}")
        elif key == "seccomp":
            if value == "unconfined":
                out.seccomp, out.seccomp_file = "unconfined", ""
            else:
                try:
                    with open(value, encoding="utf-8") as f:
                        out.seccomp = f.read()
                except OSError as err:
                    raise OptionError(
                        f"--security-opt: opening seccomp profile ({value}) failed: {err.strerror}"
                    ) from None
                out.seccomp_file = value
        elif key == "systempaths" and value == "unconfined":
            out.system_paths_unconfined = True
        elif (key == "apparmor" and value == "unconfined") or (key == "label" and value == "disable"):
            pass  # hull sets no AppArmor profile nor SELinux label: already so
        elif key in ("apparmor", "label"):
            raise OptionError(f"--security-opt {opt}: {key} profiles are not supported yet")
        else:
            raise OptionError(f"--security-opt: invalid --security-opt 2: {opt!r}")
    return out


def _seccomp(security: SecurityOptions, opts: RunOptions, caps: list[str]) -> dict[str, Any] | None:
    if opts.privileged or security.seccomp == "unconfined":
        return None
    if security.seccomp:
        import json

        from hull.engine.seccomp_convert import convert

        try:
            profile = json.loads(security.seccomp)
        except ValueError as err:
            raise OptionError(f"--security-opt seccomp={security.seccomp_file}: decoding seccomp profile failed: "
                              f"{err}") from None  # fmt: skip
        return convert(profile, caps)
    from hull.engine.seccomp_default import default_profile

    return default_profile(caps)


# ---------------------------------------------------------------- mounts


def _merge_options(options: list[str]) -> list[str]:
    """Later flags cancel earlier opposites (``exec`` after ``noexec``), duplicates dropped, order kept."""
    out: list[str] = []
    for opt in options:
        opposite = _OPPOSITES.get(opt) or next((k for k, v in _OPPOSITES.items() if v == opt), None)
        if opposite in out:
            out.remove(opposite)
        key = opt.split("=", 1)[0]
        if "=" in opt:
            out = [o for o in out if o.split("=", 1)[0] != key]
        if opt not in out:
            out.append(opt)
    return out


def default_mounts(opts: RunOptions) -> list[dict[str, Any]]:
    """docker's: /proc, /dev, /dev/pts, /sys, /sys/fs/cgroup, /dev/mqueue, /dev/shm."""
    ro = [] if opts.privileged else ["ro"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", *ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*ro, "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={SHM_SIZE}"]},
    ]  # fmt: skip


def _etc_mounts(files: ContainerFiles, opts: RunOptions) -> list[dict[str, Any]]:
    # docker: writable unless --read-only.
    options = ["rbind", "rprivate", *(["ro"] if opts.read_only else [])]
    etc = [("/etc/resolv.conf", files.resolv_conf), ("/etc/hostname", files.hostname), ("/etc/hosts", files.hosts)]
    return [{"destination": d, "type": "bind", "source": s, "options": list(options)} for d, s in etc if s]


def user_mount(mount: ResolvedMount) -> dict[str, Any]:
    """A ``-v``/``--mount``/``--tmpfs`` mount as docker hands it over."""
    options = [o for o in mount.options if o not in _NOT_MOUNT_OPTIONS]
    if mount.type == "tmpfs":
        # moby: tmpfs mounts start from noexec,nosuid,nodev; the user's options win.
        return {"destination": mount.destination, "type": "tmpfs", "source": "tmpfs",
                "options": _merge_options(["noexec", "nosuid", "nodev", *options])}  # fmt: skip
    if mount.type != "bind":
        raise OptionError(f"mount on {mount.destination}: unknown type {mount.type!r}")
    propagation = [o for o in options if o in _PROPAGATIONS]
    rest = [o for o in options if o not in _PROPAGATIONS and o not in ("bind", "rbind")]
    return {"destination": mount.destination, "type": "bind", "source": mount.source,
            "options": ["rbind", *rest, propagation[-1] if propagation else "rprivate"]}  # fmt: skip


def _depth(destination: str) -> int:
    import posixpath

    return len(posixpath.normpath(destination).split("/"))


def _rootfs_propagation(mounts: list[dict[str, Any]]) -> str:
    """moby: a shared bind mount needs a shared rootfs, a slave one at least a slave rootfs."""
    options = {o for m in mounts if m["type"] == "bind" for o in m["options"]}
    if options & {"shared", "rshared"}:
        return "rshared"
    if options & {"slave", "rslave"}:
        return "rslave"
    return ""


def all_mounts(opts: RunOptions, files: ContainerFiles, mounts: list[ResolvedMount],
               init_path: str) -> list[dict[str, Any]]:  # fmt: skip
    user = [user_mount(m) for m in mounts]
    taken = {m["destination"].rstrip("/") or "/" for m in user}
    defaults = [m for m in default_mounts(opts) if m["destination"] not in taken]
    extra = [m for m in _etc_mounts(files, opts) if m["destination"] not in taken]
    if opts.init:
        extra.append({"destination": INIT_IN_CONTAINER, "type": "bind", "source": init_path, "options": ["bind", "ro"]})
    # moby sortMounts: fewer path components first (a parent before what is mounted inside it), stable.
    return defaults + sorted(extra + user, key=lambda m: _depth(m["destination"]))


# ---------------------------------------------------------------- linux


def _swap_accounting() -> bool:
    import os

    v1 = "/sys/fs/cgroup/memory"
    return not os.path.isdir(v1) or os.path.exists(os.path.join(v1, "memory.memsw.limit_in_bytes"))


def resources(opts: RunOptions) -> dict[str, Any]:
    """linux.resources: docker's device rules, and --memory/--memory-swap/--cpus/--cpu-shares/--pids-limit."""
    if opts.privileged:
        devices: list[dict[str, Any]] = [{"allow": True, "access": "rwm"}]
    else:
        devices = [{"allow": False, "access": "rwm"}]
        devices += [{"allow": a, "type": t, "major": ma, "minor": mi, "access": "rwm"}
                    for a, t, ma, mi in DEFAULT_DEVICE_RULES]  # fmt: skip
    out: dict[str, Any] = {"devices": devices}
    memory: dict[str, Any] = {}
    if opts.memory is not None and opts.memory > 0:
        if opts.memory < MIN_MEMORY:
            raise OptionError("--memory: Minimum memory limit allowed is 6MB")
        memory["limit"] = opts.memory
    swap = opts.memory_swap
    if swap is not None and swap != 0:
        if "limit" not in memory:
            raise OptionError("--memory-swap: You should always set the Memory limit when using Memoryswap limit, "
                              "see usage")  # fmt: skip
        if swap != -1 and swap < memory["limit"]:
            raise OptionError("--memory-swap: Minimum memoryswap limit should be larger than memory limit, see usage")
    elif "limit" in memory:
        swap = memory["limit"] * 2  # docker: swap as large as the memory limit
    if "limit" in memory and swap and _swap_accounting():
        # docker drops the swap limit (with a warning) where the kernel has no swap accounting.
        memory["swap"] = swap
    if memory:
        out["memory"] = memory
    cpu: dict[str, Any] = {}
    if opts.cpu_shares:
        cpu["shares"] = opts.cpu_shares
    if opts.cpus:
        import os

        count = os.cpu_count() or 1
        if not 0.01 <= opts.cpus <= count:
            raise OptionError(f"--cpus: Range of CPUs is from 0.01 to {count}.00, as there are only {count} CPUs "
                              "available")  # fmt: skip
        cpu["quota"] = int(opts.cpus * CPU_PERIOD)
        cpu["period"] = CPU_PERIOD
    if cpu:
        out["cpu"] = cpu
    if opts.pids_limit is not None and opts.pids_limit > 0:
        out["pids"] = {"limit": opts.pids_limit}
    return out


def check_sysctls(sysctls: Mapping[str, str], network: str) -> None:
    for key in sysctls:
        if key not in SYSCTLS and not key.startswith(SYSCTL_PREFIXES):
            raise OptionError(f"--sysctl: sysctl '{key}' is not whitelisted")
        if key.startswith("net.") and network == "host":
            raise OptionError(f"--sysctl {key} cannot be used with --net=host")


def _cgroup_v2_only() -> bool:
    import os

    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def namespaces(opts: RunOptions, netns_path: str = "") -> list[dict[str, str]]:
    kinds = ["pid", "ipc", "uts", "mount"]
    if opts.network != "host":
        kinds.append("network")  # --network none: a namespace with only lo; a CNI network's: netns_path
    if _cgroup_v2_only():
        kinds.append("cgroup")  # docker's default cgroupns mode: private on v2, host on v1
    return [{"type": k, "path": netns_path} if k == "network" and netns_path else {"type": k} for k in kinds]


# ---------------------------------------------------------------- the document


def build_spec(opts: RunOptions, image: ImageConfig, user: User, container_id: str, files: ContainerFiles,
               mounts: list[ResolvedMount], init_path: str = "", *,
               environ: Mapping[str, str] | None = None, netns_path: str = "") -> dict[str, Any]:  # fmt: skip
    """The runtime config.json for ``opts`` on ``image`` run as ``user`` (already resolved by the caller).

    ``environ`` gives the values of ``-e NAME`` (default os.environ). The
    rootfs is ``rootfs`` in the bundle. ``netns_path``: the network namespace
    to join (a CNI network's or another container's), made by the engine.
    """
    import os

    from hull.engine.parse import resolve_env
    from hull.image.bundle import runtime_config
    from hull.oci.state import OCI_VERSION

    if opts.network not in ("none", "host") and not netns_path:
        raise OptionError(f"--network {opts.network}: the engine gives such a network's namespace path")
    if opts.init and not init_path:
        raise OptionError("--init: no init binary (install tini: /usr/bin/tini-static)")
    if opts.workdir and not opts.workdir.startswith("/"):
        raise OptionError(f"-w: the working directory '{opts.workdir}' is invalid, it needs to be an absolute path")
    check_sysctls(opts.sysctls, opts.network)
    security = parse_security_opts(opts.security_opt)
    hostname = effective_hostname(opts, container_id)

    # docker's CreateDaemonEnvironment: PATH, HOSTNAME, TERM (-t) first; the image's and the user's replace them.
    env = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}", *(["TERM=xterm"] if opts.tty else [])]
    base: dict[str, Any] = {"ociVersion": OCI_VERSION, "process": {"env": env}}
    spec = runtime_config(image, user, terminal=opts.tty, base=base)
    spec.pop("mounts", None)  # the image's Volumes: anonymous volumes, resolved by the caller into ``mounts``
    process = spec["process"]
    for item in resolve_env(opts.env, os.environ if environ is None else environ):
        _set_env(process["env"], item)
    args = process_args(opts, image)
    process["args"] = [INIT_IN_CONTAINER, "--", *args] if opts.init else args
    if opts.workdir:
        process["cwd"] = opts.workdir
    caps = capability_list(opts)
    process["capabilities"] = capabilities_object(caps, user.uid)
    rlimits = _rlimits(opts.ulimits)
    if rlimits:
        process["rlimits"] = rlimits
    process["noNewPrivileges"] = security.no_new_privileges

    spec["root"] = {"path": "rootfs", "readonly": opts.read_only}
    if opts.network != "host" or opts.hostname:
        spec["hostname"] = hostname
    spec["mounts"] = all_mounts(opts, files, mounts, init_path)
    linux: dict[str, Any] = {
        "resources": resources(opts),
        "cgroupsPath": f"{CGROUP_PARENT}/{container_id}",
        "namespaces": namespaces(opts, netns_path),
    }
    if opts.sysctls:
        linux["sysctl"] = dict(opts.sysctls)
    if not opts.privileged and not security.system_paths_unconfined:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    seccomp = _seccomp(security, opts, caps)
    if seccomp is not None:
        linux["seccomp"] = seccomp
    propagation = _rootfs_propagation(spec["mounts"])
    if propagation:
        linux["rootfsPropagation"] = propagation
    spec["linux"] = linux
    return spec
