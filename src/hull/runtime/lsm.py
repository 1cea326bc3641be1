"""AppArmor profile and SELinux label of the container process (config.md "process").

As runc 1.1.5 does: both are set for the *next* execve(2) through procfs,
by init after the rootfs is final (so /proc is the container's own) and
before the user's program runs.

* ``apparmorProfile``: "exec <profile>" is written to
  /proc/self/attr/apparmor/exec, or /proc/self/attr/exec on kernels without
  the per-LSM directory (libapparmor's aa_change_onexec). runc does not
  check that AppArmor is enabled: on a host without it the kernel refuses
  the write (EINVAL) and the container fails; so does it here.
* ``selinuxLabel``: refused when SELinux is disabled or absent (runc's
  validator, "selinux label is specified in config, but selinux is disabled
  or not supported"); otherwise written to /proc/self/attr/exec.

Every write is checked to land on procfs: an image can put a volume or a
symlink over /proc, so that the "profile" goes to an ordinary file and the
process runs unconfined (CVE-2019-16884).
"""

from __future__ import annotations

import os

from hull.oci.runtime_config import Process
from hull.runtime import linux as L
from hull.runtime.errors import ConfigError, SetupError


def apparmor_enabled() -> bool:
    """As runc's apparmor.IsEnabled: securityfs shows AppArmor and its module parameter says Y."""
    if not os.path.exists("/sys/kernel/security/apparmor"):
        return False
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read(1) == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    """As go-selinux's GetEnabled: selinuxfs is mounted and the process has a label other than "kernel"."""
    if not os.path.exists("/sys/fs/selinux/enforce"):
        return False
    try:
        with open("/proc/self/attr/current") as f:
            return f.read().strip("\0\n") != "kernel"
    except OSError:
        return False


def check(proc: Process) -> None:
    if proc.selinux_label and not selinux_enabled():
        raise ConfigError(
            "process.selinuxLabel: selinux label is specified in config, but selinux is disabled or not supported"
        )


def apply(proc: Process) -> None:
    """Set the profile and label the next execve(2) takes on; a no-op when the config has neither."""
    check(proc)
    if proc.apparmor_profile:
        path = "/proc/self/attr/apparmor/exec"
        if not os.path.exists(path):
            path = "/proc/self/attr/exec"
        _write_proc_attr(path, "exec " + proc.apparmor_profile, "apparmor failed to apply profile")
    if proc.selinux_label:
        _write_proc_attr("/proc/self/attr/exec", proc.selinux_label, "can't set process label")


def _write_proc_attr(path: str, value: str, what: str) -> None:
    # runc's words ("apparmor failed to apply profile: write /proc/self/attr/exec: invalid argument"):
    # engines show them to users as they are.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as err:
        raise SetupError(f"{what}: open {path}: {(err.strerror or str(err)).lower()}") from None
    try:
        if L.fstatfs_type(fd) != L.PROC_SUPER_MAGIC:
            raise SetupError(f"{what}: {path} is not on procfs (CVE-2019-16884)")
        os.write(fd, value.encode())
    except OSError as err:
        raise SetupError(f"{what}: write {path}: {(err.strerror or str(err)).lower()}") from None
    finally:
        os.close(fd)
