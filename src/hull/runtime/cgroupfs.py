"""The container's /sys/fs/cgroup mount (a config mount of type "cgroup").

Without a new cgroup namespace the container gets, like runc, a bind mount of
its own cgroup directory in each host hierarchy (so it sees itself as the
root, never the host's tree); with one, fresh cgroup filesystems, which the
kernel roots at the namespace. A v1 or hybrid host gets a tmpfs holding one
mount per v1 hierarchy; a unified (v2) host a single mount. Parsers take text.
"""

from __future__ import annotations

import os

from hull.oci.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    Opener = Callable[[str], AbstractContextManager[str]]


@record
class Hierarchy:
    mount_point: str  # on the host, e.g. /sys/fs/cgroup/memory
    root: str  # the mount's root within the hierarchy (mountinfo field 4)
    fstype: str  # cgroup or cgroup2
    controllers: str  # super options naming the hierarchy, e.g. "memory" or "name=systemd"; "" for cgroup2

    @property
    def name(self) -> str:
        return os.path.basename(self.mount_point)


def hierarchies(mountinfo: str, base: str = "/sys/fs/cgroup") -> list[Hierarchy]:
    """Host cgroup mounts: ``base`` itself if it is cgroup2, else those directly under it."""
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, mount_point = fields[sep + 1], fields[4]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        if mount_point != base and os.path.dirname(mount_point) != base:
            continue
        opts = [o for o in fields[sep + 3].split(",") if o not in ("rw", "ro")]
        controllers = ",".join(o for o in opts if fstype == "cgroup" and (o.startswith("name=") or "=" not in o))
        found.append(Hierarchy(mount_point, fields[3], fstype, controllers))
    return found


def own_paths(proc_cgroup: str) -> dict[str, str]:
    """/proc/self/cgroup as {controllers: path}; the v2 entry has controllers ""."""
    paths = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        paths[controllers] = path
    return paths


def bind_source(h: Hierarchy, paths: dict[str, str]) -> str:
    """The host directory of our own cgroup in hierarchy ``h``."""
    path = paths.get(h.controllers if h.fstype == "cgroup" else "", "/")
    relative = os.path.relpath(path, h.root) if path.startswith(h.root) else "."
    return os.path.normpath(os.path.join(h.mount_point, relative))


def mount_cgroups(opener: Opener, flags: int, new_cgroupns: bool) -> None:
    """Mount the hierarchies; ``opener(sub)`` creates and verifies ``<destination>/<sub>`` inside the rootfs."""
    # Here, not at the top: start, state and delete read hierarchies through
    # cgroups.py and must not pay for ctypes on every call.
    from hull.runtime import linux as L

    with open("/proc/self/mountinfo") as f:
        found = hierarchies(f.read())
    with open("/proc/self/cgroup") as f:
        paths = own_paths(f.read())
    unified = [h for h in found if h.mount_point == "/sys/fs/cgroup"]
    if unified:
        _mount_hierarchy(unified[0], opener, "", flags, new_cgroupns, paths)
        return
    # As runc 1.1's mountCgroupV1: a writable tmpfs (only the hierarchies are
    # read-only), the v1 hierarchies alone (a hybrid host's cgroup2 at
    # /sys/fs/cgroup/unified is left out), and a symlink per controller of a
    # co-mounted hierarchy ("cpu" -> "cpu,cpuacct").
    with opener("") as target:
        L.mount("tmpfs", target, "tmpfs", flags & ~L.MS_RDONLY, "mode=755")
    v1 = [h for h in found if h.fstype == "cgroup"]
    for h in v1:
        _mount_hierarchy(h, opener, h.name, flags, new_cgroupns, paths)
    with opener("") as target:
        for h in v1:
            for controller in h.name.split(",") if "," in h.name else []:
                if not os.path.lexists(os.path.join(target, controller)):
                    os.symlink(h.name, os.path.join(target, controller))


def _mount_hierarchy(h: Hierarchy, opener: Opener, sub: str, flags: int, new_ns: bool, paths: dict[str, str]) -> None:
    from hull.runtime import linux as L

    with opener(sub) as target:
        if new_ns:
            L.mount("cgroup", target, h.fstype, flags, h.controllers or None)
            return
        L.mount(bind_source(h, paths), target, None, L.MS_BIND | L.MS_REC)
    # A new handle: the first still names the directory under the bind mount.
    with opener(sub) as target:
        L.mount(None, target, None, L.MS_BIND | L.MS_REMOUNT | flags)
