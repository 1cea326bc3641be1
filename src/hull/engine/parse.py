"""Flag values of ``hull run`` / ``hull create`` in docker's grammar, parsed into options.py's records.

Pure functions (``parse_env_file`` reads its file): each raises
``OptionError`` with one line naming the flag, in docker's words where docker
has them (docker CLI 20.10 / moby's volume parser / go-units).
"""

from __future__ import annotations

from hull.engine.options import MountRequest, OptionError, RestartPolicy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

# go-units RAMInBytes: binary multiples, the unit case-insensitive, "b"/"ib" optional.
_RAM_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DIGITS = "0123456789."

# moby volume/mounts linux_parser: the modes one -v may carry, by kind (at most one of each).
_RW_MODES = ("rw", "ro")
_LABEL_MODES = ("z", "Z")
PROPAGATIONS = ("shared", "rshared", "slave", "rslave", "private", "rprivate")
_CONSISTENCY_MODES = ("consistent", "cached", "delegated")  # docker for Mac's; no-ops on Linux

# go-units ulimit.go's names ("as" is disabled there too).
ULIMITS = (
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
    "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
)  # fmt: skip
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
_U64_MAX = (1 << 64) - 1


def _fail(flag: str, value: str, problem: str) -> OptionError:
    return OptionError(f'invalid argument "{value}" for "{flag}" flag: {problem}')


# ---------------------------------------------------------------- sizes and numbers


def parse_size(value: str, flag: str = "--memory") -> int:
    """A size in bytes as go-units RAMInBytes: ``256m``, ``1.5G``, ``64MiB``, ``512 kb``, ``100`` (bytes)."""
    num, space, suffix = value.partition(" ")
    if not space:
        cut = max(value.rfind(c) for c in _DIGITS)
        if cut < 0:
            raise _fail(flag, value, f"invalid size: '{value}'")
        num, suffix = value[: cut + 1], value[cut + 1 :]
    try:
        size = float(num)
    except ValueError:
        raise _fail(flag, value, f"invalid size: '{value}'") from None
    if size < 0 or size != size or size == float("inf"):
        raise _fail(flag, value, f"invalid size: '{value}'")
    if not suffix:
        return int(size)
    sfx = suffix.lower()
    if len(sfx) > 3 or (sfx[0] == "b" and len(sfx) > 1):
        raise _fail(flag, value, f"invalid suffix: '{sfx}'")
    if sfx[0] == "b":
        return int(size)
    if sfx[0] not in _RAM_UNITS or (len(sfx) == 2 and sfx[1] != "b") or (len(sfx) == 3 and sfx[1:] != "ib"):
        raise _fail(flag, value, f"invalid suffix: '{sfx}'")
    return int(size * _RAM_UNITS[sfx[0]])


def parse_memory(value: str) -> int:
    """``--memory``: bytes."""
    return parse_size(value, "--memory")


def parse_memory_swap(value: str) -> int:
    """``--memory-swap``: bytes, or -1 for unlimited swap (docker's MemSwapBytes)."""
    return -1 if value == "-1" else parse_size(value, "--memory-swap")


def parse_cpus(value: str) -> float:
    """``--cpus``: a positive number of CPUs, at most nine decimals (docker's NanoCPUs)."""
    try:
        cpus = float(value)
    except ValueError:
        raise _fail("--cpus", value, f"failed to parse {value} as a rational number") from None
    if not cpus > 0 or cpus == float("inf"):
        raise _fail("--cpus", value, "the number of CPUs must be positive")
    if "." in value and len(value.split(".", 1)[1].rstrip("0")) > 9:
        raise _fail("--cpus", value, "value is too precise")
    return cpus


