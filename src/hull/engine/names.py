"""Container IDs and names as docker gives them.

A container without ``--name`` gets a random "adjective_surname" name; docker tries a name, then up
to five more with one random digit appended, and falls back to the ID's first 12 hex digits
(moby daemon/names.go). Names must match ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``; docker accepts and drops
one leading "/" (its internal form) and names the rule in its error.
"""

from __future__ import annotations

import os
from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    import random

NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"

_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_REST = _FIRST | frozenset("_.-")

# hull's own lists (not docker's): plain adjectives, and surnames of people who shaped computing,
# mathematics and physics.
ADJECTIVES = (
    "agile", "amber", "ample", "bold", "brave", "bright", "brisk", "calm", "candid", "careful",
    "cheerful", "clever", "cosmic", "crisp", "curious", "daring", "deft", "eager", "earnest", "easy",
    "elated", "fair", "fearless", "fond", "frank", "gentle", "gifted", "glad", "golden", "graceful",
    "hardy", "honest", "humble", "jolly", "keen", "kind", "lively", "loyal", "lucid", "merry",
    "mellow", "modest", "nimble", "noble", "patient", "placid", "plucky", "polite", "proud", "quick",
    "quiet", "radiant", "rapid", "serene", "sharp", "sincere", "snappy", "steady", "sunny", "swift",
    "tidy", "upbeat", "valiant", "vivid", "warm", "witty", "zealous",
)  # fmt: skip

SURNAMES = (
    "abel", "adleman", "agnesi", "aiken", "allen", "babbage", "backus", "bardeen", "bartik", "bell",
    "bernoulli", "bohr", "boole", "borg", "brattain", "cantor", "cauchy", "cerf", "chebyshev", "church",
    "codd", "conway", "corbato", "cray", "curie", "dedekind", "descartes", "dijkstra", "dirac", "eckert",
    "engelbart", "euclid", "euler", "faraday", "fermat", "fermi", "feynman", "floyd", "fourier", "galois",
    "gauss", "germain", "godel", "goldberg", "hamming", "hartree", "heisenberg", "hilbert", "hoare",
    "hollerith", "hopper", "huffman", "jacobi", "johnson", "kahan", "kepler", "kernighan", "kleene",
    "knuth", "kolmogorov", "lagrange", "lamport", "laplace", "leibniz", "liskov", "lovelace", "markov",
    "maxwell", "mccarthy", "meitner", "minsky", "moore", "napier", "naur", "neumann", "newton",
    "noether", "nyquist", "pascal", "perlman", "planck", "poincare", "post", "rabin", "ramanujan",
    "riemann", "ritchie", "rivest", "shamir", "shannon", "sutherland", "tarjan", "thompson", "torvalds",
    "turing", "vaughan", "wiles", "wilkes", "wirth", "yonath", "zuse",
)  # fmt: skip


def new_id() -> str:
    """A 64-hex-digit container ID from the kernel's random source, as docker's stringid."""
    return os.urandom(32).hex()


def random_name(retry: int = 0, rng: random.Random | None = None) -> str:
    """One "adjective_surname"; a retry appends a random digit, as docker's generator does."""
    if rng is not None:
        name = f"{rng.choice(ADJECTIVES)}_{rng.choice(SURNAMES)}"
        return name + str(rng.randrange(10)) if retry > 0 else name
    # The kernel's random source directly: the random module's import costs `hull run` a millisecond.
    a, b, digit = (int.from_bytes(os.urandom(4), "little") for _ in range(3))
    name = f"{ADJECTIVES[a % len(ADJECTIVES)]}_{SURNAMES[b % len(SURNAMES)]}"
    return name + str(digit % 10) if retry > 0 else name


def generate_name(taken: Callable[[str], bool], container_id: str | None = None) -> str:
    """A free random name: six tries as docker, then the ID's short form (or an error without one)."""
    for retry in range(6):
        name = random_name(retry)
        if not taken(name):
            return name
    if container_id is not None:
        return container_id[:12]
    raise RuntimeError("could not generate a free container name")


def validate_name(name: str) -> str:
    """The name without docker's optional leading "/"; ValueError in docker's words if it is malformed."""
    bare = name[1:] if name.startswith("/") else name
    if len(bare) < 2 or bare[0] not in _FIRST or not all(c in _REST for c in bare[1:]):
        raise ValueError(f"Invalid container name ({name}), only {NAME_CHARS} are allowed")
    return bare
