"""Where the engine keeps things: a data root that survives reboots and a run root that does not.

As podman's graphroot and runroot: ``/var/lib/hull`` and ``/run/hull`` for root,
``$XDG_DATA_HOME/hull`` (``~/.local/share/hull``) and ``$XDG_RUNTIME_DIR/hull``
for other users. What lives in the run root (the runtime's state, attach
sockets) is gone after a reboot, which is how ``hull ps`` knows a container
recorded as running no longer is.
"""

from __future__ import annotations

import os


def default_root() -> str:
    if os.geteuid() == 0:
        return "/var/lib/hull"
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "hull")


def default_runroot() -> str:
    if os.geteuid() == 0:
        return "/run/hull"
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/hull-run-{os.geteuid()}"
    return os.path.join(runtime_dir, "hull")


class EnginePaths:
    """The engine's directories under one data root and one run root."""

    def __init__(self, root: str = "", runroot: str = "") -> None:
        self.root = os.path.abspath(root or default_root())
        self.runroot = os.path.abspath(runroot or default_runroot())

    @property
    def images(self) -> str:
        return os.path.join(self.root, "images")

    @property
    def snapshots(self) -> str:
        return os.path.join(self.root, "snapshots")

    @property
    def containers(self) -> str:
        return os.path.join(self.root, "containers")

    @property
    def volumes(self) -> str:
        return self.root  # engine.volumes keeps <root>/volumes/<name>

    def container(self, container_id: str) -> str:
        return os.path.join(self.containers, container_id)

    def bundle(self, container_id: str) -> str:
        return os.path.join(self.containers, container_id, "bundle")

    def log(self, container_id: str) -> str:
        return os.path.join(self.containers, container_id, "ctr.log")

    def run_dir(self, container_id: str) -> str:
        # Short: an AF_UNIX path (the attach socket in it) is limited to 107 bytes.
        return os.path.join(self.runroot, "c", container_id)

    def attach_socket(self, container_id: str) -> str:
        return os.path.join(self.run_dir(container_id), "attach")

    def runtime_root(self, runtime: str) -> str:
        """The --root of an OCI runtime: one per runtime, as podman's /run/<runtime> directories."""
        if not runtime:
            return os.path.join(self.runroot, "runtime")
        return os.path.join(self.runroot, "runtimes", os.path.basename(runtime))

    @property
    def events(self) -> str:
        return os.path.join(self.root, "events.log")
