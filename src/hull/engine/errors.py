"""The engine layer's exceptions; the CLI prints each as one ``Error: ...`` line (podman's form).

(Shared file: add classes with targeted edits.)
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine reports to its user."""


class ContainerNotFound(EngineError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"no such container: {ref}")


class AmbiguousContainer(EngineError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"{ref}: more than one container has an ID starting with it; give more of the ID")


class NameInUse(EngineError):
    def __init__(self, name: str, holder: str) -> None:
        by = f" by container {holder[:12]}" if holder else ""
        super().__init__(
            f'the container name "{name}" is already in use{by}: remove or rename that container to reuse the name'
        )


class InvalidContainerState(EngineError):
    """The command does not fit the container's state (removing a running container, ...)."""


class ContainerStartError(EngineError):
    """The OCI runtime failed to create or start the container; the message is the runtime's."""


class ImageUnavailable(EngineError):
    """The image is not in the store and may not (or could not) be pulled."""


class VolumeError(EngineError):
    """A volume command failed (engine.volumes); the message is docker's, without its daemon prefix."""


class VolumeNotFound(VolumeError):
    def __init__(self, name: str) -> None:
        super().__init__(f"get {name}: no such volume")
        self.name = name


class VolumeInUse(VolumeError):
    def __init__(self, name: str, containers: list[str]) -> None:
        # docker's volume/service: "remove NAME: volume is in use - [ID ID]" (a Go []string printed with %v)
        super().__init__(f"remove {name}: volume is in use - [{' '.join(containers)}]")
        self.name = name
        self.containers = containers


class InvalidVolumeName(VolumeError):
    def __init__(self, name: str) -> None:
        # docker's local driver (volume/local/local.go validateName)
        super().__init__(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'
        )
        self.name = name


EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127


def start_failure_status(message: str, default: int) -> int:
    """docker's exit status for a process the runtime could not start, from the runtime's message:
    127 when the program is not found, 126 when it cannot be executed, else ``default``."""
    lowered = message.lower()
    if "not found" in lowered or "no such file" in lowered:
        return EXIT_NOT_FOUND
    if "permission denied" in lowered or "exec format error" in lowered:
        return EXIT_CANNOT_EXECUTE
    return default
