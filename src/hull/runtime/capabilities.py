"""Linux capabilities of the container process (config.md "process.capabilities").

As runc 1.1 does it (libcontainer/capabilities and finalizeNamespace), in the
order privileges.py gives:

* ``drop_bounding`` while still privileged: PR_CAPBSET_DROP for every
  capability up to the kernel's last one that the bounding set leaves out;
  skipped, as runc's capability library does, when the process lacks
  CAP_SETPCAP (it could drop nothing).
* ``keep_across_user_switch``: PR_SET_KEEPCAPS, so that the permitted set
  survives setuid(2) away from UID 0 (capabilities(7), "Effect of user ID
  changes"); set for every user, as runc does.
* ``apply`` after the switch: PR_SET_KEEPCAPS cleared again, capset(2) with
  the effective, permitted and inheritable sets exactly as configured (so
  the inheritable set is never populated beyond what the config asks:
  CVE-2022-29162), then the ambient set raised last. The kernel raises an
  ambient capability only if it is in both the permitted and inheritable
  sets; runc ignores the refusal, so ``runc spec``'s default ambient list
  has no effect without an inheritable set, and so does it here.

Names: runc 1.1.5 ignores, with a warning, both a name that does not exist
(``CAP_FOO``, ``cap_chown``) and one newer than the running kernel (above
/proc/sys/kernel/cap_last_cap), so that an engine's default list works on an
older kernel; unknown keys of the object are ignored as config.md requires
for unknown properties. An absent ``capabilities`` object means every set is
empty: the process runs with no capabilities at all, bounding set included.
"""

from __future__ import annotations

import errno
import os

from hull.runtime import linux as L
from hull.runtime.errors import ConfigError, SetupError

# Index = capability number (linux/capability.h), up to CAP_CHECKPOINT_RESTORE (Linux 5.9):
# the names runc 1.1.5 knows and lists in `features`.
NAMES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
CAP_SETPCAP = 8

SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

Masks = dict[str, int]

_last_cap: list[int] = []  # cached; filled at create, so init (a fork) has it without /proc


def last_cap() -> int:
    """The highest capability number the running kernel knows."""
    if not _last_cap:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _last_cap.append(int(f.read()))
        except (OSError, ValueError):
            # No /proc: PR_CAPBSET_READ refuses (EINVAL) numbers the kernel does not know.
            n = 0
            while n < 63 and _capbset_known(n + 1):
                n += 1
            _last_cap.append(n)
    return _last_cap[0]


def _capbset_known(cap: int) -> bool:
    try:
        L.prctl(L.PR_CAPBSET_READ, cap)
    except OSError:
        return False
    return True


def parse(capabilities: dict[str, list[str]] | None) -> tuple[Masks, list[str]]:
    """The five sets as bit masks, and the field paths of the names ignored (unknown or unavailable)."""
    last = last_cap()
    masks = dict.fromkeys(SETS, 0)
    ignored: list[str] = []
    for kind in SETS:
        for i, name in enumerate((capabilities or {}).get(kind, ())):
            number = _number(name)
            if number is None or number > last:
                ignored.append(f"process.capabilities.{kind}[{i}]")
            else:
                masks[kind] |= 1 << number
    return masks, ignored


_NUMBERS: dict[str, int] = {}


def _number(name: str) -> int | None:
    if not _NUMBERS:
        _NUMBERS.update((n, i) for i, n in enumerate(NAMES))
    return _NUMBERS.get(name)


def names(mask: int) -> list[str]:
    return [name for i, name in enumerate(NAMES) if mask >> i & 1]


