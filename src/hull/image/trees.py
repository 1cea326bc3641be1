"""Removing a directory tree that a layer may have made hard to remove (its own module: the layer
code's imports cost a container's removal more than the removal itself)."""

from __future__ import annotations

import os


def remove_tree(path: str) -> None:
    """rmtree that also gets through directories a layer made unwritable (0555) when not root."""
    import shutil

    def onerror(func: object, p: str, exc: object) -> None:
        parent = os.path.dirname(p)
        try:
            os.chmod(parent, 0o700)
            os.chmod(p, 0o700) if os.path.isdir(p) and not os.path.islink(p) else None
        except OSError:
            pass
        shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)

    shutil.rmtree(path, onerror=onerror)
