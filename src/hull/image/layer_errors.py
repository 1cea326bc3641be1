"""Errors of layer apply and create, in the image layer's hierarchy (errors.py).

``LayerError`` names the tar entry at fault, so a hostile or corrupt layer gives
one clear line (``layer entry 'a/../../etc': ...``).
"""

from __future__ import annotations

from hull.image.errors import ImageError, VerificationError


class LayerError(ImageError):
    def __init__(self, message: str, entry: bytes | str | None = None) -> None:
        if isinstance(entry, bytes):
            entry = entry.decode("utf-8", "backslashreplace")
        self.entry = entry
        super().__init__(f"layer entry {entry!r}: {message}" if entry is not None else f"layer: {message}")


class LayerVerificationError(LayerError, VerificationError):
    """The blob or its uncompressed stream does not match the descriptor's digest/size or the diff_id."""
