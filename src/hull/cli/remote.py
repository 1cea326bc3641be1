"""Commands on images in a registry that never touch the store: ``hull image referrers REF`` and
``hull image rm --remote REF``.

``referrers`` is named after the distribution-spec endpoint it lists (``/v2/<name>/referrers/``)
and prints the image index of the referrers as the registry (or its referrers tag) has it; oras
calls it ``discover``, skopeo has none. Deleting is ``rm --remote``, the registry counterpart of
``rm`` as ``inspect --remote`` is of ``inspect`` (skopeo's ``delete docker://REF``; a ``docker://``
prefix is accepted). Registries delete by digest: a tag is resolved to its manifest first, and the
registry drops every tag naming that manifest.
"""

from __future__ import annotations

import json
import sys

from hull.distribution import NotFoundError, referrers, sources
from hull.distribution.auth import Authenticator
from hull.distribution.client import Registry
from hull.distribution.reference import Reference, parse
from hull.image.errors import ImageError

PREFIX = "docker://"


def _strip(text: str) -> str:
    return text[len(PREFIX) :] if text.startswith(PREFIX) else text


def _subject_digest(client: Registry, ref: Reference) -> str:
    if ref.digest is not None:
        return str(ref.digest)  # a subject need not exist for its referrers to be listed
    found = client.head_manifest(ref.path, ref.reference)
    if found is None:
        raise NotFoundError(f"{ref}: no such image in the registry", 404)
    return str(found.digest)


def cmd_referrers(text: str, artifact_type: str) -> int:
    """Print the referrers image index of REF's manifest (filtered by ``--artifact-type``)."""
    _ref, client, where, digest = sources.resolve_pull(
        _strip(text), authenticator=Authenticator(), attempt=_subject_digest
    )
    try:
        doc = client.referrers(where.path, digest, artifact_type or None)
    finally:
        client.close()
    print(json.dumps(doc, indent=4))
    return 0


def cmd_rm_remote(refs: list[str]) -> int:
    """Delete each REF's manifest from its registry (never a mirror); one error line per failure."""
    errors = 0
    auth = Authenticator()
    for text in refs:
        try:
            client, where = sources.push_target(parse(_strip(text)), authenticator=auth)
            try:
                try:
                    desc, data = client.get_manifest(where.path, where.reference)
                except NotFoundError:
                    raise NotFoundError(f"{where}: no such image in the registry", 404) from None
                client.delete_manifest(where.path, str(desc.digest))
                referrers.remove_from_fallback(client, where.path, data, str(desc.digest))
            finally:
                client.close()
            print(f"Deleted: {where.domain}/{where.path}@{desc.digest}")
        except ImageError as err:  # reported per reference, the others still tried, as ``rm``
            sys.stderr.write(f"Error: {err}\n")
            errors += 1
    return 1 if errors else 0
