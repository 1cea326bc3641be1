"""A container's life as the engine drives it: create, start, stop, kill, remove, and the truth for ps.

Creating makes, in this order, each step undone if a later one fails: the
record (which reserves the name), the rootfs (an active snapshot on the
image's layers, mounted on the bundle's ``rootfs``), the volumes, the
/etc files, config.json. Starting forks the monitor (engine.monitor), which
owns the container from then on. Removing undoes all of it, also after the
monitor was killed or the machine rebooted: ``rm -f`` needs nothing but the
record.
"""

from __future__ import annotations

import os
import sys
import time

from hull.engine.containers import (
    CREATED,
    EXITED,
    PAUSED,
    RESTARTING,
    RUNNING,
    Container,
    ContainerStore,
    now_ns,
)
from hull.engine.errors import EngineError, InvalidContainerState
from hull.engine.options import ResolvedMount, RunOptions
from hull.engine.paths import EnginePaths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from hull.engine.runtimes import OCIRuntime

DEFAULT_STOP_TIMEOUT = 10


def runtime_for(paths: EnginePaths, container: Container) -> OCIRuntime:
    from hull.engine.runtimes import open_runtime

    name = container.options.runtime
    return open_runtime(name, paths.runtime_root(name))


def container_store(paths: EnginePaths) -> ContainerStore:
    return ContainerStore(paths.containers)


def emit(paths: EnginePaths, action: str, container: Container, extra: dict[str, str] | None = None) -> None:
    from hull.engine import events

    events.emit(paths, action, container, extra)


# ---------------------------------------------------------------- rootfs


def _snapshotter(paths: EnginePaths, name: str = "") -> Any:
    from hull.image.snapshot import open_snapshotter

    return open_snapshotter(paths.snapshots, name)


def mount_rootfs(paths: EnginePaths, container: Container) -> None:
    """The container's snapshot mounted on BUNDLE/rootfs, unless it already is."""
    from hull.image.mounts import mount_all

    rootfs = os.path.join(paths.bundle(container.id), "rootfs")
    os.makedirs(rootfs, exist_ok=True)
    if _is_mountpoint(rootfs):
        return
    mount_all(_snapshotter(paths, container.snapshotter).mounts(container.snapshot), rootfs)


def _is_mountpoint(path: str) -> bool:
    """Whether ``path`` is a mount point: its own device (overlay), else listed in mountinfo (a
    bind mount from the same filesystem, as the copying snapshotter's, has its parent's st_dev)."""
    if os.path.ismount(path):
        return True
    escaped = path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ", 5)[4] == escaped for line in f)


def unmount_rootfs(paths: EnginePaths, container_id: str) -> None:
    """The rootfs unmounted; lazily when something (a shell cd'd into it on the host) keeps it busy,
    so that the container's removal never fails on it."""
    from hull.image.errors import ImageError
    from hull.image.mounts import unmount, unmount_all

    rootfs = os.path.join(paths.bundle(container_id), "rootfs")
    if not os.path.isdir(rootfs):
        return
    try:
        unmount_all(rootfs)
    except ImageError:
        for _ in range(256):
            if not _is_mountpoint(rootfs):
                break
            unmount(rootfs, detach=True)


# ---------------------------------------------------------------- create


def create(paths: EnginePaths, opts: RunOptions, *, quiet: bool = False) -> Container:
    """Make the container ``opts`` describe, ready for the monitor to create in the runtime."""
    container, pending = create_deferred(paths, opts, quiet=quiet)
    finish_network(paths, container, pending)
    return container


def finish_network(paths: EnginePaths, container: Container, pending: Any) -> None:
    """Wait for ``create_deferred``'s network ADD; if it failed, the container is removed (one error)."""
    if pending is None:
        return
    from hull.engine import networking

    try:
        pending.wait()
        # After config.json's writing of the files, so that the address lines are not overwritten.
        networking.update_hosts(paths, container_store(paths), container.network["name"])
    except BaseException:
        remove(paths, container, force=True, volumes=True)
        raise


