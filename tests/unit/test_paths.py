"""Container paths resolved inside an untrusted rootfs: symlinks never lead out of it.

The rootfs comes from an image, so any symlink in it is attacker-controlled. These tests
defend against the class of escapes behind CVE-2021-30465 (runc mount destination symlink
race/escape) and CVE-2019-19921: an absolute link target or a run of ``..`` must stay inside
the rootfs, exactly as if the rootfs were ``/``.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

import pytest

from hull.runtime.paths import ensure_file_in, is_within, mkdir_all_in, secure_join


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host directory next to the rootfs that no container path may reach."""
    host = tmp_path / "host"
    host.mkdir()
    return host


@pytest.fixture
def unique() -> str:
    """A name that exists nowhere on the host, to check that nothing was created there."""
    return f"hull-test-{uuid.uuid4().hex}"


def _link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


# --- secure_join ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("unsafe", ["/", "", ".", "/./", "//"])
def test_the_root_itself(rootfs: Path, unsafe: str) -> None:
    assert secure_join(str(rootfs), unsafe) == str(rootfs)


@pytest.mark.parametrize(
    ("unsafe", "expected"),
    [
        ("/etc/passwd", "etc/passwd"),
        ("etc/passwd", "etc/passwd"),
        ("/usr//lib/./x", "usr/lib/x"),
        ("/not/there/yet", "not/there/yet"),
    ],
)
def test_plain_paths_are_joined_under_root(rootfs: Path, unsafe: str, expected: str) -> None:
    assert secure_join(str(rootfs), unsafe) == str(rootfs / expected)


@pytest.mark.parametrize(
    "unsafe",
    ["/..", "/../..", "/../../../../../..", "..", "/usr/../../..", "/etc/../../../"],
)
def test_dotdot_clamps_at_the_root(rootfs: Path, unsafe: str) -> None:
    assert secure_join(str(rootfs), unsafe) == str(rootfs)


def test_dotdot_cannot_climb_out_to_a_host_file(rootfs: Path, outside: Path) -> None:
    (outside / "secret").write_text("host")
    unsafe = "/../../../../" + str(outside / "secret")

    assert secure_join(str(rootfs), unsafe) == str(rootfs) + str(outside / "secret")


def test_relative_symlink_is_followed_inside_the_root(rootfs: Path) -> None:
    _link(rootfs / "lib", "usr/lib")

    assert secure_join(str(rootfs), "/lib/libc.so") == str(rootfs / "usr/lib/libc.so")


def test_symlink_to_slash_etc_resolves_inside_the_rootfs_not_to_host_etc(rootfs: Path) -> None:
    # CVE-2021-30465 class: a mount destination through a link to "/etc" must land in <rootfs>/etc.
    _link(rootfs / "config", "/etc")

    resolved = secure_join(str(rootfs), "/config/passwd")

    assert resolved == str(rootfs / "etc" / "passwd")
    assert not resolved.startswith("/etc")


def test_absolute_symlink_target_restarts_at_the_root(rootfs: Path) -> None:
    _link(rootfs / "usr" / "lib" / "deep", "/etc")

    assert secure_join(str(rootfs), "/usr/lib/deep/passwd") == str(rootfs / "etc" / "passwd")


def test_absolute_symlink_to_a_host_path_stays_in_the_rootfs(rootfs: Path, outside: Path) -> None:
    _link(rootfs / "escape", str(outside))

    resolved = secure_join(str(rootfs), "/escape/file")

    assert resolved == str(rootfs) + str(outside / "file")
    assert is_within(str(rootfs), resolved)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("../../../../..", "passwd"),
        ("./../..", "passwd"),
        ("../../../../../etc", "etc/passwd"),
        ("/../../etc", "etc/passwd"),
    ],
)
def test_symlink_with_dotdot_target_clamps_at_the_root(rootfs: Path, target: str, expected: str) -> None:
    _link(rootfs / "usr" / "lib" / "up", target)

    assert secure_join(str(rootfs), "/usr/lib/up/passwd") == str(rootfs / expected)


