"""From an image to a runtime bundle (runtime-spec bundle.md): a rootfs and a config.json.

The config follows image-spec conversion.md "Conversion to OCI Runtime
Configuration" on top of ``hull-runtime spec``'s default (the
"implementation-defined defaults" it allows):

- verbatim: ``Config.WorkingDir`` -> ``process.cwd`` ("/" when empty),
  ``Config.Env`` -> ``process.env`` (an image variable replaces the default of
  the same name, never the reverse: note 1), ``Config.Entrypoint`` +
  ``Config.Cmd`` -> ``process.args`` (note 2; with neither, the default stays);
- annotations: ``os``, ``architecture``, ``variant``, ``os.version``,
  ``os.features`` (comma-separated), ``author``, ``created``,
  ``Config.StopSignal`` and ``Config.ExposedPorts`` (comma-separated keys) as
  the ``org.opencontainers.image.*`` keys it names, then ``Config.Labels``,
  which win any conflict ("Annotations": "MUST take precedence"); absent
  fields give no annotation;
- ``Config.User`` parsed as ``resolve_user`` below does, through the
  rootfs's /etc/passwd and /etc/group; ``HOME`` from the passwd entry when the
  image does not set it;
- ``Config.Volumes`` -> a tmpfs mount each (optional fields note 2: "such
  that application data is not written to the container's root filesystem"),
  as umoci does.

``unpack_bundle`` is ``umoci unpack``: a plain rootfs directory, layers
applied in order with the changeset rules (layer.py), all or nothing.
``unpack_image`` puts an image's layers into a snapshotter, each layer once
per ChainID; ``prepare_rootfs`` then gives a container's rootfs as mounts.
"""

from __future__ import annotations

import copy
import json
import os

from hull.image.errors import BlobNotFound, ImageError, InvalidImage, NoMatchingPlatform
from hull.oci.digest import chain_ids
from hull.oci.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from hull.image.layer import ApplyOptions
    from hull.image.mounts import Mount
    from hull.image.snapshot import Snapshotter
    from hull.image.store import LayoutStore
    from hull.oci.image import Descriptor, ImageConfig, Manifest, Platform

ANNOTATION_PREFIX = "org.opencontainers.image."
EXTRACT_PREFIX = "extract-"
# Options umoci gives a Volumes tmpfs; runtime-spec leaves them implementation-defined.
VOLUME_OPTIONS = ["rw", "nosuid", "nodev", "noexec", "relatime"]


class UserNotFound(ImageError):
    """``Config.User`` names a user or group the image does not have (conversion.md: "MUST return an error")."""


@record
class User:
    uid: int
    gid: int
    additional_gids: list[int]
    home: str = ""  # from /etc/passwd, when the user has an entry


# ---------------------------------------------------------------- users


def _read_in_root(rootfs: str, path: str) -> str | None:
    """A file of the image, its path resolved inside the rootfs (a hostile symlink cannot reach the host)."""
    from hull.runtime.paths import secure_join

    host = secure_join(rootfs, path)
    try:
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not os.path.isfile(f"/proc/self/fd/{fd}"):
            return None  # a fifo or device named /etc/passwd is not a database
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(16 << 20).decode("utf-8", "replace")
    finally:
        os.close(fd)


def _records(text: str | None, fields: int) -> list[list[str]]:
    """The well-formed lines of passwd(5)/group(5) text, split on ':' (comments and short lines skipped)."""
    out = []
    for line in (text or "").splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= fields:
            out.append(parts)
    return out


def _numeric(value: str) -> int | None:
    if value.isascii() and value.isdigit():
        number = int(value)
        if number < 1 << 32:
            return number
    return None


def _id(value: str) -> int | None:
    return _numeric(value) if value else None


