"""CNI network configurations: `.conflist`, `.conf` and `.json` files (CNI SPEC section 1).

What libcni's conf.go accepts is accepted here, with one difference: hull checks the
fields at load time and names the file and field of the first problem
(`/etc/cni/net.d/10-a.conflist: plugins[1].type: missing`), where libcni leaves
some of them (the network name, unknown versions) to the plugins at ADD time.
Versions below 0.3.0 (the 0.1.0/0.2.0 result format) are refused: hull speaks 0.3.0
through 1.1.0.
"""

from __future__ import annotations

import os

from hull.network.errors import ConfigError
from hull.oci.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The spec versions hull implements, lowest first (libcni's version.All without the 0.1/0.2 era).
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT_VERSION = "1.1.0"
CONFIG_EXTENSIONS = (".conf", ".conflist", ".json")

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


@record
class NetworkConfigList:
    name: str
    cni_version: str
    plugins: list[dict[str, Any]]
    disable_check: bool = False
    disable_gc: bool = False
    raw: dict[str, Any] = field(default_factory=dict)
    # Every version the config declares (cniVersion plus cniVersions) that hull implements,
    # lowest first; cni_version is the last. The CNI object may pick a lower one that all
    # plugins support (SPEC "Version considerations": runtimes MAY consider VERSION).
    cni_versions: list[str] = field(default_factory=list)
    source: str = ""


def parse_version(version: str) -> tuple[int, int, int]:
    """ "1.0.0" -> (1, 0, 0); as libcni's ParseVersion, "" is 0.1.0 and missing parts are 0."""
    if version == "":
        return (0, 1, 0)
    parts = version.split(".")
    if len(parts) > 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"invalid version {version!r}")
    numbers = [int(p) for p in parts] + [0, 0]
    return (numbers[0], numbers[1], numbers[2])


def valid_name(name: str) -> bool:
    """SPEC section 1 `name` (and CNI_CONTAINERID): an alphanumeric, then alphanumerics, `_`, `.`, `-`."""
    return bool(name) and name[0].isascii() and name[0].isalnum() and all(c in _NAME_CHARS for c in name)


def _fail(source: str, where: str, problem: str) -> ConfigError:
    prefix = f"{source}: " if source else ""
    return ConfigError(f"{prefix}{where}: {problem}" if where else f"{prefix}{problem}")


