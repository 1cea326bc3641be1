"""A Debian bookworm root filesystem with python3 for end-to-end engine tests, built once and cached.

``debootstrap --variant=minbase --include=python3 bookworm`` from the
host's own Debian mirror (its apt sources), trimmed (apt lists, docs, man
pages, locales), archived with GNU tar as a plain tar file in a cache
directory that outlives test runs. The tar is written under a temporary name
and renamed when complete, so a build killed half-way is redone, and built
under an flock so concurrent test workers build it once. ``import_debian``
imports it into a hull store as ``localhost/debian-python:bookworm`` (the
function ``hull image import`` runs), with ``CMD ["python3"]``.

Needs root (debootstrap chroots and creates device nodes) and the mirror.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

from hull.image.store import LayoutStore

SUITE = "bookworm"
DEFAULT_CACHE = "/var/cache/hull-tests"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBIAN_REF = "localhost/debian-python:bookworm"
VARIANT = "minbase"
# python3, not python3-minimal: http.server (the service the engine tests run) is in libpython3.11-stdlib.
INCLUDE = ("python3",)
# Removed after debootstrap: nothing a test runs needs them, and they are most of the size.
TRIM = (
    "var/lib/apt/lists/*",
    "var/cache/apt/*",
    "var/cache/debconf/*-old",
    "var/log/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "usr/share/lintian/*",
)
BUILD_TIMEOUT = 1200
# The recipe is part of the cached file's name: changing it builds a new tar instead of reusing a stale one.
_RECIPE = hashlib.sha256(repr((SUITE, VARIANT, INCLUDE, TRIM)).encode()).hexdigest()[:12]
TAR_NAME = f"debian-{SUITE}-python3-{_RECIPE}.tar"


class DebianBuildFailed(RuntimeError):
    pass


def _sources() -> Iterator[tuple[str, list[str]]]:
    """(URI, suites) of every ``deb`` entry in the host's apt sources, one-line and deb822 formats."""
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split("#", 1)[0].split()
            if words and words[0] == "deb":
                words = words[1:]
                if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
                    while words and not words[0].endswith("]"):
                        words = words[1:]
                    words = words[1:]
                if len(words) >= 2:
                    yield words[0], [words[1]]
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        for stanza in text.split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
                for uri in fields.get("uris", "").split():
                    yield uri, fields.get("suites", "").split()


def host_mirror() -> str:
    """The host's Debian mirror for ``SUITE`` (``HULL_DEBIAN_MIRROR`` overrides it)."""
    override = os.environ.get("HULL_DEBIAN_MIRROR")
    if override:
        return override
    for uri, suites in _sources():
        if SUITE in suites:
            return uri
    return DEFAULT_MIRROR


def _mounts_below(path: str) -> list[str]:
    """Mount points at or below ``path`` (debootstrap mounts /proc and /sys in its target while it runs)."""
    prefix = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _remove_tree(path: str) -> None:
    """Remove a (possibly half-built) target, unmounting what a killed debootstrap left mounted first."""
    for point in _mounts_below(path):
        subprocess.run(["umount", "-l", point], check=False)
    if _mounts_below(path):
        raise DebianBuildFailed(f"{path}: still has mounts below it; not removing it")
    shutil.rmtree(path, ignore_errors=True)


def _clean_leftovers(cache_dir: str) -> None:
    """Temporary trees and tars of builds that died (called with the build lock held: nobody else builds)."""
    for path in glob.glob(os.path.join(cache_dir, ".build-*")):
        _remove_tree(path)
    for path in glob.glob(os.path.join(cache_dir, f".{TAR_NAME}.*")):
        os.unlink(path)


def _build(cache_dir: str, target: str) -> None:
    work = tempfile.mkdtemp(prefix=".build-", dir=cache_dir)
    try:
        root = os.path.join(work, "root")
        cmd = ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(INCLUDE)}", SUITE, root, host_mirror()]
        run = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        if run.returncode != 0:
            tail = "\n".join((run.stdout + run.stderr).splitlines()[-15:])
            raise DebianBuildFailed(f"{' '.join(cmd)} failed (exit {run.returncode}):\n{tail}")
        for pattern in TRIM:
            for path in glob.glob(os.path.join(root, pattern)):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{TAR_NAME}.", dir=cache_dir)
        os.close(fd)
        try:
            # GNU tar, an independent producer of the archive hull imports; sorted, numeric owners.
            subprocess.run(
                ["tar", "-C", root, "--numeric-owner", "--sort=name", "--xattrs", "-cf", tmp, "."],
                check=True,
                stdin=subprocess.DEVNULL,
                timeout=BUILD_TIMEOUT,
            )
            os.chmod(tmp, 0o644)
            os.rename(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    finally:
        _remove_tree(work)


def debian_rootfs_tar(cache_dir: str = DEFAULT_CACHE) -> str:
    """The path of the cached Debian rootfs tar, building it first if it is not there yet."""
    target = os.path.join(cache_dir, TAR_NAME)
    if os.path.exists(target):
        return target
    os.makedirs(cache_dir, exist_ok=True)
    fd = os.open(os.path.join(cache_dir, f"{TAR_NAME}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a second worker waits here, then finds the finished tar
        if not os.path.exists(target):
            _clean_leftovers(cache_dir)
            _build(cache_dir, target)
    finally:
        os.close(fd)
    return target


def import_debian(store: LayoutStore, tar_path: str | None = None, ref: str = DEBIAN_REF) -> str:
    """Import the Debian rootfs tar into ``store`` as ``ref`` (as ``hull image import -c 'CMD
    ["python3"]' TAR REF``); returns the name it was stored under."""
    from hull.image.importer import import_image

    _manifest, _image_id, name = import_image(
        store, tar_path or debian_rootfs_tar(), ref, changes=['CMD ["python3"]'], message="debootstrap " + SUITE
    )
    assert name is not None
    return name
