"""``update``: change a live container's cgroup limits, as runc 1.1's update command.

runc builds a request of linux.resources' updatable fields (memory limit,
reservation and swap; CPU shares, quota, period, realtime runtime and period,
cpus and mems; the block IO weight; the PIDs limit; ``unified``), from flags or
from a JSON object (``-r FILE``, ``-r -`` for stdin), every field it does not
get being 0 ("unchanged"). It copies them over the container's resources and
writes the whole set again (runc's Manager.Set), devices left alone; a zero
is never written, so only what was asked for changes, in runc's order (a
memory limit and swap limit ordered against the current limit, see
cgroup_resources._memory). On failure the previous resources are written back.
The recorded config keeps every value asked for, an omitted one keeping its
old value, so that a later update (CPU quota vs period) sees them.
"""

from __future__ import annotations

import os

from hull.runtime import cgroups
from hull.runtime.container import status_of
from hull.runtime.errors import InvalidState, RuntimeFailure, SetupError, Unsupported
from hull.runtime.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

_I64 = 1 << 63
_U64 = 1 << 64
# The request's fields: (section, key, Go type) as runc's specs.LinuxResources declares them.
_FIELDS = (
    ("memory", "limit", "int64"),
    ("memory", "reservation", "int64"),
    ("memory", "swap", "int64"),
    ("memory", "kernel", "int64"),
    ("memory", "kernelTCP", "int64"),
    ("cpu", "shares", "uint64"),
    ("cpu", "quota", "int64"),
    ("cpu", "period", "uint64"),
    ("cpu", "realtimeRuntime", "int64"),
    ("cpu", "realtimePeriod", "uint64"),
    ("cpu", "cpus", "string"),
    ("cpu", "mems", "string"),
    ("blockIO", "weight", "uint16"),
    ("pids", "limit", "int64"),
)
_GO_STRUCTS = {"memory": "LinuxMemory", "cpu": "LinuxCPU", "blockIO": "LinuxBlockIO", "pids": "LinuxPids"}
# runc's flags with a number in them: (flag, section, key, parser).
_UINT_FLAGS = (
    ("cpu-period", "cpu", "period"),
    ("cpu-rt-period", "cpu", "realtimePeriod"),
    ("cpu-share", "cpu", "shares"),
)
_INT_FLAGS = (("cpu-quota", "cpu", "quota"), ("cpu-rt-runtime", "cpu", "realtimeRuntime"))
_SIZE_FLAGS = (
    ("memory", "memory", "limit"),
    ("memory-swap", "memory", "swap"),
    ("kernel-memory", "memory", "kernel"),
    ("kernel-memory-tcp", "memory", "kernelTCP"),
    ("memory-reservation", "memory", "reservation"),
)
_UNABLE_TO_APPLY = "unable to apply cgroup configuration: "


class UpdateOptions:
    """What the command line gave: ``resources`` (a path or "-"), or the value flags (strings, as typed)."""

    def __init__(
        self,
        resources: str = "",
        flags: dict[str, str] | None = None,
        blkio_weight: int = 0,
        pids_limit: int = 0,
        l3_cache_schema: str = "",
        mem_bw_schema: str = "",
        stdin: BinaryIO | None = None,
    ) -> None:
        self.resources = resources
        self.flags = flags or {}
        self.blkio_weight = blkio_weight
        self.pids_limit = pids_limit
        self.l3_cache_schema = l3_cache_schema
        self.mem_bw_schema = mem_bw_schema
        self.stdin = stdin


def empty_request() -> dict[str, Any]:
    request: dict[str, Any] = {"memory": {}, "cpu": {}, "blockIO": {}, "pids": {}}
    for section, key, kind in _FIELDS:
        request[section][key] = "" if kind == "string" else 0
    return request


# -- the request -----------------------------------------------------------------------


def request_from_flags(flags: dict[str, str], blkio_weight: int = 0, pids_limit: int = 0) -> dict[str, Any]:
    """The request runc builds from its flags; a value it cannot parse fails with its words."""
    request = empty_request()
    if blkio_weight:
        request["blockIO"]["weight"] = blkio_weight & 0xFFFF  # runc converts the int flag to uint16
    for name, key in (("cpuset-cpus", "cpus"), ("cpuset-mems", "mems")):
        if flags.get(name):
            request["cpu"][key] = flags[name]
    for name, section, key in _UINT_FLAGS:
        if flags.get(name):
            request[section][key] = _flag_number(name, flags[name], parse_uint)
    for name, section, key in _INT_FLAGS:
        if flags.get(name):
            request[section][key] = _flag_number(name, flags[name], parse_int)
    for name, section, key in _SIZE_FLAGS:
        value = flags.get(name)
        if value:
            request[section][key] = -1 if value == "-1" else _flag_number(name, value, ram_in_bytes)
    request["pids"]["limit"] = pids_limit
    return request


