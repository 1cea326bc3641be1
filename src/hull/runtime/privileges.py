"""The last steps before the container's program runs: user, capabilities, seccomp.

Shared by init and exec. The order is runc's (standard_init_linux.go and
finalizeNamespace): without noNewPrivileges, loading a seccomp filter needs
CAP_SYS_ADMIN, so it comes before capabilities are dropped; with it, the
filter comes last, so it need not allow the syscalls of this set-up. The
bounding set is dropped while still privileged, PR_SET_KEEPCAPS carries the
permitted set across the switch away from UID 0, and capset(2) and the
ambient set come after it.
"""

from __future__ import annotations

from hull.oci.runtime_config import Process
from hull.runtime import capabilities, process, seccomp
from hull.runtime import linux as L

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def finalize(
    proc: Process,
    seccomp_config: dict[str, Any] | None,
    state_json: bytes,
    after_user_switch: Callable[[], None],
    seccomp_program: bytes | None = None,
) -> None:
    # seccomp_program: the filter compiled by the runtime for seccomp_config (seccomp_cache), if any.
    early_seccomp = seccomp_config is not None and not proc.no_new_privileges
    if early_seccomp:
        assert seccomp_config is not None
        seccomp.install(seccomp_config, state_json, seccomp_program)
    capabilities.drop_bounding(proc.capabilities)
    capabilities.keep_across_user_switch(proc.capabilities)
    process.switch_user(proc)
    after_user_switch()
    capabilities.apply(proc.capabilities)
    if proc.no_new_privileges:
        L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
    if seccomp_config is not None and not early_seccomp:
        seccomp.install(seccomp_config, state_json, seccomp_program)