def _decode(data: bytes | dict[str, Any], source: str) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    import json

    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise _fail(source, "", f"invalid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise _fail(source, "", f"a network configuration must be a JSON object, not {type(doc).__name__}")
    return doc


def _read_bool(doc: dict[str, Any], key: str, source: str) -> bool:
    # libcni accepts a JSON boolean or the strings "true"/"false" in any case.
    value = doc.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _fail(source, key, f"must be true or false, not {value!r}")


def _check_version(value: Any, where: str, source: str) -> str:
    if not isinstance(value, str):
        raise _fail(source, where, f"must be a string, not {type(value).__name__}")
    try:
        parse_version(value)
    except ValueError:
        raise _fail(source, where, f"invalid version {value!r}") from None
    return value


def _select_versions(doc: dict[str, Any], source: str) -> list[str]:
    """cniVersion and cniVersions that hull implements, lowest first (SPEC "Version considerations").

    As libcni, entries of cniVersions above the version hull implements are ignored; the
    runtime then uses the highest one left.
    """
    if "cniVersion" not in doc and "cniVersions" not in doc:
        raise _fail(source, "cniVersion", "missing")
    declared: list[tuple[str, str]] = []
    if "cniVersion" in doc:
        declared.append(("cniVersion", _check_version(doc["cniVersion"], "cniVersion", source)))
    if "cniVersions" in doc:
        versions = doc["cniVersions"]
        if not isinstance(versions, list):
            raise _fail(source, "cniVersions", f"must be a list of versions, not {type(versions).__name__}")
        declared += [
            (f"cniVersions[{i}]", _check_version(v, f"cniVersions[{i}]", source)) for i, v in enumerate(versions)
        ]
    current = parse_version(CURRENT_VERSION)
    usable = sorted({v for _, v in declared if parse_version(v) <= current}, key=parse_version)
    if not usable:
        where, version = declared[0]
        raise _fail(source, where, f"version {version!r} is newer than {CURRENT_VERSION}, the newest hull implements")
    if usable[-1] not in SUPPORTED_VERSIONS:
        where = next(w for w, v in declared if v == usable[-1])
        raise _fail(
            source, where, f"version {usable[-1]!r} is not supported (hull supports {', '.join(SUPPORTED_VERSIONS)})"
        )
    return [v for v in usable if v in SUPPORTED_VERSIONS]


def _check_name(doc: dict[str, Any], source: str) -> str:
    if "name" not in doc:
        raise _fail(source, "name", "missing")
    name = doc["name"]
    if not isinstance(name, str):
        raise _fail(source, "name", f"must be a string, not {type(name).__name__}")
    if not valid_name(name):
        # SPEC section 1: the name starts with an alphanumeric, then alphanumerics, '_', '.', '-'.
        raise _fail(source, "name", f"invalid network name {name!r}: must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    return name


def _check_plugin(plugin: Any, where: str, source: str) -> dict[str, Any]:
    if not isinstance(plugin, dict):
        raise _fail(source, where, f"a plugin configuration must be a JSON object, not {type(plugin).__name__}")
    kind = plugin.get("type")
    prefix = f"{where}." if where else ""
    if kind is None or kind == "":
        raise _fail(source, f"{prefix}type", "missing")
    if not isinstance(kind, str):
        raise _fail(source, f"{prefix}type", f"must be a string, not {type(kind).__name__}")
    if "/" in kind or "\\" in kind or kind in (".", ".."):
        # SPEC section 1: `type` names a binary in CNI_PATH and must not contain path separators.
        raise _fail(source, f"{prefix}type", f"invalid plugin name {kind!r}")
    caps = plugin.get("capabilities", {})
    if not isinstance(caps, dict) or not all(isinstance(v, bool) for v in caps.values()):
        raise _fail(source, f"{prefix}capabilities", "must be an object of capability names to true/false")
    return plugin


def parse_conflist(data: bytes | dict[str, Any], source: str = "") -> NetworkConfigList:
    """A network configuration list (SPEC section 1 "Configuration format")."""
    doc = _decode(data, source)
    name = _check_name(doc, source)
    versions = _select_versions(doc, source)
    disable_check = _read_bool(doc, "disableCheck", source)
    disable_gc = _read_bool(doc, "disableGC", source)
    _read_bool(doc, "loadOnlyInlinedPlugins", source)
    plugins = doc.get("plugins")
    if plugins is None:
        raise _fail(source, "plugins", "missing")
    if not isinstance(plugins, list):
        raise _fail(source, "plugins", f"must be a list, not {type(plugins).__name__}")
    if not plugins:
        raise _fail(source, "plugins", "no plugins in list")
    checked = [_check_plugin(p, f"plugins[{i}]", source) for i, p in enumerate(plugins)]
    return NetworkConfigList(
        name=name,
        cni_version=versions[-1],
        plugins=checked,
        disable_check=disable_check,
        disable_gc=disable_gc,
        raw=doc,
        cni_versions=versions,
        source=source,
    )


def parse_conf(data: bytes | dict[str, Any], source: str = "") -> NetworkConfigList:
    """A single plugin's network configuration (`.conf`), wrapped in a list as libcni's ConfListFromConf."""
    doc = _decode(data, source)
    name = _check_name(doc, source)
    versions = _select_versions(doc, source)
    plugin = _check_plugin(doc, "", source)
    raw: dict[str, Any] = {"name": name, "cniVersion": versions[-1], "plugins": [plugin]}
    return NetworkConfigList(
        name=name, cni_version=versions[-1], plugins=[plugin], raw=raw, cni_versions=versions, source=source
    )


def _sibling_plugins(directory: str, name: str) -> list[dict[str, Any]]:
    """SPEC `loadOnlyInlinedPlugins` false: plugin objects from `<dir>/<network name>/*.conf`, by file name."""
    folder = os.path.join(directory, name)
    try:
        entries = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        return []
    plugins = []
    for entry in entries:
        path = os.path.join(folder, entry)
        if not entry.endswith(".conf") or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            plugins.append(_check_plugin(_decode(f.read(), path), "", path))
    return plugins


def load_file(path: str) -> NetworkConfigList:
    """A `.conflist`, `.conf` or `.json` file, told apart by content: a list has `plugins`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    doc = _decode(data, path)
    if "plugins" not in doc and "type" in doc:
        return parse_conf(doc, path)
    if "plugins" not in doc and not _read_bool(doc, "loadOnlyInlinedPlugins", path):
        doc = dict(doc, plugins=_sibling_plugins(os.path.dirname(path), str(doc.get("name", ""))))
        if not doc["plugins"]:
            raise _fail(path, "plugins", "missing (and no plugin configs found)")
        return parse_conflist(doc, path)
    net = parse_conflist(doc, path)
    if not _read_bool(doc, "loadOnlyInlinedPlugins", path):
        extra = _sibling_plugins(os.path.dirname(path), net.name)
        if extra:
            net.plugins = net.plugins + extra
            net.raw = dict(net.raw, plugins=net.plugins)
    return net


def load_dir(directory: str) -> list[NetworkConfigList]:
    """Every configuration file in `directory`, sorted by file name as libcni; a missing directory has none."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    nets = []
    for name in names:
        path = os.path.join(directory, name)
        if name.endswith(CONFIG_EXTENSIONS) and os.path.isfile(path):
            nets.append(load_file(path))
    return nets
