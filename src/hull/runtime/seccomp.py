"""The container's seccomp filter (config-linux.md "Seccomp").

STUB: filled in by the seccomp work. ``check`` validates linux.seccomp at
create without loading libseccomp; ``install`` builds and loads the filter in
init (and sends the notify fd to listenerPath).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def check(seccomp: dict[str, Any] | None) -> None:
    """Raise ConfigError naming the field for anything libseccomp would refuse."""


def install(seccomp: dict[str, Any], state_json: bytes) -> None:
    """Build the filter and load it into this process (and its future children)."""