def create_deferred(paths: EnginePaths, opts: RunOptions, *, quiet: bool = False) -> tuple[Container, Any]:
    """``create``, but a network's CNI ADD still running (returned: ``finish_network`` waits for it,
    before the container starts), so that it overlaps the rest of the making and the runtime's create."""
    from hull.engine import images, names, networking
    from hull.image import bundle as image_bundle
    from hull.image.store import LayoutStore
    from hull.oci import platform as _platform

    if opts.remove and opts.restart.name != "no":
        raise EngineError("conflicting options: --restart and --rm")
    want = None
    if opts.platform:
        try:
            want = _platform.parse(opts.platform)
        except ValueError as err:
            raise EngineError(f"--platform {opts.platform!r}: {err}") from None
    store = LayoutStore(paths.images)
    desc = images.find_or_pull(store, opts.image, opts.pull, want, quiet)
    image = image_bundle.resolve_image(store, desc.ref_name or desc.digest, want)
    containers = container_store(paths)
    container_id = names.new_id()
    if opts.name:
        try:
            opts.name = names.validate_name(opts.name)
        except ValueError as err:
            raise EngineError(str(err)) from None
    name = opts.name or names.generate_name(containers.name_taken, container_id)
    snapshotter = _snapshotter(paths)
    container = Container(
        id=container_id, name=name, image=opts.image, image_id=str(image.manifest.config.digest),
        image_digest=str(image.descriptor.digest), created=now_ns(), options=opts, args=[],
        snapshot=container_id, snapshotter=_snapshotter_name(snapshotter),
    )  # fmt: skip
    containers.add(container)
    pending = None
    try:
        top = image_bundle.unpack_image(store, snapshotter, image)
        snapshotter.prepare(container_id, top, {"hull.container": container_id})
        mount_rootfs(paths, container)
        netns = ""
        if opts.network != "none" and opts.network != "host":
            if not opts.runtime:
                # The plugins take ~10 ms: the kernel's cgroup-migration grace period, started at the
                # command's start, would be over when the monitor's runtime joins the cgroup; again.
                from hull.runtime import cgroups

                cgroups.start_migration_grace_period()
            exposed = list(image.config.config.exposed_ports) if image.config.config else []
            netns, pending = networking.attach(paths, containers, container, exposed, background=True)
        spec = _make_config(paths, container, image, netns)
        container.args = list(spec.get("process", {}).get("args", []))
        image_bundle.write_config(paths.bundle(container_id), spec)
        containers.update(container_id, lambda c: _created(c, container))
    except BaseException:
        if pending is not None:
            try:
                pending.wait()  # its ADD done before the DEL of the clean-up
            except BaseException:  # noqa: BLE001, S110 - the first failure is the one to report
                pass
        remove_files(paths, containers, container, volumes=True)
        raise
    emit(paths, "create", container)
    return container, pending


def _snapshotter_name(snapshotter: Any) -> str:
    return str(os.path.basename(snapshotter.root))


def _created(c: Container, made: Container) -> None:
    c.args = made.args
    c.mounts = made.mounts


def _make_config(paths: EnginePaths, container: Container, image: Any, netns: str = "") -> dict[str, Any]:
    from hull.engine import etcfiles
    from hull.engine.spec import ContainerFiles, build_spec, effective_hostname
    from hull.image.bundle import resolve_user_in

    opts = container.options
    rootfs = os.path.join(paths.bundle(container.id), "rootfs")
    exec_config = image.config.config
    try:
        user = resolve_user_in(opts.user or (exec_config.user if exec_config else ""), rootfs)
    except Exception as err:  # noqa: BLE001 - UserNotFound and friends: one line
        raise EngineError(f"unable to find user {opts.user or exec_config.user}: {err}") from None
    cdir = paths.container(container.id)
    hostname = effective_hostname(opts, container.id)
    files = ContainerFiles(
        hosts=os.path.join(cdir, "hosts"),
        hostname=os.path.join(cdir, "hostname"),
        resolv_conf=os.path.join(cdir, "resolv.conf"),
    )
    _write(files.hosts, etcfiles.hosts_content(hostname, opts.add_hosts, opts.network))
    _write(files.hostname, etcfiles.hostname_content(hostname))
    _write(files.resolv_conf, etcfiles.resolv_conf_content(opts.dns, opts.network))
    container.mounts = _resolve_mounts(paths, container, rootfs, image)
    init_path = _init_binary() if opts.init else ""
    return build_spec(opts, image.config, user, container.id, files, container.mounts, init_path, netns_path=netns)


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)