def resolve_user(spec: str, passwd: str | None, group: str | None) -> User:
    """``Config.User`` (``user``, ``uid``, ``user:group``, ``uid:gid``, mixed) to ids (conversion.md "Config.User").

    Numeric values are copied verbatim; names are looked up in ``passwd`` /
    ``group`` (the files' text, None when the image has none) and must exist.
    Without a group, the gid is the passwd entry's (0 when a numeric uid has
    no entry, as Docker and umoci do). Supplementary groups are set only for a
    user *name* without a group: the groups listing that name, without the
    primary gid ("SHOULD NOT modify ... if user is numeric or Config.User
    specifies a group").
    """
    user_part, _, group_part = spec.partition(":")
    has_group = ":" in spec
    users = _records(passwd, 7)
    groups = _records(group, 4)
    entry: list[str] | None = None
    uid = _numeric(user_part) if user_part else 0
    if uid is None:
        entry = next((u for u in users if u[0] == user_part), None)
        if entry is None or _id(entry[2]) is None or _id(entry[3]) is None:
            where = "/etc/passwd" if passwd is not None else "the image (it has no /etc/passwd)"
            raise UserNotFound(f"config.User {spec!r}: no user {user_part!r} in {where}")
        uid = int(entry[2])
    else:
        entry = next((u for u in users if _id(u[2]) == uid and _id(u[3]) is not None), None)
    gid = int(entry[3]) if entry is not None else 0
    additional: list[int] = []
    if has_group:
        if not group_part:
            raise UserNotFound(f"config.User {spec!r}: empty group")
        number = _numeric(group_part)
        if number is None:
            found = next((g for g in groups if g[0] == group_part and _id(g[2]) is not None), None)
            if found is None:
                where = "/etc/group" if group is not None else "the image (it has no /etc/group)"
                raise UserNotFound(f"config.User {spec!r}: no group {group_part!r} in {where}")
            number = int(found[2])
        gid = number
    elif user_part and _numeric(user_part) is None:
        for g in groups:
            gid_g = _id(g[2])
            if gid_g is not None and user_part in g[3].split(",") and gid_g != gid and gid_g not in additional:
                additional.append(gid_g)
    return User(uid, gid, additional, entry[5] if entry is not None else "")


def resolve_user_in(spec: str, rootfs: str) -> User:
    """``resolve_user`` through the rootfs's own /etc/passwd and /etc/group."""
    return resolve_user(spec, _read_in_root(rootfs, "/etc/passwd"), _read_in_root(rootfs, "/etc/group"))


# ---------------------------------------------------------------- config conversion


def _set_env(env: list[str], name: str, value: str) -> None:
    item = f"{name}={value}"
    for i, old in enumerate(env):
        if old.split("=", 1)[0] == name:
            env[i] = item
            return
    env.append(item)


def image_annotations(image: ImageConfig) -> dict[str, str]:
    """The annotations conversion.md derives from the image config, Labels winning conflicts."""
    ec = image.config
    implicit = {
        "os": image.os,
        "architecture": image.architecture,
        "variant": image.variant,
        "os.version": image.os_version,
        "os.features": ",".join(image.os_features),
        "author": image.author,
        "created": image.created,
        "stopSignal": ec.stop_signal if ec else "",
        "exposedPorts": ",".join(sorted(ec.exposed_ports)) if ec else "",
    }
    out = {ANNOTATION_PREFIX + k: v for k, v in implicit.items() if v}
    if ec is not None:
        out.update(ec.labels)
    return out