def check(capabilities: dict[str, list[str]] | None) -> None:
    """At create: warn of ignored names (as runc does); refuse sets capset(2) can never accept.

    runc finds these when its init applies the sets, still during create, and
    fails with "unable to apply caps: operation not permitted"; here the
    config is checked before anything is forked, naming the field.
    """
    if not capabilities:
        return
    masks, ignored = parse(capabilities)
    if ignored:
        given = sorted({_name_at(capabilities, path) for path in ignored})
        os.write(
            2,
            (
                f"hull-runtime: warning: ignoring unknown or unavailable capabilities: [{' '.join(given)}]"
                f" ({', '.join(ignored)})\n"
            ).encode(),
        )
    # capset(2): the new effective set must lie within the new permitted set...
    _within(capabilities, masks, "effective", masks["permitted"], "process.capabilities.permitted")
    # ...and the new inheritable set within the bounding set (dropped just before) plus the
    # inheritable set the process already has (init inherits the runtime's).
    _, _, inheritable_now = L.capget()
    _within(capabilities, masks, "inheritable", masks["bounding"] | inheritable_now, "process.capabilities.bounding")


def _name_at(capabilities: dict[str, list[str]], path: str) -> str:
    kind, _, index = path.removeprefix("process.capabilities.").partition("[")
    return capabilities[kind][int(index[:-1])]


def _within(capabilities: dict[str, list[str]], masks: Masks, kind: str, allowed: int, other: str) -> None:
    extra = masks[kind] & ~allowed
    if not extra:
        return
    for i, name in enumerate(capabilities[kind]):
        number = _number(name)
        if number is not None and extra >> number & 1:
            raise ConfigError(
                f"process.capabilities.{kind}[{i}]: {name} is not in {other}; the kernel refuses such a set (capset(2))"
            )


def drop_bounding(capabilities: dict[str, list[str]] | None) -> None:
    """Drop every capability not in the bounding set (PR_CAPBSET_DROP)."""
    masks, _ = parse(capabilities)
    effective, _, _ = L.capget()
    if not effective >> CAP_SETPCAP & 1:
        # runc's capability library skips the drop without CAP_SETPCAP; the kernel would refuse each one.
        return
    keep = masks["bounding"]
    for number in range(last_cap() + 1):
        if keep >> number & 1:
            continue
        try:
            L.prctl(L.PR_CAPBSET_DROP, number)
        except OSError as err:
            if err.errno == errno.EINVAL:  # a capability this kernel lacks, as runc ignores
                continue
            raise SetupError(
                f"process.capabilities.bounding: unable to drop {_label(number)} from the bounding set: {err.strerror}"
            ) from None


def keep_across_user_switch(capabilities: dict[str, list[str]] | None) -> None:
    """Before setuid: PR_SET_KEEPCAPS so the permitted set survives a switch away from UID 0."""
    L.prctl(L.PR_SET_KEEPCAPS, 1)


def apply(capabilities: dict[str, list[str]] | None) -> None:
    """After setuid: effective, permitted and inheritable (capset), then ambient."""
    masks, _ = parse(capabilities)
    L.prctl(L.PR_SET_KEEPCAPS, 0)
    try:
        L.capset(masks["effective"], masks["permitted"], masks["inheritable"])
    except OSError as err:
        _, permitted_now, _ = L.capget()
        lacking = names(masks["permitted"] & ~permitted_now)
        why = f" (this process lacks {', '.join(lacking)})" if lacking else ""
        raise SetupError(f"process.capabilities: unable to apply caps: {err.strerror}{why}") from None
    # Ambient: cleared, then each configured one raised. The kernel refuses (EPERM) a
    # capability not in both permitted and inheritable, and a kernel before 4.3 has no
    # ambient set (EINVAL); runc ignores both, and so does this.
    ambient = masks["ambient"]
    for op, number in [(L.PR_CAP_AMBIENT_CLEAR_ALL, 0)] + [
        (L.PR_CAP_AMBIENT_RAISE, n) for n in range(last_cap() + 1) if ambient >> n & 1
    ]:
        try:
            L.prctl(L.PR_CAP_AMBIENT, op, number)
        except OSError:
            pass


def _label(number: int) -> str:
    return NAMES[number] if number < len(NAMES) else f"capability {number}"