def test_dotdot_after_a_symlink_applies_to_the_link_target(rootfs: Path) -> None:
    # As the kernel resolves it: /link/.. is the parent of the link's target, not of the link.
    _link(rootfs / "link", "/usr/lib")

    assert secure_join(str(rootfs), "/link/..") == str(rootfs / "usr")


def test_symlink_chain_is_followed_to_the_end(rootfs: Path) -> None:
    _link(rootfs / "a", "b")
    _link(rootfs / "b", "/c")
    _link(rootfs / "c", "usr/lib")

    assert secure_join(str(rootfs), "/a/x") == str(rootfs / "usr" / "lib" / "x")


def test_dangling_symlink_resolves_to_where_its_target_would_be(rootfs: Path) -> None:
    _link(rootfs / "run", "/var/run")

    assert secure_join(str(rootfs), "/run/lock") == str(rootfs / "var" / "run" / "lock")


def test_symlink_to_the_root_resolves_to_the_root(rootfs: Path) -> None:
    _link(rootfs / "self", "/")

    assert secure_join(str(rootfs), "/self/self/etc") == str(rootfs / "etc")


def test_a_regular_file_used_as_a_directory_is_not_an_error(rootfs: Path) -> None:
    # Missing or impossible components are returned as-is: creating them later fails cleanly.
    assert secure_join(str(rootfs), "/etc/passwd/x") == str(rootfs / "etc" / "passwd" / "x")


@pytest.mark.parametrize(
    "links",
    [
        {"loop": "loop"},
        {"a": "b", "b": "a"},
        {"a": "/b", "b": "/c", "c": "./a"},
        {"dir": "dir/x"},
    ],
    ids=["self", "pair", "cycle-of-three", "growing"],
)
def test_symlink_loop_raises_eloop(rootfs: Path, links: dict[str, str]) -> None:
    for name, target in links.items():
        _link(rootfs / name, target)
    first = next(iter(links))

    with pytest.raises(OSError) as info:
        secure_join(str(rootfs), f"/{first}/file")

    assert info.value.errno == errno.ELOOP


