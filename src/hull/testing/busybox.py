"""Build a busybox rootfs and an OCI bundle from the host's busybox-static (Debian's package).

Used by hull's tests, its demo and benchmarks; nothing is downloaded.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from typing import Any

from hull.image.builtin import BUSYBOX_CANDIDATES, BusyboxMissing, build_rootfs, find_busybox

# The rootfs builder lives in the image layer (the built-in image localhost/busybox is made from it);
# re-exported here so tests, the demo and benchmarks keep importing it from hull.testing.busybox.
__all__ = ["BUSYBOX_CANDIDATES", "BusyboxMissing", "build_bundle", "build_rootfs", "default_config", "find_busybox",
           "write_config"]  # fmt: skip


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
