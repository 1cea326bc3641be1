"""What this runtime implements, as runtime-spec features.md describes it."""

from __future__ import annotations

from hull.oci.runtime_config import HOOK_NAMES, NAMESPACE_TYPES
from hull.oci.state import OCI_VERSION
from hull.runtime.capabilities import NAMES
from hull.runtime.mount_options import all_option_names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def features() -> dict[str, Any]:
    from hull.runtime import seccomp

    seccomp_features, libseccomp_version = seccomp.features()
    doc: dict[str, Any] = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_NAMES),
        "mountOptions": all_option_names(),
        "linux": {
            "namespaces": sorted(NAMESPACE_TYPES),
            # Every name known, whether or not this kernel has it (as runc lists them).
            "capabilities": list(NAMES),
            # cgroupfs v1 (and hybrid) only: on a v2 host hull-runtime makes,
            # joins and freezes the cgroup but refuses linux.resources; no systemd driver.
            "cgroup": {"v1": True, "v2": False, "systemd": False, "systemdUser": False, "rdma": True},
            "seccomp": seccomp_features,
            "mountExtensions": {"idmap": {"enabled": False}},
            # "enabled" is whether the runtime supports them, not whether the host does (features.md).
            "apparmor": {"enabled": True},
            "selinux": {"enabled": True},
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.hull.version": _version(),
        },
    }
    if libseccomp_version:
        # The annotation runc sets (features.md's example).
        doc["annotations"]["io.github.seccomp.libseccomp.version"] = libseccomp_version
    return doc


def _version() -> str:
    from hull import __version__

    return __version__
