"""The OCI Image Spec v1.1 documents as typed records: descriptors
(descriptor.md), image manifests (manifest.md), image indexes
(image-index.md), image configs (config.md) and the layout header
(image-layout.md); Docker's Image Manifest V2 Schema 2 manifest and manifest
list are read by the same parsers (hull writes OCI).

Parsing is strict about what the spec requires (required fields, types,
digests, sizes, ``schemaVersion`` 2) and every error names the field by its
JSON path; unknown properties are ignored (considerations.md
"Extensibility") and unknown media types are kept, not rejected (see
media_types.py). No I/O here: the content store reads and writes blobs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from hull.oci import digest as _digest
from hull.oci import media_types as mt
from hull.oci._parse import SpecError, check, join, opt, req, str_list, str_map
from hull.oci.digest import Digest
from hull.oci.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REF_NAME = "org.opencontainers.image.ref.name"  # annotations.md; valid on index.json descriptors
MAX_SIZE = (1 << 63) - 1  # descriptor.md: size is an int64 and MUST NOT be negative
EMPTY_JSON_DIGEST = Digest("sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")

# RFC 3339 section 5.6 date-time (config.md "created").
_DATE_TIME = re.compile(
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?"
    r"([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)"
)
# RFC 3986 section 3.1: a URI starts with its scheme.
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S*")


@record
class Platform:
    architecture: str
    os: str
    os_version: str = ""
    os_features: list[str] = field(default_factory=list)
    variant: str = ""
    features: list[str] = field(default_factory=list)  # image-index.md: RESERVED


@record
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    urls: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    data: bytes | None = None
    platform: Platform | None = None
    artifact_type: str = ""

    @property
    def ref_name(self) -> str:
        return self.annotations.get(REF_NAME, "")


@record
class Manifest:
    """An OCI image manifest or a Docker schema 2 manifest (``media_type`` says which)."""

    config: Descriptor
    layers: list[Descriptor]
    media_type: str = ""
    schema_version: int = 2
    artifact_type: str = ""
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict)


@record
class Index:
    """An OCI image index or a Docker manifest list (``media_type`` says which)."""

    manifests: list[Descriptor]
    media_type: str = ""
    schema_version: int = 2
    artifact_type: str = ""
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict)


@record
class ExecConfig:
    """config.md ``config``: the execution parameters, in the spec's words."""

    user: str = ""
    exposed_ports: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    volumes: list[str] = field(default_factory=list)
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    args_escaped: bool = False


@record
class RootFS:
    diff_ids: list[Digest]
    type: str = "layers"


@record
class History:
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False


@record
class ImageConfig:
    architecture: str
    os: str
    rootfs: RootFS
    created: str = ""
    author: str = ""
    os_version: str = ""
    os_features: list[str] = field(default_factory=list)
    variant: str = ""
    config: ExecConfig | None = None
    history: list[History] = field(default_factory=list)

    @property
    def platform(self) -> Platform:
        return Platform(self.architecture, self.os, self.os_version, list(self.os_features), self.variant)


# ---------------------------------------------------------------- JSON in


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # annotations.md: keys "MUST be unique"; in general two parsers disagreeing on which of two
    # equal keys wins is how a document shows one thing to a verifier and another to a user.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SpecError("", f"duplicate key {key!r}")
        out[key] = value
    return out


