"""Content digests (image-spec descriptor.md "Digests").

A digest is ``algorithm ":" encoded``. The grammar is checked for every digest;
the encoded part is checked further for the registered algorithms this module
can verify, ``sha256`` and ``sha512`` (lowercase hex of 64 and 128 digits,
"[A-F] MUST NOT be used"). Digests with other algorithms that follow the
grammar are valid ("Implementations SHOULD allow digests with unrecognized
algorithms to pass validation") but cannot be verified: ``hasher`` refuses them.

Not imported by hull-runtime: ``re`` and ``hashlib`` are fine here.
"""

from __future__ import annotations

import hashlib
import re

from hull.oci._parse import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# descriptor.md "Digests": the EBNF, anchored.
_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

# descriptor.md "Registered algorithms" of v1.1: hex length of the encoded part.
ALGORITHMS = {"sha256": 64, "sha512": 128}
CANONICAL = "sha256"
_HEX = frozenset("0123456789abcdef")


class Digest(str):
    """A validated digest string; ``algorithm`` and ``encoded`` are its parts."""

    __slots__ = ()

    @property
    def algorithm(self) -> str:
        return self.partition(":")[0]

    @property
    def encoded(self) -> str:
        return self.partition(":")[2]

    @property
    def verifiable(self) -> bool:
        return self.algorithm in ALGORITHMS


def parse(value: Any, path: str = "digest") -> Digest:
    """Validate ``value`` as a digest string; errors name ``path``."""
    if not isinstance(value, str):
        raise SpecError(path, f"must be a string, got {type(value).__name__}")
    if _GRAMMAR.fullmatch(value) is None:
        raise SpecError(path, f"invalid digest {value!r} (expected algorithm:encoded)")
    algorithm, _, encoded = value.partition(":")
    length = ALGORITHMS.get(algorithm)
    if length is not None and (len(encoded) != length or not _HEX.issuperset(encoded)):
        raise SpecError(path, f"invalid {algorithm} digest {value!r} (expected {length} lowercase hex digits)")
    return Digest(value)


def hasher(algorithm: str) -> Any:
    """A hashlib object for a registered algorithm."""
    if algorithm not in ALGORITHMS:
        raise SpecError("digest", f"unsupported digest algorithm {algorithm!r} (supported: sha256, sha512)")
    return hashlib.new(algorithm)


def of(data: bytes, algorithm: str = CANONICAL) -> Digest:
    """``algorithm:hex(H(data))`` (descriptor.md "Digest calculations")."""
    h = hasher(algorithm)
    h.update(data)
    return Digest(f"{algorithm}:{h.hexdigest()}")


def chain_ids(diff_ids: list[Digest]) -> list[Digest]:
    """The ChainID of every prefix of the layer stack (config.md "Layer ChainID")."""
    out: list[Digest] = []
    for diff_id in diff_ids:
        out.append(diff_id if not out else of(f"{out[-1]} {diff_id}".encode()))
    return out
