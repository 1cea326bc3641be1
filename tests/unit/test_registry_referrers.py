"""The referrers API side that Debian's docker-registry (no API) cannot show: paging, the
OCI-Filters-Applied header, OCI-Subject on push; and the referrers tag schema's truncation rules.
Small HTTP servers on loopback (tests/unit/test_registry_client.py's)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hull.distribution import RegistryError
from hull.distribution.client import Registry
from hull.distribution.referrers import tag_schema
from hull.oci import digest as dg
from hull.oci import media_types as mt
from tests.unit import test_registry_client as _loopback
from tests.unit.test_registry_client import Answer, Seen

serve = _loopback.serve  # the loopback-server fixture

SUBJECT = "sha256:" + "a" * 64


def entry(digest_char: str, artifact_type: str) -> dict[str, Any]:
    return {"mediaType": mt.MANIFEST, "digest": "sha256:" + digest_char * 64, "size": 10, "artifactType": artifact_type}


def index(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": mt.INDEX, "manifests": list(entries)}).encode()


@pytest.mark.parametrize(
    ("digest", "tag"),
    [
        ("sha256:" + "a" * 64, "sha256-" + "a" * 64),
        ("sha512:" + "b" * 128, "sha512-" + "b" * 64),
        (
            # distribution-spec "Referrers Tag Schema": algorithm cut to 32, encoded to 64, '+' and '=' to '-'
            "test+algorithm+using+algorithm+separators+and+lots+of+characters+to+excercise+overall+truncation:"
            "alsoSome=InTheEncodedSectionToShowHyphenReplacementAndLotsAndLotsOfCharactersToExcerciseEncodedTruncation",
            "test-algorithm-using-algorithm-s-alsoSome-InTheEncodedSectionToShowHyphenReplacementAndLotsAndLot",
        ),
    ],
)
def test_referrers_tag_schema(digest: str, tag: str) -> None:
    assert tag_schema(digest) == tag


def test_the_api_is_paged_and_a_filter_the_registry_applied_is_trusted(serve: Any) -> None:
    def handle(req: Seen) -> Answer:
        if req.path == f"/v2/app/referrers/{SUBJECT}?artifactType=application%2Fvnd.x%2Bjson":
            link = f'</v2/app/referrers/{SUBJECT}?page=2>; rel="next"'
            return (
                200,
                {"Link": link, "OCI-Filters-Applied": "artifactType"},
                index(entry("1", "application/vnd.x+json")),
            )
        if req.path == f"/v2/app/referrers/{SUBJECT}?page=2":
            return 200, {}, index(entry("2", "application/vnd.x+json"))
        return 404, {}, b""

    server = serve(handle)
    doc = Registry(server.host).referrers("app", SUBJECT, "application/vnd.x+json")
    assert [d["digest"][-1] for d in doc["manifests"]] == ["1", "2"]
    assert all(req.headers["Accept"] == mt.INDEX for req in server.seen)


def test_a_filter_the_registry_ignored_is_applied_by_the_client(serve: Any) -> None:
    def handle(req: Seen) -> Answer:
        if req.path.startswith(f"/v2/app/referrers/{SUBJECT}"):
            return 200, {}, index(entry("1", "application/sbom"), entry("2", "application/sig"))
        return 404, {}, b""

    server = serve(handle)
    doc = Registry(server.host).referrers("app", SUBJECT, "application/sig")
    assert [d["digest"][-1] for d in doc["manifests"]] == ["2"]
    assert len(Registry(server.host).referrers("app", SUBJECT)["manifests"]) == 2


def artifact() -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.MANIFEST,
            "config": {"mediaType": "application/vnd.x.config", "digest": "sha256:" + "c" * 64, "size": 2},
            "layers": [],
            "subject": {"mediaType": mt.MANIFEST, "digest": SUBJECT, "size": 5},
        }
    ).encode()


def test_a_registry_answering_oci_subject_keeps_the_list_itself(serve: Any) -> None:
    server = serve(lambda req: (201, {"OCI-Subject": SUBJECT}, b""))
    data = artifact()
    Registry(server.host).put_manifest("app", str(dg.of(data)), data, mt.MANIFEST)
    assert [(r.method, r.path) for r in server.seen] == [("PUT", f"/v2/app/manifests/{dg.of(data)}")]


def test_without_oci_subject_the_pusher_adds_itself_to_the_referrers_tag(serve: Any) -> None:
    def handle(req: Seen) -> Answer:
        return (201, {}, b"") if req.method == "PUT" else (404, {}, b"")

    server = serve(handle)
    data = artifact()
    Registry(server.host).put_manifest("app", str(dg.of(data)), data, mt.MANIFEST)
    put = server.seen[-1]
    assert (put.method, put.path) == ("PUT", f"/v2/app/manifests/{tag_schema(SUBJECT)}")
    assert put.headers["Content-Type"] == mt.INDEX
    # No artifactType in the manifest: the config's media type stands in ("Listing Referrers").
    assert json.loads(put.body)["manifests"] == [
        {
            "mediaType": mt.MANIFEST,
            "digest": str(dg.of(data)),
            "size": len(data),
            "artifactType": "application/vnd.x.config",
        }
    ]


def test_a_referrers_tag_that_is_not_an_index_is_refused(serve: Any) -> None:
    bogus = json.dumps({"schemaVersion": 2, "mediaType": mt.MANIFEST, "config": {}, "layers": []}).encode()

    def handle(req: Seen) -> Answer:
        if req.path == f"/v2/app/manifests/{tag_schema(SUBJECT)}":
            return 200, {"Content-Type": mt.MANIFEST}, bogus
        return 404, {}, b""

    server = serve(handle)
    with pytest.raises(RegistryError, match="not the referrers image index"):
        Registry(server.host).referrers("app", SUBJECT)
