"""``hull volume ...`` end to end: volumes made, used by real containers, listed, refused while in use, pruned."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.integration import engine_support
from tests.integration.engine_support import BUSYBOX, Engine

engine = engine_support.engine  # the fixture: a private engine, leak-checked

ANON = "com.docker.volume.anonymous"


def image_with_volume(engine: Engine, tmp_path: Path, name: str = "localhost/withvol") -> str:
    """busybox plus ``VOLUME /data`` (seeded with a file), made with hull import."""
    bundle = tmp_path / "bb"
    engine("unpack", BUSYBOX, str(bundle))
    (bundle / "rootfs" / "data").mkdir()
    (bundle / "rootfs" / "data" / "seed").write_text("seeded\n")
    engine("import", "-c", "VOLUME /data", "-c", "ENV PATH=/bin", str(bundle / "rootfs"), name)
    return name


def volume_names(engine: Engine) -> list[str]:
    return engine("volume", "ls", "-q").stdout.split()


def test_named_volume_keeps_data_across_containers(engine: Engine) -> None:
    assert engine("volume", "create", "--label", "app=web", "data").stdout == "data\n"
    engine("run", "--rm", "-v", "data:/data", BUSYBOX, "sh", "-c", "echo kept > /data/f")
    out = engine("run", "--rm", "-v", "data:/data", BUSYBOX, "cat", "/data/f").stdout
    assert out == "kept\n"
    (doc,) = json.loads(engine("volume", "inspect", "data").stdout)
    assert doc["Name"] == "data" and doc["Driver"] == "local" and doc["Scope"] == "local"
    assert doc["Labels"] == {"app": "web"}
    assert Path(doc["Mountpoint"], "f").read_text() == "kept\n"
    assert engine("volume", "inspect", "--format", "{{.Name}} {{.Labels.app}}", "data").stdout == "data web\n"


def test_ls_table_quiet_filters_and_json(engine: Engine) -> None:
    engine("volume", "create", "--label", "tier=db", "beta")
    engine("volume", "create", "alpha")
    table = engine("volume", "ls").stdout.splitlines()
    assert table[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert [line.split() for line in table[1:]] == [["local", "alpha"], ["local", "beta"]]  # sorted by name
    assert volume_names(engine) == ["alpha", "beta"]
    assert engine("volume", "ls", "-q", "--filter", "label=tier=db").stdout == "beta\n"
    assert engine("volume", "ls", "-q", "--filter", "name=lph").stdout == "alpha\n"
    rows = [json.loads(line) for line in engine("volume", "ls", "--format", "json").stdout.splitlines()]
    assert [r["Name"] for r in rows] == ["alpha", "beta"]
    assert rows[1]["Labels"] == "tier=db" and rows[1]["Driver"] == "local"
    bad = engine("volume", "ls", "--filter", "colour=red", check=False)
    assert bad.returncode == 1 and "invalid filter 'colour'" in bad.stderr


def test_unnamed_create_makes_an_anonymous_volume(engine: Engine) -> None:
    name = engine("volume", "create").stdout.strip()
    assert len(name) == 64 and all(c in "0123456789abcdef" for c in name)
    (doc,) = json.loads(engine("volume", "inspect", name).stdout)
    assert doc["Labels"] == {ANON: ""}


def test_image_volume_gets_an_anonymous_volume_that_rm_v_removes(engine: Engine, tmp_path: Path) -> None:
    image = image_with_volume(engine, tmp_path)
    engine("create", "--name", "keep", image, "true")
    engine("create", "--name", "drop", image, "cat", "/data/seed")
    anon = {json.loads(engine("volume", "inspect", n).stdout)[0]["Name"] for n in volume_names(engine)}
    assert len(anon) == 2
    drop = engine.inspect("drop")
    (mount,) = drop["Mounts"]
    assert mount["Type"] == "volume" and mount["Destination"] == "/data" and mount["Name"] in anon
    assert Path(mount["Source"], "seed").read_text() == "seeded\n"  # copied up from the image
    engine("rm", "-v", "drop")
    assert mount["Name"] not in volume_names(engine)
    engine("rm", "keep")  # without -v the anonymous volume stays, as docker's
    assert len(volume_names(engine)) == 1


def test_rm_of_a_volume_in_use_names_the_containers(engine: Engine) -> None:
    engine("volume", "create", "shared")
    first = engine("create", "-v", "shared:/s", BUSYBOX, "true").stdout.strip()
    engine("run", "--name", "exited", "-v", "shared:/s", BUSYBOX, "true")
    second = engine.inspect("exited")["Id"]
    proc = engine("volume", "rm", "shared", check=False)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "remove shared: volume is in use - [" in proc.stderr
    assert first in proc.stderr and second in proc.stderr  # any state counts: created and exited
    assert "shared" in volume_names(engine)
    engine("rm", "-f", first, second)
    assert engine("volume", "rm", "shared").stdout == "shared\n"
    assert volume_names(engine) == []


def test_rm_of_a_missing_volume(engine: Engine) -> None:
    proc = engine("volume", "rm", "nothing", check=False)
    assert proc.returncode == 1 and "no such volume" in proc.stderr
    assert engine("volume", "rm", "-f", "nothing").returncode == 0


def test_prune_takes_unused_anonymous_volumes_unless_all(engine: Engine, tmp_path: Path) -> None:
    image = image_with_volume(engine, tmp_path)
    engine("volume", "create", "named")
    engine("volume", "create", "inuse")
    engine("create", "--name", "user", "-v", "inuse:/x", BUSYBOX, "true")
    engine("run", "--name", "gone", image, "true")
    (anon,) = [m["Name"] for m in engine.inspect("gone")["Mounts"]]
    size = Path(engine.inspect("gone")["Mounts"][0]["Source"], "seed").stat().st_size
    engine("rm", "gone")  # its anonymous volume stays, unused
    out = engine("volume", "prune", "-f").stdout
    assert out == f"Deleted Volumes:\n{anon}\n\nTotal reclaimed space: {size}B\n"
    assert sorted(volume_names(engine)) == ["inuse", "named"]
    assert engine("volume", "prune", "-f").stdout == "Total reclaimed space: 0B\n"
    out = engine("volume", "prune", "-f", "-a").stdout
    assert out.startswith("Deleted Volumes:\nnamed\n\nTotal reclaimed space: ")
    assert volume_names(engine) == ["inuse"]  # in use by a created container: kept
    assert os.path.isdir(json.loads(engine("volume", "inspect", "inuse").stdout)[0]["Mountpoint"])


def test_prune_label_filter(engine: Engine) -> None:
    engine("volume", "create", "--label", "keep=yes", "a1")
    engine("volume", "create", "--label", "keep=no", "b1")
    out = engine("volume", "prune", "-a", "--filter", "label=keep=no").stdout
    assert out.startswith("Deleted Volumes:\nb1\n")
    out = engine("volume", "prune", "-a", "--filter", "label!=keep=yes").stdout
    assert out == "Total reclaimed space: 0B\n"
    assert volume_names(engine) == ["a1"]
