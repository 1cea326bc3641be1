"""``hull volume create|ls|inspect|rm|prune``: docker's names, flags and output over hull.engine.volumes.

- ``create [--label K=V] [-d local] [NAME]`` prints the volume's name (a new
  64-hex-digit one without NAME); a name already in use gives that volume.
- ``ls``: docker's table (DRIVER, VOLUME NAME), sorted by name; ``-q`` names
  only; ``--filter dangling=|driver=|label=|name=``; ``--format`` a Go template,
  ``table ...`` or ``json`` (one object per line, docker's keys).
- ``inspect``: a JSON array of docker's documents, or ``--format`` per volume.
- ``rm [-f]``: each name removed is printed; a volume any container mounts
  (in any state) is refused with docker's error naming the containers.
- ``prune [-a] [--filter label=...]``: docker 23+'s: anonymous volumes no
  container uses (``-a``: every unused one); "Deleted Volumes:" and the
  "Total reclaimed space:" line (go-units HumanSize). hull never prompts, so
  ``-f`` changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hull.engine.errors import EngineError
from hull.engine.paths import EnginePaths

VOLUME_HEADERS = {
    "Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS",
    "Links": "LINKS", "Size": "SIZE", "CreatedAt": "CREATED AT", "Availability": "AVAILABILITY", "Group": "GROUP",
    "Status": "STATUS",
}  # fmt: skip
LS_TABLE = "table {{.Driver}}\t{{.Name}}"
LS_FILTERS = ("dangling", "driver", "label", "name")


def add_parsers(add: Any, sub: str | None = None) -> None:
    group = add("volume", "manage volumes")
    if not isinstance(group, argparse.ArgumentParser):
        return  # another command's invocation
    subs = group.add_subparsers(dest="sub", parser_class=type(group), required=True, metavar="COMMAND")

    def command(name: str, help: str, *aliases: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = subs.add_parser(name, help=help, aliases=list(aliases))
        p.set_defaults(command=f"volume_{name}")
        return p

    p = command("create", "create a volume")
    p.add_argument("name", nargs="?", default="", metavar="VOLUME")
    p.add_argument("--name", dest="name_flag", default="", help=argparse.SUPPRESS)
    p.add_argument("-d", "--driver", default="local")
    p.add_argument("-l", "--label", action="append", default=[])
    p.add_argument("-o", "--opt", action="append", default=[])
    p = command("ls", "list volumes", "list")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format", default="")
    p = command("inspect", "show volumes as JSON")
    p.add_argument("refs", nargs="+", metavar="VOLUME")
    p.add_argument("-f", "--format", default="")
    p = command("rm", "remove volumes", "remove")
    p.add_argument("refs", nargs="+", metavar="VOLUME")
    p.add_argument("-f", "--force", action="store_true", help="no error for a volume that does not exist")
    p = command("prune", "remove unused anonymous volumes (-a: all unused volumes)")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt (hull never prompts)")
    p.add_argument("--filter", action="append", default=[])


def _store(paths: EnginePaths) -> Any:
    from hull.engine.volumes import VolumeStore

    return VolumeStore(paths.volumes)


# ---------------------------------------------------------------- create


def cmd_volume_create(paths: EnginePaths, args: Any) -> int:
    from hull.engine import parse
    from hull.engine.volumes import ANONYMOUS_LABEL

    if args.name and args.name_flag and args.name != args.name_flag:
        raise EngineError("conflicting options: either specify --name or provide positional arg, not both")
    name = args.name or args.name_flag
    if args.driver != "local":
        raise EngineError(f'create {name}: error looking up volume plugin {args.driver}: plugin "{args.driver}" '
                          "not found")  # fmt: skip
    options = parse.parse_key_values(args.opt, "--opt")
    labels = parse.parse_labels(args.label)
    if not name:
        labels.setdefault(ANONYMOUS_LABEL, "")  # moby's volume service marks an unnamed volume anonymous
    volume = _store(paths).create(name, labels=labels, options=options)
    print(volume.name)
    return 0


# ---------------------------------------------------------------- ls


def volume_row(volume: Any, size: str = "N/A", links: str = "N/A") -> dict[str, Any]:
    """docker/cli's volume formatter fields (its ``json``: these keys, sorted)."""
    return {
        "Availability": "N/A",
        "CreatedAt": volume.created_at,
        "Driver": volume.driver,
        "Group": "N/A",
        "Labels": ",".join(f"{k}={v}" for k, v in volume.labels.items()),
        "Links": links,
        "Mountpoint": volume.mountpoint,
        "Name": volume.name,
        "Scope": volume.scope,
        "Size": size,
        "Status": "N/A",
    }


