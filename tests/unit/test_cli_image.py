"""``hull`` image commands through main(): output shapes, exit codes, one error line; no root needed."""

from __future__ import annotations

import io
import json
import re
import sys
import tarfile
from pathlib import Path

import pytest

from hull.cli import main as hull
from hull.cli.image import human_duration, human_size, parse_time


def rootfs_tar(path: Path, content: bytes = b"box\n") -> Path:
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("etc/hostname")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return path


class Hull:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys

    def __call__(self, *args: str, code: int = 0) -> str:
        self.capsys.readouterr()
        got = hull.main(["--root", str(self.root), *args])
        out, err = self.capsys.readouterr()
        assert got == code, f"hull {' '.join(args)} exited {got}: {err}"
        if code:
            assert out == "" or args[:2] == ("image", "inspect")
            assert err.count("\n") == 1 and err.startswith("Error: "), err
            return err
        return out


@pytest.fixture
def h(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Hull:
    return Hull(tmp_path / "root", capsys)


@pytest.fixture
def tar(tmp_path: Path) -> Path:
    return rootfs_tar(tmp_path / "rootfs.tar")


def test_import_prints_the_id_and_images_lists_it_as_docker(h: Hull, tar: Path) -> None:
    image_id = h("image", "import", str(tar), "localhost/box:1").strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    lines = h("images").splitlines()
    assert re.split(r" {3,}", lines[0]) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    cells = re.split(r" {3,}", lines[1])
    assert cells[:3] == ["localhost/box", "1", image_id[7:19]]
    assert cells[3].endswith(" ago") and re.fullmatch(r"[\d.]+[kM]?B", cells[4])
    # columns line up under their headers, as text/tabwriter pads them
    assert lines[1].index(image_id[7:19]) == lines[0].index("IMAGE ID")
    assert h("image", "ls", "-q") == f"{image_id[7:19]}\n"
    assert h("images", "--no-trunc", "--quiet") == f"{image_id}\n"


def test_images_json_is_podmans_array(h: Hull, tar: Path) -> None:
    image_id = h("import", str(tar), "box").strip()
    (entry,) = json.loads(h("images", "--format", "json"))
    assert entry["Id"] == image_id[7:] and entry["RepoTags"] == ["box:latest"]
    assert entry["Size"] > 0 and entry["Created"] > 1_600_000_000


def test_inspect_is_a_json_array_as_docker_inspect(h: Hull, tar: Path) -> None:
    image_id = h("image", "import", "-c", "CMD /bin/true", "-c", "ENV A=1", str(tar), "box:1").strip()
    h("image", "tag", "box:1", "box:2")
    (doc,) = json.loads(h("image", "inspect", "box:2"))
    assert doc["Id"] == image_id and sorted(doc["RepoTags"]) == ["box:1", "box:2"]
    assert doc["Config"] == {"Cmd": ["/bin/sh", "-c", "/bin/true"], "Env": ["A=1"]}
    assert doc["Os"] == "linux" and doc["Architecture"] and doc["Size"] > 0
    assert doc["RootFS"]["Type"] == "layers" and len(doc["RootFS"]["Layers"]) == 1
    assert doc["RepoDigests"][0].startswith("box@sha256:")
    # by ID too; an unknown one is an error after the others are printed
    err = h("image", "inspect", image_id[7:19], "nope", code=1)
    assert err == "Error: nope: image not known\n"


def test_rm_untags_then_deletes_the_image(h: Hull, tar: Path, tmp_path: Path) -> None:
    image_id = h("import", str(tar), "box:1").strip()
    h("tag", image_id, "box:2")
    assert "multiple repositories" in h("image", "rm", image_id, code=1)
    assert h("image", "rm", "box:1") == "Untagged: box:1\n"
    assert h("images", "-q") == f"{image_id[7:19]}\n"
    assert h("rmi", "box:2") == f"Untagged: box:2\nDeleted: {image_id}\n"
    assert h("images", "-q") == ""
    blobs = tmp_path / "root" / "images" / "blobs" / "sha256"
    assert list(blobs.iterdir()) == []  # the image's blobs went with its last name
    assert h("image", "rm", "box:1", code=1) == "Error: box:1: image not known\n"


def test_rm_force_by_id_removes_every_name(h: Hull, tar: Path) -> None:
    image_id = h("import", str(tar), "box:1").strip()
    h("tag", "box:1", "box:2")
    out = h("image", "rm", "-f", image_id[7:19])
    assert sorted(out.splitlines()) == sorted(["Untagged: box:1", "Untagged: box:2", f"Deleted: {image_id}"])


def test_prune_removes_unnamed_images_and_stray_blobs(h: Hull, tar: Path, tmp_path: Path) -> None:
    h("import", str(tar))  # no name: kept under its manifest digest
    kept = h("import", str(rootfs_tar(tmp_path / "b.tar", b"other\n")), "kept").strip()
    assert "<none>" in h("images")
    out = h("image", "prune")
    assert out.startswith("Deleted Images:\ndeleted: sha256:") and out.endswith("B\n")
    assert re.search(r"Total reclaimed space: [\d.]+[kM]?B$", out.strip())
    assert h("images", "-q") == f"{kept[7:19]}\n"
    assert h("image", "prune").strip() == "Total reclaimed space: 0B"


def test_save_and_load_both_formats(h: Hull, tar: Path, tmp_path: Path) -> None:
    image_id = h("import", str(tar), "localhost/box:1").strip()
    for fmt in ("oci-archive", "docker-archive"):
        out = tmp_path / f"{fmt}.tar"
        h("image", "save", "--format", fmt, "-o", str(out), "box:1")
        other = Hull(tmp_path / f"root-{fmt}", h.capsys)
        assert other("image", "load", "-i", str(out)) == "Loaded image: localhost/box:1\n"
        assert other("images", "--no-trunc", "-q") == f"{image_id}\n"


def test_load_from_stdin(h: Hull, tar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h("import", str(tar), "box")
    out = tmp_path / "a.tar"
    h("save", "-o", str(out), "box")
    other = Hull(tmp_path / "other", h.capsys)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(out.read_bytes())))
    assert other("load") == "Loaded image: box:latest\n"


