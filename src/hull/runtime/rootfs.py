"""Building the container's filesystem view: mounts, /dev, pivot_root, masks.

Runs in the container's init process, inside its new mount namespace. Every
mount destination is resolved with ``secure_join`` and then mounted through
an O_PATH file descriptor whose real path is checked to still be inside the
rootfs (the fix runc adopted for CVE-2021-30465), so a symlink swapped in
between resolving and mounting cannot redirect the mount to the host.
"""

from __future__ import annotations

import errno
import os
import stat

from hull.oci.runtime_config import Config, Mount
from hull.runtime import cgroupfs, devices
from hull.runtime import linux as L
from hull.runtime.errors import SetupError
from hull.runtime.mount_options import PROPAGATION, ParsedOptions, parse_options
from hull.runtime.paths import ensure_file_in, is_within, mkdir_all_in, secure_join

# statvfs(3) flags that a bind remount must repeat (they may be locked, mount(2) EPERM).
_STATVFS_TO_MS = {
    os.ST_NOSUID: L.MS_NOSUID,
    os.ST_NODEV: L.MS_NODEV,
    os.ST_NOEXEC: L.MS_NOEXEC,
    os.ST_NOATIME: L.MS_NOATIME,
    os.ST_NODIRATIME: L.MS_NODIRATIME,
    os.ST_RELATIME: L.MS_RELATIME,
}


def locked_flags(path: str) -> int:
    flags = os.statvfs(path).f_flag
    return sum(ms for st, ms in _STATVFS_TO_MS.items() if flags & st)


