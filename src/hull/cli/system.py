"""``hull system df|prune|info|events`` and ``hull events``: docker's names, flags and output shapes.

- ``system df``: docker's table (TYPE TOTAL ACTIVE SIZE RECLAIMABLE) for
  Images (bytes in the image store, unique blobs once; active: used by a
  container), Containers (their writable layers; active: running or paused),
  Local Volumes (their files; active: mounted by any container) and Build
  Cache (hull has none: 0). ``-v`` docker's per-object sections; ``--format``
  a template over the summary rows, or ``json``.
- ``system prune [-a] [--volumes] [--filter label=...]``: stopped containers,
  then (``--volumes``) unused anonymous volumes, then dangling images (``-a``:
  every image no container uses) and their unreferenced blobs; docker's
  "Deleted ...:" sections and "Total reclaimed space:". hull never prompts.
- ``system info``: ``docker info``'s essentials; ``--format`` over docker's keys.
- ``events`` (``system events``): the engine's event log (hull.engine.events)
  in docker's line format or ``--format``; without ``--until`` it follows
  new events until interrupted (Ctrl-C ends it with status 0).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from hull.engine.errors import EngineError
from hull.engine.paths import EnginePaths

DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}  # fmt: skip
DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_IMAGES = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"]
DF_CONTAINERS = ["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"]
DF_VOLUMES = ["VOLUME NAME", "LINKS", "SIZE"]
DF_CACHE = ["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"]


def _events_args(p: Any) -> None:
    p.add_argument("--since", default="", help="show events since this time (docker's time formats)")
    p.add_argument("--until", default="", help="stream events until this time")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="container=, event=, image=, label=, type=")  # fmt: skip
    p.add_argument("--format", default="", help="a Go template, or json")


def add_parsers(add: Any, sub: str | None = None) -> None:
    _events_args(add("events", "show the engine's events"))
    group = add("system", "manage hull")
    if not isinstance(group, argparse.ArgumentParser):
        return  # another command's invocation
    subs = group.add_subparsers(dest="sub", parser_class=type(group), required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = subs.add_parser(name, help=help)
        p.set_defaults(command=f"system_{name}")
        return p

    p = command("df", "show disk usage")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--format", default="")
    p = command("prune", "remove stopped containers, dangling images (and with --volumes unused volumes)")
    p.add_argument("-a", "--all", action="store_true", help="every image no container uses, not just dangling")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt (hull never prompts)")
    p.add_argument("--volumes", action="store_true", help="also unused anonymous volumes")
    p.add_argument("--filter", action="append", default=[], help="label=K[=V], label!=K[=V]")
    p = command("info", "show system-wide information")
    p.add_argument("-f", "--format", default="")
    _events_args(command("events", "show the engine's events"))


def _render(fmt: str, items: list[Any], headers: dict[str, str] | None = None) -> str:
    from hull.cli.gotemplate import TemplateError, render

    try:
        return render(fmt, items, headers)
    except TemplateError as err:
        raise EngineError(f"template: {err}") from None


# ---------------------------------------------------------------- images (the image store's part)


class _ImageUsage:
    def __init__(self, image: Any, containers: int) -> None:
        self.image = image
        self.containers = containers
        self.blobs = {image.manifest_descriptor.digest: image.manifest_descriptor.size,
                      image.manifest.config.digest: image.manifest.config.size}  # fmt: skip
        self.blobs.update({layer.digest: layer.size for layer in image.manifest.layers})
        self.blobs[image.descriptor.digest] = image.descriptor.size


def _images_usage(paths: EnginePaths, containers: list[Any]) -> list[_ImageUsage]:
    from hull.cli.image import all_images
    from hull.image.store import LayoutStore

    if not os.path.isdir(paths.images):
        return []
    used: dict[str, int] = {}
    for c in containers:
        used[c.image_id] = used.get(c.image_id, 0) + 1
    return [_ImageUsage(i, used.get(str(i.id), 0)) for i in all_images(LayoutStore(paths.images))]


def _blob_total(blobs: dict[Any, int]) -> int:
    return sum(blobs.values())


# ---------------------------------------------------------------- df


def _summary(kind: str, total: int, active: int, size: int, reclaimable: int) -> dict[str, str]:
    """docker/cli's diskUsage*Context fields (its json: these keys, sorted)."""
    from hull.cli.humanize import human_size

    text = human_size(reclaimable)
    if kind != "Build Cache" and size > 0:
        text = f"{text} ({reclaimable * 100 // size}%)"
    return {"Active": str(active), "Reclaimable": text, "Size": human_size(size), "TotalCount": str(total),
            "Type": kind}  # fmt: skip


