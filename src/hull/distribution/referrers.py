"""Referrers: the manifests whose ``subject`` names a given manifest (distribution-spec v1.1).

- Listing ("Listing Referrers", end-12a/12b): ``GET /v2/<name>/referrers/<digest>``, optionally
  ``?artifactType=``; the answer is an image index, maybe in pages (``Link: rel="next"``). A
  registry that filtered says so in ``OCI-Filters-Applied: artifactType``; when it did not, the
  client filters ("Backwards Compatibility": the filter is a MAY for registries).
- A 404 means the registry has no referrers API ("Unavailable Referrers API": "a registry that
  supports the referrers API MUST NOT return 404"), and the client MUST fall back to the index
  tagged by the referrers tag schema, ``<alg>-<encoded>`` (``sha256-<hex>``). Debian's
  docker-registry (distribution 2.8.2) has no API, so every listing there is the fallback's.
- Pushing a manifest with a ``subject`` to a registry that did not answer the PUT with
  ``OCI-Subject`` (it has no API): the client keeps the fallback index up to date — pull it (a 404
  starts an empty index; anything but an image index is refused), add the pushed manifest's
  descriptor unless it is already there (``artifactType`` the manifest's, else its config's media
  type; its annotations), push it back under the same tag. Deleting such a manifest removes its
  entry the same way. The old index is left untagged in the registry (the spec's MAY delete).

Concurrent updaters of one fallback tag could lose entries (the spec's "Pushing Manifests with
Subject": clients SHOULD use ``If-Match``). The update is conditional: the PUT carries ``If-Match``
with the ``ETag`` the tag's GET answered (``If-None-Match: *`` when the tag did not exist), and a
412 re-reads the tag and applies the change again (a few times). Debian's docker-registry
(distribution 2.8.2) sends an ETag (the quoted digest) on manifest GETs but ignores both headers
on PUT, so there the race remains; a registry that honours them gets no lost entries.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

from hull.distribution import NotFoundError, RegistryError
from hull.distribution.client import _next_link
from hull.oci import media_types as mt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from hull.distribution.client import Registry

FILTERS_HEADER = "OCI-Filters-Applied"
SUBJECT_HEADER = "OCI-Subject"
_NOT_TAG = re.compile(r"[^a-zA-Z0-9_.-]")
MAX_PAGES = 1000
PRECONDITION_FAILED = 412
CONDITIONAL_ATTEMPTS = 5


def tag_schema(digest: str) -> str:
    """The referrers tag of ``digest``: algorithm cut to 32 characters, ``-``, encoded part cut to
    64, every character a tag may not hold replaced by ``-`` (spec.md "Referrers Tag Schema")."""
    algorithm, _, encoded = str(digest).partition(":")
    return _NOT_TAG.sub("-", f"{algorithm[:32]}-{encoded[:64]}")


def empty_index() -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mt.INDEX, "manifests": []}


def _load(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError:
        raise RegistryError(f"{what}: not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("manifests", []), list):
        raise RegistryError(f"{what}: not an image index")
    return doc


def _filtered(doc: dict[str, Any], artifact_type: str | None) -> dict[str, Any]:
    if artifact_type:
        doc["manifests"] = [d for d in doc.get("manifests", []) if d.get("artifactType") == artifact_type]
    return doc


def from_api(client: Registry, repo: str, digest: str, artifact_type: str | None = None) -> dict[str, Any] | None:
    """The referrers index from the API, every page joined; None when the registry answers 404."""
    url = f"/v2/{repo}/referrers/{digest}"
    if artifact_type:
        url += "?artifactType=" + urllib.parse.quote(artifact_type, safe="")
    doc: dict[str, Any] | None = None
    applied = False
    for _page in range(MAX_PAGES):
        try:
            response = client.request("GET", url, scopes=(f"repository:{repo}:pull",), headers={"Accept": mt.INDEX})
        except NotFoundError:
            if doc is None:
                return None
            raise
        page = _load(response.read(4 << 20), f"{client.domain}: referrers of {repo}@{digest}")
        if doc is None:
            doc = page
            applied = "artifacttype" in response.header(FILTERS_HEADER).lower().replace(" ", "").split(",")
        else:
            doc["manifests"].extend(page.get("manifests", []))
        link = _next_link(response.header("Link"))
        if not link:
            break
        url = urllib.parse.urljoin(response.url, link)
    assert doc is not None
    doc.setdefault("manifests", [])
    return doc if applied else _filtered(doc, artifact_type)


def from_tag(client: Registry, repo: str, digest: str) -> dict[str, Any]:
    """The index under the referrers tag schema; an empty index when the tag does not exist."""
    return _tagged(client, repo, digest)[0]


def _tagged(client: Registry, repo: str, digest: str) -> tuple[dict[str, Any], dict[str, str]]:
    """from_tag's index and the conditions a PUT replacing it is sent with: ``If-Match`` the ETag
    the registry gave, ``If-None-Match: *`` when there was no such tag (RFC 9110 13.1.1, 13.1.2)."""
    tag = tag_schema(digest)
    try:
        desc, data, etag = client.get_manifest_etag(repo, tag, accept=(mt.INDEX,))
    except NotFoundError:
        return empty_index(), {"If-None-Match": "*"}
    doc = _load(data, f"{client.domain}: {repo}:{tag}")
    if desc.media_type != mt.INDEX:
        raise RegistryError(f"{client.domain}: {repo}:{tag} is a {desc.media_type}, not the referrers image index")
    return doc, ({"If-Match": etag} if etag else {})


def list_referrers(client: Registry, repo: str, digest: str, artifact_type: str | None = None) -> dict[str, Any]:
    """The referrers of ``repo@digest`` as an image index: the API's, else the fallback tag's."""
    doc = from_api(client, repo, digest, artifact_type)
    if doc is not None:
        return doc
    return _filtered(from_tag(client, repo, digest), artifact_type)


def referrer_descriptor(data: bytes, media_type: str, digest: str) -> tuple[dict[str, Any], str]:
    """(the descriptor listing a pushed manifest among its subject's referrers, the subject's
    digest; "" when the manifest has no subject) — "Listing Referrers": artifactType is the
    manifest's, else its config's mediaType; the manifest's annotations are copied."""
    try:
        doc = json.loads(data)
    except ValueError:
        return {}, ""
    subject = doc.get("subject") if isinstance(doc, dict) else None
    if not isinstance(subject, dict) or not isinstance(subject.get("digest"), str):
        return {}, ""
    out: dict[str, Any] = {"mediaType": media_type, "digest": str(digest), "size": len(data)}
    config = doc.get("config")
    artifact_type = doc.get("artifactType") or (config.get("mediaType") if isinstance(config, dict) else None)
    if isinstance(artifact_type, str) and artifact_type:
        out["artifactType"] = artifact_type
    if isinstance(doc.get("annotations"), dict) and doc["annotations"]:
        out["annotations"] = doc["annotations"]
    return out, subject["digest"]


