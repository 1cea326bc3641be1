"""The OCI image data model: every validation rule, each error naming its field."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from hull.oci import digest as dg
from hull.oci import image as im
from hull.oci import media_types as mt
from hull.oci._parse import SpecError

SHA256_EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
HELLO = b"hello"
HELLO_256 = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
HELLO_512 = (
    "sha512:9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e"
    "5c3adef46f73bcdec043"
)


def desc(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"mediaType": mt.LAYER_GZIP, "digest": HELLO_256, "size": 5}
    base.update(over)
    return base


def manifest(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.MANIFEST,
        "config": desc(mediaType=mt.CONFIG),
        "layers": [desc(), desc()],
    }
    base.update(over)
    return base


def config(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [HELLO_256]},
    }
    base.update(over)
    return base


def rejects(fn: Any, *args: Any, field: str, problem: str = "", **kw: Any) -> None:
    with pytest.raises(SpecError) as info:
        fn(*args, **kw)
    assert info.value.field == field, str(info.value)
    assert problem in info.value.problem, str(info.value)


# ------------------------------------------------------------------ digests


@pytest.mark.parametrize(
    "value",
    [
        SHA256_EMPTY,
        HELLO_512,
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",  # descriptor.md's unregistered examples
        "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
    ],
)
def test_valid_digests(value: str) -> None:
    d = dg.parse(value)
    assert d == value and d.algorithm == value.split(":")[0]
    assert d.verifiable == (d.algorithm in ("sha256", "sha512"))


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("sha256:" + "E3" * 32, "lowercase hex"),  # [A-F] MUST NOT be used
        ("sha256:" + "e3" * 31, "64 lowercase hex"),
        ("sha256:" + "e3" * 33, "64 lowercase hex"),
        ("sha256:" + "g3" * 32, "lowercase hex"),
        ("sha512:" + "ab" * 32, "128 lowercase hex"),
        ("SHA256:" + "e3" * 32, "invalid digest"),  # algorithm-component is [a-z0-9]+
        ("sha256", "invalid digest"),
        ("sha256:", "invalid digest"),
        (":abc", "invalid digest"),
        ("sha256+:abc", "invalid digest"),
        ("sha256:abc/def", "invalid digest"),
        ("", "invalid digest"),
    ],
)
def test_invalid_digests(value: str, problem: str) -> None:
    rejects(dg.parse, value, "layers[3].digest", field="layers[3].digest", problem=problem)


def test_digest_not_a_string() -> None:
    rejects(dg.parse, 5, "x.digest", field="x.digest", problem="must be a string")


def test_digest_of_and_algorithms() -> None:
    assert dg.of(b"") == SHA256_EMPTY
    assert dg.of(HELLO, "sha512") == HELLO_512
    with pytest.raises(SpecError, match="unsupported digest algorithm 'md5'"):
        dg.of(HELLO, "md5")


def test_chain_ids_follow_config_md() -> None:
    a, b, c = (dg.of(x) for x in (b"a", b"b", b"c"))
    ab = dg.of(f"{a} {b}".encode())
    assert dg.chain_ids([a, b, c]) == [a, ab, dg.of(f"{ab} {c}".encode())]
    assert dg.chain_ids([]) == []


# ------------------------------------------------------------------ descriptors


def test_descriptor_all_fields_round_trip() -> None:
    obj = desc(
        urls=["https://example.com/blob"],
        annotations={"com.example.k": "v", "empty": ""},
        data=base64.b64encode(HELLO).decode(),
        platform={"architecture": "arm64", "os": "linux", "variant": "v8", "os.features": ["a"], "os.version": "1"},
        artifactType="application/vnd.example.sbom.v1",
        unknownField={"ignored": True},  # considerations.md: unknown properties are ignored
    )
    d = im.parse_descriptor(obj, "layers[0]")
    assert d.data == HELLO and d.platform is not None and d.platform.variant == "v8"
    assert d.platform.os_features == ["a"] and d.platform.os_version == "1"
    out = im.descriptor_json(d)
    obj.pop("unknownField")
    assert out == obj


@pytest.mark.parametrize(
    ("over", "field", "problem"),
    [
        ({"mediaType": None}, "layers[1].mediaType", "is required"),
        ({"mediaType": 7}, "layers[1].mediaType", "must be a string"),
        ({"mediaType": "not a media type"}, "layers[1].mediaType", "RFC 6838"),
        ({"mediaType": "application/"}, "layers[1].mediaType", "RFC 6838"),
        ({"mediaType": "application/" + "x" * 128}, "layers[1].mediaType", "RFC 6838"),
        ({"digest": None}, "layers[1].digest", "is required"),
        ({"digest": "sha256:abc"}, "layers[1].digest", "64 lowercase hex"),
        ({"size": None}, "layers[1].size", "is required"),
        ({"size": -1}, "layers[1].size", "non-negative int64"),
        ({"size": 1 << 63}, "layers[1].size", "non-negative int64"),
        ({"size": 5.0}, "layers[1].size", "must be an integer"),
        ({"size": True}, "layers[1].size", "must be an integer"),
        ({"urls": "https://x"}, "layers[1].urls", "must be an array"),
        ({"urls": ["no scheme here"]}, "layers[1].urls[0]", "RFC 3986"),
        ({"urls": [3]}, "layers[1].urls[0]", "must be a string"),
        ({"annotations": {"k": 1}}, "layers[1].annotations.k", "must be a string"),
        ({"annotations": []}, "layers[1].annotations", "must be an object"),
        ({"data": "!!!"}, "layers[1].data", "not valid base64"),
        ({"data": "aGVsbG8"}, "layers[1].data", "not valid base64"),  # missing padding
        ({"data": base64.b64encode(b"hell").decode()}, "layers[1].data", "decodes to 4 bytes but size is 5"),
        ({"data": base64.b64encode(b"jello").decode()}, "layers[1].data", "does not match digest"),
        ({"platform": {"os": "linux"}}, "layers[1].platform.architecture", "is required"),
        ({"platform": {"architecture": "amd64"}}, "layers[1].platform.os", "is required"),
        (
            {"platform": {"architecture": "amd64", "os": "linux", "os.features": "x"}},
            "layers[1].platform.os.features",
            "array",
        ),
        ({"platform": {"architecture": "amd64", "os": "linux", "variant": 8}}, "layers[1].platform.variant", "string"),
        ({"platform": "linux"}, "layers[1].platform", "must be an object"),
        ({"artifactType": "sbom"}, "layers[1].artifactType", "RFC 6838"),
    ],
)
def test_descriptor_rules(over: dict[str, Any], field: str, problem: str) -> None:
    obj = {k: v for k, v in desc(**over).items() if v is not None}
    rejects(im.parse_descriptor, obj, "layers[1]", field=field, problem=problem)


def test_descriptor_data_with_sha512() -> None:
    d = im.parse_descriptor(desc(digest=HELLO_512, data=base64.b64encode(HELLO).decode()))
    assert d.data == HELLO
    # An algorithm hull cannot compute: size is still checked, the digest cannot be.
    d = im.parse_descriptor(desc(digest="blake9:abc", data=base64.b64encode(HELLO).decode()))
    assert d.data == HELLO


def test_empty_descriptor_of_the_spec() -> None:
    d = im.parse_descriptor(
        {"mediaType": mt.EMPTY_JSON, "digest": str(im.EMPTY_JSON_DIGEST), "size": 2, "data": "e30="}
    )
    assert d.data == b"{}" and dg.of(b"{}") == im.EMPTY_JSON_DIGEST


# ------------------------------------------------------------------ manifests


def test_manifest_parses_and_round_trips() -> None:
    obj = manifest(
        artifactType="application/vnd.example+type",
        subject=desc(mediaType=mt.MANIFEST),
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    )
    m = im.parse_manifest(im.encode(obj))
    assert m.media_type == mt.MANIFEST and len(m.layers) == 2 and m.subject is not None
    assert im.manifest_json(m) == obj


def test_manifest_media_type_defaults_to_descriptor() -> None:
    obj = manifest()
    del obj["mediaType"]
    assert im.parse_manifest(obj).media_type == ""
    assert im.parse_manifest(obj, mt.MANIFEST).media_type == mt.MANIFEST


@pytest.mark.parametrize(
    ("over", "field", "problem"),
    [
        ({"schemaVersion": None}, "schemaVersion", "is required"),
        ({"schemaVersion": 1}, "schemaVersion", "must be 2"),
        ({"schemaVersion": "2"}, "schemaVersion", "must be an integer"),
        ({"mediaType": mt.INDEX}, "mediaType", "not an image manifest media type"),
        ({"mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws"}, "mediaType", "schema 1"),
        ({"config": None}, "config", "is required"),
        ({"config": desc(size=-2)}, "config.size", "non-negative"),
        ({"layers": None}, "layers", "is required"),
        ({"layers": {}}, "layers", "must be an array"),
        ({"layers": [desc(), desc(digest="md5")]}, "layers[1].digest", "invalid digest"),
        ({"layers": [desc(), "x"]}, "layers[1]", "must be an object"),
        ({"subject": desc(size="3")}, "subject.size", "must be an integer"),
        ({"annotations": {"a": None}}, "annotations.a", "must be a string"),
        ({"artifactType": "nope"}, "artifactType", "RFC 6838"),
        ({"config": desc(mediaType=mt.EMPTY_JSON)}, "artifactType", "is required when config.mediaType"),
        ({"manifests": []}, "manifests", "not allowed in an image manifest"),  # CVE-2021-41190
    ],
)
def test_manifest_rules(over: dict[str, Any], field: str, problem: str) -> None:
    obj = {k: v for k, v in manifest(**over).items() if v is not None}
    rejects(im.parse_manifest, obj, field=field, problem=problem)


def test_manifest_descriptor_type_conflict() -> None:
    rejects(im.parse_manifest, manifest(), mt.DOCKER_MANIFEST, field="mediaType", problem="the descriptor says")
    rejects(im.parse_manifest, manifest(mediaType=None), mt.INDEX, field="mediaType", problem="descriptor media type")


def test_manifest_unknown_layer_and_config_types_are_kept() -> None:
    # manifest.md: storing or copying "MUST NOT error" on unknown layer/config media types.
    obj = manifest(
        config=desc(mediaType="application/vnd.example.config.v1+json"),
        layers=[desc(mediaType="application/vnd.example.data.v1.tar+gzip")],
    )
    m = im.parse_manifest(obj)
    assert m.layers[0].media_type == "application/vnd.example.data.v1.tar+gzip"
    assert mt.layer_compression(m.layers[0].media_type) is None
    assert mt.layer_compression(mt.DOCKER_LAYER_GZIP) == "gzip" and mt.layer_compression(mt.LAYER_ND_ZSTD) == "zstd"


def test_docker_schema2_manifest_and_list() -> None:
    docker = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": desc(mediaType=mt.DOCKER_CONFIG),
        "layers": [
            desc(mediaType=mt.DOCKER_LAYER_GZIP),
            desc(mediaType=mt.DOCKER_FOREIGN_LAYER_GZIP, urls=["https://x/y"]),
        ],
    }
    m = im.parse_manifest(im.encode(docker), mt.DOCKER_MANIFEST)
    assert m.media_type == mt.DOCKER_MANIFEST and m.layers[1].urls == ["https://x/y"]
    assert mt.DOCKER_FOREIGN_LAYER_GZIP in mt.NON_DISTRIBUTABLE
    listing = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST_LIST,
        "manifests": [
            desc(mediaType=mt.DOCKER_MANIFEST, platform={"architecture": "amd64", "os": "linux", "features": ["sse4"]})
        ],
    }
    i = im.parse_index(listing)
    assert i.media_type == mt.DOCKER_MANIFEST_LIST and i.manifests[0].platform is not None
    assert i.manifests[0].platform.features == ["sse4"]


# ------------------------------------------------------------------ indexes


def test_index_parses_unknown_media_types_without_error() -> None:
    obj = {
        "schemaVersion": 2,
        "mediaType": mt.INDEX,
        "manifests": [desc(mediaType="application/xml"), desc(mediaType=mt.INDEX)],
        "annotations": {"com.example.index.revision": "r1"},
    }
    i = im.parse_index(obj)
    assert [d.media_type for d in i.manifests] == ["application/xml", mt.INDEX]
    assert im.index_json(i) == obj
    assert im.parse_index({"schemaVersion": 2, "manifests": []}).manifests == []  # MAY be empty


@pytest.mark.parametrize(
    ("over", "field", "problem"),
    [
        ({"manifests": None}, "manifests", "is required"),
        ({"manifests": [desc(size=None)]}, "manifests[0].size", "is required"),
        ({"manifests": [desc(platform={"os": "linux"})]}, "manifests[0].platform.architecture", "is required"),
        ({"schemaVersion": 3}, "schemaVersion", "must be 2"),
        ({"mediaType": mt.MANIFEST}, "mediaType", "not an image index"),
        ({"layers": []}, "layers", "not allowed in an image index"),  # CVE-2021-41190
        ({"config": {}}, "config", "not allowed in an image index"),
        ({"subject": 1}, "subject", "must be an object"),
    ],
)
def test_index_rules(over: dict[str, Any], field: str, problem: str) -> None:
    base: dict[str, Any] = {"schemaVersion": 2, "manifests": []}
    base.update(over)
    if base.get("manifests") and "size" in base["manifests"][0] and base["manifests"][0]["size"] is None:
        del base["manifests"][0]["size"]
    obj = {k: v for k, v in base.items() if v is not None}
    rejects(im.parse_index, obj, field=field, problem=problem)


# ------------------------------------------------------------------ configs


def test_config_full_round_trip() -> None:
    obj = config(
        created="2015-10-31T22:22:56.015925234Z",
        author="Alyssa P. Hacker <alyspdev@example.com>",
        variant="v7",
        **{"os.version": "10.0.14393.1066", "os.features": ["win32k"]},
        config={
            "User": "alice:wheel",
            "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
            "Env": ["PATH=/usr/bin:/bin", "FOO=a=b"],
            "Entrypoint": ["/bin/my-app"],
            "Cmd": ["--foreground"],
            "Volumes": {"/var/job-result-data": {}},
            "WorkingDir": "/home/alice",
            "Labels": {"com.example.project.git.url": "https://example.com/project.git"},
            "StopSignal": "SIGRTMIN+3",
            "ArgsEscaped": True,
        },
        history=[
            {"created": "2015-10-31T22:22:54.690851953+01:00", "created_by": "/bin/sh -c #(nop) ADD file"},
            {
                "created": "2015-10-31T22:22:55Z",
                "created_by": "ENV x",
                "empty_layer": True,
                "comment": "c",
                "author": "a",
            },
        ],
    )
    c = im.parse_config(im.encode(obj))
    assert c.config is not None and c.config.exposed_ports == ["8080/tcp", "53/udp"]
    assert c.config.stop_signal == "SIGRTMIN+3" and c.history[1].empty_layer
    assert c.platform.os_version == "10.0.14393.1066"
    assert im.config_json(c) == obj


def test_config_nulls_are_absent() -> None:
    # config.md: "Any OPTIONAL field MAY also be set to null, which is equivalent to being absent."
    c = im.parse_config(config(config=None, created=None, history=None, variant=None))
    assert c.config is None and c.created == "" and c.history == []
    c = im.parse_config(config(config={"Cmd": None, "Entrypoint": None, "Env": None, "Labels": None}))
    assert c.config is not None and c.config.cmd is None and c.config.entrypoint is None


@pytest.mark.parametrize(
    ("over", "field", "problem"),
    [
        ({"architecture": None}, "architecture", "is required"),
        ({"os": 1}, "os", "must be a string"),
        ({"rootfs": None}, "rootfs", "is required"),
        ({"rootfs": {"type": "layers"}}, "rootfs.diff_ids", "is required"),
        ({"rootfs": {"diff_ids": []}}, "rootfs.type", "is required"),
        ({"rootfs": {"type": "snapshots", "diff_ids": []}}, "rootfs.type", "must be 'layers'"),
        ({"rootfs": {"type": "layers", "diff_ids": [HELLO_256, "sha256:XYZ"]}}, "rootfs.diff_ids[1]", "invalid"),
        ({"created": "yesterday"}, "created", "RFC 3339"),
        ({"created": "2015-13-01T00:00:00Z"}, "created", "RFC 3339"),
        ({"created": "2015-10-31 22:22:56Z"}, "created", "RFC 3339"),
        ({"config": {"User": 0}}, "config.User", "must be a string"),
        ({"config": {"ExposedPorts": ["80/tcp"]}}, "config.ExposedPorts", "must be an object"),
        ({"config": {"ExposedPorts": {"80/tcp": None}}}, "config.ExposedPorts.80/tcp", "must be an object"),
        ({"config": {"Volumes": {"/data": 1}}}, "config.Volumes./data", "must be an object"),
        ({"config": {"Env": "A=1"}}, "config.Env", "must be an array"),
        ({"config": {"Entrypoint": [1]}}, "config.Entrypoint[0]", "must be a string"),
        ({"config": {"Labels": {"a": 1}}}, "config.Labels.a", "must be a string"),
        ({"config": {"ArgsEscaped": "yes"}}, "config.ArgsEscaped", "must be a boolean"),
        ({"config": []}, "config", "must be an object"),
        ({"history": [{"empty_layer": 1}]}, "history[0].empty_layer", "must be a boolean"),
        ({"history": [{"created": "now"}]}, "history[0].created", "RFC 3339"),
        ({"history": {}}, "history", "must be an array"),
    ],
)
def test_config_rules(over: dict[str, Any], field: str, problem: str) -> None:
    obj = {k: v for k, v in config(**over).items() if v is not None}
    rejects(im.parse_config, obj, field=field, problem=problem)


# ------------------------------------------------------------------ strict JSON


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"[]", "must be a JSON object"),
        (b"{", "not valid JSON"),
        (b'{"schemaVersion": 2, "schemaVersion": 2}', "duplicate key 'schemaVersion'"),
        (b'{"a": NaN}', "invalid JSON constant NaN"),
        (b"\xff", "not valid JSON"),
    ],
)
def test_strict_json(raw: bytes, problem: str) -> None:
    with pytest.raises(SpecError, match=problem):
        im.parse_manifest(raw)


def test_duplicate_annotation_keys_are_refused() -> None:
    raw = im.encode(manifest()).replace(b'"layers"', b'"annotations":{"k":"a","k":"b"},"layers"')
    with pytest.raises(SpecError, match="duplicate key 'k'"):
        im.parse_manifest(raw)


def test_layout_header() -> None:
    assert im.parse_layout_header(b'{"imageLayoutVersion": "1.0.0", "extra": 1}') == "1.0.0"
    rejects(im.parse_layout_header, b"{}", field="imageLayoutVersion", problem="is required")


def test_parsers_do_not_mutate_input() -> None:
    obj = manifest()
    before = copy.deepcopy(obj)
    im.parse_manifest(obj)
    assert obj == before