def runtime_config(image: ImageConfig, user: User, *, terminal: bool = True,
                   base: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The runtime config.json for ``image`` run as ``user`` (see the module notes)."""
    from hull.runtime.spec_template import default_spec

    spec = copy.deepcopy(base) if base is not None else default_spec()
    ec = image.config
    process = spec.setdefault("process", {})
    process["terminal"] = terminal
    spec["root"] = {"path": "rootfs", "readonly": False}  # an image's programs expect to write (umoci, docker)
    env: list[str] = list(process.get("env", []))
    args: list[str] = []
    if ec is not None:
        for i, item in enumerate(ec.env):
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise InvalidImage(f"config.Env[{i}]: {item!r} is not NAME=VALUE")
            _set_env(env, name, value)
        args = [*(ec.entrypoint or []), *(ec.cmd or [])]
    if user.home and not any(e.startswith("HOME=") for e in (ec.env if ec else [])):
        _set_env(env, "HOME", user.home)
    process["env"] = env
    if args:
        process["args"] = args
    process["cwd"] = (ec.working_dir if ec else "") or "/"
    process["user"] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        process["user"]["additionalGids"] = list(user.additional_gids)
    annotations = {**spec.get("annotations", {}), **image_annotations(image)}
    if annotations:
        spec["annotations"] = annotations
    if ec is not None:
        for volume in sorted(ec.volumes):
            spec.setdefault("mounts", []).append(
                {"destination": volume, "type": "tmpfs", "source": "none", "options": list(VOLUME_OPTIONS)}
            )
    return spec


# ---------------------------------------------------------------- images


@record
class ResolvedImage:
    descriptor: Descriptor  # of the manifest
    manifest: Manifest
    config: ImageConfig


def resolve_image(store: LayoutStore, ref: str, platform: Platform | None = None) -> ResolvedImage:
    """The manifest and config of ``ref`` for ``platform`` (the host's by default), every layer blob present."""
    from hull.oci import platform as _platform
    from hull.oci.image import Platform as _P

    desc, manifest = store.manifest(store.resolve(ref), platform)
    config = store.config(manifest)
    want = _platform.normalize(platform) if platform is not None else _platform.host()
    have = _P(config.architecture, config.os, config.os_version, list(config.os_features), config.variant)
    if _platform.rank(want, have) is None:
        raise NoMatchingPlatform(_platform.format_platform(want), [_platform.format_platform(have)])
    for layer in manifest.layers:
        if not store.has(layer.digest):
            raise BlobNotFound(layer.digest)
    return ResolvedImage(desc, manifest, config)


def _layer_sources(store: LayoutStore, image: ResolvedImage) -> list[Any]:
    from hull.image.layer import LayerSource

    return [
        LayerSource(store.open(d.digest), d.media_type, d.digest, d.size, diff_id)
        for d, diff_id in zip(image.manifest.layers, image.config.rootfs.diff_ids, strict=True)
    ]


def write_config(bundle: str, config: dict[str, Any]) -> None:
    path = os.path.join(bundle, "config.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.rename(tmp, path)


def unpack_bundle(store: LayoutStore, ref: str, bundle: str, *, platform: Platform | None = None,
                  options: ApplyOptions | None = None, terminal: bool = True) -> dict[str, Any]:  # fmt: skip
    """``hull unpack IMAGE BUNDLE``: BUNDLE/rootfs with every layer applied, and BUNDLE/config.json.

    The bundle directory may exist but must not hold a rootfs or config.json
    yet. The rootfs appears only once every layer verified (digest, size,
    diff_id); a failure leaves neither it nor config.json. Returns the config.
    """
    from hull.image.layer import remove_tree, unpack_layers

    image = resolve_image(store, ref, platform)
    os.makedirs(bundle, exist_ok=True)
    rootfs = os.path.join(bundle, "rootfs")
    for name in ("rootfs", "config.json"):
        if os.path.lexists(os.path.join(bundle, name)):
            raise ImageError(f"bundle {bundle}: {name} already exists")
    sources = _layer_sources(store, image)
    try:
        unpack_layers(sources, rootfs, options)
    finally:
        for s in sources:
            s.blob.close()
    try:
        user = resolve_user_in(image.config.config.user if image.config.config else "", rootfs)
        config = runtime_config(image.config, user, terminal=terminal)
        write_config(bundle, config)
    except BaseException:
        remove_tree(rootfs)
        raise
    return config


# ---------------------------------------------------------------- snapshots


def _mountpoint(snapshotter: Snapshotter, key: str) -> str:
    safe = key.replace("/", "_").replace(":", "_")
    return os.path.join(snapshotter.root, "mnt", safe)


def _remove_stale_extractions(snapshotter: Snapshotter) -> None:
    """Active ``extract-`` snapshots whose unpacker died (kill -9, a crash): unmount and remove them."""
    from hull.image.mounts import unmount_all
    from hull.image.snapshot import KIND_ACTIVE

    for info in snapshotter.walk():
        if info.kind != KIND_ACTIVE or not info.name.startswith(EXTRACT_PREFIX):
            continue
        chain_id = info.labels.get("hull.chain-id") or info.name
        if snapshotter.key_locked(chain_id):
            continue  # another unpack is working on it
        mountpoint = _mountpoint(snapshotter, info.name)
        if os.path.isdir(mountpoint):
            unmount_all(mountpoint)
            os.rmdir(mountpoint)
        snapshotter.remove(info.name)


def unpack_image(store: LayoutStore, snapshotter: Snapshotter, image: ResolvedImage,
                 options: ApplyOptions | None = None) -> str:  # fmt: skip
    """Commit every layer of ``image`` as a snapshot named by its ChainID; returns the top one.

    A layer whose ChainID is already committed is skipped (shared by images).
    Otherwise it is applied in an active snapshot prepared on its parent — for
    overlay through the mounted overlay, so overlayfs records its deletions as
    its own whiteouts in the upper directory — and committed only once it
    verified; a failure removes the active snapshot, a crash leaves it active
    (removed by the next unpack). Concurrent unpacks of one layer serialise on
    a lock per ChainID.
    """
    from hull.image.snapshot import KIND_COMMITTED

    layers = image.manifest.layers
    diff_ids = image.config.rootfs.diff_ids
    chains = chain_ids(diff_ids)
    if chains and snapshotter.all_exist(chains, KIND_COMMITTED):
        return chains[-1]  # unpacked before: one shared-lock read, as every container of the image needs
    _remove_stale_extractions(snapshotter)
    snapshotter.cleanup()
    parent = ""
    for desc, diff_id, chain_id in zip(layers, diff_ids, chains, strict=True):
        if not snapshotter.exists(chain_id, KIND_COMMITTED):
            with snapshotter.key_lock(chain_id):
                if not snapshotter.exists(chain_id, KIND_COMMITTED):
                    _extract(store, snapshotter, desc, diff_id, chain_id, parent, options)
        parent = chain_id
    return parent


def _extract(store: LayoutStore, snapshotter: Snapshotter, desc: Descriptor, diff_id: str, chain_id: str,
             parent: str, options: ApplyOptions | None) -> None:  # fmt: skip
    from hull.image.layer import apply_layer, compression_of
    from hull.image.mounts import mounted

    key = f"{EXTRACT_PREFIX}{os.getpid()}-{chain_id}"
    mounts = snapshotter.prepare(key, parent, {"hull.chain-id": chain_id})
    mountpoint = _mountpoint(snapshotter, key)
    try:
        with store.open(desc.digest) as blob, mounted(mounts, mountpoint) as target:
            apply_layer(blob, target, compression_of(desc.media_type), digest=desc.digest, size=desc.size,
                        diff_id=diff_id, options=options)  # fmt: skip
        snapshotter.commit(chain_id, key, {"hull.diff-id": diff_id, "hull.layer-digest": desc.digest})
    except BaseException:
        snapshotter.remove(key)
        raise
    finally:
        if os.path.isdir(mountpoint):
            os.rmdir(mountpoint)


@record
class PreparedRootfs:
    """A container's rootfs as mounts the engine performs on BUNDLE/rootfs, and its config."""

    key: str
    mounts: list[Mount]
    config: dict[str, Any]


def prepare_rootfs(store: LayoutStore, snapshotter: Snapshotter, ref: str, key: str, *,
                   platform: Platform | None = None, options: ApplyOptions | None = None,
                   terminal: bool = True) -> PreparedRootfs:  # fmt: skip
    """Unpack ``ref`` into ``snapshotter`` and prepare the active snapshot ``key`` on it.

    The user is resolved through the prepared tree's /etc/passwd and
    /etc/group (mounted for the look-up when it is an overlay).
    """
    from hull.image.mounts import mounted

    image = resolve_image(store, ref, platform)
    top = unpack_image(store, snapshotter, image, options)
    mounts = snapshotter.prepare(key, top)
    try:
        with mounted(mounts, _mountpoint(snapshotter, key)) as tree:
            user = resolve_user_in(image.config.config.user if image.config.config else "", tree)
        config = runtime_config(image.config, user, terminal=terminal)
    except BaseException:
        snapshotter.remove(key)
        raise
    finally:
        if os.path.isdir(_mountpoint(snapshotter, key)):
            os.rmdir(_mountpoint(snapshotter, key))
    return PreparedRootfs(key, mounts, config)


def create_bundle(bundle: str, prepared: PreparedRootfs) -> str:
    """BUNDLE/config.json and the prepared rootfs mounted on BUNDLE/rootfs (root only); returns the rootfs."""
    from hull.image.mounts import mount_all

    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(rootfs, exist_ok=True)
    mount_all(prepared.mounts, rootfs)
    write_config(bundle, prepared.config)
    return rootfs
