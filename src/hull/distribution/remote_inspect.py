"""Inspect an image in a registry without pulling it, as ``skopeo inspect docker://REF``.

The document has skopeo's fields (skopeo's types.ImageInspectOutput): Name (the repository),
Digest (of the manifest or index the reference names, as skopeo: an index's own digest, not the
platform manifest's), RepoTags (the repository's tag list), Created, DockerVersion, Labels,
Architecture, Variant (only when set), Os, Layers, LayersData and Env, the config being the one of
the host's platform (or ``platform``) when the reference names an index. Only the manifests and
the config are fetched, each verified against its digest; no layer is read.
"""

from __future__ import annotations

import json
from typing import Any

from hull.distribution import DistributionError
from hull.distribution.client import MAX_MANIFEST, Registry
from hull.distribution.pull import resolve
from hull.distribution.reference import Reference
from hull.image.errors import DigestMismatch, InvalidImage
from hull.oci import digest as _digest
from hull.oci import media_types as mt
from hull.oci.image import Descriptor, Platform, parse_manifest


def fetch_config(client: Registry, repo: str, desc: Descriptor) -> bytes:
    """The config blob, read whole (bounded as a manifest is) and checked against its digest."""
    response = client.open_blob(repo, desc.digest)
    data = response.read(MAX_MANIFEST)
    actual = _digest.of(data, _digest.parse(desc.digest).algorithm)
    if actual != desc.digest:
        raise DigestMismatch(desc.digest, actual)
    return data


def go_time(stamp: str) -> str:
    """An RFC 3339 time as Go's time.Time marshals it (RFC3339Nano: no trailing zeros in the
    fraction, UTC as ``Z``), which is how skopeo prints Created."""
    if not stamp:
        return "0001-01-01T00:00:00Z"
    head, sep, frac = stamp.partition(".")
    if not sep:
        return stamp.replace("+00:00", "Z")
    digits = ""
    rest = frac
    while rest and rest[0].isdigit():
        digits, rest = digits + rest[0], rest[1:]
    digits = digits.rstrip("0")
    rest = "Z" if rest in ("+00:00", "z") else rest
    return f"{head}.{digits}{rest}" if digits else f"{head}{rest}"


def inspect(
    client: Registry,
    where: Reference,
    name: Reference,
    top: tuple[Descriptor, bytes],
    platform: Platform | None = None,
) -> dict[str, Any]:
    """skopeo inspect's document for ``where`` (the reference on the endpoint that answered with
    ``top``, the manifest or index the reference names); ``name`` is the user's reference."""
    top_desc, top_data = top
    if top_desc.media_type in mt.MANIFESTS:
        mdesc, mdata = top_desc, top_data
    else:
        mdesc, mdata, _index = resolve(client, where, platform)
    try:
        manifest = parse_manifest(mdata, mdesc.media_type or None)
    except Exception as err:  # noqa: BLE001 - any parse failure is an invalid image here
        raise InvalidImage(f"{mdesc.digest}: {err}") from None
    try:
        config = json.loads(fetch_config(client, where.path, manifest.config))
    except ValueError:
        raise InvalidImage(f"{manifest.config.digest}: the config is not JSON") from None
    if not isinstance(config, dict):
        raise InvalidImage(f"{manifest.config.digest}: the config is not a JSON object")
    exec_config = config.get("config") or {}
    try:
        tags = list(client.tags(where.path))
    except DistributionError:
        tags = []  # skopeo fails here; a registry that hides its tag list still has the image
    out: dict[str, Any] = {
        "Name": name.repository,
        "Digest": str(top_desc.digest),
        "RepoTags": tags,
        "Created": go_time(str(config.get("created") or "")),
        "DockerVersion": config.get("docker_version", ""),
        "Labels": exec_config.get("Labels"),
        "Architecture": config.get("architecture", ""),
    }
    if config.get("variant"):
        out["Variant"] = config["variant"]
    out["Os"] = config.get("os", "")
    out["Layers"] = [str(layer.digest) for layer in manifest.layers]
    out["LayersData"] = [
        {
            "MIMEType": layer.media_type,
            "Digest": str(layer.digest),
            "Size": layer.size,
            "Annotations": dict(layer.annotations) or None,
        }
        for layer in manifest.layers
    ]
    out["Env"] = exec_config.get("Env")
    return out
