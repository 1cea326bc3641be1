"""podman with private state for tests and benchmarks: its containers.conf and storage options."""

from __future__ import annotations

import os

# Root lacks CAP_SYS_RESOURCE here, so podman's default ulimits (raising
# RLIMIT_NOFILE and RLIMIT_NPROC hard limits) fail under every runtime.
# cgroupfs: no systemd to ask; the file event logger: no journald.
CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def conf_env(path: str | os.PathLike[str]) -> dict[str, str]:
    """Write CONTAINERS_CONF at ``path``; the environment that makes podman read it."""
    with open(path, "w") as f:
        f.write(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": os.fspath(path)}


def storage_argv(root: str, runroot: str, tmpdir: str | None = None, podman: str = "podman") -> list[str]:
    """podman's command line with its own --root/--runroot (vfs driver), so the host's store is untouched."""
    argv = [podman, "--root", root, "--runroot", runroot, "--storage-driver", "vfs"]
    return [*argv, "--tmpdir", tmpdir] if tmpdir else argv
