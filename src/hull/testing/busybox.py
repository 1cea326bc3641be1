"""Build a busybox rootfs and an OCI bundle from the host's busybox-static (Debian's package).

Used by hull's tests, its demo and benchmarks; nothing is downloaded.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from typing import Any

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


class BusyboxMissing(RuntimeError):
    pass


def find_busybox() -> str:
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
    """A minimal root filesystem: busybox, one symlink per applet, /etc/passwd and group."""
    busybox = find_busybox()
    for d in ("bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "usr/bin", "usr/sbin"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    os.chmod(os.path.join(dest, "tmp"), 0o1777)
    shutil.copy2(busybox, os.path.join(dest, "bin", "busybox"))
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = os.path.join(dest, "bin", applet)
        if applet != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(dest, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    with open(os.path.join(dest, "etc", "group"), "w") as f:
        f.write("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")
    return dest


def default_config(args: list[str]) -> dict[str, Any]:
    """runc's ``spec`` default, without a terminal, running ``args``."""
    from hull.runtime.spec_template import default_spec

    config = copy.deepcopy(default_spec())
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    return config


def build_bundle(dest: str, args: list[str], config: dict[str, Any] | None = None, rootfs: str | None = None) -> str:
    """A bundle directory with a busybox rootfs (copied from ``rootfs`` if given) and config.json."""
    os.makedirs(dest, exist_ok=True)
    target = os.path.join(dest, "rootfs")
    if rootfs:
        shutil.copytree(rootfs, target, symlinks=True)
    else:
        build_rootfs(target)
    write_config(dest, config if config is not None else default_config(args))
    return dest


def write_config(bundle: str, config: dict[str, Any]) -> None:
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
