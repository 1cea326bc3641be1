"""What this runtime implements, as runtime-spec features.md describes it."""

from __future__ import annotations

from hull.oci.runtime_config import HOOK_NAMES, NAMESPACE_TYPES
from hull.oci.state import OCI_VERSION
from hull.runtime.mount_options import all_option_names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def features() -> dict[str, Any]:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_NAMES),
        "mountOptions": all_option_names(),
        "linux": {
            "namespaces": sorted(NAMESPACE_TYPES),
            # Capabilities, cgroups, seccomp, AppArmor and SELinux come with the next issue:
            # features.md says an absent field means "unknown", so they are left out
            # rather than claimed.
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.hull.version": _version(),
        },
    }


def _version() -> str:
    from hull import __version__

    return __version__