def loads(data: bytes | str, what: str = "document") -> dict[str, Any]:
    """Decode a JSON object strictly (no duplicate keys, no NaN)."""

    def bad_constant(name: str) -> Any:
        raise SpecError("", f"invalid JSON constant {name}")

    try:
        doc = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=bad_constant)
    except (ValueError, UnicodeDecodeError) as err:
        if isinstance(err, SpecError):
            raise
        raise SpecError("", f"{what} is not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise SpecError("", f"{what} must be a JSON object, got {type(doc).__name__}")
    return doc


def _media_type(value: Any, path: str) -> str:
    text = check(value, str, path)
    if not mt.is_valid(text):
        raise SpecError(path, f"invalid media type {text!r} (RFC 6838 type/subtype)")
    return text


def _annotations(obj: dict[str, Any], path: str) -> dict[str, str]:
    return str_map(obj, "annotations", path)


def parse_platform(obj: Any, path: str = "platform") -> Platform:
    obj = check(obj, dict, path)
    return Platform(
        architecture=req(obj, "architecture", str, path),
        os=req(obj, "os", str, path),
        os_version=opt(obj, "os.version", str, path, ""),
        os_features=str_list(obj, "os.features", path),
        variant=opt(obj, "variant", str, path, ""),
        features=str_list(obj, "features", path),
    )


def parse_descriptor(obj: Any, path: str = "") -> Descriptor:
    obj = check(obj, dict, path or "descriptor")
    media_type = _media_type(req(obj, "mediaType", str, path), join(path, "mediaType"))
    digest = _digest.parse(req(obj, "digest", str, path), join(path, "digest"))
    size = req(obj, "size", int, path)
    if not 0 <= size <= MAX_SIZE:
        raise SpecError(join(path, "size"), f"must be a non-negative int64, got {size}")
    urls = str_list(obj, "urls", path)
    for i, url in enumerate(urls):
        if _URI_SCHEME.fullmatch(url) is None:
            raise SpecError(join(join(path, "urls"), i), f"not an RFC 3986 URI: {url!r}")
    data = None
    if obj.get("data") is not None:
        data = _embedded(req(obj, "data", str, path), digest, size, join(path, "data"))
    platform = parse_platform(obj["platform"], join(path, "platform")) if obj.get("platform") is not None else None
    artifact_type = opt(obj, "artifactType", str, path, "")
    if artifact_type:
        _media_type(artifact_type, join(path, "artifactType"))
    return Descriptor(media_type, digest, size, urls, _annotations(obj, path), data, platform, artifact_type)


def _embedded(text: str, digest: Digest, size: int, path: str) -> bytes:
    # descriptor.md "data": RFC 4648 section 4 base64; "The decoded data MUST be identical to the
    # referenced content and SHOULD be verified against the digest and size fields".
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error as err:
        raise SpecError(path, f"not valid base64: {err}") from None
    if len(data) != size:
        raise SpecError(path, f"decodes to {len(data)} bytes but size is {size}")
    if digest.verifiable and _digest.of(data, digest.algorithm) != digest:
        raise SpecError(path, f"does not match digest {digest}")
    return data


def _schema_version(obj: dict[str, Any], path: str) -> int:
    version = req(obj, "schemaVersion", int, path)
    if version != 2:
        raise SpecError(join(path, "schemaVersion"), f"must be 2, got {version}")
    return version


def _document_type(obj: dict[str, Any], expected: str | None, allowed: frozenset[str], kind: str, path: str) -> str:
    """The document's own ``mediaType``, checked against what kind it must be and what the descriptor said."""
    media_type = opt(obj, "mediaType", str, path, "")
    where = join(path, "mediaType")
    if media_type in mt.DOCKER_SCHEMA1 or expected in mt.DOCKER_SCHEMA1:
        raise SpecError(where, "Docker schema 1 manifests are not supported")
    if media_type and media_type not in allowed:
        raise SpecError(where, f"{media_type!r} is not an {kind} media type")
    if expected and expected not in allowed:
        raise SpecError(where, f"descriptor media type {expected!r} is not an {kind} media type")
    if media_type and expected and media_type != expected:
        raise SpecError(where, f"is {media_type!r} but the descriptor says {expected!r}")
    return media_type or expected or ""


def parse_manifest(doc: dict[str, Any] | bytes, media_type: str | None = None, path: str = "") -> Manifest:
    """An image manifest; ``media_type`` is the descriptor's, when the document came through one."""
    obj = loads(doc, "manifest") if isinstance(doc, bytes) else check(doc, dict, path or "manifest")
    kind = _document_type(obj, media_type, mt.MANIFESTS, "image manifest", path)
    if "manifests" in obj:
        # CVE-2021-41190 (GHSA-77vh-xpmg-72qh): a document that reads as both a manifest and an
        # index can be shown as one to a verifier and used as the other.
        raise SpecError(join(path, "manifests"), "not allowed in an image manifest")
    schema_version = _schema_version(obj, path)
    config = parse_descriptor(req(obj, "config", dict, path), join(path, "config"))
    layers_path = join(path, "layers")
    layers = [parse_descriptor(d, join(layers_path, i)) for i, d in enumerate(req(obj, "layers", list, path))]
    artifact_type = opt(obj, "artifactType", str, path, "")
    if artifact_type:
        _media_type(artifact_type, join(path, "artifactType"))
    elif config.media_type == mt.EMPTY_JSON:
        # manifest.md "artifactType": "This MUST be set when config.mediaType is set to the empty value".
        raise SpecError(join(path, "artifactType"), f"is required when config.mediaType is {mt.EMPTY_JSON}")
    subject = parse_descriptor(obj["subject"], join(path, "subject")) if obj.get("subject") is not None else None
    return Manifest(config, layers, kind, schema_version, artifact_type, subject, _annotations(obj, path))


def parse_index(doc: dict[str, Any] | bytes, media_type: str | None = None, path: str = "") -> Index:
    """An image index (or index.json, or a Docker manifest list)."""
    obj = loads(doc, "index") if isinstance(doc, bytes) else check(doc, dict, path or "index")
    kind = _document_type(obj, media_type, mt.INDEXES, "image index", path)
    for key in ("config", "layers"):
        if key in obj:
            raise SpecError(join(path, key), "not allowed in an image index")  # CVE-2021-41190
    schema_version = _schema_version(obj, path)
    where = join(path, "manifests")
    manifests = [parse_descriptor(d, join(where, i)) for i, d in enumerate(req(obj, "manifests", list, path))]
    artifact_type = opt(obj, "artifactType", str, path, "")
    if artifact_type:
        _media_type(artifact_type, join(path, "artifactType"))
    subject = parse_descriptor(obj["subject"], join(path, "subject")) if obj.get("subject") is not None else None
    return Index(manifests, kind, schema_version, artifact_type, subject, _annotations(obj, path))


def _object_keys(obj: dict[str, Any], key: str, path: str) -> list[str]:
    """A Go ``map[string]struct{}``: an object whose values are objects (config.md ExposedPorts, Volumes)."""
    items = opt(obj, key, dict, path, {})
    where = join(path, key)
    for name, value in items.items():
        check(value, dict, join(where, name))
    return list(items)


def _date_time(obj: dict[str, Any], key: str, path: str) -> str:
    value = opt(obj, key, str, path, "")
    if value and _DATE_TIME.fullmatch(value) is None:
        raise SpecError(join(path, key), f"not an RFC 3339 date-time: {value!r}")
    return value


def _opt_str_list(obj: dict[str, Any], key: str, path: str) -> list[str] | None:
    return None if obj.get(key) is None else str_list(obj, key, path)


def parse_exec_config(obj: dict[str, Any], path: str) -> ExecConfig:
    return ExecConfig(
        user=opt(obj, "User", str, path, ""),
        exposed_ports=_object_keys(obj, "ExposedPorts", path),
        env=str_list(obj, "Env", path),
        entrypoint=_opt_str_list(obj, "Entrypoint", path),
        cmd=_opt_str_list(obj, "Cmd", path),
        volumes=_object_keys(obj, "Volumes", path),
        working_dir=opt(obj, "WorkingDir", str, path, ""),
        labels=str_map(obj, "Labels", path),
        stop_signal=opt(obj, "StopSignal", str, path, ""),
        args_escaped=opt(obj, "ArgsEscaped", bool, path, False),
    )


def parse_config(doc: dict[str, Any] | bytes, path: str = "") -> ImageConfig:
    """An image config (``application/vnd.oci.image.config.v1+json`` or Docker's v1 config).

    config.md: "Any OPTIONAL field MAY also be set to null, which is equivalent to being absent".
    """
    obj = loads(doc, "image config") if isinstance(doc, bytes) else check(doc, dict, path or "config")
    architecture = req(obj, "architecture", str, path)
    os_name = req(obj, "os", str, path)
    rootfs_obj = req(obj, "rootfs", dict, path)
    rootfs_path = join(path, "rootfs")
    rootfs_type = req(rootfs_obj, "type", str, rootfs_path)
    if rootfs_type != "layers":
        # config.md: "Implementations MUST generate an error if they encounter a unknown value".
        raise SpecError(join(rootfs_path, "type"), f"must be 'layers', got {rootfs_type!r}")
    ids_path = join(rootfs_path, "diff_ids")
    diff_ids = [
        _digest.parse(d, join(ids_path, i)) for i, d in enumerate(req(rootfs_obj, "diff_ids", list, rootfs_path))
    ]
    history_path = join(path, "history")
    history = []
    for i, item in enumerate(opt(obj, "history", list, path, [])):
        where = join(history_path, i)
        item = check(item, dict, where)
        history.append(
            History(
                created=_date_time(item, "created", where),
                created_by=opt(item, "created_by", str, where, ""),
                author=opt(item, "author", str, where, ""),
                comment=opt(item, "comment", str, where, ""),
                empty_layer=opt(item, "empty_layer", bool, where, False),
            )
        )
    exec_obj = None if obj.get("config") is None else req(obj, "config", dict, path)
    return ImageConfig(
        architecture=architecture,
        os=os_name,
        rootfs=RootFS(diff_ids, rootfs_type),
        created=_date_time(obj, "created", path),
        author=opt(obj, "author", str, path, ""),
        os_version=opt(obj, "os.version", str, path, ""),
        os_features=str_list(obj, "os.features", path),
        variant=opt(obj, "variant", str, path, ""),
        config=None if exec_obj is None else parse_exec_config(exec_obj, join(path, "config")),
        history=history,
    )


def parse_layout_header(doc: bytes) -> str:
    """image-layout.md "oci-layout file": a JSON object with ``imageLayoutVersion``; returns it."""
    obj = loads(doc, "oci-layout")
    return req(obj, "imageLayoutVersion", str, "")


# ---------------------------------------------------------------- JSON out
# Field order follows image-spec's Go types (specs-go/v1), as other tools write them.


def platform_json(p: Platform) -> dict[str, Any]:
    out: dict[str, Any] = {"architecture": p.architecture, "os": p.os}
    if p.os_version:
        out["os.version"] = p.os_version
    if p.os_features:
        out["os.features"] = list(p.os_features)
    if p.variant:
        out["variant"] = p.variant
    if p.features:
        out["features"] = list(p.features)
    return out


def descriptor_json(d: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": d.media_type, "digest": str(d.digest), "size": d.size}
    if d.urls:
        out["urls"] = list(d.urls)
    if d.annotations:
        out["annotations"] = dict(d.annotations)
    if d.data is not None:
        out["data"] = base64.b64encode(d.data).decode()
    if d.platform is not None:
        out["platform"] = platform_json(d.platform)
    if d.artifact_type:
        out["artifactType"] = d.artifact_type
    return out


def _head(schema_version: int, media_type: str, artifact_type: str) -> dict[str, Any]:
    out: dict[str, Any] = {"schemaVersion": schema_version}
    if media_type:
        out["mediaType"] = media_type
    if artifact_type:
        out["artifactType"] = artifact_type
    return out


def manifest_json(m: Manifest) -> dict[str, Any]:
    out = _head(m.schema_version, m.media_type, m.artifact_type)
    out["config"] = descriptor_json(m.config)
    out["layers"] = [descriptor_json(d) for d in m.layers]
    if m.subject is not None:
        out["subject"] = descriptor_json(m.subject)
    if m.annotations:
        out["annotations"] = dict(m.annotations)
    return out


def index_json(i: Index) -> dict[str, Any]:
    out = _head(i.schema_version, i.media_type, i.artifact_type)
    out["manifests"] = [descriptor_json(d) for d in i.manifests]
    if i.subject is not None:
        out["subject"] = descriptor_json(i.subject)
    if i.annotations:
        out["annotations"] = dict(i.annotations)
    return out


def config_json(c: ImageConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if c.created:
        out["created"] = c.created
    if c.author:
        out["author"] = c.author
    out["architecture"] = c.architecture
    out["os"] = c.os
    if c.os_version:
        out["os.version"] = c.os_version
    if c.os_features:
        out["os.features"] = list(c.os_features)
    if c.variant:
        out["variant"] = c.variant
    if c.config is not None:
        out["config"] = _exec_json(c.config)
    out["rootfs"] = {"type": c.rootfs.type, "diff_ids": [str(d) for d in c.rootfs.diff_ids]}
    if c.history:
        out["history"] = [_history_json(h) for h in c.history]
    return out


def _exec_json(e: ExecConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if e.user:
        out["User"] = e.user
    if e.exposed_ports:
        out["ExposedPorts"] = {p: {} for p in e.exposed_ports}
    if e.env:
        out["Env"] = list(e.env)
    if e.entrypoint is not None:
        out["Entrypoint"] = list(e.entrypoint)
    if e.cmd is not None:
        out["Cmd"] = list(e.cmd)
    if e.volumes:
        out["Volumes"] = {v: {} for v in e.volumes}
    if e.working_dir:
        out["WorkingDir"] = e.working_dir
    if e.labels:
        out["Labels"] = dict(e.labels)
    if e.stop_signal:
        out["StopSignal"] = e.stop_signal
    if e.args_escaped:
        out["ArgsEscaped"] = True
    return out


def _history_json(h: History) -> dict[str, Any]:
    pairs = (("created", h.created), ("created_by", h.created_by), ("author", h.author), ("comment", h.comment))
    out: dict[str, Any] = {k: v for k, v in pairs if v}
    if h.empty_layer:
        out["empty_layer"] = True
    return out


def encode(doc: dict[str, Any]) -> bytes:
    """Compact JSON, as Go's encoding/json writes it; the bytes a blob's digest is taken over."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def describe(media_type: str, blob: bytes, **extra: Any) -> Descriptor:
    """A sha256 descriptor of ``blob``."""
    return Descriptor(media_type, _digest.of(blob), len(blob), **extra)
