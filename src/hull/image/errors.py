"""The image layer's exceptions; one base class, each message one clear line.

A problem in a spec document (manifest, index, config, index.json) is an
``InvalidImage`` whose message names the field by its JSON path, as the
runtime's ConfigError does for config.json.
"""

from __future__ import annotations


class ImageError(Exception):
    """Base of every error hull's image layer reports."""


class InvalidImage(ImageError):
    """A document of the image (manifest, index, config, layout) breaks the OCI Image Spec."""


class LayoutError(ImageError):
    """A directory is not a usable OCI Image Layout (image-layout.md)."""


class VerificationError(ImageError):
    """Content does not match its descriptor; nothing of it was made visible."""


class DigestMismatch(VerificationError):
    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class SizeMismatch(VerificationError):
    def __init__(self, expected: int, actual: int, what: str = "content") -> None:
        super().__init__(f"size mismatch: expected {expected} bytes of {what}, got {actual}")
        self.expected = expected
        self.actual = actual


class SizeLimitExceeded(VerificationError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"content exceeds the size limit of {limit} bytes")
        self.limit = limit


class UnsupportedDigest(ImageError):
    """A digest whose algorithm hull cannot verify (only sha256 and sha512)."""


class NotFound(ImageError):
    """Base of the lookups that found nothing."""


class BlobNotFound(NotFound):
    def __init__(self, digest: str) -> None:
        super().__init__(f"blob {digest}: not found")
        self.digest = digest


class ReferenceNotFound(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"reference {ref!r}: not found")
        self.ref = ref


class AmbiguousReference(ImageError):
    def __init__(self, ref: str, count: int) -> None:
        super().__init__(f"reference {ref!r} names {count} descriptors in index.json")
        self.ref = ref


class NoMatchingPlatform(NotFound):
    def __init__(self, platform: str, available: list[str]) -> None:
        listed = ", ".join(available) or "none"
        super().__init__(f"no manifest for platform {platform} (available: {listed})")
        self.platform = platform
