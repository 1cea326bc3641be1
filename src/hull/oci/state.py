"""The container state (runtime-spec runtime.md "State")."""

from __future__ import annotations

from hull.oci.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATUSES = ("creating", "created", "running", "stopped")

OCI_VERSION = "1.1.0"


@record
class State:
    id: str
    status: str
    pid: int
    bundle: str
    oci_version: str = OCI_VERSION
    annotations: dict[str, str] = field(default_factory=dict)
    # Not in the spec, printed by runc and read by engines that drive it.
    rootfs: str = ""
    created: str = ""
    owner: str = ""

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ociVersion": self.oci_version,
            "id": self.id,
            "pid": self.pid,
            "status": self.status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        }
        if self.annotations:
            doc["annotations"] = self.annotations
        return doc