def _flag_number(name: str, value: str, parse: Callable[[str], int]) -> int:
    try:
        return parse(value)
    except ValueError as err:
        raise RuntimeFailure(f"invalid value for {name}: {err}") from None


def parse_uint(text: str) -> int:
    """Go's strconv.ParseUint(text, 10, 64), with its error text."""
    if not text or not (text.isdigit() and text.isascii()):
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    if int(text) >= _U64:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return int(text)


def parse_int(text: str) -> int:
    """Go's strconv.ParseInt(text, 10, 64), with its error text."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not (digits.isdigit() and digits.isascii()):
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    value = int(text)
    if not -_I64 <= value < _I64:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


def ram_in_bytes(text: str) -> int:
    """docker/go-units RAMInBytes: "64m", "1.5g", "512 KiB" (binary multiples; b, i and the unit optional)."""
    number, rest = _leading_number(text)
    rest = rest[1:] if rest[:1] == " " else rest
    unit = rest[:1].lower() if rest[:1].lower() in ("k", "m", "g", "t", "p") else ""
    rest = rest[len(unit) :]
    rest = rest[1:] if rest[:1] in ("i", "I") else rest
    rest = rest[1:] if rest[:1] in ("b", "B") else rest
    if not number or rest:
        raise ValueError(f"invalid size: '{text}'")
    if number.count(".") > 1:
        raise ValueError(f'strconv.ParseFloat: parsing "{number}": invalid syntax')
    size = float(number) * (1024 ** ("kmgtp".index(unit) + 1) if unit else 1)
    # Go's float-to-int64 conversion of an out-of-range value gives the smallest int64 on amd64.
    return int(size) if size < _I64 else -_I64


def _leading_number(text: str) -> tuple[str, str]:
    """The ``\\d+(\\.\\d+)*`` prefix of ``text`` and what follows it."""
    i = 0
    while i < len(text) and text[i].isascii() and text[i].isdigit():
        i += 1
    if i == 0:
        return "", text
    while i + 1 < len(text) and text[i] == "." and text[i + 1].isascii() and text[i + 1].isdigit():
        i += 1
        while i < len(text) and text[i].isascii() and text[i].isdigit():
            i += 1
    return text[:i], text[i:]


def request_from_json(data: bytes) -> dict[str, Any]:
    """The request from runc's JSON (an OCI linux.resources object); errors in Go's encoding/json words."""
    import json

    text = data.decode(errors="replace").lstrip(" \t\r\n")
    if not text:
        raise RuntimeFailure("EOF")
    try:
        # Go's Decoder reads one value: what follows it is not looked at.
        doc, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as err:
        if err.pos >= len(text.rstrip()):
            raise RuntimeFailure("unexpected EOF") from None
        raise RuntimeFailure(f"invalid character {text[err.pos]!r} looking for beginning of value") from None
    if not isinstance(doc, dict):
        raise RuntimeFailure(f"json: cannot unmarshal {_json_kind(doc)} into Go value of type specs.LinuxResources")
    request = empty_request()
    for section in _GO_STRUCTS:
        value = doc.get(section)
        if value is not None and not isinstance(value, dict):
            raise RuntimeFailure(
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field LinuxResources.{section}"
                f" of type specs.{_GO_STRUCTS[section]}"
            )
    for section, key, kind in _FIELDS:
        value = (doc.get(section) or {}).get(key)
        if value is not None:
            request[section][key] = _go_value(value, kind, f"{_GO_STRUCTS[section]}.{section}.{key}")
    unified = doc.get("unified")
    if unified is not None:
        if not isinstance(unified, dict) or not all(isinstance(v, str) for v in unified.values()):
            raise RuntimeFailure(
                "json: cannot unmarshal into Go struct field LinuxResources.unified of type map[string]string"
            )
        request["unified"] = unified
    return request


def _go_value(value: Any, kind: str, field: str) -> Any:
    if kind == "string":
        if not isinstance(value, str):
            raise RuntimeFailure(
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field {field} of type string"
            )
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuntimeFailure(f"json: cannot unmarshal {_json_kind(value)} into Go struct field {field} of type {kind}")
    low, high = {"int64": (-_I64, _I64), "uint64": (0, _U64), "uint16": (0, 1 << 16)}[kind]
    if isinstance(value, float) or not low <= value < high:
        shown = value if isinstance(value, int) else repr(value)
        raise RuntimeFailure(f"json: cannot unmarshal number {shown} into Go struct field {field} of type {kind}")
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


# -- applying it -----------------------------------------------------------------------


def runc_view(old: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """The resources runc's update writes: the recorded ones with the request's fields over them."""
    view = {k: dict(v) if isinstance(v, dict) else v for k, v in old.items()}
    for section in ("memory", "cpu", "blockIO", "pids"):
        view[section] = dict(view.get(section) or {})
    cpu = request["cpu"]
    for key in ("limit", "reservation", "swap"):
        view["memory"][key] = request["memory"][key]
    for key in ("shares", "realtimeRuntime", "realtimePeriod", "cpus", "mems"):
        view["cpu"][key] = cpu[key]
    # runc: quota and period set together or not at all replace both; one alone
    # keeps the other's recorded value (written again with it).
    period, quota = cpu["period"], cpu["quota"]
    if bool(period) == bool(quota):
        view["cpu"]["period"], view["cpu"]["quota"] = period, quota
    elif period:
        view["cpu"]["period"] = period
    else:
        view["cpu"]["quota"] = quota
    view["blockIO"]["weight"] = request["blockIO"]["weight"]
    view["pids"]["limit"] = request["pids"]["limit"]
    view["unified"] = request.get("unified")
    return view


def merged(old: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """The resources to record: every non-zero value of the request over the recorded ones."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in old.items()}
    for section, key, _ in _FIELDS:
        value = request[section][key]
        if value and not (section == "memory" and key in ("kernel", "kernelTCP")):
            out[section] = {**(out.get(section) or {}), key: value}
    if request.get("unified"):
        out["unified"] = request["unified"]
    return out