def cmd_system_df(paths: EnginePaths, args: Any) -> int:
    from hull.engine import system

    containers = system.all_containers(paths)
    images = _images_usage(paths, containers)
    cusage = system.containers_usage(paths, containers)
    vusage = system.volumes_usage(paths, containers)
    all_blobs: dict[Any, int] = {}
    used_blobs: dict[Any, int] = {}
    for i in images:
        all_blobs.update(i.blobs)
        if i.containers:
            used_blobs.update(i.blobs)
    images_size = _blob_total(all_blobs)
    csize = sum(u.size for u in cusage)
    vsize = sum(u.size for u in vusage)
    rows = [
        _summary("Images", len(images), sum(1 for i in images if i.containers), images_size,
                 images_size - _blob_total(used_blobs)),
        _summary("Containers", len(cusage), sum(1 for u in cusage if system.is_active(u.container)), csize,
                 sum(u.size for u in cusage if not system.is_active(u.container))),
        _summary("Local Volumes", len(vusage), sum(1 for u in vusage if u.links), vsize,
                 sum(u.size for u in vusage if not u.links)),
        _summary("Build Cache", 0, 0, 0, 0),
    ]  # fmt: skip
    if args.verbose:
        if args.format not in ("", "table"):
            raise EngineError("--format with -v: only the table is supported")
        sys.stdout.write(_verbose_df(images, cusage, vusage))
        return 0
    fmt = args.format or "table"
    if fmt == "json":
        fmt = "{{json .}}"
    elif fmt == "table":
        fmt = DF_TABLE
    sys.stdout.write(_render(fmt, rows, DF_HEADERS))
    return 0


def _verbose_df(images: list[_ImageUsage], cusage: list[Any], vusage: list[Any]) -> str:
    """docker system df -v: one table per kind of object."""
    import time

    from hull.cli.humanize import created_text, human_duration, human_size, status_text
    from hull.cli.table import tabulate
    from hull.image import names

    def table(rows: list[list[str]]) -> str:
        return tabulate(rows, minwidth=10, tabwidth=1, padding=3)

    now = time.time_ns()
    counts: dict[Any, int] = {}
    for i in images:
        for d in i.blobs:
            counts[d] = counts.get(d, 0) + 1
    rows = [DF_IMAGES]
    for i in images:
        shared = sum(size for d, size in i.blobs.items() if counts[d] > 1)
        total = _blob_total(i.blobs)
        created = i.image.created
        since = human_duration(max(0.0, now / 1e9 - created)) + " ago" if created is not None else "N/A"
        for tag in i.image.tags or ["<none>:<none>"]:
            repo, version = names.split(tag) if tag != "<none>:<none>" else ("<none>", "<none>")
            rows.append([repo, version, i.image.id.encoded[:12], since, human_size(total, 3), human_size(shared, 3),
                         human_size(total - shared, 3), str(i.containers)])  # fmt: skip
    out = "Images space usage:\n\n" + table(rows)
    rows = [DF_CONTAINERS]
    for u in cusage:
        c = u.container
        command = " ".join(c.args)
        command = command[:19] + "…" if len(command) > 20 else command
        rows.append([c.short_id, c.image, f'"{command}"', str(sum(1 for m in c.mounts if m.volume)),
                     human_size(u.size, 3), created_text(c.created, now),
                     status_text(c.status, c.exit_code, c.started_at, c.finished_at, now), c.name])  # fmt: skip
    out += "\nContainers space usage:\n\n" + table(rows)
    rows = [DF_VOLUMES] + [[u.volume.name, str(u.links), human_size(u.size)] for u in vusage]
    out += "\nLocal Volumes space usage:\n\n" + table(rows)
    out += f"\nBuild cache usage: {human_size(0)}\n\n" + table([DF_CACHE])
    return out


