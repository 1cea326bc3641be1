"""Disk usage and pruning of the engine's containers and volumes (``hull system df|prune``, ``volume prune``).

A container's size is its writable layer: the snapshotter's usage of the
container's active snapshot (for overlayfs, the upper directory: what the
container changed), as docker's ``SizeRw``. A volume's size is the bytes of its
files, as the local driver's ``UsageData.Size``. A volume is in use (docker's
``RefCount``/links) while any container, in any state, mounts it: the
containers' records list their volumes (``Container.mounts[].volume``, an
anonymous one as ``anon:<name>``).

Images are the image store's business (hull.image.store); the CLI adds them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from hull.engine.containers import PAUSED, RESTARTING, RUNNING, Container
from hull.engine.paths import EnginePaths
from hull.engine.volumes import Volume, VolumeStore, disk_usage


class ContainerUsage(NamedTuple):
    container: Container
    size: int  # bytes of its writable layer


class VolumeUsage(NamedTuple):
    volume: Volume
    size: int
    links: int  # containers that mount it


def all_containers(paths: EnginePaths) -> list[Container]:
    """Every container with its state made true (a dead monitor's container is exited)."""
    from hull.engine import lifecycle

    return [lifecycle.current(paths, c) for c in lifecycle.container_store(paths).all()]


def volume_users(containers: list[Container]) -> dict[str, list[str]]:
    """Volume name -> IDs of the containers that mount it."""
    out: dict[str, list[str]] = {}
    for c in containers:
        for m in c.mounts:
            if m.volume:
                users = out.setdefault(m.volume.removeprefix("anon:"), [])
                if c.id not in users:
                    users.append(c.id)
    return out


def in_use_by(paths: EnginePaths) -> Callable[[str], list[str]]:
    """VolumeStore's ``in_use``: the containers using a volume, read when asked (under the store's lock)."""
    from hull.engine import lifecycle

    def users(name: str) -> list[str]:
        return volume_users(lifecycle.container_store(paths).all()).get(name, [])

    return users


def container_size(paths: EnginePaths, container: Container) -> int:
    from hull.image.snapshot import open_snapshotter

    try:
        return open_snapshotter(paths.snapshots, container.snapshotter).usage(container.snapshot).size
    except Exception:  # noqa: BLE001 - SnapshotNotFound: a container half made or half removed
        return 0


def is_active(container: Container) -> bool:
    """docker df's ACTIVE containers: running or paused (or restarting, which docker counts as running)."""
    return container.status in (RUNNING, PAUSED, RESTARTING)


def containers_usage(paths: EnginePaths, containers: list[Container]) -> list[ContainerUsage]:
    return [ContainerUsage(c, container_size(paths, c)) for c in containers]


def volumes_usage(paths: EnginePaths, containers: list[Container]) -> list[VolumeUsage]:
    users = volume_users(containers)
    return [
        VolumeUsage(v, disk_usage(v.mountpoint), len(users.get(v.name, []))) for v in VolumeStore(paths.volumes).list()
    ]


# ---------------------------------------------------------------- prune


def prune_containers(paths: EnginePaths, labels: list[str] | None = None) -> tuple[list[str], int]:
    """docker container prune: remove every container not running (created or exited); their IDs and
    the bytes their writable layers held."""
    from hull.engine import lifecycle
    from hull.engine.errors import EngineError

    removed: list[str] = []
    reclaimed = 0
    for c in all_containers(paths):
        if is_active(c) or not _labels_match(c.options.labels, labels or []):
            continue
        size = container_size(paths, c)
        try:
            lifecycle.remove(paths, c, force=True)
        except EngineError:
            continue  # started or removed meanwhile
        removed.append(c.id)
        reclaimed += size
    return removed, reclaimed


def prune_volumes(
    paths: EnginePaths, *, all_volumes: bool = False, labels: list[str] | None = None
) -> tuple[list[str], int]:
    """docker volume prune (23+): the anonymous volumes no container uses; every unused one with
    ``all_volumes``. ``labels``: docker's ``label=KEY[=VALUE]`` and ``label!=...`` filters."""
    store = VolumeStore(paths.volumes)
    users = in_use_by(paths)
    wanted = labels or []

    def keep(name: str) -> list[str]:
        if users(name):
            return ["in use"]
        try:
            volume = store.get(name)
        except Exception:  # noqa: BLE001 - removed meanwhile
            return ["gone"]
        return [] if _labels_match(volume.labels, wanted) else ["filtered out"]

    return store.prune(keep, anonymous_only=not all_volumes)


def _labels_match(labels: dict[str, str], filters: list[str]) -> bool:
    """docker's prune ``label=K``, ``label=K=V`` (all must hold) and ``label!=K[=V]`` (none may)."""
    for item in filters:
        negate = item.startswith("!")
        key, sep, value = item.lstrip("!").partition("=")
        hit = key in labels and (not sep or labels[key] == value)
        if hit == negate:
            return False
    return True