def parse_int(value: str, flag: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise _fail(flag, value, "not an integer") from None


# ---------------------------------------------------------------- -v, --mount, --tmpfs


def _absolute(path: str) -> bool:
    return path.startswith("/")


def _check_destination(flag: str, value: str, dest: str) -> str:
    if not dest:
        raise OptionError(f"{flag} {value}: target is required")
    if not _absolute(dest):
        raise OptionError(f"{flag} {value}: invalid mount path: '{dest}' mount path must be absolute")
    if dest.rstrip("/") == "":
        raise OptionError(f"{flag} {value}: invalid specification: destination can't be '/'")
    return dest


def valid_volume_name(name: str) -> bool:
    """moby's local volume names: ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``."""
    if len(name) < 2 or not (name[0].isascii() and name[0].isalnum()):
        return False
    return all(c.isascii() and (c.isalnum() or c in "_.-") for c in name[1:])


def _check_volume_name(flag: str, value: str, name: str) -> None:
    if not valid_volume_name(name):
        raise OptionError(
            f'{flag} {value}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'
        )


def parse_volume(value: str) -> MountRequest:
    """``-v``: ``/host:/ctr[:MODES]`` (bind), ``name:/ctr[:MODES]`` (named volume), ``/ctr`` (anonymous volume).

    MODES (comma-separated, moby's linux parser): rw|ro, z|Z, a propagation,
    docker for Mac's consistency modes (dropped), nocopy (volumes).
    """
    flag = "-v"
    parts = value.split(":")
    if not value or len(parts) > 3:
        raise OptionError(f"{flag}: invalid volume specification: '{value}'")
    modes = ""
    if len(parts) == 1:
        source, dest = "", parts[0]
    elif len(parts) == 2:
        if _valid_modes(parts[1]):
            # moby: a destination with a mode but no source is not a valid volume
            raise OptionError(f"{flag}: invalid volume specification: '{value}'")
        source, dest = parts
    else:
        source, dest, modes = parts
    if not source and len(parts) > 1:
        raise OptionError(f"{flag}: invalid volume specification: '{value}'")
    _check_destination(flag, value, dest)
    kind = "bind" if _absolute(source) else "volume"
    if kind == "volume" and source:
        _check_volume_name(flag, value, source)
    if modes and not _valid_modes(modes):
        raise OptionError(f"{flag} {value}: invalid mode: {modes}")
    readonly = False
    options: list[str] = []
    for mode in modes.split(",") if modes else ():
        if mode in _RW_MODES:
            readonly = mode == "ro"
        elif mode in _CONSISTENCY_MODES:
            continue
        elif mode == "nocopy" and kind != "volume":
            raise OptionError(f"{flag} {value}: invalid mode: {modes}")
        else:
            options.append(mode)
    return MountRequest(kind, dest, source, readonly, options)


def _valid_modes(modes: str) -> bool:
    seen: dict[str, int] = {}
    for mode in modes.split(","):
        if mode in _RW_MODES:
            kind = "rw"
        elif mode in _LABEL_MODES:
            kind = "label"
        elif mode in PROPAGATIONS:
            kind = "propagation"
        elif mode in _CONSISTENCY_MODES:
            kind = "consistency"
        elif mode == "nocopy":
            kind = "copy"
        else:
            return False
        seen[kind] = seen.get(kind, 0) + 1
        if seen[kind] > 1:
            return False
    return True


def _csv_fields(value: str) -> list[str]:
    """One line of CSV (docker reads --mount with encoding/csv): commas split, double quotes group."""
    import csv

    try:
        rows = list(csv.reader([value], strict=True))
    except csv.Error as err:
        raise OptionError(f"--mount {value}: {err}") from None
    return rows[0] if rows else []


def _bool(flag: str, value: str, key: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "t"):
        return True
    if lowered in ("0", "false", "f"):
        return False
    raise OptionError(f"{flag} {value}: invalid value for {key}: {text}")


def parse_mount(value: str) -> MountRequest:
    """``--mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,bind-propagation=..][,tmpfs-size=..]``.

    As the docker CLI's MountOpt: keys src/source, dst/destination/target,
    ro/readonly (value optional), bind-propagation, tmpfs-size (a size),
    tmpfs-mode (octal); volume-opt/volume-driver/volume-label are accepted and
    ignored, volume-nocopy is kept as the ``nocopy`` option.
    """
    flag = "--mount"
    kind = "volume"
    source = dest = ""
    readonly = False
    options: list[str] = []
    used: set[str] = set()
    for item in _csv_fields(value):
        key, has_value, val = item.partition("=")
        key = key.strip().lower()
        if not has_value and key not in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
            raise OptionError(f"{flag} {value}: invalid field '{item}' must be a key=value pair")
        if key == "type":
            kind = val.lower()
            if kind not in ("bind", "volume", "tmpfs"):
                raise OptionError(f"{flag} {value}: invalid mount type: {val!r}, must be bind, volume or tmpfs")
        elif key in ("source", "src"):
            source = val
        elif key in ("target", "dst", "destination"):
            dest = val
        elif key in ("readonly", "ro"):
            readonly = _bool(flag, value, key, val) if has_value else True
        elif key == "bind-propagation":
            if val not in PROPAGATIONS:
                raise OptionError(f"{flag} {value}: invalid propagation mode: {val}")
            options.append(val)
            used.add("bind")
        elif key == "bind-nonrecursive":
            raise OptionError(f"{flag} {value}: bind-nonrecursive is not supported")
        elif key == "consistency":
            if val not in (*_CONSISTENCY_MODES, "default"):
                raise OptionError(f"{flag} {value}: invalid consistency: {val}")
        elif key == "volume-nocopy":
            if not has_value or _bool(flag, value, key, val):
                options.append("nocopy")
            used.add("volume")
        elif key in ("volume-opt", "volume-driver", "volume-label"):
            used.add("volume")  # the local driver's options: not supported, ignored as the brief says
        elif key == "tmpfs-size":
            options.append(f"size={parse_size(val, flag + ' tmpfs-size')}")
            used.add("tmpfs")
        elif key == "tmpfs-mode":
            try:
                mode = int(val, 8)
            except ValueError:
                raise OptionError(f"{flag} {value}: invalid value for tmpfs-mode: {val}") from None
            options.append(f"mode={mode:o}")
            used.add("tmpfs")
        else:
            raise OptionError(f"{flag} {value}: unexpected key '{key}' in '{item}'")
    for other in used - {kind}:
        raise OptionError(f"{flag} {value}: cannot mix '{other}-*' options with mount type '{kind}'")
    _check_destination(flag, value, dest)
    if kind == "bind":
        if not source:
            raise OptionError(f'{flag} {value}: invalid mount config for type "bind": field Source must not be empty')
        if not _absolute(source):
            raise OptionError(f'{flag} {value}: invalid mount config for type "bind": invalid mount path: '
                              f"'{source}' mount path must be absolute")  # fmt: skip
    elif kind == "volume" and source:
        _check_volume_name(flag, value, source)
    elif kind == "tmpfs" and source:
        raise OptionError(f'{flag} {value}: invalid mount config for type "tmpfs": field Source must not be specified')
    return MountRequest(kind, dest, source, readonly, options)


# tmpfs(5) options docker's MergeTmpfsOptions accepts, besides the mount flags below.
_TMPFS_DATA = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol")
_TMPFS_FLAGS = (
    "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec", "sync", "async", "dirsync",
    "remount", "mand", "nomand", "atime", "noatime", "diratime", "nodiratime", "bind", "rbind",
    "relatime", "norelatime", "strictatime", "nostrictatime", "tmpcopyup", "notmpcopyup",
    *PROPAGATIONS,
)  # fmt: skip


def parse_tmpfs(value: str) -> MountRequest:
    """``--tmpfs /run[:size=64m,mode=1777,noexec...]``: sizes keep docker's spelling (tmpfs(5) reads k/m/g)."""
    flag = "--tmpfs"
    dest, _, opts = value.partition(":")
    _check_destination(flag, value, dest)
    readonly = False
    options: list[str] = []
    for opt in opts.split(",") if opts else ():
        key, has_value, val = opt.partition("=")
        if has_value and key in _TMPFS_DATA:
            if key == "size":
                parse_size(val, flag)  # validated; tmpfs(5) itself reads the suffix
            options.append(opt)
        elif not has_value and opt in _TMPFS_FLAGS:
            if opt in _RW_MODES:
                readonly = opt == "ro"
            else:
                options.append(opt)
        else:
            raise OptionError(f"{flag} {value}: invalid tmpfs option {opt!r}")
    return MountRequest("tmpfs", dest, "", readonly, options)


# ---------------------------------------------------------------- restart, env, ulimit, labels


def parse_restart(value: str) -> RestartPolicy:
    """``--restart no|always|unless-stopped|on-failure[:N]`` (docker: a count only with on-failure)."""
    flag = "--restart"
    if not value:
        return RestartPolicy()
    name, has_count, count = value.partition(":")
    if name not in RESTART_POLICIES:
        raise OptionError(f"{flag}: invalid restart policy '{name}'")
    maximum = 0
    if has_count:
        if name != "on-failure":
            raise OptionError(f"{flag}: maximum retry count cannot be used with restart policy '{name}'")
        try:
            maximum = int(count, 10)
        except ValueError:
            raise OptionError(f"{flag}: maximum retry count must be an integer") from None
        if maximum < 0:
            raise OptionError(f"{flag}: maximum retry count cannot be negative")
    return RestartPolicy(name, maximum)


def _env_name_ok(name: str) -> bool:
    return bool(name) and not any(c.isspace() for c in name)


def resolve_env(items: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """``-e`` values: NAME=VALUE kept, a bare NAME takes ``environ``'s value and is dropped if unset (docker)."""
    out: list[str] = []
    for item in items:
        name, sep, _ = item.partition("=")
        if sep:
            if not name:
                raise OptionError(f'invalid argument "{item}" for "-e" flag: invalid environment variable: {item}')
            out.append(item)
        elif item in environ:
            out.append(f"{item}={environ[item]}")
    return out


def parse_env_file(path: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """``--env-file``: docker's rules (opts.ParseEnvFile).

    Lines are stripped of leading whitespace; blank ones and ``#`` comments are
    skipped; ``NAME=VALUE`` keeps VALUE verbatim (no quote processing); a bare
    ``NAME`` takes the host's value (``environ``, default os.environ) and is
    dropped when the host has none; a name with whitespace is an error.
    """
    import os

    env = os.environ if environ is None else environ
    flag = "--env-file"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise OptionError(f"{flag} {path}: {err.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OptionError(f"{flag} {path}: invalid utf8 bytes") from None
    text = text.removeprefix("\ufeff")
    out: list[str] = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.lstrip(" \t")
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if sep:
            if not name:
                raise OptionError(f"{flag} {path}: no variable name on line {number} '{line}'")
            if not _env_name_ok(name):
                raise OptionError(f"{flag} {path}: variable '{name}' contains whitespaces")
            out.append(f"{name}={value}")
        else:
            name = line.strip()
            if not _env_name_ok(name):
                raise OptionError(f"{flag} {path}: variable '{name}' contains whitespaces")
            if name in env:
                out.append(f"{name}={env[name]}")
    return out


def parse_ulimit(value: str) -> dict[str, Any]:
    """``--ulimit NAME=SOFT[:HARD]`` -> a ``process.rlimits`` entry; -1 is unlimited (go-units ParseUlimit)."""
    flag = "--ulimit"
    name, has_value, limits = value.partition("=")
    if not has_value:
        raise OptionError(f"{flag}: invalid ulimit argument: {value}")
    if name not in ULIMITS:
        raise OptionError(f"{flag}: invalid ulimit type: {name}")
    soft_text, has_hard, hard_text = limits.partition(":")
    soft = parse_int(soft_text, flag)
    hard = parse_int(hard_text, flag) if has_hard else soft
    if hard != -1:
        if soft == -1:
            raise OptionError(
                f"{flag}: ulimit soft limit must be less than or equal to hard limit: "
                f"soft: -1 (unlimited), hard: {hard}"
            )
        if soft > hard:
            raise OptionError(f"{flag}: ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    for limit in (soft, hard):
        if limit < -1:
            raise OptionError(f"{flag}: invalid ulimit value {limit} in {value}")

    def as_u64(n: int) -> int:
        return _U64_MAX if n == -1 else n  # RLIM_INFINITY, as docker's int64 -> uint64 conversion gives

    return {"type": "RLIMIT_" + name.upper(), "hard": as_u64(hard), "soft": as_u64(soft)}


def parse_labels(values: Iterable[str]) -> dict[str, str]:
    """``--label KEY[=VALUE]``: a key alone has the empty value (docker); a later one wins."""
    out: dict[str, str] = {}
    for item in values:
        key, _, val = item.partition("=")
        if not key:
            raise _fail("--label", item, "empty label name")
        out[key] = val
    return out


def parse_key_values(values: Iterable[str], flag: str) -> dict[str, str]:
    """``--sysctl KEY=VALUE`` and the like: KEY=VALUE required."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise _fail(flag, item, "must be KEY=VALUE")
        out[key] = val
    return out


def parse_hostname(value: str) -> str:
    """``--hostname``: RFC 1123 labels of letters, digits and hyphens, at most 64 bytes (sethostname(2)'s
    limit). It is written into /etc/hosts files, this container's and its network peers': no spaces,
    no newlines, nothing that could become another line there."""
    labels = value.split(".")
    ok = 0 < len(value) <= 64 and all(
        0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-"
        and all(c.isascii() and (c.isalnum() or c == "-") for c in label)
        for label in labels
    )  # fmt: skip
    if not ok:
        raise OptionError(f'invalid argument "{value}" for "-h, --hostname" flag: invalid hostname format')
    return value
