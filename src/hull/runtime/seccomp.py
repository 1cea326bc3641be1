"""The container's seccomp filter (config-linux.md "Seccomp").

``check`` validates linux.seccomp at create in pure Python: libseccomp is
loaded (hull.runtime.libseccomp) only by ``install``, in init, when a profile
is present. The filter is built as runc 1.1's libcontainer/seccomp builds it
(without its -ENOSYS patching, patchbpf): the default action, the extra
architectures, no_new_privs left to privileges.py, one rule per syscall name
resolved for the native architecture (names libseccomp does not know are
skipped), rules whose action equals the default skipped, and several
conditions on one argument index split into separate (ORed) rules.

SCMP_ACT_NOTIFY: after loading, the notify fd goes to the seccomp agent at
listenerPath with the "container process state" (config-linux.md). init has
pivoted into the rootfs by then, so it cannot reach a host path (nor, as a
user namespace's root, may it connect there): as runc's init hands the fd to
its parent, init relays it over its connection with ``start``, and ``start``
(``read_start_reply``) sends it on as the host's root.
"""

from __future__ import annotations

from hull.runtime import linux as L
from hull.runtime.errors import ConfigError, SetupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from hull.runtime import unixsock

ACTIONS = (
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
)
# Values of enum scmp_compare (seccomp.h), so check needs no libseccomp.
OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}
# config-linux.md's list (libseccomp 2.5); libseccomp's own name is the lower-case tail.
ARCHITECTURES = (
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
)
# Each flag of seccomp(2) is a filter attribute of libseccomp: (attribute name, least API level).
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": ("SCMP_FLTATR_CTL_TSYNC", 2),
    "SECCOMP_FILTER_FLAG_LOG": ("SCMP_FLTATR_CTL_LOG", 3),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": ("SCMP_FLTATR_CTL_SSB", 4),
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": ("SCMP_FLTATR_CTL_WAITKILL", 7),
}
# seccomp(2)'s bit for each flag whose load load_program mirrors (libseccomp 2.5's sys_filter_load).
FLAG_BITS = {
    "SECCOMP_FILTER_FLAG_TSYNC": L.SECCOMP_FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": L.SECCOMP_FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": L.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
}
_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
_MAX_ARGS = 6  # a Linux syscall has at most six arguments
_U64 = 1 << 64
# After loading, init itself still calls these to hand over the notify fd;
# runc refuses SCMP_ACT_NOTIFY on write for the same reason (a deadlock).
_RELAY_SYSCALLS = ("write", "sendmsg")
RELAY_MARKER = b"seccompFd\n"
EPERM = 1
NOTIFY_API_LEVEL = 6  # runc: seccomp notify needs API level 6 (libseccomp 2.5, Linux 5.7)


def enabled(seccomp: dict[str, Any] | None) -> bool:
    # runc 1.1 (specconv.SetupSeccomp): no defaultAction and no syscalls means no filter.
    return seccomp is not None and bool(seccomp.get("defaultAction") or seccomp.get("syscalls"))


def uses_notify(seccomp: dict[str, Any]) -> bool:
    return any(isinstance(s, dict) and s.get("action") == "SCMP_ACT_NOTIFY" for s in seccomp.get("syscalls") or ())


def check(seccomp: dict[str, Any] | None) -> None:
    """Raise ConfigError naming the field for anything libseccomp would refuse."""
    if seccomp is None or not enabled(seccomp):
        return
    top = "linux.seccomp"

    def fail(field: str, problem: str) -> None:
        raise ConfigError(f"config.json: {top}.{field}: {problem}")

    default = seccomp.get("defaultAction")
    if default is None:
        fail("defaultAction", "is required")
    _check_action(default, "defaultAction", fail)
    if default == "SCMP_ACT_NOTIFY":
        # init's own last syscalls would wait on an agent that has no fd yet (runc refuses it too).
        fail("defaultAction", "SCMP_ACT_NOTIFY cannot be used as default action")
    _check_errno_ret(seccomp.get("defaultErrnoRet"), "defaultErrnoRet", default, "defaultAction", fail)
    for i, arch in enumerate(_list(seccomp, "architectures", fail)):
        if arch not in ARCHITECTURES:
            fail(f"architectures[{i}]", f"unknown architecture {_quote(arch)}")
    flags = _list(seccomp, "flags", fail)
    for i, flag in enumerate(flags):
        if flag not in FLAGS:
            fail(f"flags[{i}]", f"unknown flag {_quote(flag)}")
    _check_flags_supported(flags, fail)
    listener = seccomp.get("listenerPath")
    if listener is not None and (not isinstance(listener, str) or not listener.startswith("/")):
        # Absolute: the path is resolved by ``start``, whose working directory is not create's.
        fail("listenerPath", "must be an absolute path")
    metadata = seccomp.get("listenerMetadata")
    if metadata is not None:
        if not isinstance(metadata, str):
            fail("listenerMetadata", "must be a string")
        if not listener:
            fail("listenerMetadata", "must not be set without listenerPath")
    for i, rule in enumerate(_list(seccomp, "syscalls", fail, str_items=False)):
        _check_rule(rule, f"syscalls[{i}]", bool(listener), fail)