def test_errors_are_one_line_with_podmans_exit_codes(h: Hull, tar: Path, tmp_path: Path) -> None:
    assert "image not known" in h("image", "inspect", "nothing", code=1)
    assert "lowercase" in h("import", str(tar), "Box", code=1)
    assert "no such file" in h("import", str(tmp_path / "missing.tar"), "box", code=1)
    assert "not a tar archive" in h("image", "import", __file__, "box", code=1)
    assert "unknown --format" in h("save", "--format", "zip", "-o", str(tmp_path / "x"), "box", code=1)
    junk = tmp_path / "junk"
    junk.write_bytes(b"\0" * 10)
    assert "archive" in h("load", "-i", str(junk), code=1)
    assert h("images", "--bogus", code=125).startswith("Error: unknown flag")
    assert h("frobnicate", code=125).startswith("Error: argument group: invalid choice")
    assert h("image", "tag", "x", code=125).startswith("Error: ")
    assert h("images", "-q") == ""  # nothing half-made is visible


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert hull.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("hull version ")


def test_default_root_follows_podmans_graphroot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hull.os, "geteuid", lambda: 0)
    assert hull.default_root() == "/var/lib/hull"
    monkeypatch.setattr(hull.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", "/home/u/.data")
    assert hull.default_root() == "/home/u/.data/hull"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
     (3599, "59 minutes"), (3600, "About an hour"), (5 * 3600, "5 hours"), (3 * 86400, "3 days"),
     (20 * 86400, "2 weeks"), (90 * 86400, "3 months"), (800 * 86400, "2 years")],
)  # fmt: skip
def test_human_duration_is_go_units(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_human_size_and_times() -> None:
    assert [human_size(n) for n in (0, 999, 1000, 2_131_015, 5 * 10**9)] == ["0B", "999B", "1kB", "2.13MB", "5GB"]
    assert parse_time("2026-11-26T08:22:30.324073051Z") == pytest.approx(1795681350.324073)
    assert parse_time("") is None and parse_time("yesterday") is None


def test_short_names_find_what_a_pull_stores(h: Hull, tar: Path) -> None:
    # `hull pull busybox` stores docker.io/library/busybox:latest (docker's normalisation).
    image_id = h("image", "import", str(tar), "docker.io/library/box:1").strip()
    h("image", "import", str(tar), "docker.io/someorg/tool:2")
    assert json.loads(h("image", "inspect", "box:1"))[0]["Id"] == image_id
    assert json.loads(h("image", "inspect", "someorg/tool:2"))[0]["RepoTags"] == ["docker.io/someorg/tool:2"]