class _Target:
    """An O_PATH handle on a mount destination, verified to lie inside the rootfs."""

    def __init__(self, rootfs: str, host_path: str, container_path: str) -> None:
        self.fd = os.open(host_path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        self.proc_path = f"/proc/self/fd/{self.fd}"
        real = os.readlink(self.proc_path)
        if not is_within(rootfs, real):
            os.close(self.fd)
            raise SetupError(f"mount destination {container_path} resolves outside the rootfs to {real}")

    def __enter__(self) -> str:
        return self.proc_path

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def prepare_root(rootfs: str, propagation: str) -> None:
    """Detach the new mount namespace from the host's and bind the rootfs onto itself."""
    flag = PROPAGATION[propagation] if propagation else L.MS_SLAVE | L.MS_REC
    L.mount(None, "/", None, flag)
    _make_parent_private(rootfs)
    L.mount(rootfs, rootfs, "bind", L.MS_BIND | L.MS_REC)


def _make_parent_private(rootfs: str) -> None:
    # pivot_root(2) fails with EINVAL if the new root's parent mount is shared,
    # and the rootfs's own bind mount would join that peer group, spreading the
    # container's mounts to the host. The parent is the mount holding the rootfs
    # path, which is the rootfs itself when it is a mount point (an image's
    # overlay, say): runc's rootfsParentMountPrivate counts it too.
    best, shared = "/", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mount_point = fields[4]
            if is_within(mount_point, rootfs) and len(mount_point) >= len(best):
                best = mount_point
                shared = any(f.startswith("shared:") for f in fields[6 : fields.index("-")])
    if shared:
        L.mount(None, best, None, L.MS_PRIVATE)


def mount_all(config: Config, rootfs: str, bundle: str) -> None:
    cgroup_ns = config.linux.namespace("cgroup")
    new_cgroupns = cgroup_ns is not None and not cgroup_ns.path
    for i, mount in enumerate(config.mounts):
        try:
            mount_one(mount, rootfs, bundle, new_cgroupns)
        except OSError as err:
            raise SetupError(
                f"mounts[{i}]: mounting {mount.source or mount.type!r} on {mount.destination}: {err.strerror}"
            ) from None


def mount_one(mount: Mount, rootfs: str, bundle: str, new_cgroupns: bool = False) -> None:
    options = parse_options(mount.options)
    if mount.type == "bind":
        options.flags |= L.MS_BIND
    if options.is_bind:
        _bind_mount(mount, options, rootfs, bundle)
    elif mount.type == "cgroup":
        _cgroup_mount(mount, options, rootfs, new_cgroupns)
    else:
        if mount.type in ("proc", "sysfs"):
            _check_ordinary_directory(mount, rootfs)
        host = mkdir_all_in(rootfs, mount.destination)
        with _Target(rootfs, host, mount.destination) as target:
            L.mount(mount.source or mount.type, target, mount.type, options.flags, options.data_string or None)
    _apply_propagation_and_attrs(mount, options, rootfs)


def _check_ordinary_directory(mount: Mount, rootfs: str) -> None:
    """procfs and sysfs only on a real directory, never through a symlink (as runc, since CVE-2019-16884).

    An image whose /proc is a symlink would have the real procfs mounted
    elsewhere while /proc names a directory of the image's choosing, where
    writes meant for procfs (an AppArmor profile in /proc/self/attr, say)
    would land in a plain file and be silently ignored.
    """
    parent = secure_join(rootfs, os.path.dirname(mount.destination.rstrip("/")) or "/")
    path = os.path.join(parent, os.path.basename(mount.destination.rstrip("/")))
    if os.path.lexists(path) and (os.path.islink(path) or not os.path.isdir(path)):
        raise OSError(errno.ENOTDIR, f'filesystem "{mount.type}" must be mounted on ordinary directory')


def _bind_mount(mount: Mount, options: ParsedOptions, rootfs: str, bundle: str) -> None:
    source = mount.source if mount.source.startswith("/") else os.path.join(bundle, mount.source)
    if stat.S_ISDIR(os.stat(source).st_mode):
        host = mkdir_all_in(rootfs, mount.destination)
    else:
        host = ensure_file_in(rootfs, mount.destination)
    with _Target(rootfs, host, mount.destination) as target:
        L.mount(source, target, None, L.MS_BIND | (options.flags & L.MS_REC))
    extra = options.flags & ~(L.MS_BIND | L.MS_REC | L.MS_REMOUNT)
    if not extra:
        return
    # A bind mount ignores every flag but MS_REC; they take effect on a remount,
    # through a new handle: the old one still names the directory underneath.
    with _Target(rootfs, host, mount.destination) as target:
        flags = L.MS_BIND | L.MS_REMOUNT | extra
        try:
            L.mount(None, target, None, flags)
        except PermissionError:
            L.mount(None, target, None, flags | locked_flags(target))


def _cgroup_mount(mount: Mount, options: ParsedOptions, rootfs: str, new_cgroupns: bool) -> None:
    def opener(sub: str) -> _Target:
        path = os.path.join(mount.destination, sub) if sub else mount.destination
        return _Target(rootfs, mkdir_all_in(rootfs, path), path)

    cgroupfs.mount_cgroups(opener, options.flags, new_cgroupns)


def _apply_propagation_and_attrs(mount: Mount, options: ParsedOptions, rootfs: str) -> None:
    if not options.propagation and not (options.attr_set or options.attr_clr):
        return
    host = secure_join(rootfs, mount.destination)
    with _Target(rootfs, host, mount.destination) as target:
        for flag in options.propagation:
            L.mount(None, target, None, flag)
        if options.attr_set or options.attr_clr:
            L.mount_setattr(target, options.attr_set, options.attr_clr)


def needs_dev_setup(config: Config) -> bool:
    # runc leaves /dev alone when the config bind-mounts something over it.
    return not any(
        m.destination.rstrip("/") == "/dev" and (m.type == "bind" or "bind" in m.options or "rbind" in m.options)
        for m in config.mounts
    )


def setup_dev(config: Config, rootfs: str, in_user_ns: bool) -> None:
    for dev in devices.merged(config.linux.devices):
        try:
            devices.create_device(rootfs, dev, bind=in_user_ns)
        except OSError as err:
            raise SetupError(f"creating device {dev.path}: {err.strerror}") from None
    devices.create_links(rootfs)


def pivot(rootfs: str, no_pivot: bool) -> None:
    os.chdir(rootfs)
    if no_pivot:
        L.mount(rootfs, "/", None, L.MS_MOVE)
        os.chroot(".")
        os.chdir("/")
        return
    # pivot_root(".", ".") stacks the old root over the new one; unmounting "."
    # then removes the old root without needing a directory for it (runc's way).
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        L.pivot_root(".", ".")
        os.fchdir(old_root)
        L.mount(None, ".", None, L.MS_SLAVE | L.MS_REC)
        L.umount2(".", L.MNT_DETACH)
    finally:
        os.close(old_root)
    os.chdir("/")


def mask_paths(paths: list[str]) -> None:
    for path in paths:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                L.mount("tmpfs", path, "tmpfs", L.MS_RDONLY)
            else:
                L.mount("/dev/null", path, None, L.MS_BIND)
        except FileNotFoundError:
            continue
        except OSError as err:
            raise SetupError(f"masking {path}: {err.strerror}") from None


def readonly_paths(paths: list[str]) -> None:
    for path in paths:
        try:
            L.mount(path, path, None, L.MS_BIND | L.MS_REC)
            flags = L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | L.MS_REC
            L.mount(None, path, None, flags | locked_flags(path))
        except FileNotFoundError:
            continue
        except OSError as err:
            raise SetupError(f"making {path} read-only: {err.strerror}") from None


def readonly_root() -> None:
    L.mount(None, "/", None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | locked_flags("/"))