def _check_rule(rule: Any, at: str, has_listener: bool, fail: Any) -> None:
    if not isinstance(rule, dict):
        fail(at, "must be an object")
    names = rule.get("names")
    if not isinstance(names, list) or not names:
        fail(f"{at}.names", "must contain at least one syscall name")
    for j, name in enumerate(names):
        if not isinstance(name, str) or not name:
            fail(f"{at}.names[{j}]", "must be a non-empty string")
    action = rule.get("action")
    if action is None:
        fail(f"{at}.action", "is required")
    _check_action(action, f"{at}.action", fail)
    _check_errno_ret(rule.get("errnoRet"), f"{at}.errnoRet", action, f"{at}.action", fail)
    if action == "SCMP_ACT_NOTIFY":
        if not has_listener:
            fail(f"{at}.action", "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")
        for j, name in enumerate(names):
            if name in _RELAY_SYSCALLS:
                fail(f"{at}.names[{j}]", f"SCMP_ACT_NOTIFY cannot be used for the {name} syscall")
    args = rule.get("args")
    if args is None:
        return
    if not isinstance(args, list):
        fail(f"{at}.args", "must be an array")
    for k, arg in enumerate(args):
        where = f"{at}.args[{k}]"
        if not isinstance(arg, dict):
            fail(where, "must be an object")
        index = arg.get("index")
        if not _is_uint(index) or index >= _MAX_ARGS:
            fail(f"{where}.index", f"must be an argument index from 0 to {_MAX_ARGS - 1}")
        for key in ("value", "valueTwo"):
            value = arg.get(key)
            if (value is not None or key == "value") and not (_is_uint(value) and value < _U64):
                fail(f"{where}.{key}", "must be an unsigned 64-bit integer")
        op = arg.get("op")
        if op not in OPERATORS:
            fail(f"{where}.op", f"unknown operator {_quote(op)}")


def _check_action(action: Any, field: str, fail: Any) -> None:
    if action not in ACTIONS:
        fail(field, f"unknown action {_quote(action)}")


def _check_errno_ret(value: Any, field: str, action: Any, action_field: str, fail: Any) -> None:
    if value is None:
        return
    if not _is_uint(value) or value > 0xFFFF:
        # seccomp(2): SECCOMP_RET_DATA holds 16 bits.
        fail(field, "must be an unsigned integer up to 65535")
    if action not in _ERRNO_ACTIONS:
        # config-linux.md: "When the action doesn't support an errno, the runtime MUST print an
        # error and fail" (runc 1.1 silently ignores it).
        fail(field, f"is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not with {action_field} {action}")


def _check_flags_supported(flags: list[str], fail: Any) -> None:
    # Only a flag newer than libseccomp 2.5 needs a look at the library.
    for i, flag in enumerate(flags):
        attr, level = FLAGS[flag]
        if level > 6:
            lib = _binding()
            if lib.api_get() < level or not hasattr(lib, attr):
                fail(f"flags[{i}]", f"{flag} is not supported by libseccomp {'.'.join(map(str, lib.version()))}")