def _ls_filters(values: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise EngineError(f"bad format of filter (expected name=value): {item}")
        if key not in LS_FILTERS:
            raise EngineError(f"invalid filter '{key}'")
        if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
            raise EngineError(f"invalid filter 'dangling={value}'")
        out.setdefault(key, []).append(value)
    return out


def _ls_match(volume: Any, filters: dict[str, list[str]], users: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key == "dangling":
            dangling = volume.name not in users
            ok = any((v.lower() in ("true", "1")) == dangling for v in values)
        elif key == "driver":
            ok = volume.driver in values
        elif key == "name":
            ok = any(v in volume.name for v in values)  # moby: a substring (regexp) match
        else:  # label: every one must hold
            ok = labels_match(volume.labels, values)
        if not ok:
            return False
    return True


def labels_match(labels: dict[str, str], values: list[str]) -> bool:
    """docker's ``label=KEY`` / ``label=KEY=VALUE`` filters: every one must hold."""
    return all(k in labels and (not sep or labels[k] == want) for k, sep, want in (v.partition("=") for v in values))


def cmd_volume_ls(paths: EnginePaths, args: Any) -> int:
    from hull.engine.system import all_containers, volume_users

    filters = _ls_filters(args.filter)
    users = volume_users(all_containers(paths)) if "dangling" in filters else {}
    volumes = [v for v in _store(paths).list() if _ls_match(v, filters, users)]
    if args.quiet:
        sys.stdout.write("".join(f"{v.name}\n" for v in volumes))
        return 0
    write_rows([volume_row(v) for v in volumes], args.format, LS_TABLE, VOLUME_HEADERS)
    return 0


def write_rows(rows: list[dict[str, Any]], fmt: str, table: str, headers: dict[str, str]) -> None:
    """docker/cli's formatter: ``table`` (the default), ``json`` (one object per line), or a template."""
    from hull.cli.gotemplate import render

    if fmt == "json":
        fmt = "{{json .}}"
    elif not fmt or fmt == "table":
        fmt = table
    sys.stdout.write(render(fmt, rows, headers))


# ---------------------------------------------------------------- inspect / rm


def cmd_volume_inspect(paths: EnginePaths, args: Any) -> int:

    store = _store(paths)
    docs: list[dict[str, Any]] = []
    errors: list[str] = []
    for name in args.refs:
        try:
            docs.append(store.get(name).inspect())
        except EngineError as err:
            errors.append(str(err))
    from hull.cli.documents import print_inspect

    return print_inspect(docs, errors, args.format)


def cmd_volume_rm(paths: EnginePaths, args: Any) -> int:
    from hull.engine.system import in_use_by

    store = _store(paths)
    users = in_use_by(paths)
    status = 0
    for name in args.refs:
        try:
            store.remove(name, force=args.force, in_use=users)
        except EngineError as err:
            sys.stderr.write(f"Error: {err}\n")
            status = 1
            continue
        print(name)
    return status


# ---------------------------------------------------------------- prune


def prune_labels(values: list[str], allowed: tuple[str, ...] = ("label", "label!")) -> tuple[list[str], bool]:
    """docker's prune ``--filter``: ``label=K[=V]`` and ``label!=K[=V]`` (as "!K[=V]"), and volume
    prune's ``all=true``. Returns the label filters and whether ``all`` was given."""
    labels: list[str] = []
    all_flag = False
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise EngineError(f"bad format of filter (expected name=value): {item}")
        if key == "all" and "all" in allowed:
            all_flag = value.lower() in ("1", "true")
        elif key in ("label", "label!") and key in allowed:
            labels.append(("!" if key == "label!" else "") + value)
        else:
            raise EngineError(f"invalid filter '{key}'")
    return labels, all_flag


def prune_report(title: str, items: list[str]) -> str:
    """One section of docker's prune output ("Deleted Volumes:\\nNAME\\n"), empty when nothing went."""
    return "".join([f"{title}\n", *(f"{item}\n" for item in items)]) if items else ""


def cmd_volume_prune(paths: EnginePaths, args: Any) -> int:
    from hull.cli.humanize import human_size
    from hull.engine.system import prune_volumes

    labels, all_filter = prune_labels(args.filter, ("label", "label!", "all"))
    removed, reclaimed = prune_volumes(paths, all_volumes=args.all or all_filter, labels=labels)
    report = prune_report("Deleted Volumes:", removed)
    if report:
        print(report)
    print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0
