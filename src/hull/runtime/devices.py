"""Device nodes and the standard /dev links (config-linux.md "Devices", "Default Devices")."""

from __future__ import annotations

import os
import stat

from hull.oci.runtime_config import Device
from hull.runtime import linux as L
from hull.runtime.paths import ensure_file_in, mkdir_all_in, secure_join

# config-linux.md "Default Devices": every runtime MUST supply these.
DEFAULT_DEVICES = [
    Device("c", "/dev/null", 1, 3, 0o666, 0, 0),
    Device("c", "/dev/zero", 1, 5, 0o666, 0, 0),
    Device("c", "/dev/full", 1, 7, 0o666, 0, 0),
    Device("c", "/dev/random", 1, 8, 0o666, 0, 0),
    Device("c", "/dev/urandom", 1, 9, 0o666, 0, 0),
    Device("c", "/dev/tty", 5, 0, 0o666, 0, 0),
]

# config-linux.md "Default Devices" also lists these links.
DEFAULT_LINKS = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
]

_KIND = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def merged(devices: list[Device]) -> list[Device]:
    """The defaults plus the config's devices; the config wins on the same path."""
    paths = {d.path for d in devices}
    return [d for d in DEFAULT_DEVICES if d.path not in paths] + devices


def create_device(rootfs: str, dev: Device, bind: bool) -> None:
    """Create ``dev`` in the rootfs: mknod, or a bind mount of the host's node in a user namespace.

    Inside a user namespace mknod(2) is not permitted, so (like runc) the host's
    node is bind-mounted instead.
    """
    parent = os.path.dirname(dev.path)
    mkdir_all_in(rootfs, parent)
    host = secure_join(rootfs, dev.path)
    if bind:
        ensure_file_in(rootfs, dev.path)
        L.mount(dev.path, host, None, L.MS_BIND)
        return
    if os.path.lexists(host):
        os.unlink(host)
    mode = (dev.file_mode if dev.file_mode is not None else 0o666) & 0o7777
    os.mknod(host, mode | _KIND[dev.type], os.makedev(dev.major, dev.minor))
    # mknod honours the umask; the spec's fileMode is the exact mode.
    os.chmod(host, mode)
    os.chown(host, dev.uid or 0, dev.gid or 0)


def create_links(rootfs: str) -> None:
    links = list(DEFAULT_LINKS)
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    # A new devpts instance's ptmx is used through /dev/ptmx (devpts docs,
    # "newinstance"). runc's setupPtmx makes the link whether or not the config
    # mounts /dev/pts, replacing whatever the rootfs had there.
    links.append(("pts/ptmx", "/dev/ptmx"))
    for target, path in links:
        # The parent resolved inside the rootfs, the name itself not followed:
        # an image's own /dev/ptmx symlink is replaced, never what it points at.
        host = os.path.join(secure_join(rootfs, os.path.dirname(path)), os.path.basename(path))
        if os.path.lexists(host):
            if path != "/dev/ptmx":
                continue
            os.unlink(host)
        os.symlink(target, host)
