"""Which namespaces a container creates or joins, and entering them.

config-linux.md "Namespaces": an entry without ``path`` means a new
namespace, one with ``path`` means joining that namespace; a type that is not
listed is inherited from the runtime. Joining happens before creating, and
the user namespace comes first both ways so that every other namespace is
owned by (or entered with the rights of) the container's user namespace.
"""

from __future__ import annotations

import os

from hull.oci.records import field, record
from hull.oci.runtime_config import IDMapping, Linux
from hull.runtime import linux as L
from hull.runtime.errors import SetupError

CLONE_FLAGS = {
    "user": L.CLONE_NEWUSER,
    "mount": L.CLONE_NEWNS,
    "pid": L.CLONE_NEWPID,
    "network": L.CLONE_NEWNET,
    "ipc": L.CLONE_NEWIPC,
    "uts": L.CLONE_NEWUTS,
    "cgroup": L.CLONE_NEWCGROUP,
    "time": L.CLONE_NEWTIME,
}

# /proc/<pid>/ns/<name> for each spec type.
PROC_NAMES = {
    "user": "user",
    "mount": "mnt",
    "pid": "pid",
    "network": "net",
    "ipc": "ipc",
    "uts": "uts",
    "cgroup": "cgroup",
    "time": "time",
}


@record
class NamespacePlan:
    join: list[tuple[str, str]] = field(default_factory=list)  # (type, path), user first
    new_user: bool = False
    new_flags: int = 0  # every new namespace but user

    @property
    def new_pid_or_time(self) -> bool:
        return bool(self.new_flags & (L.CLONE_NEWPID | L.CLONE_NEWTIME))


def plan(linux: Linux) -> NamespacePlan:
    result = NamespacePlan()
    for ns in sorted(linux.namespaces, key=lambda n: n.type != "user"):
        if ns.path:
            result.join.append((ns.type, ns.path))
        elif ns.type == "user":
            result.new_user = True
        else:
            result.new_flags |= CLONE_FLAGS[ns.type]
    return result


def open_join_fds(ns_plan: NamespacePlan) -> list[tuple[str, int]]:
    """Open every namespace to join up front: joining a mount namespace changes what paths mean."""
    fds: list[tuple[str, int]] = []
    try:
        for kind, path in ns_plan.join:
            fds.append((kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
    except OSError:
        for _, fd in fds:
            os.close(fd)
        raise
    return fds


def join(fds: list[tuple[str, int]], what: str = "joining {} namespace") -> None:
    """setns(2) into each (kind, fd) in order, closing each fd; ``what`` words the error (runc's differ by caller)."""
    for kind, fd in fds:
        try:
            L.setns(fd, CLONE_FLAGS[kind])
        except OSError as err:
            raise OSError(err.errno, f"{what.format(kind)}: {err.strerror}") from None
        finally:
            os.close(fd)


def format_id_map(mappings: list[IDMapping]) -> str:
    """The text of /proc/<pid>/uid_map or gid_map (user_namespaces(7))."""
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)


def write_id_maps(pid: int, linux: Linux) -> None:
    """Write the user namespace's ID maps of process ``pid``, as runc's nsexec does.

    Root writes them directly. An unprivileged user (rootless) may directly
    map only its own UID and GID, one ID each, and only after denying
    setgroups(2) (user_namespaces(7), "Interaction with system calls that
    change process UIDs or GIDs"); anything else goes through the setuid
    helpers newuidmap/newgidmap, which check /etc/subuid and /etc/subgid.
    """
    if os.geteuid() == 0:
        for name, mappings in (("uid_map", linux.uid_mappings), ("gid_map", linux.gid_mappings)):
            _write_map(pid, name, mappings)
        return
    uid_helper = not _only_own_id(linux.uid_mappings, os.geteuid())
    gid_helper = not _only_own_id(linux.gid_mappings, os.getegid())
    if not gid_helper:
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
    for name, mappings, helper in (
        ("uid_map", linux.uid_mappings, uid_helper),
        ("gid_map", linux.gid_mappings, gid_helper),
    ):
        if helper:
            _run_map_helper("newuidmap" if name == "uid_map" else "newgidmap", pid, mappings)
        else:
            _write_map(pid, name, mappings)


def _only_own_id(mappings: list[IDMapping], own: int) -> bool:
    return len(mappings) == 1 and mappings[0].size == 1 and mappings[0].host_id == own


def _write_map(pid: int, name: str, mappings: list[IDMapping]) -> None:
    try:
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(format_id_map(mappings))
    except OSError as err:
        field = "linux.uidMappings" if name == "uid_map" else "linux.gidMappings"
        raise SetupError(f"{field}: writing /proc/{pid}/{name}: {err.strerror}") from None


def _run_map_helper(helper: str, pid: int, mappings: list[IDMapping]) -> None:
    field = "linux.uidMappings" if helper == "newuidmap" else "linux.gidMappings"
    path = next(
        (p for p in (f"{d}/{helper}" for d in ("/usr/bin", "/bin", "/usr/sbin")) if os.access(p, os.X_OK)), None
    )
    if path is None:
        raise SetupError(
            f"{field}: an unprivileged user can map only its own ID directly; these mappings need {helper}"
            " (Debian package uidmap) and entries in /etc/subuid and /etc/subgid"
        )
    args = [helper, str(pid)]
    for m in mappings:
        args += [str(m.container_id), str(m.host_id), str(m.size)]
    # Its complaint (a range /etc/subuid does not allow, say) becomes part of our one error line.
    read_end, write_end = os.pipe()
    try:
        child = os.posix_spawn(path, args, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 2)])
    finally:
        os.close(write_end)
    with open(read_end, "rb") as f:
        complaint = f.read(4096).decode(errors="replace").strip().replace("\n", "; ")
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SetupError(f"{field}: {helper} {' '.join(args[1:])} failed: {complaint or 'no reason given'}")


def format_time_offsets(linux: Linux) -> str:
    """The text of /proc/self/timens_offsets (time_namespaces(7))."""
    return "".join(f"{clock} {o.secs} {o.nanosecs}\n" for clock, o in sorted(linux.time_offsets.items()))


# netdevice(7): struct ifreq is the interface name (IFNAMSIZ 16) and a 24-byte union.
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def bring_up_loopback() -> None:
    """Set ``lo`` up in a new network namespace, where the kernel leaves it down.

    runc does this for every new network namespace (its "loopback" network,
    added by specconv), so a container can reach 127.0.0.1 as engines expect.
    """
    import _socket
    import fcntl
    import struct

    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        ifreq = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, struct.pack("16sH22x", b"lo", 0))
        flags = struct.unpack_from("16sH", ifreq)[1]
        if not flags & IFF_UP:
            fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
    finally:
        sock.close()


def same_namespace(pid: int, kind: str, other_pid: int | str = "self") -> bool:
    name = PROC_NAMES[kind]
    try:
        return os.stat(f"/proc/{pid}/ns/{name}").st_ino == os.stat(f"/proc/{other_pid}/ns/{name}").st_ino
    except OSError:
        return False
