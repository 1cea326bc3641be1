"""The built-in image ``localhost/busybox``: made on demand from the host's busybox-static, offline.

``localhost/`` is podman's domain for images that exist only on this machine,
so the name never shadows ``busybox`` (docker.io/library/busybox): only
``localhost/busybox`` and ``localhost/busybox:latest`` are built here. (Once
built, a bare ``busybox`` lookup also finds it through hull.image.names'
``localhost/`` fallback, as podman's short-name lookup does.)

The image is the one layer ``hull image import DIR`` writes (changeset's
reproducible gzip tar), with every entry's mtime the busybox binary's own
(dpkg keeps the package's build time) and owner 0:0, and the config's
``created`` the same time: the same host busybox gives the same digests on
every machine, so two ``hull run`` racing on a fresh store store identical
blobs (the store's ingest is verified and atomic) and set the same name to
the same manifest.
"""

from __future__ import annotations

import os
import time

from hull.image import names
from hull.image.errors import ImageError
from hull.image.store import LayoutStore

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
BUILTIN_REF = "localhost/busybox:latest"
# Docker Hub's busybox image config: PATH as docker's default, Cmd ["sh"].
BUILTIN_CHANGES = ("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 'CMD ["sh"]')
_DIRS = ("bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home", "var", "usr/bin", "usr/sbin")


class BusyboxMissing(ImageError, RuntimeError):
    """The host has no static busybox (Debian's busybox-static) to build from."""


def find_busybox() -> str:
    """The host's static busybox binary."""
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path) and _is_static(path):
            return path
    raise BusyboxMissing("a static busybox is needed: apt-get install busybox-static")


def _is_static(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    # A dynamically linked ELF names its interpreter (PT_INTERP), e.g. /lib64/ld-linux-x86-64.so.2.
    return b"ld-linux" not in head and b"/lib/ld-" not in head


def build_rootfs(dest: str) -> str:
    """A minimal root filesystem: busybox, one symlink per applet, /etc/passwd and group.

    Modes are set explicitly (not left to the umask) so the tree, and the layer made from it,
    are the same wherever it is built.
    """
    busybox = find_busybox()
    os.makedirs(dest, exist_ok=True)
    for d in _DIRS:
        path = os.path.join(dest, d)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o755)
    os.chmod(os.path.join(dest, "usr"), 0o755)
    os.chmod(os.path.join(dest, "tmp"), 0o1777)
    target = os.path.join(dest, "bin", "busybox")
    import shutil
    import subprocess

    shutil.copyfile(busybox, target)
    os.chmod(target, 0o755)
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = os.path.join(dest, "bin", applet)
        if applet != "busybox" and "/" not in applet and not os.path.lexists(link):
            os.symlink("busybox", link)
    _write(os.path.join(dest, "etc", "passwd"),
           "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")  # fmt: skip
    _write(os.path.join(dest, "etc", "group"), "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")
    return dest


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)


def is_builtin(ref: str) -> bool:
    """Whether ``ref`` names the built-in image (``localhost/busybox[:latest]``)."""
    try:
        return names.normalize(ref) == BUILTIN_REF
    except names.InvalidReference:
        return False


def ensure_builtin(store: LayoutStore, ref: str) -> bool:
    """Build and store the built-in image if ``ref`` names it and the store lacks it.

    Returns True when this call built it; False when ``ref`` is another image or the name is
    already in the store (whatever it points to: a user may have tagged their own image so).
    """
    if not is_builtin(ref):
        return False
    if any(d.ref_name == BUILTIN_REF for d in store.images()):
        return False
    build_builtin(store)
    return True


def build_builtin(store: LayoutStore) -> str:
    """Build ``localhost/busybox:latest`` into ``store``; returns the image ID (config digest)."""
    from hull.image.changeset import CreateOptions
    from hull.image.importer import import_image

    busybox = find_busybox()
    mtime = int(os.stat(busybox).st_mtime)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))
    options = CreateOptions(compression="gzip", mtime=mtime, uid=0, gid=0, xattrs=False)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hull-busybox-") as tmp:
        rootfs = build_rootfs(os.path.join(tmp, "rootfs"))
        _manifest, image_id, _name = import_image(
            store,
            rootfs,
            BUILTIN_REF,
            changes=list(BUILTIN_CHANGES),
            message=f"built-in image: {busybox} of the host",
            created=created,
            layer_options=options,
        )
    return image_id
