"""Container state under --root: IDs, create/open, records, locking, and the status derived from /proc."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.runtime.errors import ContainerExists, ContainerNotFound, InvalidContainerID
from hull.runtime.store import Record, Store, is_alive, process_start_time, validate_id


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "state"))


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def _record(container_id: str = "c1", **kw: object) -> Record:
    fields: dict[str, object] = {
        "id": container_id,
        "bundle": "/b",
        "rootfs": "/b/rootfs",
        "created": "2024-01-01T00:00:00Z",
        "status": "created",
        "config": {"ociVersion": "1.1.0"},
    }
    fields.update(kw)
    return Record(**fields)  # type: ignore[arg-type]


def _dead_pid() -> tuple[int, int]:
    """The pid and start time of a process that has exited and been reaped."""
    proc = subprocess.Popen(["sleep", "60"])
    start = process_start_time(proc.pid)
    assert start is not None
    proc.kill()
    proc.wait()
    return proc.pid, start


# --- IDs --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("container_id", ["c1", "my-container", "a.b", "A_b+c-d.e", "0", "...", "x" * 200])
def test_valid_ids_are_accepted(store: Store, container_id: str) -> None:
    validate_id(container_id)
    with store.create(container_id) as cdir:
        assert cdir.path == os.path.join(store.root, container_id)


@pytest.mark.parametrize(
    "container_id",
    ["", ".", "..", "../x", "a/b", "/abs", "a b", "abc\n", "tab\t", "é", "ünïcode", "a\x00b", "semi;colon", "a*"],
    ids=repr,
)
def test_invalid_ids_are_rejected_before_touching_the_disk(store: Store, tmp_path: Path, container_id: str) -> None:
    with pytest.raises(InvalidContainerID) as info:
        store.create(container_id)
    with pytest.raises(InvalidContainerID):
        store.open(container_id)

    assert str(info.value) == f"invalid container ID format: {container_id}"
    state = tmp_path / "state"
    assert os.listdir(tmp_path) in ([], ["state"])  # nothing created next to the root ("../x")
    assert not state.exists() or os.listdir(state) == []


# --- create, open, read, write, remove --------------------------------------------------------------------------------


def test_create_makes_the_root_and_a_private_container_directory(store: Store) -> None:
    with store.create("c1") as cdir:
        assert os.path.isdir(cdir.path)
        assert os.stat(store.root).st_mode & 0o077 == 0  # state root is not readable by others
        assert cdir.start_socket == os.path.join(cdir.path, "start.sock")


def test_create_twice_raises_container_exists(store: Store) -> None:
    store.create("c1").close()

    with pytest.raises(ContainerExists) as info:
        store.create("c1")

    assert str(info.value) == "container with given ID already exists"


def test_open_missing_container_raises_not_found(store: Store) -> None:
    with pytest.raises(ContainerNotFound) as info:
        store.open("nope")

    assert str(info.value) == "container does not exist"


def test_open_when_root_does_not_exist_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(ContainerNotFound):
        Store(str(tmp_path / "never-created")).open("c1")


def test_record_written_is_read_back_equal(store: Store) -> None:
    record = _record(pid=1234, pid_start=99, annotations={"org.example": "yes"}, config={"process": {"args": ["sh"]}})
    with store.create("c1") as cdir:
        cdir.write(record)

    with store.open("c1") as cdir:
        assert cdir.read() == record


def test_write_replaces_the_previous_record(store: Store) -> None:
    with store.create("c1") as cdir:
        cdir.write(_record(status="creating"))
        cdir.write(_record(status="created", pid=5))

    with store.open("c1") as cdir:
        got = cdir.read()
    assert (got.status, got.pid) == ("created", 5)
    assert not any(name.endswith(".tmp") for name in os.listdir(os.path.join(store.root, "c1")))


def test_directory_without_state_is_not_a_container(store: Store) -> None:
    store.create("half").close()

    with store.open("half") as cdir, pytest.raises(ContainerNotFound):
        cdir.read()
    assert store.ids() == []


def test_ids_lists_containers_with_state_sorted(store: Store) -> None:
    assert store.ids() == []
    for name in ("zeta", "alpha", "mid"):
        with store.create(name) as cdir:
            cdir.write(_record(name))
    store.create("no-state-yet").close()

    assert store.ids() == ["alpha", "mid", "zeta"]


def test_remove_deletes_the_container(store: Store) -> None:
    with store.create("c1") as cdir:
        cdir.write(_record())
        Path(cdir.start_socket).touch()
    cdir = store.open("c1")

    cdir.remove()

    assert not os.path.exists(os.path.join(store.root, "c1"))
    assert store.ids() == []
    with pytest.raises(ContainerNotFound):
        store.open("c1")
    store.create("c1").close()  # the ID is free again


# --- locking ----------------------------------------------------------------------------------------------------------


def _lock_is_free(path: str) -> bool:
    fd = os.open(os.path.join(path, "lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_an_open_container_is_locked_until_closed(store: Store) -> None:
    cdir = store.create("c1")
    assert not _lock_is_free(cdir.path)

    cdir.close()

    assert _lock_is_free(cdir.path)


def test_second_open_waits_for_the_first_to_close(store: Store) -> None:
    with store.create("c1") as cdir:
        cdir.write(_record())
    first = store.open("c1")
    opened = threading.Event()

    def second() -> None:
        with store.open("c1"):
            opened.set()

    thread = threading.Thread(target=second, daemon=True)
    thread.start()
    assert not opened.wait(0.3)

    first.close()

    assert opened.wait(5)
    thread.join(5)


def test_different_containers_do_not_wait_for_each_other(store: Store) -> None:
    with store.create("b") as b:
        b.write(_record("b"))
    opened = threading.Event()

    def open_b() -> None:
        with store.open("b"):
            opened.set()

    with store.create("a"):
        thread = threading.Thread(target=open_b, daemon=True)
        thread.start()
        assert opened.wait(5)
    thread.join(5)


# --- process_start_time / is_alive ------------------------------------------------------------------------------------


def test_process_start_time_of_this_process_is_stable() -> None:
    first = process_start_time(os.getpid())

    assert isinstance(first, int) and first > 0
    assert process_start_time(os.getpid()) == first
    assert is_alive(os.getpid(), first)


def test_process_start_time_of_a_missing_process_is_none() -> None:
    pid, _ = _dead_pid()

    assert process_start_time(pid) is None


def test_process_start_time_of_a_zombie_is_none() -> None:
    proc = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 5
        while Path(f"/proc/{proc.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z":
            assert time.monotonic() < deadline, "child did not become a zombie"
            time.sleep(0.01)

        assert process_start_time(proc.pid) is None
    finally:
        proc.wait()


def test_process_name_with_parentheses_and_spaces_does_not_confuse_the_parser(tmp_path: Path) -> None:
    # proc(5): comm is in parentheses and may itself contain ") " — fields are counted from the last ')'.
    tricky = tmp_path / ") R 1 2 3 ("
    shutil.copy("/bin/sleep", tricky)
    reference = subprocess.Popen(["sleep", "60"])
    proc = subprocess.Popen([str(tricky), "60"])
    try:
        ref_start = process_start_time(reference.pid)
        start = process_start_time(proc.pid)
        assert ref_start is not None and start is not None
        assert 0 <= start - ref_start < 500  # clock ticks: started right after the reference
        assert is_alive(proc.pid, start)
    finally:
        for p in (reference, proc):
            p.kill()
            p.wait()


def test_is_alive_rejects_a_recycled_pid_and_pid_zero() -> None:
    start = process_start_time(os.getpid())
    assert start is not None

    assert not is_alive(os.getpid(), start + 1)
    assert not is_alive(0, start)


# --- status derivation ------------------------------------------------------------------------------------------------


def test_status_is_stopped_when_init_has_exited(store: Store) -> None:
    pid, start = _dead_pid()
    record = _record(status="created", pid=pid, pid_start=start)
    with store.create("c1") as cdir:
        Path(cdir.start_socket).touch()

        assert cdir.status(record) == "stopped"


def test_status_is_created_while_init_waits_on_the_start_socket(store: Store, sleeper: subprocess.Popen[bytes]) -> None:
    start = process_start_time(sleeper.pid)
    assert start is not None
    record = _record(status="created", pid=sleeper.pid, pid_start=start)
    with store.create("c1") as cdir:
        Path(cdir.start_socket).touch()

        assert cdir.status(record) == "created"


def test_status_is_running_once_the_start_socket_is_gone(store: Store, sleeper: subprocess.Popen[bytes]) -> None:
    start = process_start_time(sleeper.pid)
    assert start is not None
    record = _record(status="created", pid=sleeper.pid, pid_start=start)
    with store.create("c1") as cdir:
        assert cdir.status(record) == "running"


def test_status_is_stopped_when_the_pid_was_recycled(store: Store, sleeper: subprocess.Popen[bytes]) -> None:
    start = process_start_time(sleeper.pid)
    assert start is not None
    record = _record(status="running", pid=sleeper.pid, pid_start=start - 1)
    with store.create("c1") as cdir:
        Path(cdir.start_socket).touch()

        assert cdir.status(record) == "stopped"


def test_status_is_stopped_when_init_is_a_zombie(store: Store) -> None:
    proc = subprocess.Popen(["sleep", "60"])
    start = process_start_time(proc.pid)
    assert start is not None
    record = _record(status="running", pid=proc.pid, pid_start=start)
    proc.kill()
    try:
        deadline = time.monotonic() + 5
        while process_start_time(proc.pid) is not None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with store.create("c1") as cdir:
            assert cdir.status(record) == "stopped"
    finally:
        proc.wait()


def test_status_is_creating_while_the_creator_lives(store: Store) -> None:
    start = process_start_time(os.getpid())
    assert start is not None
    record = _record(status="creating", creator_pid=os.getpid(), creator_start=start)
    with store.create("c1") as cdir:
        assert cdir.status(record) == "creating"


def test_status_is_stopped_when_the_creator_died_mid_create(store: Store) -> None:
    pid, start = _dead_pid()
    record = _record(status="creating", creator_pid=pid, creator_start=start)
    with store.create("c1") as cdir:
        Path(cdir.start_socket).touch()

        assert cdir.status(record) == "stopped"