def test_relative_root_is_made_absolute(rootfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(rootfs.parent)

    assert secure_join("rootfs", "/etc") == str(rootfs / "etc")


def test_is_within_is_not_fooled_by_a_common_prefix(tmp_path: Path) -> None:
    root = str(tmp_path / "rootfs")

    assert is_within(root, root)
    assert is_within(root, root + "/etc")
    assert not is_within(root, root + "2/etc")
    assert not is_within(root, str(tmp_path))


# --- mkdir_all_in ---------------------------------------------------------------------------------------------------


def test_mkdir_all_in_creates_every_component(rootfs: Path) -> None:
    host = mkdir_all_in(str(rootfs), "/var/lib/data")

    assert host == str(rootfs / "var" / "lib" / "data")
    assert (rootfs / "var" / "lib" / "data").is_dir()


def test_mkdir_all_in_is_idempotent_on_existing_directories(rootfs: Path) -> None:
    (rootfs / "usr" / "lib" / "keep").write_text("x")

    assert mkdir_all_in(str(rootfs), "/usr/lib") == str(rootfs / "usr" / "lib")
    assert (rootfs / "usr" / "lib" / "keep").read_text() == "x"


def test_mkdir_all_in_of_the_root_returns_the_root(rootfs: Path) -> None:
    assert mkdir_all_in(str(rootfs), "/") == str(rootfs)


def test_mkdir_all_in_through_absolute_symlink_to_host_dir_creates_inside_rootfs(rootfs: Path, unique: str) -> None:
    # CVE-2021-30465 class: mount destination /escape/<name> where /escape -> /tmp, a real host directory.
    _link(rootfs / "escape", "/tmp")

    host = mkdir_all_in(str(rootfs), f"/escape/{unique}")

    assert host == str(rootfs / "tmp" / unique)
    assert os.path.isdir(host)
    assert not os.path.exists(f"/tmp/{unique}")


def test_mkdir_all_in_through_relative_dotdot_symlink_creates_inside_rootfs(rootfs: Path, unique: str) -> None:
    _link(rootfs / "usr" / "escape", "../../../../../../../../../../tmp")

    host = mkdir_all_in(str(rootfs), f"/usr/escape/{unique}")

    assert host == str(rootfs / "tmp" / unique)
    assert os.path.isdir(host)
    assert not os.path.exists(f"/tmp/{unique}")


def test_mkdir_all_in_through_dangling_symlink_creates_its_target_in_rootfs(rootfs: Path) -> None:
    _link(rootfs / "data", "/srv")

    host = mkdir_all_in(str(rootfs), "/data/www")

    assert host == str(rootfs / "srv" / "www")
    assert os.path.isdir(host)


def test_mkdir_all_in_creates_missing_parents_of_a_dangling_symlink_target(rootfs: Path) -> None:
    # /data -> /var/lib/data with no /var in the image: like runc's MkdirAllInRoot, every missing
    # component of the link target is created inside the rootfs (not only the last one).
    _link(rootfs / "data", "/var/lib/data")

    host = mkdir_all_in(str(rootfs), "/data")

    assert host == str(rootfs / "var" / "lib" / "data")
    assert os.path.isdir(host)


def test_mkdir_all_in_with_dotdot_clamps_at_root(rootfs: Path, outside: Path) -> None:
    host = mkdir_all_in(str(rootfs), "/../../host/x")

    assert host == str(rootfs / "host" / "x")
    assert not (outside / "x").exists()


def test_mkdir_all_in_refuses_a_file_in_the_way(rootfs: Path) -> None:
    with pytest.raises(NotADirectoryError):
        mkdir_all_in(str(rootfs), "/etc/passwd/sub")


def test_mkdir_all_in_on_a_symlink_loop_raises(rootfs: Path) -> None:
    _link(rootfs / "loop", "loop")

    with pytest.raises(OSError) as info:
        mkdir_all_in(str(rootfs), "/loop/x")

    assert info.value.errno == errno.ELOOP


# --- ensure_file_in -------------------------------------------------------------------------------------------------


def test_ensure_file_in_creates_an_empty_file_and_its_parents(rootfs: Path) -> None:
    host = ensure_file_in(str(rootfs), "/run/secrets/token")

    assert host == str(rootfs / "run" / "secrets" / "token")
    assert (rootfs / "run" / "secrets").is_dir()
    assert Path(host).is_file()
    assert Path(host).read_bytes() == b""


def test_ensure_file_in_keeps_an_existing_file(rootfs: Path) -> None:
    host = ensure_file_in(str(rootfs), "/etc/passwd")

    assert host == str(rootfs / "etc" / "passwd")
    assert (rootfs / "etc" / "passwd").read_text().startswith("root:")


def test_ensure_file_in_follows_final_symlink_to_absolute_target_inside_rootfs(rootfs: Path) -> None:
    _link(rootfs / "resolv.conf", "/etc/resolv.conf")

    host = ensure_file_in(str(rootfs), "/resolv.conf")

    assert host == str(rootfs / "etc" / "resolv.conf")
    assert (rootfs / "etc" / "resolv.conf").is_file()


def test_ensure_file_in_dangling_symlink_to_host_file_creates_inside_rootfs(rootfs: Path, unique: str) -> None:
    # /hostfile -> /tmp/<name>, and the image has no /tmp: the file is created as <rootfs>/tmp/<name>,
    # its parent made first (runc's createIfNotExists: MkdirAll of the resolved path's parent).
    # Nothing may appear on the host.
    _link(rootfs / "hostfile", f"/tmp/{unique}")

    host = ensure_file_in(str(rootfs), "/hostfile")

    assert host == str(rootfs / "tmp" / unique)
    assert os.path.isfile(host)
    assert not os.path.exists(f"/tmp/{unique}")


def test_ensure_file_in_through_symlinked_parent_to_host_dir_creates_inside_rootfs(rootfs: Path, unique: str) -> None:
    _link(rootfs / "conf", "/tmp")

    host = ensure_file_in(str(rootfs), f"/conf/{unique}")

    assert host == str(rootfs / "tmp" / unique)
    assert os.path.isfile(host)
    assert not os.path.exists(f"/tmp/{unique}")
