"""The distribution layer: talking to registries (OCI Distribution Spec v1.1).

``reference`` parses image references as docker's distribution/reference does,
``client`` speaks the registry HTTP API, ``pull`` and ``push`` move images
between a registry and the content store (hull.image.store).

Errors here derive from hull.image.errors.ImageError, so the CLI reports them
as one line like every image error.
"""

from __future__ import annotations

from hull.image.errors import ImageError


class DistributionError(ImageError):
    """Base of every error talking to a registry."""


class RegistryError(DistributionError):
    """The registry answered with an error status (distribution spec "Error Codes")."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Unauthorized(RegistryError):
    """401 or 403 that the authenticator could not answer."""


class NotFoundError(RegistryError):
    """404: the repository, manifest, tag or blob is unknown to the registry."""


class TransportError(DistributionError):
    """The connection failed (refused, reset, timed out, TLS) or the answer was not HTTP."""
