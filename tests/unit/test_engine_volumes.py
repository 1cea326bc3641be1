"""engine.volumes: docker's local volumes (create, inspect document, list, rm, prune, copy-up).

Owners in copy-up are checked for real when run as root (as CI does); as another user the tree is copied
with the user's own files, which still checks modes, links, times and the "only into an empty volume" rule.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import stat
from pathlib import Path

import pytest

from hull.engine.errors import EngineError, InvalidVolumeName, VolumeError, VolumeInUse, VolumeNotFound
from hull.engine.volumes import ANONYMOUS_LABEL, Volume, VolumeStore, copy_up

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)")


def test_create_writes_dockers_inspect_document(tmp_path: Path) -> None:
    store = VolumeStore(str(tmp_path))
    vol = store.create("data", labels={"app": "web"})
    folder = tmp_path / "volumes" / "data"
    assert vol.mountpoint == str(folder / "_data")
    assert (folder / "_data").is_dir()
    assert stat.S_IMODE((folder / "_data").stat().st_mode) == 0o755
    doc = json.loads((folder / "volume.json").read_text())
    assert sorted(doc) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"]
    assert doc["Name"] == "data" and doc["Driver"] == "local" and doc["Scope"] == "local"
    assert doc["Mountpoint"] == str(folder / "_data")
    assert doc["Labels"] == {"app": "web"} and doc["Options"] == {}
    assert RFC3339.fullmatch(doc["CreatedAt"]), doc["CreatedAt"]
    assert store.get("data").inspect() == doc
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_anonymous_volume_gets_64_hex_digits(tmp_path: Path) -> None:
    store = VolumeStore(str(tmp_path))
    a = store.create(labels={ANONYMOUS_LABEL: ""})
    b = store.create()
    assert re.fullmatch(r"[0-9a-f]{64}", a.name) and re.fullmatch(r"[0-9a-f]{64}", b.name)
    assert a.name != b.name
    assert {v.name for v in store.list()} == {a.name, b.name}


def test_creating_an_existing_name_returns_it(tmp_path: Path) -> None:
    store = VolumeStore(str(tmp_path))
    first = store.create("cache", labels={"v": "1"})
    (Path(first.mountpoint) / "kept").write_text("x")
    again = store.create("cache", labels={"v": "2"})
    assert again.inspect() == first.inspect()  # docker keeps the first volume, labels and all
    assert (Path(again.mountpoint) / "kept").read_text() == "x"


@pytest.mark.parametrize("name", ["a", "-x", ".hidden", "_x", "has space", "a/b", "..", "émoji", "x:y"])
def test_invalid_names_are_refused_with_dockers_message(tmp_path: Path, name: str) -> None:
    store = VolumeStore(str(tmp_path))
    with pytest.raises(InvalidVolumeName) as err:
        store.create(name)
    assert str(err.value) == (
        f'create {name}: "{name}" includes invalid characters for a local volume name, only '
        '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'
    )
    assert isinstance(err.value, VolumeError) and isinstance(err.value, EngineError)
    assert store.list() == []


@pytest.mark.parametrize("name", ["ab", "A1", "9.9", "x_y-z.w", "a" * 200])
def test_valid_names(tmp_path: Path, name: str) -> None:
    assert VolumeStore(str(tmp_path)).create(name).name == name


def test_get_and_remove_missing(tmp_path: Path) -> None:
    store = VolumeStore(str(tmp_path))
    with pytest.raises(VolumeNotFound, match=r"^get nope: no such volume$"):
        store.get("nope")
    with pytest.raises(VolumeNotFound):
        store.remove("nope")
    store.remove("nope", force=True)  # docker volume rm -f: a missing volume is no error
    with pytest.raises(VolumeNotFound):
        store.get("../volumes")


def test_list_ignores_half_created_and_lock(tmp_path: Path) -> None:
    store = VolumeStore(str(tmp_path))
    store.create("zz")
    store.create("aa")
    (tmp_path / "volumes" / "half" / "_data").mkdir(parents=True)  # a create killed before volume.json
    assert [v.name for v in store.list()] == ["aa", "zz"]
    with pytest.raises(VolumeNotFound):
        store.get("half")
    assert store.create("half").name == "half"  # the next create completes it
    assert [v.name for v in store.list()] == ["aa", "half", "zz"]


def test_remove_in_use_fails_with_dockers_message(tmp_path: Path) -> None:
    store = VolumeStore(str(tmp_path))
    store.create("db")
    users = {"db": ["c0ffee", "beef01"]}
    with pytest.raises(VolumeInUse) as err:
        store.remove("db", in_use=lambda n: users.get(n, []))
    assert str(err.value) == "remove db: volume is in use - [c0ffee beef01]"
    assert err.value.containers == ["c0ffee", "beef01"]
    with pytest.raises(VolumeInUse):
        store.remove("db", force=True, in_use=lambda n: users.get(n, []))  # docker: not even with -f
    assert store.get("db").name == "db"
    store.remove("db", in_use=lambda n: [])
    assert not (tmp_path / "volumes" / "db").exists()
    assert [p.name for p in (tmp_path / "volumes").iterdir()] == [".lock"]


def test_prune_removes_unused_and_reports_bytes(tmp_path: Path) -> None:
    store = VolumeStore(str(tmp_path))
    used = store.create("used")
    free = store.create("free")
    anon = store.create(labels={ANONYMOUS_LABEL: ""})
    (Path(free.mountpoint) / "blob").write_bytes(b"x" * 5000)
    os.link(Path(free.mountpoint) / "blob", Path(free.mountpoint) / "blob-link")  # counted once
    (Path(free.mountpoint) / "sub").mkdir()
    (Path(free.mountpoint) / "sub" / "small").write_bytes(b"y" * 7)
    (Path(anon.mountpoint) / "f").write_bytes(b"z" * 100)
    (Path(used.mountpoint) / "f").write_bytes(b"u" * 100)
    in_use = lambda n: ["c1"] if n == "used" else []  # noqa: E731
    removed, reclaimed = store.prune(in_use, anonymous_only=True)
    assert (removed, reclaimed) == ([anon.name], 100)
    removed, reclaimed = store.prune(in_use)
    assert (removed, reclaimed) == (["free"], 5007)
    assert [v.name for v in store.list()] == ["used"]


def _create_many(root: str, prefix: str) -> None:
    store = VolumeStore(root)
    for i in range(30):
        store.create(f"{prefix}{i}")
        store.create("shared")


def test_concurrent_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_create_many, args=(str(tmp_path), f"p{n}-")) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    names = [v.name for v in VolumeStore(str(tmp_path)).list()]
    assert len(names) == 4 * 30 + 1 and "shared" in names


def test_lock_is_reentrant(tmp_path: Path) -> None:
    store = VolumeStore(str(tmp_path))
    with store.lock():
        vol = store.create("inner")  # would deadlock on a second flock of the same file
        store.remove(vol.name)
    assert store.list() == []


def _source_tree(src: Path) -> None:
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "conf").write_text("key=value\n")
    os.chmod(src / "etc" / "conf", 0o640)
    (src / "link").symlink_to("etc/conf")
    (src / "dangling").symlink_to("/nonexistent/target")
    os.link(src / "etc" / "conf", src / "hard")
    (src / "run").mkdir()
    os.mkfifo(src / "run" / "fifo", 0o600)
    (src / "suid").write_text("#!/bin/sh\n")
    if os.geteuid() == 0:
        os.chown(src / "suid", 1000, 1000)
    os.chmod(src / "suid", 0o4755)
    os.chmod(src, 0o750)
    os.utime(src / "etc", (1_000_000_000, 1_000_000_000))
    if os.geteuid() == 0:
        os.chown(src, 999, 998)
        os.chown(src / "etc" / "conf", 33, 33)
        os.chown(src / "link", 44, 44, follow_symlinks=False)


def test_copy_up_copies_into_an_empty_volume(tmp_path: Path) -> None:
    src = tmp_path / "image" / "var" / "lib" / "app"
    _source_tree(src)
    store = VolumeStore(str(tmp_path / "root"))
    vol = store.create("appdata")
    assert store.copy_up(vol, str(src)) is True
    data = Path(vol.mountpoint)
    assert (data / "etc" / "conf").read_text() == "key=value\n"
    assert stat.S_IMODE((data / "etc" / "conf").stat().st_mode) == 0o640
    assert os.readlink(data / "link") == "etc/conf"
    assert os.readlink(data / "dangling") == "/nonexistent/target"
    assert (data / "hard").stat().st_ino == (data / "etc" / "conf").stat().st_ino
    assert stat.S_ISFIFO((data / "run" / "fifo").lstat().st_mode)
    assert stat.S_IMODE((data / "suid").stat().st_mode) == 0o4755  # chmod after chown keeps setuid
    assert (data / "etc").stat().st_mtime == 1_000_000_000  # a directory's time set after its content
    assert stat.S_IMODE(data.stat().st_mode) == 0o750  # the volume takes the image directory's mode
    if os.geteuid() == 0:
        assert (data.stat().st_uid, data.stat().st_gid) == (999, 998)  # and its owner
        assert (data / "etc" / "conf").stat().st_uid == 33
        assert os.lstat(data / "link").st_uid == 44
        assert (data / "suid").stat().st_uid == 1000
    else:
        assert (data / "etc" / "conf").stat().st_uid == os.geteuid()


def test_copy_up_leaves_a_used_volume_alone(tmp_path: Path) -> None:
    src = tmp_path / "image"
    _source_tree(src)
    store = VolumeStore(str(tmp_path / "root"))
    vol = store.create("appdata")
    (Path(vol.mountpoint) / "mine").write_text("user data\n")
    assert store.copy_up(vol, str(src)) is False
    assert sorted(os.listdir(vol.mountpoint)) == ["mine"]


def test_copy_up_of_a_missing_or_non_directory_source(tmp_path: Path) -> None:
    store = VolumeStore(str(tmp_path / "root"))
    vol = store.create("v1")
    assert copy_up(vol, str(tmp_path / "absent")) is False
    (tmp_path / "file").write_text("x")
    assert copy_up(vol, str(tmp_path / "file")) is False
    (tmp_path / "dirlink").symlink_to(tmp_path)
    assert copy_up(vol, str(tmp_path / "dirlink")) is False  # never followed out of the image
    assert os.listdir(vol.mountpoint) == []


def test_volume_round_trips_through_its_document() -> None:
    vol = Volume(name="x1", mountpoint="/v/x1/_data", created_at="2026-01-01T00:00:00Z", labels={"a": "b"})
    assert Volume.from_inspect(vol.inspect()).inspect() == vol.inspect()


def test_copy_up_never_follows_what_a_container_plants_in_the_volume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container already using the (empty) volume swaps a name for a symlink to a host directory while
    the image's content is copied: the copy is staged aside and renamed in, so nothing lands outside."""
    from hull.engine import volumes

    vol = volumes.VolumeStore(str(tmp_path / "root")).create("shared")
    src = tmp_path / "image-dir"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("from the image")
    outside = tmp_path / "host-dir"
    outside.mkdir()
    real_copy = volumes.copy_tree

    def racing(source: str, dest: str) -> None:
        real_copy(source, dest)
        os.symlink(str(outside), os.path.join(vol.mountpoint, "sub"))  # the container's move, meanwhile

    monkeypatch.setattr(volumes, "copy_tree", racing)
    assert volumes.copy_up(vol, str(src))
    assert os.listdir(outside) == []
    assert os.path.islink(os.path.join(vol.mountpoint, "sub"))  # its entry stays; nothing written through it
    assert not os.path.exists(os.path.join(os.path.dirname(vol.mountpoint), ".copy-up"))
