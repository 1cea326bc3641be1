"""Running CNI plugins for a network configuration list: hull's libcni.

CNI SPEC sections 2 (execution protocol), 3 (execution of network configurations) and
5 (result types); the reference behaviour is libcni (libcni/api.go, pkg/invoke). Where
hull does more than libcni it says so here:

- ADD first asks every plugin of the list for its VERSION and fails, before any plugin
  changed anything, if one does not support the config's cniVersion (libcni leaves that
  to the plugin, so with libcni the earlier plugins of the list have already run; its
  ValidateNetworkList does the same check when a caller asks). The answers are cached
  per plugin binary for the life of the CNI object.
- With `cniVersions`, the version used is the highest one that every plugin supports
  (SPEC "Version considerations": runtimes MAY consider VERSION); libcni takes the
  highest it implements.
- GC and STATUS are sent only to plugins whose VERSION lists 1.1.0 (a plugin speaking
  1.0.0, such as Debian's containernetworking-plugins 1.1.1, answers GC with
  "missing containerID"); for such a list GC only DELs the stale cached attachments
  and STATUS is a no-op, as with libcni for lists below 1.1.0.
- The request configuration leaves out `capabilities` (SPEC section 3: "must not be set";
  libcni passes it through).
- When an ADD fails after earlier plugins of the list succeeded, their result is cached
  (marked "hullIncomplete"), so the DEL the caller owes gives those plugins a prevResult:
  firewall and bridge's ipMasq find their iptables rules only through it (libcni caches
  nothing then, and these rules leak).
- CHECK and DEL use the CNI_ARGS and capability arguments cached at ADD when the caller
  passes none (libcni's GetNetworkListCachedConfig, done for the caller).
"""

from __future__ import annotations

import os

from hull.network.cniconf import CURRENT_VERSION, SUPPORTED_VERSIONS, NetworkConfigList, parse_version, valid_name
from hull.network.errors import CNIError, NetworkError
from hull.oci.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CACHE_KIND = "cniCacheV1"
DEFAULT_PLUGIN_DIRS = ["/usr/lib/cni", "/opt/cni/bin"]
_OLD_RESULTS = ("0.3.0", "0.3.1", "0.4.0")  # "ips" entries carry "version": "4" / "6"
_NEW_RESULTS = ("1.0.0", "1.1.0")


@record
class RuntimeConf:
    container_id: str
    netns: str
    ifname: str = "eth0"
    args: list[tuple[str, str]] = field(default_factory=list)  # CNI_ARGS, K=V;K=V
    # runtimeConfig per plugin "capabilities": portMappings, ips, mac, bandwidth, ...
    capability_args: dict[str, Any] = field(default_factory=dict)


def _describe(plugin: dict[str, Any], net_name: str) -> str:
    return f'type="{plugin.get("type", "")}" name="{net_name}"'


def _at_least(version: str, other: str) -> bool:
    return parse_version(version) >= parse_version(other)


def convert_result(result: dict[str, Any], to_version: str) -> dict[str, Any]:
    """A SPEC section 5 ADD result in another version (libcni's GetAsVersion, for 0.3.0 to 1.1.0).

    0.3.x/0.4.0 results tag each "ips" entry with "version" ("4"/"6"); 1.x results do not,
    and add interface mtu/socketPath/pciID and route mtu/advmss/priority/table/scope,
    which an older result cannot carry.
    """
    from_version = result.get("cniVersion") or to_version
    if from_version not in SUPPORTED_VERSIONS:
        raise NetworkError(f"cannot convert a result of version {from_version!r} (hull supports {SUPPORTED_VERSIONS})")
    if to_version not in SUPPORTED_VERSIONS:
        raise NetworkError(f"cannot convert a result to version {to_version!r}")
    out = dict(result, cniVersion=to_version)
    old_from, old_to = from_version in _OLD_RESULTS, to_version in _OLD_RESULTS
    if old_from and not old_to:
        out["ips"] = [{k: v for k, v in ip.items() if k != "version"} for ip in result.get("ips") or []]
    elif old_to and not old_from:
        out["ips"] = [
            dict(ip, version="6" if ":" in str(ip.get("address", "")) else "4") for ip in result.get("ips") or []
        ]
        out["interfaces"] = [
            {k: v for k, v in i.items() if k in ("name", "mac", "sandbox")} for i in result.get("interfaces") or []
        ]
        out["routes"] = [{k: v for k, v in r.items() if k in ("dst", "gw")} for r in result.get("routes") or []]
    for key in ("ips", "interfaces", "routes"):
        if key in out and not out[key]:
            del out[key]
    return out