def _update(
    client: Registry, repo: str, subject: str, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]
) -> None:
    """Read the subject's referrers tag, apply ``change`` to its manifests (None: nothing to do) and
    PUT it back conditionally; on 412 (another client updated it first) read it again."""
    for attempt in range(CONDITIONAL_ATTEMPTS):
        doc, conditions = _tagged(client, repo, subject)
        changed = change(list(doc["manifests"]))
        if changed is None:
            return
        doc["manifests"] = changed
        body = json.dumps(doc, separators=(",", ":")).encode()
        try:
            client.put_manifest(repo, tag_schema(subject), body, mt.INDEX, conditions)
            return
        except RegistryError as err:
            if err.status != PRECONDITION_FAILED or attempt == CONDITIONAL_ATTEMPTS - 1:
                raise


def add_to_fallback(client: Registry, repo: str, data: bytes, media_type: str, digest: str) -> None:
    """After pushing a manifest with a subject to a registry without the API: list it in the
    subject's referrers tag (once)."""
    entry, subject = referrer_descriptor(data, media_type, digest)
    if not subject:
        return

    def add(manifests: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        if any(d.get("digest") == entry["digest"] for d in manifests):
            return None  # "duplicate entries SHOULD NOT be created"
        return [*manifests, entry]

    _update(client, repo, subject, add)


def remove_from_fallback(client: Registry, repo: str, data: bytes, digest: str) -> None:
    """After deleting a manifest with a subject from a registry without the API: drop its entry
    from the subject's referrers tag."""
    _entry, subject = referrer_descriptor(data, "", digest)
    if not subject or from_api(client, repo, subject) is not None:
        return  # no subject, or the registry keeps the list itself

    def drop(manifests: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        kept = [d for d in manifests if d.get("digest") != str(digest)]
        return kept if len(kept) != len(manifests) else None

    _update(client, repo, subject, drop)
