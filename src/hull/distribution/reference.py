"""Image references, by the grammar of docker's distribution/reference (reference.go, regexp.go,
normalize.go)::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain "/"] remote-name
    domain     := host [ ":" port-number ]
    host       := domain-name | IPv4address | "[" IPv6address "]"
    remote-name:= path-component [ "/" path-component ]*
    path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [\\w][\\w.-]{0,127}
    digest     := algorithm ":" hex (validated further by hull.oci.digest)

Normalisation as ``ParseNormalizedNamed``: the first path part is a domain
only if it has a ``.`` or a ``:``, is ``localhost``, or has an uppercase
letter; otherwise the domain is ``docker.io``. ``index.docker.io`` is
``docker.io``, and a one-part name on docker.io is under ``library/``. A
reference with neither tag nor digest gets the tag ``latest`` (TagNameOnly).
A 64-hex-digit name is refused: it would read as an image ID.
"""

from __future__ import annotations

import re

from hull.image.names import InvalidReference
from hull.oci import digest as _digest
from hull.oci._parse import SpecError
from hull.oci.digest import Digest
from hull.oci.records import record

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255  # reference.go NameTotalLengthMax

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN_RE = re.compile(rf"{_HOST}(?::[0-9]+)?")
_PATH_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_ANCHORED_ID = re.compile(r"[a-f0-9]{64}")


@record
class Reference:
    """A normalised reference: ``domain/path[:tag][@digest]``."""

    domain: str
    path: str
    tag: str = ""
    digest: Digest | None = None

    @property
    def repository(self) -> str:
        """``domain/path``, the name without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def reference(self) -> str:
        """What goes in ``/v2/<name>/manifests/<reference>``: the digest if there is one, else the tag."""
        return str(self.digest) if self.digest is not None else self.tag

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def familiar(self) -> str:
        """The short form docker prints (``busybox:latest`` for ``docker.io/library/busybox:latest``)."""
        text = str(self)
        if self.domain == DEFAULT_DOMAIN:
            text = text[len(DEFAULT_DOMAIN) + 1 :]
            if text.startswith(OFFICIAL_REPO_PREFIX) and "/" not in text[len(OFFICIAL_REPO_PREFIX) :].split(":")[0]:
                text = text[len(OFFICIAL_REPO_PREFIX) :]
        return text

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, self.digest)


def _split_domain(name: str) -> tuple[str, str]:
    """normalize.go splitDockerDomain."""
    first, slash, rest = name.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise ``text``; raises InvalidReference with the reason."""
    if not text:
        raise InvalidReference(text, "empty reference")
    if _ANCHORED_ID.fullmatch(text):
        raise InvalidReference(text, "cannot specify 64-byte hexadecimal strings (that is an image ID)")
    name, at, digest_text = text.partition("@")
    digest: Digest | None = None
    if at:
        if _DIGEST_RE.fullmatch(digest_text) is None:
            raise InvalidReference(text, f"invalid digest {digest_text!r}")
        try:
            digest = _digest.parse(digest_text)
        except SpecError as err:
            raise InvalidReference(text, str(err).split(": ", 1)[-1]) from None
    # The tag is after the last colon that follows the last slash (a port colon precedes a slash).
    tag = ""
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
        if _TAG_RE.fullmatch(tag) is None:
            raise InvalidReference(text, f"invalid tag {tag!r} (up to 128 of [A-Za-z0-9_.-], not starting with . or -)")
    if not name:
        raise InvalidReference(text, "empty repository name")
    domain, path = _split_domain(name)
    if _DOMAIN_RE.fullmatch(domain) is None:
        raise InvalidReference(text, f"invalid domain {domain!r}")
    if _PATH_RE.fullmatch(path) is None:
        if path.lower() != path and _PATH_RE.fullmatch(path.lower()) is not None:
            raise InvalidReference(text, "repository name must be lowercase")
        raise InvalidReference(
            text,
            f"invalid repository path {path!r} (lowercase letters and digits separated by '.', '_', '__', '-', '/')",
        )
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(text, f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if default_tag and not tag and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)
