"""Loading a bundle (bundle.md) and the Linux runtime's cross-field checks on its config."""

from __future__ import annotations

import os

from hull.oci import jsonfast
from hull.oci._parse import SpecError
from hull.oci.runtime_config import Config, parse_config
from hull.runtime import capabilities, seccomp
from hull.runtime.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# sysctl prefixes that are namespaced, and the namespace each needs
# (runc's libcontainer/configs/validate, from namespaces(7)).
_IPC_SYSCTLS = (
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
)


def load(bundle: str) -> tuple[dict[str, Any], Config, str]:
    """(raw config document, parsed config, absolute rootfs path) of a bundle."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ConfigError(f"JSON specification file config.json not found in bundle {bundle}") from None
    except OSError as err:
        raise ConfigError(f"reading {path}: {err.strerror}") from None
    try:
        doc = jsonfast.loads(raw)
    except ValueError as err:
        raise ConfigError(f"config.json: invalid JSON: {err}") from None
    try:
        config = parse_config(doc)
    except SpecError as err:
        raise ConfigError(f"config.json: {err}") from None
    rootfs = os.path.normpath(os.path.join(bundle, config.root.path))
    validate(config, rootfs)
    return doc, config, rootfs


def validate(config: Config, rootfs: str) -> None:
    def fail(field: str, problem: str) -> None:
        raise ConfigError(f"config.json: {field}: {problem}")

    if config.process is None:
        fail("process", "is required to create a container")
    if not os.path.isdir(rootfs):
        fail("root.path", f"rootfs {rootfs} is not a directory")
    linux = config.linux
    kinds = {ns.type for ns in linux.namespaces}
    new = {ns.type for ns in linux.namespaces if not ns.path}
    if "mount" not in kinds:
        fail("linux.namespaces", "a mount namespace is required to set up the rootfs")
    if config.hostname and "uts" not in kinds:
        fail("hostname", "setting the hostname needs a private UTS namespace")
    if config.domainname and "uts" not in kinds:
        fail("domainname", "setting the domainname needs a private UTS namespace")
    if "user" in new and not (linux.uid_mappings and linux.gid_mappings):
        fail("linux.uidMappings", "a new user namespace needs both uidMappings and gidMappings")
    for key, given in (("uidMappings", linux.uid_mappings), ("gidMappings", linux.gid_mappings)):
        if given and "user" not in new:
            fail(f"linux.{key}", "ID mappings are given but no new user namespace is")
    if linux.time_offsets and "time" not in new:
        fail("linux.timeOffsets", "time offsets need a new time namespace")
    for key in linux.sysctl:
        _check_sysctl(key, kinds, fail)
    capabilities.check(config.process.capabilities if config.process else None)
    seccomp.check(linux.seccomp)


def _check_sysctl(key: str, kinds: set[str], fail: Any) -> None:
    field = f"linux.sysctl.{key}"
    if key.startswith("net."):
        need = "network"
    elif key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        need = "ipc"
    elif key == "kernel.hostname" and "uts" in kinds:
        # As runc: namespaced, but it would fight the config's own hostname field.
        fail(field, 'conflicts with the config\'s "hostname" field; set that instead')
        return
    elif key in ("kernel.hostname", "kernel.domainname"):
        need = "uts"
    else:
        fail(field, "is not in a separate kernel namespace; setting it would change the host")
        return
    if need not in kinds:
        fail(field, f"needs a {need} namespace in linux.namespaces")