def update(store: Store, container_id: str, opts: UpdateOptions, warn: Callable[[str], None]) -> None:
    with store.open(container_id) as cdir:
        record = cdir.read()
        # runc parses the request after finding the container and before looking at its state.
        request = _request(opts)
        if request["memory"]["kernel"] or request["memory"]["kernelTCP"]:
            warn("Kernel memory settings are ignored and will be removed")
        _check_intel_rdt(opts)
        if status_of(cdir, record) == "stopped":
            raise InvalidState("container not running")
        linux = record.config.setdefault("linux", {})
        old = linux.get("resources") or {}
        paths = record.cgroup_paths
        if request.get("unified") and not cgroups.is_unified(paths):
            raise SetupError("invalid configuration: cannot use unified on cgroup v1")
        try:
            cgroups.apply(paths, runc_view(old, request), skip_devices=True)
        except SetupError as err:
            try:
                cgroups.apply(paths, old, skip_devices=True)
            except RuntimeFailure as again:
                warn(
                    f"Setting back cgroup configs failed due to error: {_bare(again)},"
                    " your state.json and actual configs might be inconsistent."
                )
            raise SetupError(_bare(err)) from None
        linux["resources"] = merged(old, request)
        cdir.write(record)


def _request(opts: UpdateOptions) -> dict[str, Any]:
    if not opts.resources:
        return request_from_flags(opts.flags, opts.blkio_weight, opts.pids_limit)
    if opts.resources == "-":
        import sys

        stream = opts.stdin or sys.stdin.buffer
        return request_from_json(stream.read())
    try:
        with open(opts.resources, "rb") as f:
            data = f.read()
    except OSError as err:
        reason = (err.strerror or str(err))[:1].lower() + (err.strerror or str(err))[1:]
        raise RuntimeFailure(f"open {opts.resources}: {reason}") from None
    return request_from_json(data)


def _check_intel_rdt(opts: UpdateOptions) -> None:
    # runc checks the resctrl filesystem's feature directories; hull never manages Intel RDT.
    for value, feature, what in (
        (opts.l3_cache_schema, "L3", "Intel RDT/CAT: l3 cache schema"),
        (opts.mem_bw_schema, "MB", "Intel RDT/MBA: memory bandwidth schema"),
    ):
        if value and not os.path.isdir(f"/sys/fs/resctrl/info/{feature}"):
            raise SetupError(f"{what} is not enabled")
        if value:
            raise Unsupported("Intel RDT is not supported by hull-runtime yet")


def _bare(err: Exception) -> str:
    # runc's create wraps a failed write in "unable to apply cgroup configuration";
    # its update reports the write's own error.
    return str(err).removeprefix(_UNABLE_TO_APPLY)
