"""config.json parsing (runtime-spec config.md, config-linux.md): typed records, errors naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from hull.oci._parse import SpecError
from hull.oci.runtime_config import Config, parse_config
from hull.runtime.spec_template import default_spec

DELETE = object()

Key = str | int


def _with(path: tuple[Key, ...], value: Any) -> dict[str, Any]:
    """runc's default config with the value at ``path`` replaced (or deleted with DELETE)."""
    doc = default_spec()
    target: Any = doc
    for key in path[:-1]:
        if isinstance(key, str) and isinstance(target, dict) and key not in target:
            target[key] = {}
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


def _parse_error(doc: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_config(doc)
    return info.value


# --- the valid default config -------------------------------------------------------------------------------------


def test_runc_default_config_parses_into_typed_records() -> None:
    config = parse_config(default_spec())

    assert isinstance(config, Config)
    assert config.oci_version == "1.1.0"
    assert config.root.path == "rootfs"
    assert config.root.readonly is True
    assert config.hostname == "hull"
    proc = config.process
    assert proc is not None
    assert proc.args == ["sh"]
    assert proc.cwd == "/"
    assert proc.terminal is True
    assert proc.env == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]
    assert (proc.user.uid, proc.user.gid) == (0, 0)
    assert [(r.type, r.soft, r.hard) for r in proc.rlimits] == [("RLIMIT_NOFILE", 1024, 1024)]
    assert proc.no_new_privileges is True
    assert proc.capabilities is not None
    assert proc.capabilities["bounding"] == ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert [m.destination for m in config.mounts] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ]
    assert config.mounts[1].type == "tmpfs"
    assert config.mounts[1].options == ["nosuid", "strictatime", "mode=755", "size=65536k"]
    assert [ns.type for ns in config.linux.namespaces] == ["pid", "network", "ipc", "uts", "mount"]
    assert all(ns.path == "" for ns in config.linux.namespaces)
    assert "/proc/kcore" in config.linux.masked_paths
    assert "/proc/sys" in config.linux.readonly_paths
    assert config.linux.resources == {"devices": [{"allow": False, "access": "rwm"}]}
    assert config.hooks == {}


def test_runc_rootless_default_config_parses_with_user_namespace_and_mappings() -> None:
    config = parse_config(default_spec(rootless=True))

    assert config.linux.namespace("user") is not None
    assert config.linux.namespace("network") is None
    assert len(config.linux.uid_mappings) == 1
    assert config.linux.uid_mappings[0].container_id == 0
    assert config.linux.uid_mappings[0].size == 1
    assert len(config.linux.gid_mappings) == 1


def test_minimal_config_needs_only_oci_version_and_root() -> None:
    config = parse_config({"ociVersion": "1.1.0", "root": {"path": "rootfs"}})

    assert config.process is None  # config.md: process is OPTIONAL (create needs it; checked later)
    assert config.mounts == []
    assert config.linux.namespaces == []
    assert config.root.readonly is False


# --- invalid values: each raises SpecError naming the field's JSON path -------------------------------------------