def _list(obj: dict[str, Any], key: str, fail: Any, str_items: bool = True) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        fail(key, "must be an array")
    if str_items:
        for i, item in enumerate(value):
            if not isinstance(item, str):
                fail(f"{key}[{i}]", "must be a string")
    return list(value)


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _quote(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


# --- building and loading the filter (in init) ---


def _binding() -> ModuleType:
    from hull.runtime import libseccomp

    return libseccomp


def action_value(lib: ModuleType, name: str, errno_ret: int | None) -> int:
    """libseccomp's action value for a config action; ERRNO and TRACE default to EPERM (runc's getAction)."""
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return int(lib.SCMP_ACT_KILL_THREAD)
    if name == "SCMP_ACT_ERRNO":
        return int(lib.act_errno(EPERM if errno_ret is None else errno_ret))
    if name == "SCMP_ACT_TRACE":
        return int(lib.act_trace(EPERM if errno_ret is None else errno_ret))
    return int(getattr(lib, name))


def build(seccomp: dict[str, Any], lib: ModuleType) -> int:
    """A libseccomp filter context for the profile (the caller loads and releases it)."""
    default = action_value(lib, seccomp["defaultAction"], seccomp.get("defaultErrnoRet"))
    ctx: int = lib.init(default)
    try:
        for arch in seccomp.get("architectures") or ():
            try:
                lib.arch_add(ctx, lib.arch_resolve_name(arch[len("SCMP_ARCH_") :].lower()))
            except OSError as err:
                # libseccomp-golang's AddArch: an architecture already present (the native one) is fine.
                if err.errno != 17:  # EEXIST
                    raise SetupError(f"linux.seccomp: adding architecture {arch}: {err.strerror}") from None
        # no_new_privs is privileges.py's business (process.noNewPrivileges), as in runc.
        lib.attr_set(ctx, lib.SCMP_FLTATR_CTL_NNP, 0)
        for flag in seccomp.get("flags") or ():
            try:
                lib.attr_set(ctx, getattr(lib, FLAGS[flag][0]), 1)
            except OSError as err:
                raise SetupError(f"linux.seccomp: setting {flag}: {err.strerror}") from None
        for rule in seccomp.get("syscalls") or ():
            _add_rule(lib, ctx, rule, default)
    except BaseException:
        lib.release(ctx)
        raise
    return ctx


def _add_rule(lib: ModuleType, ctx: int, rule: dict[str, Any], default: int) -> None:
    action = action_value(lib, rule["action"], rule.get("errnoRet"))
    if action == default:
        # runc: redundant, and libseccomp would refuse it.
        return
    conditions = [(a["index"], OPERATORS[a["op"]], a["value"], a.get("valueTwo") or 0) for a in rule.get("args") or ()]
    indexes = [c[0] for c in conditions]
    # runc: conditions on distinct arguments are ANDed in one rule; if one
    # index appears twice, each condition becomes a rule of its own (ORed).
    groups = [[c] for c in conditions] if len(set(indexes)) < len(indexes) else [conditions]
    for name in rule["names"]:
        nr = lib.syscall_resolve_name(name)
        if nr == lib.NR_SCMP_ERROR:
            # runc: a name this libseccomp does not know is ignored (a newer or another arch's syscall).
            continue
        for group in groups:
            try:
                lib.rule_add_array(ctx, action, nr, group)
            except OSError as err:
                raise SetupError(f"linux.seccomp: adding a rule for syscall {name}: {err.strerror}") from None


# Set by init (and exec) to their connection with the runtime: the notify fd is relayed there.
_relay: unixsock.Socket | None = None


def relay_notify_fd_through(sock: unixsock.Socket) -> None:
    global _relay
    _relay = sock


def precompilable(seccomp: dict[str, Any]) -> bool:
    """Whether the runtime may compile the filter ahead (seccomp_cache) for ``load_program`` to install.

    Not with a notify listener: its fd is a result of libseccomp's own load.
    Nor with a flag whose load load_program does not mirror.
    """
    return (
        enabled(seccomp)
        and not uses_notify(seccomp)
        and not seccomp.get("listenerPath")
        and all(flag in FLAG_BITS for flag in seccomp.get("flags") or ())
    )


def install(seccomp: dict[str, Any], state_json: bytes, program: bytes | None = None) -> None:
    """Build the filter and load it into this process (and its future children).

    ``program``: the filter the runtime compiled ahead for this very profile
    (seccomp_cache.program_for), installed without libseccomp.
    """
    if not enabled(seccomp):
        return
    if program is not None:
        load_program(seccomp, program)
        return
    lib = _binding()
    notify = uses_notify(seccomp)
    if notify and lib.api_get() < NOTIFY_API_LEVEL:
        raise SetupError(
            f"seccomp notify unsupported: API level: got {lib.api_get()}, want at least {NOTIFY_API_LEVEL}"
        )
    ctx = build(seccomp, lib)
    try:
        try:
            lib.load(ctx)
        except OSError as err:
            raise SetupError(f"error loading seccomp filter into kernel: {err.strerror}") from None
        fd = lib.notify_fd(ctx) if notify else -1
    finally:
        lib.release(ctx)
    if fd < 0:
        return
    import os

    try:
        if _relay is not None:
            from hull.runtime import unixsock

            unixsock.send_fd(_relay, fd, RELAY_MARKER)
        else:
            # No runtime to relay through: this process still sees the listener's path.
            from hull.oci import jsonfast

            state = jsonfast.loads(state_json)
            send_process_state(seccomp, fd, int(state.get("pid") or os.getpid()), state_json)
    except OSError as err:
        raise SetupError(f"sending the seccomp notify fd: {err.strerror}") from None
    finally:
        os.close(fd)


def load_program(seccomp: dict[str, Any], program: bytes) -> None:
    """Install a compiled filter exactly as libseccomp 2.5.4's seccomp_load does with the attributes ``build`` sets.

    sys_filter_load: no PR_SET_NO_NEW_PRIVS, since SCMP_FLTATR_CTL_NNP is off
    (privileges.py sets it, as runc); seccomp(2) with the profile's flags,
    TSYNC together with TSYNC_ESRCH where the kernel has it (Linux 5.7), a
    thread left unsynchronised being ESRCH; prctl(PR_SET_SECCOMP) on a kernel
    without seccomp(2).
    """
    import errno
    import os

    flags = 0
    for flag in seccomp.get("flags") or ():
        flags |= FLAG_BITS[flag]
    tsync = flags & L.SECCOMP_FILTER_FLAG_TSYNC
    try:
        try:
            result = L.seccomp_set_mode_filter(flags | (L.SECCOMP_FILTER_FLAG_TSYNC_ESRCH if tsync else 0), program)
        except OSError as err:
            if tsync and err.errno == errno.EINVAL:
                result = L.seccomp_set_mode_filter(flags, program)
            elif not flags and err.errno == errno.ENOSYS:
                L.prctl_set_seccomp_filter(program)
                result = 0
            else:
                raise
        if result > 0:
            # TSYNC without TSYNC_ESRCH returns the ID of a thread it could not synchronise.
            raise OSError(errno.ESRCH, os.strerror(errno.ESRCH))
    except OSError as err:
        raise SetupError(f"error loading seccomp filter into kernel: {err.strerror}") from None


def send_process_state(seccomp: dict[str, Any], fd: int, pid: int, state_json: bytes) -> None:
    """Send the container process state (config-linux.md) and the notify fd to the agent at listenerPath.

    One connection, one message with the fd in its SCM_RIGHTS, then closed, as the spec asks.
    """
    from hull.oci import jsonfast
    from hull.oci.state import OCI_VERSION
    from hull.runtime import unixsock

    message: dict[str, Any] = {"ociVersion": OCI_VERSION, "fds": ["seccompFd"], "pid": pid}
    if seccomp.get("listenerMetadata"):
        message["metadata"] = seccomp["listenerMetadata"]
    message["state"] = jsonfast.loads(state_json)
    path = seccomp["listenerPath"]
    try:
        sock = unixsock.connect(path)
    except OSError as err:
        raise SetupError(
            f"failed to connect with seccomp agent specified in the seccomp profile: {path}: {err.strerror}"
        ) from None
    try:
        unixsock.send_fd(sock, fd, jsonfast.dumps(message).encode())
    except OSError as err:
        raise SetupError(f"cannot send seccomp fd to {path}: {err.strerror}") from None
    finally:
        sock.close()


def read_start_reply(sock: unixsock.Socket, seccomp: dict[str, Any], pid: int, state_json: bytes) -> bytes:
    """``start``'s side of the relay: read init's reply, forwarding a notify fd as soon as it comes.

    At once, not at the end: init's next syscalls may wait on the agent.
    """
    import os

    from hull.runtime import unixsock

    reply = b""
    while True:
        data, fds = unixsock.recv_fds(sock)
        if fds:
            data = data.replace(RELAY_MARKER, b"", 1)
            try:
                send_process_state(seccomp, fds[0], pid, state_json)
            finally:
                for fd in fds:
                    os.close(fd)
        elif not data:
            return reply
        reply += data


def features() -> tuple[dict[str, Any], str | None]:
    """features.md's linux.seccomp object and libseccomp's version (None if it cannot be loaded)."""
    try:
        lib = _binding()
        api = lib.api_get()
        version: str | None = ".".join(map(str, lib.version()))
    except OSError:
        api, version = 0, None
    # libseccomp's API level is what it found this kernel (and itself) to support.
    supported = [flag for flag, (attr, level) in FLAGS.items() if api >= level and version and hasattr(lib, attr)]
    return {
        "enabled": True,
        "actions": list(ACTIONS),
        "operators": sorted(OPERATORS),
        "archs": sorted(ARCHITECTURES),
        "knownFlags": list(FLAGS),
        "supportedFlags": supported,
    }, version