def _check_runtime_conf(net_name: str, rt: RuntimeConf) -> None:
    """libcni's utils.ValidateContainerID / ValidateNetworkName / ValidateInterfaceName, and CNI_ARGS."""
    if not valid_name(rt.container_id):
        raise NetworkError(f"invalid container ID {rt.container_id!r}: must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    if not valid_name(net_name):
        raise NetworkError(f"invalid network name {net_name!r}: must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    name = rt.ifname
    # Linux interface names: IFNAMSIZ (16) with the NUL, no '/', ':' or white space, not "." or "..".
    if not name or len(name) > 15 or name in (".", "..") or any(c in "/:" or c.isspace() for c in name):
        raise NetworkError(f"invalid interface name {name!r}")
    for key, value in rt.args:
        if not key or any(c in key for c in "=;") or ";" in value:
            raise NetworkError(f"invalid CNI_ARGS entry {key!r}={value!r}: keys and values must not contain ';' or '='")


class CNI:
    """Runs the plugins of network configuration lists (libcni's CNIConfig)."""

    def __init__(
        self, plugin_dirs: list[str] | None = None, cache_dir: str = "/var/lib/hull/cni", timeout: float = 60.0
    ) -> None:
        self.plugin_dirs = list(DEFAULT_PLUGIN_DIRS if plugin_dirs is None else plugin_dirs)
        self.cache_dir = cache_dir
        self.timeout = timeout
        self._versions: dict[tuple[str, int, int, int], list[str]] = {}

    # ---- finding and running plugins (libcni pkg/invoke)

    def find_plugin(self, plugin_type: str) -> str:
        """The plugin binary for `type` in the plugin dirs (SPEC section 3 step 1: missing is an error)."""
        if not plugin_type:
            raise NetworkError("no plugin name provided")
        if "/" in plugin_type:
            raise NetworkError(f"invalid plugin name: {plugin_type}")
        import stat

        for directory in self.plugin_dirs:
            path = os.path.join(directory, plugin_type)
            try:
                if stat.S_ISREG(os.stat(path).st_mode):
                    return path
            except OSError:
                continue
        raise NetworkError(f'failed to find plugin "{plugin_type}" in path [{" ".join(self.plugin_dirs)}]')

    def _env(self, command: str, rt: RuntimeConf | None) -> dict[str, str]:
        # As libcni: the runtime's own environment, then the six CNI variables over it.
        env = dict(os.environ)
        env.update(
            CNI_COMMAND=command,
            CNI_CONTAINERID=rt.container_id if rt else "",
            CNI_NETNS=rt.netns if rt else "",
            CNI_ARGS=";".join(f"{k}={v}" for k, v in rt.args) if rt else "",
            CNI_IFNAME=rt.ifname if rt else "",
            CNI_PATH=":".join(self.plugin_dirs),
        )
        return env

    def _exec(self, path: str, stdin: bytes, env: dict[str, str], plugin: str, op: str) -> bytes:
        """Run one plugin; its stdout on success, else CNIError from the Error object it printed."""
        import errno
        import signal
        import subprocess
        import time

        for attempt in range(6):
            try:
                # A session of its own: on timeout the whole group dies, including delegated
                # plugins (host-local under bridge) that would keep the pipes open.
                proc = subprocess.Popen(
                    [path],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    start_new_session=True,
                    close_fds=True,
                )
                break
            except OSError as err:
                # libcni retries "text file busy": the binary is being replaced right now.
                if err.errno == errno.ETXTBSY and attempt < 5:
                    time.sleep(1)
                    continue
                raise NetworkError(f"plugin {plugin} failed ({op}): cannot execute {path}: {err.strerror}") from None
        try:
            stdout, stderr = proc.communicate(stdin, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.communicate()
            raise NetworkError(
                f"plugin {plugin} failed ({op}): timed out after {self.timeout:g}s and was killed"
            ) from None
        if proc.returncode == 0:
            return stdout
        raise self._plugin_error(proc.returncode, stdout, stderr, plugin, op)

    @staticmethod
    def _plugin_error(status: int, stdout: bytes, stderr: bytes, plugin: str, op: str) -> CNIError:
        # libcni pkg/invoke RawExec.pluginErr: the Error object on stdout, else what is known.
        exit_text = f"exit status {status}" if status > 0 else f"signal: {-status}"
        err_text = stderr.decode(errors="replace").strip()
        if not stdout.strip():
            msg = (
                f"netplugin failed: {err_text!r}: {exit_text}"
                if err_text
                else f"netplugin failed with no error message: {exit_text}"
            )
            return CNIError(0, msg, "", plugin, op, err_text)
        import json

        try:
            doc = json.loads(stdout)
            if not isinstance(doc, dict):
                raise ValueError(f"not an object but {type(doc).__name__}")
            code = doc.get("code", 0)
            return CNIError(
                code if isinstance(code, int) else 0,
                str(doc.get("msg", "")),
                str(doc.get("details", "")),
                plugin,
                op,
                err_text,
            )
        except ValueError as err:
            text = stdout.decode(errors="replace").strip()
            msg = f"netplugin failed but error parsing its diagnostic message {text!r}: {err}"
            return CNIError(0, msg, "", plugin, op, err_text)

    def _run(
        self, path: str, command: str, request: dict[str, Any], rt: RuntimeConf | None, plugin: str, op: str
    ) -> bytes:
        import json

        return self._exec(path, json.dumps(request).encode(), self._env(command, rt), plugin, op)

    # ---- VERSION (SPEC section 2 "VERSION", libcni GetVersionInfo)

    def get_version_info(self, plugin_type: str, cni_version: str = "") -> dict[str, Any]:
        """The plugin's VERSION answer: {"cniVersion": ..., "supportedVersions": [...]}."""
        import json

        path = self.find_plugin(plugin_type)
        # Fake values that plugins built on an old skel require even for VERSION (as libcni).
        env = self._env("VERSION", RuntimeConf(container_id="", netns="dummy", ifname="dummy"))
        env["CNI_PATH"] = "dummy"
        stdin = json.dumps({"cniVersion": cni_version or CURRENT_VERSION}).encode()
        desc = f'type="{plugin_type}"'
        try:
            out = self._exec(path, stdin, env, desc, "version")
        except CNIError as err:
            if err.msg == "unknown CNI_COMMAND: VERSION":  # a 0.1.0 plugin (libcni)
                return {"cniVersion": "0.1.0", "supportedVersions": ["0.1.0"]}
            raise
        try:
            info = json.loads(out)
        except ValueError as err:
            raise NetworkError(f"plugin {desc}: decoding version info: {err}") from None
        if not isinstance(info, dict) or not isinstance(info.get("cniVersion"), str) or not info["cniVersion"]:
            raise NetworkError(f"plugin {desc}: decoding version info: missing field cniVersion")
        versions = info.get("supportedVersions")
        if not versions:
            if info["cniVersion"] == "0.2.0":
                return {"cniVersion": "0.2.0", "supportedVersions": ["0.1.0", "0.2.0"]}
            raise NetworkError(f"plugin {desc}: decoding version info: missing field supportedVersions")
        if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
            raise NetworkError(f"plugin {desc}: decoding version info: supportedVersions is not a list of strings")
        return info

    def _supported(self, plugin_type: str) -> list[str]:
        """The plugin's supported versions, asked once per binary: remembered on disk by the binary's
        inode, mtime and size (a VERSION exec costs every container ~5 ms per plugin)."""
        path = self.find_plugin(plugin_type)
        st = os.stat(path)
        key = (path, st.st_ino, st.st_mtime_ns, st.st_size)
        if key not in self._versions:
            disk = self._load_versions()
            text = f"{path}:{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"
            known = disk.get(text)
            if not (isinstance(known, list) and all(isinstance(v, str) for v in known)):
                known = list(self.get_version_info(plugin_type)["supportedVersions"])
                disk[text] = known
                self._save_versions(disk)
            self._versions[key] = known
        return self._versions[key]

    def _versions_file(self) -> str:
        return os.path.join(self.cache_dir, "versions.json")

    def _load_versions(self) -> dict[str, Any]:
        import json

        try:
            with open(self._versions_file(), "rb") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def _save_versions(self, doc: dict[str, Any]) -> None:
        import json

        try:
            os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
            tmp = f"{self._versions_file()}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump(doc, f)
            os.rename(tmp, self._versions_file())
        except OSError:
            pass  # only a cache

    def select_version(self, net: NetworkConfigList) -> str:
        """The version to run `net` with: with `cniVersions`, the highest all its plugins support."""
        candidates = net.cni_versions or [net.cni_version]
        if len(candidates) == 1:
            return candidates[0]
        try:
            supported = [set(self._supported(p["type"])) for p in net.plugins]
        except NetworkError:
            return candidates[-1]
        for version in reversed(candidates):
            if all(version in s for s in supported):
                return version
        return candidates[-1]

    def validate_network_list(self, net: NetworkConfigList, version: str = "") -> None:
        """Every plugin exists and supports the version (libcni ValidateNetworkList), else the first problem."""
        version = version or self.select_version(net)
        for plugin in net.plugins:
            supported = self._supported(plugin["type"])
            if version not in supported:
                # The plugin's own words when it gets a config of a version it does not speak (skel).
                quoted = " ".join(f'"{v}"' for v in supported)
                raise CNIError(
                    1,
                    "incompatible CNI versions",
                    f'config is "{version}", plugin supports [{quoted}]',
                    _describe(plugin, net.name),
                    "add",
                )

    # ---- request configuration (SPEC section 3 "Deriving request configuration")

    @staticmethod
    def _request(
        plugin: dict[str, Any], net: NetworkConfigList, version: str, prev: dict[str, Any] | None, rt: RuntimeConf
    ) -> dict[str, Any]:
        request = {k: v for k, v in plugin.items() if k != "capabilities" and not k.startswith("cni.dev/")}
        request["name"] = net.name
        request["cniVersion"] = version
        caps = plugin.get("capabilities") or {}
        runtime_config = {k: v for k, v in rt.capability_args.items() if caps.get(k) is True}
        if runtime_config:  # libcni leaves runtimeConfig out when no capability applies
            request["runtimeConfig"] = runtime_config
        if prev is not None:
            request["prevResult"] = prev
        return request

    def _parse_result(self, out: bytes, version: str, plugin: str) -> dict[str, Any]:
        import json

        try:
            result = json.loads(out)
        except ValueError as err:
            text = out.decode(errors="replace").strip()[:200]
            raise NetworkError(f"plugin {plugin} failed (add): invalid result {text!r}: {err}") from None
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise NetworkError(f"plugin {plugin} failed (add): the result is not a JSON object")
        # libcni fixupResultVersion: a result without cniVersion is in the config's version.
        if not result.get("cniVersion"):
            result["cniVersion"] = version
        try:
            return convert_result(result, version)
        except NetworkError as err:
            raise NetworkError(f"plugin {plugin} failed (add): {err}") from None

    # ---- the result cache (libcni: <cache>/results/<net>-<container>-<ifname>, kind cniCacheV1)

    def _cache_path(self, net_name: str, rt: RuntimeConf) -> str:
        if not net_name or not rt.container_id or not rt.ifname:
            raise NetworkError(
                f"cache file path requires network name ({net_name!r}), container ID ({rt.container_id!r}), "
                f"and interface name ({rt.ifname!r})"
            )
        return os.path.join(self.cache_dir, "results", f"{net_name}-{rt.container_id}-{rt.ifname}")

    def _cache_add(self, net: NetworkConfigList, rt: RuntimeConf, result: dict[str, Any], incomplete: str = "") -> None:
        import base64
        import json

        entry: dict[str, Any] = {
            "kind": CACHE_KIND,
            "containerId": rt.container_id,
            # Go marshals libcni's []byte config as base64; kept so libcni tools can read hull's cache.
            "config": base64.b64encode(json.dumps(net.raw).encode()).decode(),
            "ifName": rt.ifname,
            "networkName": net.name,
        }
        if rt.netns:
            entry["netns"] = rt.netns
        if rt.args:
            entry["cniArgs"] = [[k, v] for k, v in rt.args]
        if rt.capability_args:
            entry["capabilityArgs"] = rt.capability_args
        entry["result"] = result
        if incomplete:
            entry["hullIncomplete"] = incomplete  # the plugin whose ADD failed; libcni ignores the key
        path = self._cache_path(net.name, rt)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(entry))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic: DEL after a crash sees the old entry or the new, never half
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def _cache_entry(self, net_name: str, rt: RuntimeConf) -> dict[str, Any] | None:
        import json

        try:
            with open(self._cache_path(net_name, rt), "rb") as f:
                entry = json.loads(f.read())
        except (OSError, ValueError):
            return None  # as libcni: an unreadable cache is no cache
        if not isinstance(entry, dict) or entry.get("kind") != CACHE_KIND:
            # libcni then tries the pre-cniCacheV1 format: the bare result.
            return {"result": entry} if isinstance(entry, dict) and "cniVersion" in entry else None
        return entry

    def _cache_del(self, net_name: str, rt: RuntimeConf) -> None:
        try:
            os.unlink(self._cache_path(net_name, rt))
        except (OSError, NetworkError):
            pass

    def cached_result(self, net_name: str, rt: RuntimeConf) -> dict[str, Any] | None:
        """The final ADD result cached for (net_name, rt.container_id, rt.ifname), as stored."""
        entry = self._cache_entry(net_name, rt)
        result = entry.get("result") if entry else None
        return result if isinstance(result, dict) else None

    def _cached_as(self, net: NetworkConfigList, rt: RuntimeConf, version: str) -> dict[str, Any] | None:
        result = self.cached_result(net.name, rt)
        if result is None:
            return None
        try:
            return convert_result(result, version)
        except NetworkError as err:
            raise NetworkError(f"failed to convert cached result to config version {version!r}: {err}") from None

    def _entries(self) -> list[dict[str, Any]]:
        import json

        folder = os.path.join(self.cache_dir, "results")
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            return []
        entries = []
        for name in names:
            try:
                with open(os.path.join(folder, name), "rb") as f:
                    entry = json.loads(f.read())
            except (OSError, ValueError):
                continue
            if (
                isinstance(entry, dict)
                and entry.get("kind") == CACHE_KIND
                and entry.get("ifName")
                and entry.get("networkName")
            ):
                entries.append(entry)
        return entries

    def cached_attachments(self, net_name: str) -> list[tuple[str, str]]:
        """(container_id, ifname) of each attachment to `net_name` with a cached result (GetCachedAttachments)."""
        return [
            (str(e.get("containerId", "")), str(e["ifName"])) for e in self._entries() if e["networkName"] == net_name
        ]

    def _with_cached_args(self, net_name: str, rt: RuntimeConf) -> RuntimeConf:
        # Not the netns: an empty one tells the plugins it is gone (bridge then skips the link).
        entry = self._cache_entry(net_name, rt)
        if not entry or (rt.args and rt.capability_args):
            return rt
        args = rt.args or [(str(k), str(v)) for k, v in entry.get("cniArgs") or []]
        caps = rt.capability_args or dict(entry.get("capabilityArgs") or {})
        return RuntimeConf(rt.container_id, rt.netns, rt.ifname, args, caps)

    # ---- ADD, CHECK, DEL (SPEC section 3)

    def add_network_list(self, net: NetworkConfigList, rt: RuntimeConf) -> dict[str, Any]:
        """ADD each plugin in order, each given the previous one's result; the last result, cached."""
        _check_runtime_conf(net.name, rt)
        version = self.select_version(net)
        paths = [self.find_plugin(p["type"]) for p in net.plugins]
        self.validate_network_list(net, version)
        result: dict[str, Any] | None = None
        for plugin, path in zip(net.plugins, paths, strict=True):
            desc = _describe(plugin, net.name)
            try:
                out = self._run(path, "ADD", self._request(plugin, net, version, result, rt), rt, desc, "add")
                result = self._parse_result(out, version, desc)
            except NetworkError:
                if result is not None:
                    # Unlike libcni: keep what the earlier plugins did, so that the DEL the
                    # caller owes (SPEC section 3) gives them a prevResult. firewall and
                    # bridge's ipMasq find their rules only through it.
                    try:
                        self._cache_add(net, rt, result, incomplete=desc)
                    except OSError:
                        pass  # the plugin's error is the one to report
                raise
        assert result is not None  # parse_conflist refuses an empty list
        try:
            self._cache_add(net, rt, result)
        except OSError as err:
            raise NetworkError(f"failed to set network {net.name!r} cached result: {err}") from None
        return result

    def check_network_list(self, net: NetworkConfigList, rt: RuntimeConf) -> None:
        """CHECK each plugin in order with the cached ADD result (cniVersion 0.4.0 and later)."""
        version = self.select_version(net)
        if not _at_least(version, "0.4.0"):
            raise NetworkError(f'configuration version "{version}" does not support the CHECK command')
        if net.disable_check:
            return
        _check_runtime_conf(net.name, rt)
        prev = self._cached_as(net, rt, version)
        entry = self._cache_entry(net.name, rt) or {}
        if prev is None or entry.get("hullIncomplete"):
            # SPEC: a runtime must not CHECK an attachment that was not ADDed (or was DELeted since).
            raise NetworkError(
                f"network {net.name!r} has no cached result for container {rt.container_id} interface {rt.ifname}"
                + (f" (its ADD failed at plugin {entry['hullIncomplete']})" if entry.get("hullIncomplete") else "")
            )
        rt = self._with_cached_args(net.name, rt)
        for plugin in net.plugins:
            path = self.find_plugin(plugin["type"])
            self._run(
                path, "CHECK", self._request(plugin, net, version, prev, rt), rt, _describe(plugin, net.name), "check"
            )

    def del_network_list(self, net: NetworkConfigList, rt: RuntimeConf) -> None:
        """DEL each plugin in reverse order with the cached ADD result; without a cache still DEL."""
        _check_runtime_conf(net.name, rt)
        version = self.select_version(net)
        prev = None
        if _at_least(version, "0.4.0"):  # prevResult on DEL came with 0.4.0 (libcni)
            try:
                prev = self._cached_as(net, rt, version)
            except NetworkError:
                self._cache_del(net.name, rt)
        rt = self._with_cached_args(net.name, rt)
        for plugin in reversed(net.plugins):
            desc = _describe(plugin, net.name)
            try:
                path = self.find_plugin(plugin["type"])
            except NetworkError as err:
                raise NetworkError(f"plugin {desc} failed (delete): {err}") from None
            self._run(path, "DEL", self._request(plugin, net, version, prev, rt), rt, desc, "delete")
        self._cache_del(net.name, rt)

    # ---- GC and STATUS (SPEC 1.1.0)

    def _speaks_1_1(self, plugin: dict[str, Any]) -> bool:
        return "1.1.0" in self._supported(plugin["type"])

    def gc_network_list(self, net: NetworkConfigList, valid: list[tuple[str, str]]) -> None:
        """DEL cached attachments of `net` not in `valid`, then GC the plugins that speak 1.1.0.

        Errors do not stop the others (SPEC "Garbage-collecting a network"); all are reported.
        """
        if net.disable_gc:
            return
        keep = {(c, i) for c, i in valid}
        errors: list[str] = []
        for entry in self._entries():
            if entry["networkName"] != net.name or (entry.get("containerId"), entry["ifName"]) in keep:
                continue
            rt = RuntimeConf(
                container_id=str(entry.get("containerId", "")),
                netns=str(entry.get("netns", "")),
                ifname=str(entry["ifName"]),
                args=[(str(k), str(v)) for k, v in entry.get("cniArgs") or []],
                capability_args=dict(entry.get("capabilityArgs") or {}),
            )
            try:
                self.del_network_list(net, rt)
            except NetworkError as err:
                errors.append(f"failed to delete stale attachment {rt.container_id} {rt.ifname}: {err}")
        version = self.select_version(net)
        if _at_least(version, "1.1.0"):
            attachments = [{"containerID": c, "ifname": i} for c, i in valid]
            for plugin in net.plugins:
                desc = _describe(plugin, net.name)
                try:
                    if not self._speaks_1_1(plugin):
                        continue
                    request = {k: v for k, v in plugin.items() if k != "capabilities" and not k.startswith("cni.dev/")}
                    request.update(name=net.name, cniVersion=version)
                    request["cni.dev/valid-attachments"] = attachments
                    request["cni.dev/attachments"] = (
                        attachments  # the key's name in SPEC 1.1.0's first text (libcni #1101)
                    )
                    self._run(self.find_plugin(plugin["type"]), "GC", request, None, desc, "gc")
                except NetworkError as err:
                    errors.append(str(err))
        if errors:
            raise NetworkError("; ".join(errors))

    def status_network_list(self, net: NetworkConfigList) -> None:
        """STATUS each plugin that speaks 1.1.0; the first not ready raises its CNIError (code 50/51)."""
        version = self.select_version(net)
        if not _at_least(version, "1.1.0"):
            return
        for plugin in net.plugins:
            if not self._speaks_1_1(plugin):
                continue
            request = {k: v for k, v in plugin.items() if k != "capabilities" and not k.startswith("cni.dev/")}
            request.update(name=net.name, cniVersion=version)
            self._run(self.find_plugin(plugin["type"]), "STATUS", request, None, _describe(plugin, net.name), "status")
