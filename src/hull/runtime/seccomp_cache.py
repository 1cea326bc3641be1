"""The container's seccomp filter compiled by the runtime, and kept compiled under ``--root``.

Building docker's default profile through libseccomp (one rule per syscall
and architecture) and generating its BPF costs some 20 ms, on every create
and exec. The runtime compiles the filter on the host before it forks, as
libseccomp's seccomp_export_bpf gives it (gen_bpf_generate: the very program
seccomp_load would install), and the forked init or exec'd process installs
those bytes with seccomp(2) (seccomp.load_program), without libseccomp.

Programs are kept in ``<root>/~seccomp-cache/`` (a name no container ID can
have; 0700, the runtime user's own; on the host, never inside a container's
rootfs, so a container cannot write it). An entry is named by the sha256 of
everything its program depends on: the profile exactly as
``seccomp.build`` reads it (canonical JSON), the attributes build sets,
libseccomp's version and API level, the native architecture, the kernel
release, and the source of the modules that build it. It is written
atomically (a rename) and holds the sha256 of its name's key and of its
program; anything that does not check out is removed and compiled again.

Not compiled ahead (init builds and loads through libseccomp as before):
profiles with SCMP_ACT_NOTIFY or a listenerPath (the notify fd is a result of
the load), flags load_program does not mirror, and any profile libseccomp
fails to build here (init then reports the error as before).
"""

from __future__ import annotations

import os

from hull.runtime import seccomp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

CACHE_DIR = "~seccomp-cache"
FORMAT = b"hull-seccomp-bpf 1\n"
# BPF_MAXINSNS: the kernel refuses a longer seccomp program.
MAX_INSTRUCTIONS = 4096
INSTRUCTION_SIZE = 8  # struct sock_filter
_MAX_FILE = len(FORMAT) + 2 * 65 + MAX_INSTRUCTIONS * INSTRUCTION_SIZE
# The modules whose code decides what a profile compiles to.
_BUILD_MODULES = ("hull.runtime.seccomp", "hull.runtime.libseccomp", __name__)
_code_digest: str | None = None


def program_for(profile: dict[str, Any] | None, root: str) -> bytes | None:
    """The compiled filter for ``profile``, from the cache under ``root`` or built (and stored there).

    None when the profile is not compiled ahead or anything goes wrong: the
    container's init then builds and loads it through libseccomp, as without
    a cache. Never raises.
    """
    if profile is None or not seccomp.precompilable(profile):
        return None
    try:
        lib = seccomp._binding()
        key = _key(profile, lib)
    except Exception:  # noqa: BLE001 - anything unexpected: the uncached path decides
        return None
    name = _sha256(key)
    dir_fd = _open_dir(root)
    try:
        if dir_fd >= 0:
            program = _read(dir_fd, name)
            if program is not None:
                return program
        try:
            program = compile_program(profile, lib)
        except Exception:  # noqa: BLE001 - libseccomp refused it: init reports that as before
            return None
        if dir_fd >= 0:
            _write(dir_fd, name, program)
        return program
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)


def compile_program(profile: dict[str, Any], lib: ModuleType) -> bytes:
    """The BPF program libseccomp generates for the profile (seccomp_export_bpf)."""
    ctx = seccomp.build(profile, lib)
    try:
        fd = os.memfd_create("hull-seccomp-bpf", os.MFD_CLOEXEC)
        try:
            lib.export_bpf(ctx, fd)
            program = _read_all(fd, _MAX_FILE)
        finally:
            os.close(fd)
    finally:
        lib.release(ctx)
    if not _plausible(program):
        raise ValueError(f"libseccomp exported a program of {len(program)} bytes")
    return program


def entry_name(profile: dict[str, Any], lib: ModuleType) -> str:
    """The cache entry's file name: the sha256 of all the program depends on."""
    return _sha256(_key(profile, lib))


def _key(profile: dict[str, Any], lib: ModuleType) -> bytes:
    uname = os.uname()
    # seccomp.build's attributes: no_new_privs off, one per flag.
    attributes = {"SCMP_FLTATR_CTL_NNP": 0}
    for flag in profile.get("flags") or ():
        attributes[seccomp.FLAGS[flag][0]] = 1
    parts = {
        "format": FORMAT.decode().strip(),
        "code": _build_code_digest(),
        "libseccomp": list(lib.version()),
        "api": lib.api_get(),
        "native": lib.arch_native(),
        "machine": uname.machine,
        "kernel": uname.release,
        "attributes": attributes,
        "profile": profile,
    }
    return _canonical(parts).encode()


def _canonical(value: Any) -> str:
    import _json

    # json.dumps(sort_keys=True, separators=(",", ":"), allow_nan=False), by the C encoder alone.
    encoder = _json.make_encoder(None, _unencodable, _json.encode_basestring_ascii, None, ":", ",", True, False, False)
    return "".join(encoder(value, 0))


def _unencodable(value: object) -> object:
    raise TypeError(f"{type(value).__name__} in a seccomp profile")


def _build_code_digest() -> str:
    global _code_digest
    if _code_digest is None:
        import sys

        parts = []
        for module in _BUILD_MODULES:
            path = getattr(sys.modules[module], "__file__", None) or ""
            with open(path, "rb") as f:
                parts.append(_sha256(f.read()))
        _code_digest = _sha256(" ".join(parts).encode())
    return _code_digest


def _sha256(data: bytes) -> str:
    try:
        # hashlib's own fallback module: hashlib itself loads OpenSSL (milliseconds).
        from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from hashlib import sha256
    return str(sha256(data).hexdigest())


def _plausible(program: bytes) -> bool:
    return 0 < len(program) <= MAX_INSTRUCTIONS * INSTRUCTION_SIZE and len(program) % INSTRUCTION_SIZE == 0


def _open_dir(root: str) -> int:
    """The cache directory, made if missing; -1 if it cannot be used (then nothing is read or written)."""
    path = os.path.join(root, CACHE_DIR)
    try:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return -1
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        # Not ours alone: someone else could have planted a program there.
        os.close(fd)
        return -1
    return fd


def _read(dir_fd: int, name: str) -> bytes | None:
    """The entry's program if it checks out; a bad entry is removed."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError:
        _remove(dir_fd, name)
        return None
    try:
        st = os.fstat(fd)
        regular = st.st_mode & 0o170000 == 0o100000
        ok = regular and st.st_uid == os.geteuid() and not st.st_mode & 0o022 and st.st_size <= _MAX_FILE
        data = _read_all(fd, _MAX_FILE) if ok else b""
    except OSError:
        data = b""
    finally:
        os.close(fd)
    program = _parse(data, name)
    if program is None:
        _remove(dir_fd, name)
    return program


def _parse(data: bytes, name: str) -> bytes | None:
    header = FORMAT + name.encode() + b"\n"
    if not data.startswith(header):
        return None
    digest, sep, program = data[len(header) :].partition(b"\n")
    if not sep or not _plausible(program) or digest != _sha256(program).encode():
        return None
    return program


def _write(dir_fd: int, name: str, program: bytes) -> None:
    import _thread

    data = FORMAT + name.encode() + b"\n" + _sha256(program).encode() + b"\n" + program
    tmp = f".{name}.{os.getpid()}.{_thread.get_ident()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:
        # A full or read-only disk: the program still goes to init, uncached.
        _remove(dir_fd, tmp)


def _remove(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def _read_all(fd: int, limit: int) -> bytes:
    """Up to ``limit`` + 1 bytes from the start of ``fd`` (one more than allowed tells it is too long)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = os.pread(fd, limit + 1 - size, size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
