"""Turning a config mount's ``options`` into mount(2) flags and data.

config-linux.md points to mount(8) for option names; runc's table is the
de-facto contract engines rely on, so the same names are understood here.
Options that are not flags are passed to the filesystem as its data string
(``mode=755``, ``size=64k``), as runc does.
"""

from __future__ import annotations

from hull.oci.records import field, record
from hull.runtime import linux as L

# name -> (clear?, flag)
FLAGS: dict[str, tuple[bool, int]] = {
    "acl": (False, L.MS_POSIXACL),
    "async": (True, L.MS_SYNCHRONOUS),
    "atime": (True, L.MS_NOATIME),
    "bind": (False, L.MS_BIND),
    "defaults": (False, 0),
    "dev": (True, L.MS_NODEV),
    "diratime": (True, L.MS_NODIRATIME),
    "dirsync": (False, L.MS_DIRSYNC),
    "exec": (True, L.MS_NOEXEC),
    "iversion": (False, L.MS_I_VERSION),
    "lazytime": (False, L.MS_LAZYTIME),
    "loud": (True, L.MS_SILENT),
    "mand": (False, L.MS_MANDLOCK),
    "noacl": (True, L.MS_POSIXACL),
    "noatime": (False, L.MS_NOATIME),
    "nodev": (False, L.MS_NODEV),
    "nodiratime": (False, L.MS_NODIRATIME),
    "noexec": (False, L.MS_NOEXEC),
    "noiversion": (True, L.MS_I_VERSION),
    "nolazytime": (True, L.MS_LAZYTIME),
    "nomand": (True, L.MS_MANDLOCK),
    "norelatime": (True, L.MS_RELATIME),
    "nostrictatime": (True, L.MS_STRICTATIME),
    "nosuid": (False, L.MS_NOSUID),
    "nosymfollow": (False, L.MS_NOSYMFOLLOW),
    "rbind": (False, L.MS_BIND | L.MS_REC),
    "relatime": (False, L.MS_RELATIME),
    "remount": (False, L.MS_REMOUNT),
    "ro": (False, L.MS_RDONLY),
    "rw": (True, L.MS_RDONLY),
    "silent": (False, L.MS_SILENT),
    "strictatime": (False, L.MS_STRICTATIME),
    "suid": (True, L.MS_NOSUID),
    "sync": (False, L.MS_SYNCHRONOUS),
}

PROPAGATION: dict[str, int] = {
    "private": L.MS_PRIVATE,
    "rprivate": L.MS_PRIVATE | L.MS_REC,
    "shared": L.MS_SHARED,
    "rshared": L.MS_SHARED | L.MS_REC,
    "slave": L.MS_SLAVE,
    "rslave": L.MS_SLAVE | L.MS_REC,
    "unbindable": L.MS_UNBINDABLE,
    "runbindable": L.MS_UNBINDABLE | L.MS_REC,
}

# Recursive attributes applied with mount_setattr(2): name -> (clear?, attr).
RECURSIVE: dict[str, tuple[bool, int]] = {
    "rro": (False, L.MOUNT_ATTR_RDONLY),
    "rrw": (True, L.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, L.MOUNT_ATTR_NOSUID),
    "rsuid": (True, L.MOUNT_ATTR_NOSUID),
    "rnodev": (False, L.MOUNT_ATTR_NODEV),
    "rdev": (True, L.MOUNT_ATTR_NODEV),
    "rnoexec": (False, L.MOUNT_ATTR_NOEXEC),
    "rexec": (True, L.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, L.MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, L.MOUNT_ATTR_NODIRATIME),
    "rnoatime": (False, L.MOUNT_ATTR_NOATIME),
    "ratime": (True, L.MOUNT_ATTR_NOATIME),
    "rrelatime": (False, L.MOUNT_ATTR_RELATIME),
    "rnorelatime": (True, L.MOUNT_ATTR_RELATIME),
    "rstrictatime": (False, L.MOUNT_ATTR_STRICTATIME),
    "rnostrictatime": (True, L.MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, L.MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, L.MOUNT_ATTR_NOSYMFOLLOW),
}

_ATIME_MODES = frozenset({"rnoatime", "rrelatime", "rstrictatime"})

# Options of runc's that carry no mount flag and that we accept and ignore.
IGNORED = frozenset({"tmpcopyup"})

UNSUPPORTED = frozenset({"idmap", "ridmap"})


class MountOptionError(ValueError):
    pass


@record
class ParsedOptions:
    flags: int = 0
    propagation: list[int] = field(default_factory=list)
    attr_set: int = 0
    attr_clr: int = 0
    data: list[str] = field(default_factory=list)

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & L.MS_BIND)

    @property
    def data_string(self) -> str:
        return ",".join(self.data)


def parse_options(options: list[str]) -> ParsedOptions:
    parsed = ParsedOptions()
    for option in options:
        if option in FLAGS:
            clear, flag = FLAGS[option]
            parsed.flags = parsed.flags & ~flag if clear else parsed.flags | flag
        elif option in PROPAGATION:
            parsed.propagation.append(PROPAGATION[option])
        elif option in RECURSIVE:
            clear, attr = RECURSIVE[option]
            if option in _ATIME_MODES:
                # The atime modes are one field of mount_setattr(2): clear it first.
                parsed.attr_clr |= L.MOUNT_ATTR__ATIME
            if clear:
                parsed.attr_clr |= attr
            else:
                parsed.attr_set |= attr
        elif option in UNSUPPORTED:
            raise MountOptionError(f"mount option {option!r} is not supported")
        elif option not in IGNORED:
            parsed.data.append(option)
    return parsed


def all_option_names() -> list[str]:
    """Every option name understood, for ``features`` (features.md mountOptions)."""
    return sorted({*FLAGS, *PROPAGATION, *RECURSIVE})