def _init_binary() -> str:
    for path in ("/usr/bin/tini-static", "/usr/bin/catatonit", "/usr/libexec/podman/catatonit"):
        if os.access(path, os.X_OK):
            return path
    raise EngineError("--init needs a static init on the host: apt-get install tini")


def _resolve_mounts(paths: EnginePaths, container: Container, rootfs: str, image: Any) -> list[ResolvedMount]:
    """-v/--mount/--tmpfs and the image's VOLUMEs as the runtime gets them (volumes made as needed)."""
    out: list[ResolvedMount] = []
    asked = {m.destination.rstrip("/") or "/" for m in container.options.mounts}
    requests = list(container.options.mounts)
    exec_config = image.config.config
    for destination in sorted(exec_config.volumes if exec_config else []):
        if destination.rstrip("/") not in asked:  # docker: an anonymous volume per image VOLUME
            from hull.engine.options import MountRequest

            requests.append(MountRequest(type="volume", destination=destination))
    if not requests:
        return out
    from hull.engine.volumes import ANONYMOUS_LABEL, VolumeStore, copy_up

    volumes = VolumeStore(paths.volumes)
    for m in requests:
        options = list(m.options) + (["ro"] if m.readonly else [])
        if m.type == "bind":
            if not os.path.exists(m.source):
                raise EngineError(f"bind source path does not exist: {m.source}")
            out.append(ResolvedMount(type="bind", destination=m.destination, source=m.source, options=options))
        elif m.type == "tmpfs":
            out.append(ResolvedMount(type="tmpfs", destination=m.destination, source="tmpfs", options=options))
        else:
            volume = volumes.create(m.source, labels=None if m.source else {ANONYMOUS_LABEL: ""})
            inside = _inside(rootfs, m.destination)
            if inside is not None and "nocopy" not in m.options:
                copy_up(volume, inside)
            label = volume.name if m.source else f"anon:{volume.name}"  # anonymous: removed by --rm and rm -v
            out.append(ResolvedMount(type="bind", destination=m.destination, source=volume.mountpoint,
                                     options=options, volume=label))  # fmt: skip
    return out


def _inside(rootfs: str, destination: str) -> str | None:
    """The image's directory at ``destination`` when it is a real directory inside the rootfs."""
    path = os.path.join(rootfs, destination.lstrip("/"))
    real = os.path.realpath(path)
    if real != os.path.normpath(path) or not os.path.isdir(path):
        return None  # through a symlink: not followed out of the rootfs
    return path


# ---------------------------------------------------------------- state


def monitor_alive(container: Container) -> bool:
    from hull.runtime.store import is_alive

    return container.monitor_pid > 0 and is_alive(container.monitor_pid, container.monitor_start)


def current(paths: EnginePaths, container: Container) -> Container:
    """The record made true: a container whose monitor is gone (killed, a reboot) is exited,
    unless its process still runs."""
    if container.status not in (CREATED, RUNNING, PAUSED, RESTARTING) or monitor_alive(container):
        return container
    if container.status in (RUNNING, PAUSED) and container.pid:
        state = runtime_for(paths, container).state(container.id)
        if state is not None and state.get("status") in ("running", "paused"):
            return container  # the process outlived its monitor: still running (no log, no restart)

    def lost(c: Container) -> None:
        if c.status in (CREATED, RUNNING, PAUSED, RESTARTING) and not monitor_alive(c):
            c.status = EXITED if c.started_at else CREATED
            if c.started_at:
                c.exit_code = 255  # docker's code for a container whose end nobody saw
                c.finished_at = c.finished_at or now_ns()
                c.error = c.error or "the container's monitor exited before the container"
            c.pid = 0
            c.monitor_pid = 0

    try:
        return container_store(paths).update(container.id, lost)
    except EngineError:
        return container


