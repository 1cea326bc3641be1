"""engine.parse: flag values in docker's grammar, and errors naming the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from hull.engine.options import MountRequest, OptionError, RestartPolicy
from hull.engine.parse import (
    parse_cpus,
    parse_env_file,
    parse_key_values,
    parse_labels,
    parse_memory,
    parse_memory_swap,
    parse_mount,
    parse_restart,
    parse_tmpfs,
    parse_ulimit,
    parse_volume,
    resolve_env,
)

MiB = 1 << 20


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("256m", 256 * MiB),
        ("256M", 256 * MiB),
        ("256mb", 256 * MiB),
        ("256MiB", 256 * MiB),
        ("1.5g", 3 << 29),
        ("1024", 1024),
        ("1024b", 1024),
        ("4k", 4096),
        ("2 g", 2 << 30),
        ("1t", 1 << 40),
    ],
)
def test_memory_sizes_as_go_units(text: str, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize(("text", "words"), [("", "invalid size"), ("m", "invalid size"), ("-1m", "invalid size"),
                                             ("12x", "invalid suffix"), ("12mbb", "invalid suffix"),
                                             ("12bm", "invalid suffix"), ("abc", "invalid size")])  # fmt: skip
def test_bad_memory_sizes_name_the_flag(text: str, words: str) -> None:
    with pytest.raises(OptionError, match="--memory") as err:
        parse_memory(text)
    assert words in str(err.value)


def test_memory_swap_minus_one_is_unlimited() -> None:
    assert parse_memory_swap("-1") == -1
    assert parse_memory_swap("1g") == 1 << 30
    with pytest.raises(OptionError, match="--memory-swap"):
        parse_memory_swap("-2")


def test_cpus() -> None:
    assert parse_cpus("1.5") == 1.5
    assert parse_cpus("0.25") == 0.25
    for bad in ("0", "-1", "x", "0.0000000001"):
        with pytest.raises(OptionError, match="--cpus"):
            parse_cpus(bad)


def test_volume_bind_named_and_anonymous() -> None:
    assert parse_volume("/srv/data:/data") == MountRequest("bind", "/data", "/srv/data")
    assert parse_volume("/srv/data:/data:ro,rslave") == MountRequest("bind", "/data", "/srv/data", True, ["rslave"])
    assert parse_volume("/srv:/srv:Z") == MountRequest("bind", "/srv", "/srv", False, ["Z"])
    assert parse_volume("cache:/var/cache:ro") == MountRequest("volume", "/var/cache", "cache", True, [])
    assert parse_volume("cache:/var/cache:nocopy") == MountRequest("volume", "/var/cache", "cache", False, ["nocopy"])
    assert parse_volume("/var/lib/db") == MountRequest("volume", "/var/lib/db", "")
    assert parse_volume("/a:/b:rw,cached").options == []  # consistency modes are no-ops on Linux


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("relative:/x", None),  # a named volume: fine
        ("./rel:/x", "invalid characters for a local volume name"),
        ("a/b:/x", "invalid characters for a local volume name"),
        ("/host:ctr", "must be absolute"),
        ("ctr", "must be absolute"),
        ("/host:/", "destination can't be '/'"),
        ("/x:ro", "invalid volume specification"),
        ("/a:/b:rw,ro", "invalid mode"),
        ("/a:/b:bogus", "invalid mode"),
        ("/a:/b:nocopy", "invalid mode"),
        ("/a:/b:c:d", "invalid volume specification"),
        ("", "invalid volume specification"),
    ],
)
def test_volume_errors(text: str, words: str | None) -> None:
    if words is None:
        parse_volume(text)
        return
    with pytest.raises(OptionError, match="-v") as err:
        parse_volume(text)
    assert words in str(err.value)


def test_mount_flag() -> None:
    assert parse_mount("type=bind,source=/srv,target=/srv,readonly") == MountRequest("bind", "/srv", "/srv", True)
    assert parse_mount("type=bind,src=/srv,dst=/d,ro=false,bind-propagation=rshared") == MountRequest(
        "bind", "/d", "/srv", False, ["rshared"]
    )
    assert parse_mount("source=cache,target=/c,volume-opt=type=nfs,volume-nocopy") == MountRequest(
        "volume", "/c", "cache", False, ["nocopy"]
    )
    assert parse_mount("target=/anon") == MountRequest("volume", "/anon", "")
    assert parse_mount("type=tmpfs,destination=/run,tmpfs-size=64m,tmpfs-mode=1770") == MountRequest(
        "tmpfs", "/run", "", False, [f"size={64 * MiB}", "mode=1770"]
    )
    assert parse_mount('type=bind,"source=/a,b",target=/x').source == "/a,b"  # CSV quoting, as docker


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("type=bind,target=/x", "field Source must not be empty"),
        ("type=bind,source=rel,target=/x", "must be absolute"),
        ("type=tmpfs,source=x,target=/x", "field Source must not be specified"),
        ("type=nfs,target=/x", "invalid mount type"),
        ("type=bind,source=/a", "target is required"),
        ("type=bind,source=/a,target=/x,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type 'bind'"),
        ("type=volume,target=/x,bind-propagation=shared", "cannot mix 'bind-*'"),
        ("type=bind,source=/a,target=/x,bogus=1", "unexpected key 'bogus'"),
        ("type=bind,source=/a,target=/x,readonly=maybe", "invalid value for readonly"),
        ("type=tmpfs,target=/x,tmpfs-mode=99", "invalid value for tmpfs-mode"),
        ("type", "must be a key=value pair"),
    ],
)
def test_mount_errors(text: str, words: str) -> None:
    with pytest.raises(OptionError, match="--mount") as err:
        parse_mount(text)
    assert words in str(err.value)


def test_tmpfs_flag() -> None:
    assert parse_tmpfs("/run") == MountRequest("tmpfs", "/run", "")
    assert parse_tmpfs("/run:size=64m,mode=1777,exec") == MountRequest(
        "tmpfs", "/run", "", False, ["size=64m", "mode=1777", "exec"]
    )
    assert parse_tmpfs("/ro:ro").readonly
    for bad in ("run", "/run:size=lots", "/run:bogus"):
        with pytest.raises(OptionError, match="--tmpfs"):
            parse_tmpfs(bad)


def test_restart_policies() -> None:
    assert parse_restart("no") == RestartPolicy("no", 0)
    assert parse_restart("") == RestartPolicy()
    assert parse_restart("always") == RestartPolicy("always")
    assert parse_restart("unless-stopped") == RestartPolicy("unless-stopped")
    assert parse_restart("on-failure") == RestartPolicy("on-failure", 0)
    assert parse_restart("on-failure:3") == RestartPolicy("on-failure", 3)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("always:3", "maximum retry count cannot be used with restart policy 'always'"),
        ("no:1", "cannot be used with restart policy 'no'"),
        ("on-failure:x", "maximum retry count must be an integer"),
        ("on-failure:-1", "cannot be negative"),
        ("sometimes", "invalid restart policy 'sometimes'"),
    ],
)
def test_restart_errors(text: str, words: str) -> None:
    with pytest.raises(OptionError, match="--restart") as err:
        parse_restart(text)
    assert words in str(err.value)


def test_env_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "env"
    path.write_bytes(
        b"\xef\xbb\xbfFIRST=1\n"
        b"# a comment\n"
        b"\n"
        b"   INDENTED=yes\n"
        b'QUOTED="not unquoted"\n'
        b"SPACES=  kept  \n"
        b"EMPTY=\n"
        b"FROM_HOST\n"
        b"  UNSET_ON_HOST  \n"
        b"EQ=a=b\n"
    )
    assert parse_env_file(str(path), {"FROM_HOST": "h"}) == [
        "FIRST=1",
        "INDENTED=yes",
        'QUOTED="not unquoted"',
        "SPACES=  kept  ",
        "EMPTY=",
        "FROM_HOST=h",
        "EQ=a=b",
    ]


def test_env_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "env"
    path.write_text("BAD NAME=1\n")
    with pytest.raises(OptionError, match="--env-file .*contains whitespaces"):
        parse_env_file(str(path), {})
    path.write_text("=value\n")
    with pytest.raises(OptionError, match="no variable name"):
        parse_env_file(str(path), {})
    with pytest.raises(OptionError, match="--env-file"):
        parse_env_file(str(tmp_path / "missing"), {})


def test_env_flag_takes_bare_names_from_the_host() -> None:
    assert resolve_env(["A=1", "HOME", "NOPE", "B="], {"HOME": "/root"}) == ["A=1", "HOME=/root", "B="]
    with pytest.raises(OptionError, match='"-e"'):
        resolve_env(["=x"], {})


def test_ulimit() -> None:
    assert parse_ulimit("nofile=1024:2048") == {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}
    assert parse_ulimit("nproc=100") == {"type": "RLIMIT_NPROC", "soft": 100, "hard": 100}
    assert parse_ulimit("core=-1") == {"type": "RLIMIT_CORE", "soft": (1 << 64) - 1, "hard": (1 << 64) - 1}
    assert parse_ulimit("core=0:-1")["hard"] == (1 << 64) - 1
    for bad, words in [("nofile", "invalid ulimit argument"), ("as=1", "invalid ulimit type: as"),
                       ("nofile=2048:1024", "2048 > 1024"), ("nofile=-1:10", "soft: -1 (unlimited)"),
                       ("nofile=x", "not an integer")]:  # fmt: skip
        with pytest.raises(OptionError, match="--ulimit") as err:
            parse_ulimit(bad)
        assert words in str(err.value)


def test_labels_and_key_values() -> None:
    assert parse_labels(["a=1", "b", "c=x=y", "a=2"]) == {"a": "2", "b": "", "c": "x=y"}
    assert parse_key_values(["net.ipv4.ip_forward=1"], "--sysctl") == {"net.ipv4.ip_forward": "1"}
    with pytest.raises(OptionError, match="--sysctl"):
        parse_key_values(["net.ipv4.ip_forward"], "--sysctl")
    with pytest.raises(OptionError, match="--label"):
        parse_labels(["=x"])
