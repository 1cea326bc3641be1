"""Docker's seccomp profile format -> runtime-spec ``linux.seccomp`` (config-linux.md "Seccomp").

``--security-opt seccomp=FILE`` takes a profile in docker's format (moby
profiles/seccomp): the runtime-spec fields plus ``archMap`` (the native
architecture and its sub-architectures), the legacy single ``name`` of a
rule, a rule's ``includes``/``excludes`` (``caps``, ``arches``, and
``minKernel`` for includes) and ``comment``. As moby's setupSeccomp does:

- architectures: ``architectures`` as given, or the ``archMap`` entry of the
  native architecture with its sub-architectures (both set is an error);
- a rule is kept when every capability of ``includes.caps`` is granted, the
  native architecture (Go's names: amd64, arm64, ...) is in
  ``includes.arches``, the kernel is at least ``includes.minKernel``, no
  capability of ``excludes.caps`` is granted and the architecture is not in
  ``excludes.arches``;
- ``names``/``action``/``errnoRet``/``args`` and the top-level
  ``defaultErrnoRet``, ``flags``, ``listenerPath``, ``listenerMetadata`` are
  copied; the runtime validates them (hull.runtime.seccomp.check).
"""

from __future__ import annotations

from hull.engine.options import OptionError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection
    from typing import Any

# uname -m -> Go's GOARCH, the names docker profiles use in includes/excludes.arches.
GOARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64": "mips64",
}
# GOARCH -> libseccomp's architecture name for it.
NATIVE_SCMP = {
    "amd64": "SCMP_ARCH_X86_64",
    "arm64": "SCMP_ARCH_AARCH64",
    "arm": "SCMP_ARCH_ARM",
    "386": "SCMP_ARCH_X86",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64",
    "mips64": "SCMP_ARCH_MIPS64",
}
_TOP_COPIED = ("defaultErrnoRet", "flags", "listenerPath", "listenerMetadata")


def native_goarch(machine: str | None = None) -> str:
    if machine is None:
        import os

        machine = os.uname().machine
    return GOARCH.get(machine, machine)


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """``major.minor`` of ``uname -r`` (the running kernel's by default)."""
    if release is None:
        import os

        release = os.uname().release
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0) if len(parts) > 1 else 0
    except ValueError:
        return 0, 0


def _fail(problem: str) -> OptionError:
    return OptionError(f"--security-opt seccomp: {problem}")


def _strings(obj: dict[str, Any], key: str, at: str) -> list[str]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(f"{at}{key} must be an array of strings")
    return value


def _applies(rule: dict[str, Any], at: str, caps: Collection[str], arch: str, kernel: tuple[int, int]) -> bool:
    includes = rule.get("includes") or {}
    excludes = rule.get("excludes") or {}
    if not isinstance(includes, dict) or not isinstance(excludes, dict):
        raise _fail(f"{at}includes and excludes must be objects")
    if any(c not in caps for c in _strings(includes, "caps", at + "includes.")):
        return False
    arches = _strings(includes, "arches", at + "includes.")
    if arches and arch not in arches:
        return False
    min_kernel = includes.get("minKernel")
    if min_kernel:
        if not isinstance(min_kernel, str):
            raise _fail(f"{at}includes.minKernel must be a string")
        if kernel < kernel_version(min_kernel):
            return False
    if any(c in caps for c in _strings(excludes, "caps", at + "excludes.")):
        return False
    return arch not in _strings(excludes, "arches", at + "excludes.")


def _architectures(profile: dict[str, Any], arch: str) -> list[str]:
    arch_map = profile.get("archMap") or []
    listed = _strings(profile, "architectures", "")
    if arch_map and listed:
        raise _fail("use either 'architectures' or 'archMap'")
    if not arch_map:
        return list(listed)
    if not isinstance(arch_map, list):
        raise _fail("archMap must be an array")
    native = NATIVE_SCMP.get(arch)
    out: list[str] = []
    for i, entry in enumerate(arch_map):
        if not isinstance(entry, dict):
            raise _fail(f"archMap[{i}] must be an object")
        if entry.get("architecture") == native:
            out.append(entry["architecture"])
            out.extend(_strings(entry, "subArchitectures", f"archMap[{i}]."))
    return out


def convert(profile: dict[str, Any], capabilities: Collection[str], *, machine: str | None = None,
            kernel: tuple[int, int] | None = None) -> dict[str, Any]:  # fmt: skip
    """The runtime-spec ``linux.seccomp`` for ``profile`` given the container's (bounding) capabilities."""
    if not isinstance(profile, dict):
        raise _fail("the profile must be a JSON object")
    if not profile.get("defaultAction"):
        raise _fail("defaultAction is required")
    arch = native_goarch(machine)
    running = kernel if kernel is not None else kernel_version()
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    architectures = _architectures(profile, arch)
    if architectures:
        out["architectures"] = architectures
    for key in _TOP_COPIED:
        if profile.get(key) is not None:
            out[key] = profile[key]
    rules: list[dict[str, Any]] = []
    syscalls = profile.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise _fail("syscalls must be an array")
    for i, rule in enumerate(syscalls):
        at = f"syscalls[{i}]."
        if not isinstance(rule, dict):
            raise _fail(f"syscalls[{i}] must be an object")
        names = _strings(rule, "names", at)
        if rule.get("name"):
            if names:
                raise _fail(
                    f"{at}'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'"
                )
            names = [rule["name"]]
        if not _applies(rule, at, capabilities, arch, running):
            continue
        out_rule: dict[str, Any] = {"names": list(names), "action": rule.get("action")}
        if rule.get("errnoRet") is not None:
            out_rule["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            out_rule["args"] = [
                {k: a[k] for k in ("index", "value", "valueTwo", "op") if isinstance(a, dict) and k in a}
                for a in rule["args"]
            ]
        rules.append(out_rule)
    out["syscalls"] = rules
    return out