def is_running(container: Container) -> bool:
    return container.status in (RUNNING, PAUSED, RESTARTING)


# ---------------------------------------------------------------- start / stop / kill


def start(paths: EnginePaths, container: Container) -> int:
    """Start a created or exited container; its init PID. A created container's monitor starts it;
    an exited one gets a new monitor."""
    from hull.engine import attach, monitor

    container = current(paths, container)
    if container.status in (RUNNING, PAUSED):
        return container.pid
    if container.status == RESTARTING:
        raise InvalidContainerState(f"container {container.short_id} is restarting")
    if container.status == CREATED and monitor_alive(container):
        sock = attach.connect(paths.attach_socket(container.id))
        if sock is not None:
            try:
                return attach.Session(sock, stdin=False, stdout=False, stderr=False).start()
            except attach.StartFailed as err:
                raise EngineError(str(err)) from None
            finally:
                sock.close()
    containers = container_store(paths)
    container = containers.update(container.id, _restart_reset)
    if container.network.get("name"):
        from hull.engine import networking

        try:
            networking.ensure(paths, containers, container)  # its exit released it, or a reboot took it
        except BaseException:
            networking.release(paths, containers, containers.load(container.id))  # nothing half attached
            raise
    return monitor.spawn(paths, containers, container, start=True)


def _restart_reset(c: Container) -> None:
    c.stopped_by_user = False
    c.error = ""


def signal_number(name: str | int) -> int:
    from hull.runtime.signals import parse_signal

    return parse_signal(str(name))


def kill(paths: EnginePaths, container: Container, signum: int) -> None:
    container = current(paths, container)
    if container.status not in (RUNNING, PAUSED, CREATED):
        raise InvalidContainerState(f"container {container.short_id} is not running")
    container_store(paths).update(container.id, lambda c: setattr(c, "stopped_by_user", True))
    emit(paths, "kill", container, {"signal": str(signum)})  # before the signal: ordered before its "die"
    runtime = runtime_for(paths, container)
    runtime.kill(container.id, signum)
    if container.status == PAUSED:
        _resume_after_signal(paths, runtime, container)


def _resume_after_signal(paths: EnginePaths, runtime: OCIRuntime, container: Container) -> None:
    """docker's kill of a paused container: thawed after the signal, which a frozen process never takes."""
    try:
        runtime.resume(container.id)
    except EngineError:
        return  # gone meanwhile

    def thawed(c: Container) -> None:
        if c.status == PAUSED:
            c.status = RUNNING

    container_store(paths).update(container.id, thawed)


def stop(paths: EnginePaths, container: Container, timeout: int | None = None) -> None:
    """docker stop: the stop signal, then SIGKILL after ``timeout`` seconds; returns once it exited."""
    container = current(paths, container)
    containers = container_store(paths)
    containers.update(container.id, lambda c: setattr(c, "stopped_by_user", True))
    if container.status not in (RUNNING, PAUSED, RESTARTING, CREATED):
        if container.status == EXITED and container.options.restart.name != "no" and monitor_alive(container):
            # Exited, its monitor still tearing it down and about to restart it (the mark above stops
            # that): returning now, `ps` could show it restarting after the stop.
            wait_exit(paths, container, None)
        return
    runtime = runtime_for(paths, container)
    if timeout is None:
        timeout = container.options.stop_timeout
    if timeout is None:
        timeout = DEFAULT_STOP_TIMEOUT
    if container.status == PAUSED:
        runtime.resume(container.id)
    if container.status in (RUNNING, PAUSED):
        signum = signal_number(_stop_signal(paths, container))
        emit(paths, "kill", container, {"signal": str(signum)})
        try:
            runtime.kill(container.id, signum)
        except EngineError:
            pass  # gone meanwhile
        if wait_exit(paths, container, timeout) is not None:
            emit(paths, "stop", container)
            return
        emit(paths, "kill", container, {"signal": "9"})
    try:
        runtime.kill(container.id, 9)
    except EngineError:
        pass
    wait_exit(paths, container, None)
    if container.status in (RUNNING, PAUSED, RESTARTING):
        emit(paths, "stop", container)  # docker: "stop" once a running container stopped


