"""Placeholder: the commands of this module are being written."""

from __future__ import annotations

from typing import Any


def add_parsers(add: Any, sub: str | None = None) -> None:
    pass