INVALID: list[tuple[str, tuple[Key, ...], Any, str]] = [
    # (id, path to edit, new value or DELETE, field the error must name)
    ("ociVersion missing", ("ociVersion",), DELETE, "ociVersion"),
    ("ociVersion not a string", ("ociVersion",), 1, "ociVersion"),
    ("root missing", ("root",), DELETE, "root"),
    ("root not an object", ("root",), "rootfs", "root"),
    ("root.path not a string", ("root", "path"), 5, "root.path"),
    ("root.path empty", ("root", "path"), "", "root.path"),
    ("root.readonly not a boolean", ("root", "readonly"), "yes", "root.readonly"),
    ("hostname not a string", ("hostname",), 7, "hostname"),
    ("annotations value not a string", ("annotations",), {"org.example": 1}, "annotations.org.example"),
    ("process not an object", ("process",), ["sh"], "process"),
    ("process.terminal not a boolean", ("process", "terminal"), "true", "process.terminal"),
    ("process.args is a string", ("process", "args"), "sh", "process.args"),
    ("process.args entry not a string", ("process", "args"), ["sh", 1], "process.args[1]"),
    ("process.args empty", ("process", "args"), [], "process.args"),
    ("process.args missing", ("process", "args"), DELETE, "process.args"),
    ("process.cwd missing", ("process", "cwd"), DELETE, "process.cwd"),
    ("process.cwd relative", ("process", "cwd"), "home", "process.cwd"),
    ("process.cwd not a string", ("process", "cwd"), 0, "process.cwd"),
    ("process.env entry without =", ("process", "env"), ["A=1", "NOEQUALS"], "process.env[1]"),
    ("process.env entry not a string", ("process", "env"), [{"A": "1"}], "process.env[0]"),
    ("process.user.uid negative", ("process", "user", "uid"), -1, "process.user.uid"),
    ("process.user.uid a string", ("process", "user", "uid"), "0", "process.user.uid"),
    ("process.user.uid a boolean", ("process", "user", "uid"), True, "process.user.uid"),
    ("process.user.gid over 32 bits", ("process", "user", "gid"), 1 << 32, "process.user.gid"),
    ("process.user.umask a string", ("process", "user", "umask"), "022", "process.user.umask"),
    (
        "process.user.additionalGids entry not an integer",
        ("process", "user", "additionalGids"),
        [10, "wheel"],
        "process.user.additionalGids[1]",
    ),
    ("process.consoleSize without width", ("process", "consoleSize"), {"height": 24}, "process.consoleSize.width"),
    ("process.rlimits not an array", ("process", "rlimits"), {"type": "RLIMIT_NOFILE"}, "process.rlimits"),
    ("process.rlimits entry not an object", ("process", "rlimits"), ["RLIMIT_NOFILE"], "process.rlimits[0]"),
    (
        "unknown rlimit type",
        ("process", "rlimits", 0, "type"),
        "RLIMIT_BOGUS",
        "process.rlimits[0].type",
    ),
    ("rlimit type lower-case", ("process", "rlimits", 0, "type"), "rlimit_nofile", "process.rlimits[0].type"),
    ("rlimit type not a string", ("process", "rlimits", 0, "type"), 7, "process.rlimits[0].type"),
    ("rlimit type missing", ("process", "rlimits", 0, "type"), DELETE, "process.rlimits[0].type"),
    (
        "duplicate rlimit",
        ("process", "rlimits"),
        [
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
            {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
            {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2},
        ],
        "process.rlimits[2].type",
    ),
    ("rlimit soft above hard", ("process", "rlimits", 0, "soft"), 2048, "process.rlimits[0]"),
    ("rlimit soft missing", ("process", "rlimits", 0, "soft"), DELETE, "process.rlimits[0].soft"),
    ("rlimit hard negative", ("process", "rlimits", 0, "hard"), -1, "process.rlimits[0].hard"),
    ("rlimit hard over 64 bits", ("process", "rlimits", 0, "hard"), 1 << 64, "process.rlimits[0].hard"),
    ("oomScoreAdj above 1000", ("process", "oomScoreAdj"), 1001, "process.oomScoreAdj"),
    ("oomScoreAdj below -1000", ("process", "oomScoreAdj"), -1001, "process.oomScoreAdj"),
    ("oomScoreAdj a string", ("process", "oomScoreAdj"), "5", "process.oomScoreAdj"),
    ("noNewPrivileges a string", ("process", "noNewPrivileges"), "true", "process.noNewPrivileges"),
    (
        "capability set not an array",
        ("process", "capabilities", "bounding"),
        "CAP_KILL",
        "process.capabilities.bounding",
    ),
    ("mounts not an array", ("mounts",), {"destination": "/x"}, "mounts"),
    ("mount entry not an object", ("mounts",), ["/proc"], "mounts[0]"),
    ("mount destination missing", ("mounts", 2, "destination"), DELETE, "mounts[2].destination"),
    ("mount destination not a string", ("mounts", 0, "destination"), 1, "mounts[0].destination"),
    ("mount options a string", ("mounts", 1, "options"), "nosuid,ro", "mounts[1].options"),
    ("mount option not a string", ("mounts", 1, "options"), ["nosuid", 5], "mounts[1].options[1]"),
    ("mount type not a string", ("mounts", 0, "type"), ["proc"], "mounts[0].type"),
    ("hooks not an object", ("hooks",), [], "hooks"),
    ("hooks.prestart not an array", ("hooks", "prestart"), {"path": "/bin/true"}, "hooks.prestart"),
    ("hook path relative", ("hooks", "prestart"), [{"path": "bin/true"}], "hooks.prestart[0].path"),
    (
        "hook path missing",
        ("hooks", "poststop"),
        [{"path": "/bin/true"}, {"args": ["x"]}],
        "hooks.poststop[1].path",
    ),
    (
        "hook timeout zero",
        ("hooks", "createRuntime"),
        [{"path": "/bin/true", "timeout": 0}],
        "hooks.createRuntime[0].timeout",
    ),
    (
        "hook timeout negative",
        ("hooks", "startContainer"),
        [{"path": "/bin/true", "timeout": -5}],
        "hooks.startContainer[0].timeout",
    ),
    (
        "hook timeout not an integer",
        ("hooks", "poststart"),
        [{"path": "/bin/true", "timeout": "5"}],
        "hooks.poststart[0].timeout",
    ),
    (
        "hook args entry not a string",
        ("hooks", "createContainer"),
        [{"path": "/bin/true", "args": ["true", 1]}],
        "hooks.createContainer[0].args[1]",
    ),
    ("linux not an object", ("linux",), [], "linux"),
    ("unknown namespace type", ("linux", "namespaces", 2, "type"), "bogus", "linux.namespaces[2].type"),
    ("namespace type old name 'net'", ("linux", "namespaces", 1, "type"), "net", "linux.namespaces[1].type"),
    ("namespace type missing", ("linux", "namespaces", 0, "type"), DELETE, "linux.namespaces[0].type"),
    (
        "duplicate namespace",
        ("linux", "namespaces"),
        [{"type": "mount"}, {"type": "pid"}, {"type": "mount", "path": "/proc/1/ns/mnt"}],
        "linux.namespaces[2].type",
    ),
    (
        "namespace path relative",
        ("linux", "namespaces", 1),
        {"type": "network", "path": "proc/1/ns/net"},
        "linux.namespaces[1].path",
    ),
    (
        "uidMappings size zero",
        ("linux", "uidMappings"),
        [{"containerID": 0, "hostID": 1000, "size": 0}],
        "linux.uidMappings[0].size",
    ),
    (
        "uidMappings hostID missing",
        ("linux", "uidMappings"),
        [{"containerID": 0, "size": 1}],
        "linux.uidMappings[0].hostID",
    ),
    (
        "gidMappings containerID a string",
        ("linux", "gidMappings"),
        [{"containerID": 0, "hostID": 0, "size": 1}, {"containerID": "1", "hostID": 1, "size": 1}],
        "linux.gidMappings[1].containerID",
    ),
    (
        "timeOffsets unknown clock",
        ("linux", "timeOffsets"),
        {"realtime": {"secs": 1}},
        "linux.timeOffsets.realtime",
    ),
    (
        "timeOffsets secs not an integer",
        ("linux", "timeOffsets"),
        {"monotonic": {"secs": "1"}},
        "linux.timeOffsets.monotonic.secs",
    ),
    (
        "timeOffsets nanosecs negative",
        ("linux", "timeOffsets"),
        {"boottime": {"secs": 1, "nanosecs": -1}},
        "linux.timeOffsets.boottime.nanosecs",
    ),
    (
        "char device without major",
        ("linux", "devices"),
        [{"type": "c", "path": "/dev/fuse", "minor": 229}],
        "linux.devices[0].major",
    ),
    (
        "block device without minor",
        ("linux", "devices"),
        [{"type": "b", "path": "/dev/sda", "major": 8}],
        "linux.devices[0].minor",
    ),
    (
        "device type unknown",
        ("linux", "devices"),
        [{"type": "c", "path": "/dev/null", "major": 1, "minor": 3}, {"type": "x", "path": "/dev/y"}],
        "linux.devices[1].type",
    ),
    (
        "device path relative",
        ("linux", "devices"),
        [{"type": "c", "path": "dev/null", "major": 1, "minor": 3}],
        "linux.devices[0].path",
    ),
    (
        "device fileMode a string",
        ("linux", "devices"),
        [{"type": "c", "path": "/dev/null", "major": 1, "minor": 3, "fileMode": "0666"}],
        "linux.devices[0].fileMode",
    ),
    ("rootfsPropagation unknown", ("linux", "rootfsPropagation"), "bogus", "linux.rootfsPropagation"),
    ("rootfsPropagation not a string", ("linux", "rootfsPropagation"), 1, "linux.rootfsPropagation"),
    ("maskedPaths entry relative", ("linux", "maskedPaths"), ["/proc/kcore", "proc/keys"], "linux.maskedPaths[1]"),
    ("readonlyPaths entry not a string", ("linux", "readonlyPaths"), [1], "linux.readonlyPaths[0]"),
    ("sysctl value not a string", ("linux", "sysctl"), {"net.ipv4.ip_forward": 1}, "linux.sysctl.net.ipv4.ip_forward"),
    ("resources not an object", ("linux", "resources"), [], "linux.resources"),
    ("seccomp not an object", ("linux", "seccomp"), "unconfined", "linux.seccomp"),
]


@pytest.mark.parametrize(("path", "value", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_value_raises_spec_error_naming_the_field(path: tuple[Key, ...], value: Any, field: str) -> None:
    err = _parse_error(_with(path, value))

    assert err.field == field
    assert str(err).startswith(f"{field}: ")


def test_document_that_is_not_an_object_is_rejected() -> None:
    err = _parse_error(["not", "an", "object"])

    assert "config" in str(err)


def test_error_message_says_what_is_wrong() -> None:
    assert "unknown value 'RLIMIT_BOGUS'" in str(_parse_error(_with(("process", "rlimits", 0, "type"), "RLIMIT_BOGUS")))
    assert "more than once" in str(_parse_error(_with(("linux", "namespaces"), [{"type": "pid"}, {"type": "pid"}])))
    assert "soft limit 2048 exceeds hard limit 1024" in str(
        _parse_error(_with(("process", "rlimits", 0, "soft"), 2048))
    )
    assert "must be an integer, got bool" in str(_parse_error(_with(("process", "user", "uid"), True)))


# --- valid edge values are accepted --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-1000, 0, 1000])
def test_oom_score_adj_accepts_the_whole_kernel_range(value: int) -> None:
    proc = parse_config(_with(("process", "oomScoreAdj"), value)).process
    assert proc is not None and proc.oom_score_adj == value


def test_rlimit_soft_equal_to_hard_and_unlimited_64_bit_values_are_accepted() -> None:
    unlimited = (1 << 64) - 1
    doc = _with(
        ("process", "rlimits"),
        [
            {"type": "RLIMIT_CORE", "soft": unlimited, "hard": unlimited},
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 4096},
        ],
    )
    proc = parse_config(doc).process
    assert proc is not None
    assert [(r.type, r.soft, r.hard) for r in proc.rlimits] == [
        ("RLIMIT_CORE", unlimited, unlimited),
        ("RLIMIT_NOFILE", 512, 4096),
    ]


@pytest.mark.parametrize(
    "kind", ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"], ids=lambda k: f"namespace-{k}"
)
def test_every_spec_namespace_type_is_accepted(kind: str) -> None:
    config = parse_config(_with(("linux", "namespaces"), [{"type": kind}]))
    assert [ns.type for ns in config.linux.namespaces] == [kind]


def test_namespace_with_absolute_path_is_a_namespace_to_join() -> None:
    config = parse_config(_with(("linux", "namespaces", 1), {"type": "network", "path": "/var/run/netns/blue"}))
    ns = config.linux.namespace("network")
    assert ns is not None and ns.path == "/var/run/netns/blue"


@pytest.mark.parametrize(
    "propagation", ["private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"]
)
def test_rootfs_propagation_values_are_accepted(propagation: str) -> None:
    assert parse_config(_with(("linux", "rootfsPropagation"), propagation)).linux.rootfs_propagation == propagation


def test_time_offsets_for_both_clocks_are_parsed() -> None:
    doc = _with(
        ("linux", "timeOffsets"),
        {"monotonic": {"secs": -86400, "nanosecs": 5}, "boottime": {"secs": 3600}},
    )
    offsets = parse_config(doc).linux.time_offsets
    assert (offsets["monotonic"].secs, offsets["monotonic"].nanosecs) == (-86400, 5)
    assert (offsets["boottime"].secs, offsets["boottime"].nanosecs) == (3600, 0)


def test_fifo_device_needs_no_major_or_minor() -> None:
    # config-linux.md "Devices": major and minor are required unless type is p.
    devices = parse_config(_with(("linux", "devices"), [{"type": "p", "path": "/dev/myfifo"}])).linux.devices
    assert [(d.type, d.path) for d in devices] == [("p", "/dev/myfifo")]


def test_device_numbers_and_ownership_are_parsed() -> None:
    doc = _with(
        ("linux", "devices"),
        [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0}],
    )
    (dev,) = parse_config(doc).linux.devices
    assert (dev.major, dev.minor, dev.file_mode, dev.uid, dev.gid) == (10, 229, 0o666, 0, 0)


def test_hooks_are_parsed_per_kind_in_order() -> None:
    doc = _with(
        ("hooks",),
        {
            "prestart": [{"path": "/bin/a"}, {"path": "/bin/b", "args": ["b", "-x"], "env": ["K=V"], "timeout": 1}],
            "poststop": [{"path": "/bin/c"}],
        },
    )
    hooks = parse_config(doc).hooks
    assert [h.path for h in hooks["prestart"]] == ["/bin/a", "/bin/b"]
    assert (hooks["prestart"][1].args, hooks["prestart"][1].env, hooks["prestart"][1].timeout) == (
        ["b", "-x"],
        ["K=V"],
        1,
    )
    assert hooks["prestart"][0].timeout is None
    assert [h.path for h in hooks["poststop"]] == ["/bin/c"]


def test_env_value_may_be_empty_or_contain_equals_signs() -> None:
    proc = parse_config(_with(("process", "env"), ["EMPTY=", "EXPR=a=b"])).process
    assert proc is not None and proc.env == ["EMPTY=", "EXPR=a=b"]


def test_relative_mount_destination_is_interpreted_relative_to_root() -> None:
    # config.md "Mounts" (runtime-spec 1.1): on Linux destination SHOULD be absolute; "it MAY be a relative
    # path, in which case it MUST be interpreted as relative to "/". Relative paths are deprecated."
    doc = _with(("mounts",), [{"destination": "data/cache", "type": "tmpfs", "source": "tmpfs"}])
    (mount,) = parse_config(doc).mounts
    assert mount.destination == "/data/cache"


# --- extensibility: unknown properties are ignored -------------------------------------------------------------------


def test_unknown_properties_are_ignored_everywhere() -> None:
    # config.md "Extensibility": runtimes MUST ignore unknown properties.
    doc = default_spec()
    doc["org.example.future"] = {"anything": [1, 2, 3]}
    doc["root"]["futureFlag"] = True
    doc["process"]["futureSetting"] = "x"
    doc["process"]["user"]["futureName"] = 7
    doc["process"]["rlimits"][0]["futureHint"] = None
    doc["mounts"][0]["futureOption"] = {"a": 1}
    doc["hooks"] = {"futureHookKind": [{"not": "a hook"}], "prestart": [{"path": "/bin/true", "futureKey": 1}]}
    doc["linux"]["futureSection"] = ["x"]
    doc["linux"]["namespaces"][0]["futureKey"] = "y"

    config = parse_config(doc)

    clean = default_spec()
    clean["hooks"] = {"prestart": [{"path": "/bin/true"}]}
    assert config == parse_config(clean)
    assert "futureHookKind" not in config.hooks