def _stop_signal(paths: EnginePaths, container: Container) -> str:
    if container.options.stop_signal:
        return container.options.stop_signal
    import json

    try:
        with open(os.path.join(paths.bundle(container.id), "config.json")) as f:
            annotations = json.load(f).get("annotations") or {}
        return str(annotations.get("org.opencontainers.image.stopSignal") or "SIGTERM")
    except (OSError, ValueError):
        return "SIGTERM"


def wait_exit(paths: EnginePaths, container: Container, timeout: float | None) -> int | None:
    """Wait until the container exited and its monitor finished; its exit code, None on timeout."""
    import select

    from hull.engine import attach

    deadline = None if timeout is None else time.monotonic() + timeout
    sock = attach.connect(paths.attach_socket(container.id))
    if sock is not None:
        try:
            sock.send(attach.HELLO)
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    return None
                frame = sock.recv(attach.FRAME)
                if not frame:
                    break
                if frame[:1] == attach.EXITED:
                    return int(frame[1:])
        except (ConnectionResetError, BrokenPipeError):
            pass  # the monitor finished meanwhile: the record says how it ended
        finally:
            sock.close()
    while True:  # no monitor: the record (made true) tells
        try:
            now = current(paths, container_store(paths).load(container.id))
        except EngineError:
            return container.exit_code
        # Done when the monitor finished (--rm's removal included: a monitor still alive is not done yet)
        # and no process runs (one that outlived a killed monitor still does).
        if not monitor_alive(now) and now.status not in (RUNNING, PAUSED, RESTARTING):
            return now.exit_code
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(0.05)


# ---------------------------------------------------------------- remove


def remove(paths: EnginePaths, container: Container, *, force: bool = False, volumes: bool = False) -> None:
    container = current(paths, container)
    if is_running(container) or (container.status == CREATED and monitor_alive(container)):
        if not force and container.status != CREATED:
            raise InvalidContainerState(
                f"cannot remove container {container.short_id}: container is {container.status}: "
                "stop the container before removing or force remove"
            )
        containers = container_store(paths)
        containers.update(container.id, lambda c: setattr(c, "stopped_by_user", True))
        runtime = runtime_for(paths, container)
        try:
            runtime.kill(container.id, 9)
        except EngineError:
            pass
        if container.status == PAUSED:
            _resume_after_signal(paths, runtime, container)
        wait_exit(paths, container, 30)
        try:
            container = containers.load(container.id)
        except EngineError:
            return  # --rm's monitor removed it meanwhile
        if monitor_alive(container):
            os.kill(container.monitor_pid, 9)
    remove_files(paths, container_store(paths), container, volumes=volumes)
    emit(paths, "destroy", container)


def remove_files(paths: EnginePaths, containers: ContainerStore, container: Container, *, volumes: bool) -> None:
    """Everything of the container, in an order that a second try after any failure completes."""
    import shutil

    from hull.engine import networking

    try:
        container = containers.load(container.id)  # what was recorded since (a network attachment)
    except EngineError:
        pass
    try:
        runtime_for(paths, container).delete(container.id, force=True)
    except EngineError:
        pass
    if container.network.get("name"):
        try:
            networking.release(paths, containers, container)
        except Exception as err:  # noqa: BLE001 - the rest of the removal must still happen
            print(f"warning: releasing the network of {container.short_id}: {err}", file=sys.stderr, flush=True)
    unmount_rootfs(paths, container.id)
    try:
        _snapshotter(paths, container.snapshotter).remove(container.snapshot)
    except Exception:  # noqa: BLE001, S110 - SnapshotNotFound: made before the snapshot existed
        pass
    if volumes and any(m.volume.startswith("anon:") for m in container.mounts):
        from hull.engine.volumes import VolumeStore

        store = VolumeStore(paths.volumes)
        for m in container.mounts:
            if m.volume.startswith("anon:"):
                try:
                    store.remove(m.volume[5:], force=True)
                except Exception:  # noqa: BLE001, S110 - already gone
                    pass
    shutil.rmtree(paths.run_dir(container.id), ignore_errors=True)
    containers.remove(container)
