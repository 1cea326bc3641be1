"""The runtime layer's exceptions; the CLI turns each into one line.

Messages that a caller could match on (podman, containerd and conmon look for
runc's words) are runc 1.1's exactly.
"""

from __future__ import annotations


class RuntimeFailure(Exception):
    """Base of every error hull-runtime reports to its caller."""


class ContainerNotFound(RuntimeFailure):
    def __init__(self) -> None:
        super().__init__("container does not exist")


class ContainerExists(RuntimeFailure):
    def __init__(self) -> None:
        super().__init__("container with given ID already exists")


class InvalidContainerID(RuntimeFailure):
    def __init__(self, container_id: str) -> None:
        # runc's words (libcontainer.ErrInvalidID), then the ID, which runc leaves out.
        super().__init__(f"invalid container ID format: {container_id}")


class InvalidState(RuntimeFailure):
    """The operation does not fit the container's lifecycle state."""


class ConfigError(RuntimeFailure):
    """The bundle or its config.json cannot be used."""


class SetupError(RuntimeFailure):
    """Preparing the container failed; the message says which step and why."""


class HookError(RuntimeFailure):
    """A lifecycle hook failed or timed out."""


class Unsupported(RuntimeFailure):
    """A feature the config or the command line asks for is not implemented."""