# ---------------------------------------------------------------- prune


def _prune_images(paths: EnginePaths, containers: list[Any], all_images: bool) -> tuple[list[str], int]:
    """docker image prune: dangling images (``all_images``: every image) no container uses, then the
    blobs nothing references any more. Returns docker's report lines and the bytes freed."""
    from hull.image import names
    from hull.image.store import LayoutStore

    if not os.path.isdir(paths.images):
        return [], 0
    store = LayoutStore(paths.images)
    in_use = {c.image_id for c in containers}
    lines: list[str] = []
    deleted: set[str] = set()
    for i in _images_usage(paths, containers):
        image = i.image
        if str(image.id) in in_use or (image.tags and not all_images):
            continue
        for desc in store.images():
            if desc.digest != image.descriptor.digest:
                continue
            store.remove_ref(desc.ref_name)
            if desc.ref_name and not names.is_untagged(desc.ref_name):
                lines.append(f"untagged: {desc.ref_name}")
        if image.descriptor.digest not in deleted:
            deleted.add(image.descriptor.digest)
            lines.append(f"deleted: {image.descriptor.digest}")
    result = store.gc()
    return lines, result.freed


def cmd_system_prune(paths: EnginePaths, args: Any) -> int:
    from hull.cli.humanize import human_size
    from hull.cli.volumes import prune_labels, prune_report
    from hull.engine import system

    labels, _ = prune_labels(args.filter)
    removed, reclaimed = system.prune_containers(paths, labels)
    sections = [prune_report("Deleted Containers:", removed)]
    if args.volumes:
        # docker/cli passes `-a` to the image pruner only: volumes stay anonymous-only (docker 23+).
        names, freed = system.prune_volumes(paths, labels=labels)
        sections.append(prune_report("Deleted Volumes:", names))
        reclaimed += freed
    lines, freed = _prune_images(paths, system.all_containers(paths), args.all)
    sections.append(prune_report("Deleted Images:", lines))
    reclaimed += freed
    for section in sections:
        if section:
            print(section)
    print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0


# ---------------------------------------------------------------- info


def _os_release() -> str:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.strip().partition("=")
                    if key == "PRETTY_NAME":
                        return value.strip().strip('"')
        except OSError:
            continue
    return "Linux"


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def cgroup_version() -> str:
    """ "2" when /sys/fs/cgroup is the unified hierarchy alone, "1" on a v1 or hybrid host (docker's)."""
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


def _runtimes() -> dict[str, dict[str, str]]:
    import shutil

    beside = os.path.join(os.path.dirname(sys.executable), "hull-runtime")  # the venv's, not on PATH
    found = {"hull-runtime": {"path": shutil.which("hull-runtime") or (beside if os.path.exists(beside) else "")}}
    for name in ("runc", "crun"):
        path = shutil.which(name)
        if path:
            found[name] = {"path": path}
    return dict(sorted(found.items()))


def info_doc(paths: EnginePaths) -> dict[str, Any]:
    """docker info's document (system.Info keys) for this engine."""
    from hull import __version__
    from hull.engine import system
    from hull.engine.containers import PAUSED, RESTARTING, RUNNING
    from hull.image.snapshot import open_snapshotter

    containers = system.all_containers(paths)
    running = sum(1 for c in containers if c.status in (RUNNING, RESTARTING))
    paused = sum(1 for c in containers if c.status == PAUSED)
    uname = os.uname()
    security = ["name=seccomp,profile=builtin"] + (["name=cgroupns"] if cgroup_version() == "2" else [])
    init = next((p for p in ("/usr/bin/tini-static", "/usr/bin/catatonit") if os.access(p, os.X_OK)), "")
    return {
        "ID": "",
        "Containers": len(containers),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(containers) - running - paused,
        "Images": len(_images_usage(paths, [])),
        "Driver": open_snapshotter(paths.snapshots).kind_name,
        "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]],
        "Plugins": {"Volume": ["local"], "Network": ["host", "none"], "Log": ["json-file"]},
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version(),
        "KernelVersion": uname.release,
        "OperatingSystem": _os_release(),
        "OSType": "linux",
        "Architecture": uname.machine,
        "NCPU": len(os.sched_getaffinity(0)),
        "MemTotal": _mem_total(),
        "DockerRootDir": paths.root,
        "Name": uname.nodename,
        "ServerVersion": __version__,
        "Runtimes": _runtimes(),
        "DefaultRuntime": "hull-runtime",
        "InitBinary": init,
        "SecurityOptions": security,
        "Debug": False,
        "ExperimentalBuild": False,
        "LiveRestoreEnabled": False,
        "Warnings": None,
        "ClientInfo": {"Debug": False, "Version": __version__, "Context": "default"},
    }


