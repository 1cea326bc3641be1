"""Blobs from a descriptor's ``urls`` (non-distributable, "foreign" layers) when the registry has none.

image-spec descriptor.md "urls": a list of URIs the object MAY be downloaded from, which SHOULD use
http or https; layer.md "Non-distributable layers" are the usual case (Windows base layers that a
registry is not allowed to serve). As containerd's fetcher, hull asks the registry first and only
after its 404 tries each URL in order; any other scheme is skipped (no file:// or ftp:// read on a
manifest's say). The bytes go through the same sink as a registry download, so digest and size are
verified and a mismatching URL is discarded before the next is tried. No credentials go to these
hosts: each URL gets an anonymous client of its own, with default TLS verification.
"""

from __future__ import annotations

import urllib.parse

from hull.distribution import DistributionError
from hull.distribution.client import Registry, Retry
from hull.image.errors import DigestMismatch, SizeMismatch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from hull.distribution.client import BlobSink
    from hull.oci.image import Descriptor

SCHEMES = ("http", "https")


def _one(url: str, sink: BlobSink, progress: Callable[[int], None] | None, retry: Retry | None) -> None:
    parts = urllib.parse.urlsplit(url)
    client = Registry(parts.netloc, insecure=parts.scheme == "http", retry=retry)
    try:
        response = client.request("GET", url, follow=True)
        for chunk in response.chunks():
            sink.write(chunk)  # the sink refuses bytes past the descriptor's size
            if progress is not None:
                progress(len(chunk))
        sink.commit()
    finally:
        client.close()


def download(
    desc: Descriptor, sink: BlobSink, progress: Callable[[int], None] | None = None, retry: Retry | None = None
) -> str:
    """Fill ``sink`` from the first of ``desc.urls`` that serves the right bytes; returns that URL.
    ``retry`` is the registry client's (the user's retry settings). Fails naming every URL and why
    it was not used."""
    failures: list[str] = []
    dirty = bool(sink.offset)  # a partial file of an earlier attempt: not known to be from this URL
    for url in desc.urls:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if scheme not in SCHEMES:
            failures.append(f"{url}: only http and https URLs are fetched")
            continue
        if dirty:
            # Start from byte 0: the sink discarded a bad candidate's bytes, but a one-pass unpack
            # fed them to the applier too, and only a restart tells it they were no prefix.
            sink.restart()
        dirty = True
        try:
            _one(url, sink, progress, retry)
        except (DistributionError, DigestMismatch, SizeMismatch) as err:
            failures.append(f"{url}: {err}")
            continue
        return url
    raise DistributionError(
        f"{desc.digest}: not in the registry and no URL of the descriptor served it: " + "; ".join(failures)
    )
