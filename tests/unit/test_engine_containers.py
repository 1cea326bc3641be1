"""The engine's container records: atomic names, lookup as docker's, locked updates, restart decisions."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from hull.engine import monitor
from hull.engine.containers import Container, ContainerStore
from hull.engine.errors import AmbiguousContainer, ContainerNotFound, NameInUse
from hull.engine.options import MountRequest, ResolvedMount, RestartPolicy, RunOptions


def make(cid: str, name: str, **kw: object) -> Container:
    opts = RunOptions(image="localhost/busybox", command=["true"],
                      mounts=[MountRequest(type="volume", destination="/data", source="v1")])  # fmt: skip
    return Container(id=cid, name=name, image="localhost/busybox", image_id="sha256:" + "a" * 64,
                     image_digest="sha256:" + "b" * 64, created=1, options=opts, args=["true"],
                     snapshot=cid, snapshotter="overlayfs", **kw)  # fmt: skip


ID1 = "1" * 32 + "a" * 32
ID2 = "1" * 32 + "b" * 32


def test_record_round_trips_through_json(tmp_path: Path) -> None:
    store = ContainerStore(str(tmp_path))
    c = make(ID1, "web", mounts=[ResolvedMount(type="bind", destination="/data", source="/v", volume="v1")])
    c.options.restart = RestartPolicy(name="on-failure", maximum_retry_count=3)
    store.add(c)
    again = store.load(ID1)
    assert again.to_json() == c.to_json()
    assert again.options.restart.maximum_retry_count == 3
    assert again.mounts[0].volume == "v1"
    with open(tmp_path / ID1 / "container.json") as f:
        assert json.load(f)["name"] == "web"


def test_lookup_by_id_name_and_unique_prefix(tmp_path: Path) -> None:
    store = ContainerStore(str(tmp_path))
    store.add(make(ID1, "web"))
    store.add(make(ID2, "db"))
    assert store.find(ID1).name == "web"
    assert store.find("db").id == ID2
    assert store.find("/db").id == ID2  # docker's names carry a leading "/"
    assert store.find(ID2[:33]).name == "db"
    with pytest.raises(AmbiguousContainer):
        store.find("1111")
    with pytest.raises(ContainerNotFound, match="no such container: nope"):
        store.find("nope")


def test_a_name_is_taken_once(tmp_path: Path) -> None:
    store = ContainerStore(str(tmp_path))
    store.add(make(ID1, "web"))
    with pytest.raises(NameInUse, match='"web" is already in use by container 11111111'):
        store.add(make(ID2, "web"))
    assert store.ids() == [ID1]  # the loser left no directory


def test_a_name_whose_container_is_gone_is_free_again(tmp_path: Path) -> None:
    store = ContainerStore(str(tmp_path))
    c = make(ID1, "web")
    store.add(c)
    store.remove(c)
    store.add(make(ID2, "web"))
    assert store.find("web").id == ID2
    # A link left by a crash between the directory's removal and the link's:
    os.symlink("f" * 64, tmp_path / ".names" / "stale")
    store.add(make("c" * 64, "stale"))
    assert store.find("stale").id == "c" * 64


def _add(directory: str, cid: str, results: multiprocessing.Queue[str]) -> None:
    try:
        ContainerStore(directory).add(make(cid, "race"))
        results.put("won")
    except NameInUse:
        results.put("lost")


def test_concurrent_creates_with_one_name_have_one_winner(tmp_path: Path) -> None:
    results: multiprocessing.Queue[str] = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_add, args=(str(tmp_path), f"{i:064x}", results)) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes == ["lost"] * 5 + ["won"]
    assert len(ContainerStore(str(tmp_path)).ids()) == 1


def test_update_is_read_modify_write_under_the_lock(tmp_path: Path) -> None:
    store = ContainerStore(str(tmp_path))
    store.add(make(ID1, "web"))
    store.update(ID1, lambda c: setattr(c, "restart_count", c.restart_count + 1))
    store.update(ID1, lambda c: setattr(c, "restart_count", c.restart_count + 1))
    assert store.load(ID1).restart_count == 2
    assert not [n for n in os.listdir(tmp_path / ID1) if n.endswith(".tmp")]  # written aside, then renamed


@pytest.mark.parametrize(
    ("policy", "count", "code", "stopped", "want"),
    [
        ("no", 0, 1, False, False),
        ("always", 5, 0, False, True),
        ("always", 0, 0, True, False),  # `hull stop`: no restart
        ("unless-stopped", 0, 1, False, True),
        ("on-failure", 0, 0, False, False),  # exit 0 is not a failure
        ("on-failure", 1, 2, False, True),
        ("on-failure", 2, 2, False, False),  # on-failure:2 — two restarts, then it stays exited
    ],
)
def test_restart_policy_decisions(policy: str, count: int, code: int, stopped: bool, want: bool) -> None:
    c = make(ID1, "web", restart_count=count, stopped_by_user=stopped)
    c.options.restart = RestartPolicy(name=policy, maximum_retry_count=2 if policy == "on-failure" else 0)
    assert monitor._restart_wanted(c, code) is want