def _info_text(doc: dict[str, Any]) -> str:
    """docker/cli's prettyPrintInfo, for the fields hull has."""
    from hull.cli.humanize import bytes_size

    lines = [
        "Client:",
        f" Version:    {doc['ClientInfo']['Version']}",
        " Context:    default",
        " Debug Mode: false",
        "",
        "Server:",
        f" Containers: {doc['Containers']}",
        f"  Running: {doc['ContainersRunning']}",
        f"  Paused: {doc['ContainersPaused']}",
        f"  Stopped: {doc['ContainersStopped']}",
        f" Images: {doc['Images']}",
        f" Server Version: {doc['ServerVersion']}",
        f" Storage Driver: {doc['Driver']}",
        *(f"  {k}: {v}" for k, v in doc["DriverStatus"]),
        f" Logging Driver: {doc['LoggingDriver']}",
        f" Cgroup Driver: {doc['CgroupDriver']}",
        f" Cgroup Version: {doc['CgroupVersion']}",
        " Plugins:",
        *(f"  {k}: {' '.join(v)}" for k, v in doc["Plugins"].items()),
        " Runtimes: " + " ".join(doc["Runtimes"]),
        f" Default Runtime: {doc['DefaultRuntime']}",
        f" Init Binary: {doc['InitBinary']}",
        " Security Options:",
    ]
    for option in doc["SecurityOptions"]:
        fields = dict(kv.partition("=")[::2] for kv in option.split(","))
        lines.append(f"  {fields.get('name', '')}")
        lines += [f"   {k.title()}: {v}" for k, v in fields.items() if k != "name"]
    lines += [
        f" Kernel Version: {doc['KernelVersion']}",
        f" Operating System: {doc['OperatingSystem']}",
        f" OSType: {doc['OSType']}",
        f" Architecture: {doc['Architecture']}",
        f" CPUs: {doc['NCPU']}",
        f" Total Memory: {bytes_size(doc['MemTotal'])}",
        f" Name: {doc['Name']}",
        f" Docker Root Dir: {doc['DockerRootDir']}",
        " Debug Mode: false",
        " Experimental: false",
        " Live Restore Enabled: false",
    ]
    return "\n".join(lines) + "\n"


def cmd_system_info(paths: EnginePaths, args: Any) -> int:
    doc = info_doc(paths)
    if args.format:
        fmt = "{{json .}}" if args.format == "json" else args.format
        sys.stdout.write(_render(fmt, [doc]))
    else:
        sys.stdout.write(_info_text(doc))
    return 0


# ---------------------------------------------------------------- events


def cmd_events(paths: EnginePaths, args: Any) -> int:
    from hull.cli.gotemplate import Template, TemplateError, template_string
    from hull.engine import events, logfile

    tmpl = None
    if args.format:
        try:
            tmpl = Template(template_string("{{json .}}" if args.format == "json" else args.format))
        except TemplateError as err:
            sys.stderr.write(f"Error parsing format: {err}\n")
            return 64  # docker/cli's status for a bad --format
    try:
        since = logfile.parse_since(args.since) if args.since else None
        until = logfile.parse_since(args.until) if args.until else None
    except ValueError as err:
        raise EngineError(str(err)) from None
    filters = events.parse_filters(args.filter)
    out = sys.stdout
    try:
        for event in events.stream(paths.events, since, until, filters):
            try:
                line = events.format_event(event) if tmpl is None else tmpl.execute(event)
            except TemplateError as err:
                raise EngineError(f"template: {err}") from None
            out.write(line + "\n")
            out.flush()
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how a follower ends
    return 0


cmd_system_events = cmd_events
