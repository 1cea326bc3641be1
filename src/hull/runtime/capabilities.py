"""Linux capabilities of the container process (config.md "process.capabilities").

STUB: filled in by the capabilities work. ``check`` validates the sets at
create; the others apply them in init, in the order privileges.py gives.
"""

from __future__ import annotations


def check(capabilities: dict[str, list[str]] | None) -> None:
    """Raise ConfigError naming the field for an unknown set or capability name."""


def drop_bounding(capabilities: dict[str, list[str]] | None) -> None:
    """Drop every capability not in the bounding set (PR_CAPBSET_DROP)."""


def keep_across_user_switch(capabilities: dict[str, list[str]] | None) -> None:
    """Before setuid: PR_SET_KEEPCAPS so the permitted set survives a switch away from UID 0."""


def apply(capabilities: dict[str, list[str]] | None) -> None:
    """After setuid: effective, permitted and inheritable (capset), then ambient."""
