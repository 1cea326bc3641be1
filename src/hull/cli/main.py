"""``hull``: the engine's command line. For now the image commands (docker/podman names).

    hull [--root DIR] image import|load|save|ls|inspect|rm|tag|prune|pull|push ...
    hull images | load | save | import | tag | rmi | pull | push ...   (docker's top-level aliases)
    hull unpack IMAGE BUNDLE_DIR
    hull login|logout REGISTRY   (credentials in podman's auth.json, or --authfile)

``--root`` is hull's storage (``/var/lib/hull`` for root, else
``$XDG_DATA_HOME/hull``, ``~/.local/share/hull`` by default, as podman's
graphroot); images live in its ``images`` directory, an OCI Image Layout
that skopeo (``oci:ROOT/images:NAME``) and umoci read.

A failure is one line on stderr, ``Error: ...`` as podman writes it. Exit
status as podman's: 0 success, 1 a command failed, 125 a usage error (an
unknown command or flag, a missing argument).
"""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

EXIT_FAILURE = 1
EXIT_USAGE = 125


class UsageError(Exception):
    pass


class _Formatter(argparse.HelpFormatter):
    """A fixed width ($COLUMNS or 100): argparse's default asks the terminal's size, importing
    shutil, for every add_argument of every command, where only --help prints anything."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=int(os.environ.get("COLUMNS", "") or 100) - 2)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def default_root() -> str:
    if os.geteuid() == 0:
        return "/var/lib/hull"
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "hull")


class _Skipped:
    """Stands for a subcommand's parser that this invocation does not need: building every
    subcommand's argparse parser costs several milliseconds of each command's start-up."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_defaults(self, **kwargs: Any) -> None:
        pass


def _adder(sub: Any, wanted: str | None) -> Any:
    """``add(name, help, *aliases)``: a subparser of ``sub``, or a _Skipped when ``wanted`` names another."""

    def add(name: str, help: str, *other: str, **kwargs: Any) -> Any:
        if wanted is not None and wanted != name and wanted not in other:
            return _Skipped()
        p: argparse.ArgumentParser = sub.add_parser(name, help=help, aliases=list(other), **kwargs)
        p.set_defaults(command=name)
        return p

    return add


def _image_commands(sub: Any, aliases: bool, wanted: str | None = None) -> None:
    """The image subcommands; with ``aliases``, under docker's top-level names too."""
    add = _adder(sub, wanted)

    if aliases:
        p = add("images", "list images")
        ls_args(p)
        p = add("rmi", "remove images")
        rm_args(p)
    else:
        p = add("ls", "list images", "list")
        ls_args(p)
        p = add("rm", "remove images", "remove")
        rm_args(p)
        p = add("inspect", "show images as JSON")
        p.add_argument("refs", nargs="+", metavar="IMAGE")
        p.add_argument("--remote", action="store_true", help="inspect in the registry, as skopeo inspect docker://")
        p.add_argument("--raw", action="store_true", help="with --remote: the manifest's bytes, unchanged")
        p = add("referrers", "list the manifests whose subject is REF's (registry referrers API or its tag)")
        p.add_argument("ref", metavar="REF")
        p.add_argument("--artifact-type", default="", help="only referrers of this artifactType")
        p = add("copy", "copy an image: docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF]")
        p.add_argument("source", metavar="SRC")
        p.add_argument("dest", metavar="DST", help="as SRC; a plain name is an image of hull's store")
        p.add_argument("--platform", default="", help="OS/ARCH[/VARIANT] to choose from an index (default: the host's)")
        p.add_argument("-q", "--quiet", action="store_true", help="no summary line")
        p.add_argument("-a", "--all", dest="all_images", action="store_true",
                       help="copy the whole index: every platform's image (skopeo's --all)")  # fmt: skip
        retry_args(p)
        p = add("prune", "remove unnamed images and unreferenced blobs")
        p.add_argument("-f", "--force", action="store_true", help="do not prompt (hull never prompts)")
    p = add("import", "make an image from a root filesystem (tar file, '-' for stdin, or a directory)")
    p.add_argument("source", metavar="SRC")
    p.add_argument("ref", nargs="?", metavar="REF")
    p.add_argument("-c", "--change", action="append", default=[], help="Dockerfile instruction for the config")
    p.add_argument("-m", "--message", default="", help="history comment")
    p = add("load", "load images from an OCI or docker-save archive")
    p.add_argument("-i", "--input", default="-", help="archive to read (default: stdin)")
    p.add_argument("-q", "--quiet", action="store_true")
    p = add("save", "write images to an archive")
    p.add_argument("refs", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", default="", help="file to write (default: stdout)")
    p.add_argument("--format", default="oci-archive", help="oci-archive (default) or docker-archive")
    p = add("tag", "give an image another name")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("target", metavar="TARGET")
    p = add("pull", "download an image from a registry")
    p.add_argument("ref", metavar="REF")
    p.add_argument("--platform", default="", help="OS/ARCH[/VARIANT] to choose from an index (default: the host's)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("--unpack", default="", metavar="DIR", help="also unpack the layers into the new directory DIR, "
                   "in the same pass as the download")  # fmt: skip
    p.add_argument("--all-platforms", action="store_true",
                   help="keep the whole index under REF: every platform's manifest, config and layers")  # fmt: skip
    retry_args(p)
    p = add("push", "upload an image to a registry")
    p.add_argument("source", metavar="IMAGE")
    p.add_argument("dest", nargs="?", metavar="DESTINATION", help="registry reference (default: the image's name)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    retry_args(p)


def ls_args(p: Any) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="only image IDs")
    p.add_argument("--format", default="", help="table (default) or json")
    p.add_argument("--no-trunc", action="store_true", help="full image IDs")


def rm_args(p: Any) -> None:
    p.add_argument("refs", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--force", action="store_true", help="remove every name of an image given by ID")
    p.add_argument("--remote", action="store_true", help="delete the manifests from their registry, by digest")


def retry_args(p: Any) -> None:
    """podman's names for pull/push; hull's defaults (hull.distribution.client.Retry) when not given."""
    p.add_argument("--retry", type=int, default=None, metavar="N", help="times to re-send a failed request")
    p.add_argument("--retry-delay", default="", metavar="DURATION",
                   help="fixed wait between re-sends, as 1s or 500ms (default: exponential backoff)")  # fmt: skip


def _configure_retry(args: argparse.Namespace) -> None:
    """--retry / --retry-delay for every registry client of this command, and the one line on
    stderr per re-send (silenced by -q)."""
    from hull.cli.duration import DurationError, parse_duration
    from hull.distribution.client import Retry, set_default_retry

    if args.retry is not None and args.retry < 0:
        raise UsageError(f"--retry {args.retry}: must be 0 or more (see 'hull --help')")
    delay = None
    if args.retry_delay:
        try:
            delay = parse_duration(args.retry_delay)
        except DurationError as err:
            raise UsageError(f"--retry-delay: {err} (see 'hull --help')") from None
    log = None if args.quiet else lambda line: print(line, file=sys.stderr, flush=True)
    set_default_retry(Retry(attempts=args.retry, fixed_delay=delay, log=log))


GROUPS = ("image", "volume", "network", "system")


def _command_words(argv: list[str]) -> tuple[str | None, str | None]:
    """The command (and, for a group such as ``image``, its subcommand) named in ``argv``, found
    without parsing: the flags before it are the global ones, of which only --root takes a value."""
    words: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in GLOBAL_VALUE_FLAGS:
            skip = True
        elif arg in ("-h", "--help") and not words:
            return None, None
        elif not arg.startswith("-"):
            words.append(arg)
            if len(words) == 2 or words[0] not in GROUPS:
                break
    top = words[0] if words else None
    return top, (words[1] if len(words) > 1 else None)


GLOBAL_VALUE_FLAGS = ("--root", "--runroot")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """hull's parser; given ``argv``, only the parser of the subcommand it names (``--help`` and
    an unknown command get the whole tree)."""
    top_word, sub_word = _command_words(argv) if argv is not None else (None, None)
    parser = _Parser(prog="hull", description="hull: OCI images and containers")
    parser.add_argument("--root", default=None, help="storage directory (default: %(default)s)")
    parser.add_argument("--runroot", default=None, help="state that a reboot clears (default: /run/hull)")
    parser.add_argument("-v", "--version", action="store_true", help="print the version")
    top = parser.add_subparsers(dest="group", parser_class=_Parser)
    add = _adder(top, top_word)
    known = _TOP_LEVEL if top_word is not None else ()
    if top_word is not None and top_word not in known:
        top_word = None  # an unknown word: argparse's own error lists every command
        add = _adder(top, None)
    if top_word in (None, "image"):
        image = top.add_parser("image", help="manage images")
        _image_commands(image.add_subparsers(dest="sub", parser_class=_Parser, required=True), aliases=False,
                        wanted=sub_word if top_word == "image" and sub_word in _IMAGE_SUB else None)  # fmt: skip
    _image_commands(top, aliases=True, wanted=top_word)
    unpack = add("unpack", "unpack an image into a runtime bundle (rootfs and config.json)")
    unpack.add_argument("ref", metavar="IMAGE")
    unpack.add_argument("bundle", metavar="BUNDLE_DIR")
    unpack.add_argument("-t", "--tty", action="store_true", help="process.terminal true in config.json")
    login = add("login", "log in to a registry (checked against it, then stored)")
    login.add_argument("registry", metavar="REGISTRY")
    login.add_argument("-u", "--username", default=None)
    login.add_argument("-p", "--password", default=None)
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    login.add_argument("--authfile", default=None, help="credentials file (default: podman's auth.json)")
    logout = add("logout", "remove the stored credentials for a registry")
    logout.add_argument("registry", metavar="REGISTRY")
    logout.add_argument("--authfile", default=None, help="credentials file (default: podman's auth.json)")
    add("version", "print the version")
    for module in sorted({m for w, m in ENGINE_COMMANDS.items() if top_word in (None, w)}):
        import importlib

        importlib.import_module(f"hull.cli.{module}").add_parsers(add, sub_word if top_word in GROUPS else None)
    return parser


# Every top-level word build_parser knows (a word outside it builds the whole tree for the error).
_TOP_LEVEL = frozenset({
    "image", "images", "rmi", "import", "load", "save", "tag", "pull", "push", "unpack", "login", "logout",
    "version",
})  # fmt: skip
# The engine's commands: top-level word -> the hull.cli module that parses and runs it, through
# ``add_parsers(add, subcommand)`` and ``cmd_<command>(paths, args)``.
ENGINE_COMMANDS = {
    **dict.fromkeys(("run", "create", "start", "stop", "restart", "kill", "rm", "ps", "logs", "wait", "inspect",
                     "pause", "unpause"), "containers"),
    **dict.fromkeys(("exec", "attach", "top", "stats", "cp", "port"), "container_tools"),
    "volume": "volumes",
    "network": "networks",
    **dict.fromkeys(("system", "events"), "system"),
}  # fmt: skip
_TOP_LEVEL = _TOP_LEVEL | frozenset(ENGINE_COMMANDS)
_IMAGE_SUB = frozenset({
    "ls", "list", "rm", "remove", "inspect", "referrers", "copy", "prune", "import", "load", "save", "tag", "pull",
    "push",
})  # fmt: skip


def _dispatch(args: argparse.Namespace) -> int:
    if args.group in ENGINE_COMMANDS:  # not `image rm`/`image inspect`, whose group is "image"
        return _engine_command(args)
    if args.command in ("login", "logout"):
        from hull.cli import login

        if args.command == "login":
            return login.cmd_login(args.registry, args.username, args.password, args.password_stdin, args.authfile)
        return login.cmd_logout(args.registry, args.authfile)
    from hull.cli import image as cli
    from hull.image.store import LayoutStore

    command = {"images": "ls", "list": "ls", "rmi": "rm", "remove": "rm"}.get(args.command, args.command)
    store = LayoutStore(os.path.join(args.root or default_root(), "images"))
    if command == "ls":
        return cli.cmd_ls(store, args.quiet, args.format, args.no_trunc)
    if command == "inspect":
        if args.remote or args.raw:
            return cli.cmd_inspect_remote(args.refs, args.raw)
        return cli.cmd_inspect(store, args.refs)
    if command == "rm":
        if args.remote:
            from hull.cli import remote

            return remote.cmd_rm_remote(args.refs)
        return cli.cmd_rm(store, args.refs, args.force)
    if command == "referrers":
        from hull.cli import remote

        return remote.cmd_referrers(args.ref, args.artifact_type)
    if command == "prune":
        return cli.cmd_prune(store)
    if command == "tag":
        return cli.cmd_tag(store, args.source, args.target)
    if command == "load":
        return cli.cmd_load(store, args.input, args.quiet)
    if command == "save":
        return cli.cmd_save(store, args.refs, args.output, args.format)
    if command == "import":
        return cli.cmd_import(store, args.source, args.ref, args.change, args.message)
    if command == "unpack":
        return cli.cmd_unpack(store, args.ref, args.bundle, args.tty)
    if command in ("copy", "pull", "push"):
        _configure_retry(args)
    if command == "copy":
        return cli.cmd_copy(store, args.source, args.dest, args.platform, args.quiet, args.all_images)
    if command == "pull":
        return cli.cmd_pull(store, args.ref, args.platform, args.quiet, args.unpack, args.all_platforms)
    if command == "push":
        return cli.cmd_push(store, args.source, args.dest, args.quiet)
    raise UsageError(f"unknown command {command!r}")


def _engine_command(args: argparse.Namespace) -> int:
    import importlib

    from hull.engine.errors import EngineError
    from hull.engine.options import OptionError
    from hull.engine.paths import EnginePaths

    paths = EnginePaths(args.root or "", args.runroot or "")
    module = importlib.import_module(f"hull.cli.{ENGINE_COMMANDS[args.group]}")
    try:
        if args.command == "inspect":
            from hull.cli import containers

            return containers.cmd_inspect(paths, args, lambda ref: _image_inspect(paths, ref))
        result: int = getattr(module, f"cmd_{args.command}")(paths, args)
        return result
    except (EngineError, OptionError) as err:
        sys.stderr.write(f"Error: {err}\n")
        # docker's: 125 when run/create themselves fail, 1 for the other commands
        return 125 if args.command in ("run", "create") else EXIT_FAILURE


def _image_inspect(paths: Any, ref: str) -> list[dict[str, Any]]:
    from hull.cli import image as cli
    from hull.image.store import LayoutStore

    image, _found = cli.find(LayoutStore(paths.images), ref)
    return [cli.inspect_json(image)]


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """parse_args, with positionals allowed after flags (``import -c X DIR NAME``): argparse gives an
    optional positional up once a flag follows the first one, so late positionals are placed here."""
    args, extra = parser.parse_known_args(argv)
    late = [a for a in extra if not a.startswith("-") or a == "-"]
    if len(late) != len(extra):
        raise UsageError(f"unknown flag {next(a for a in extra if a not in late)!r} (see 'hull --help')")
    if late and getattr(args, "command", None) == "import" and args.ref is None and len(late) == 1:
        args.ref = late.pop()
    if late and isinstance(getattr(args, "refs", None), list):
        args.refs.extend(late)
        late = []
    if late:
        raise UsageError(f"unexpected arguments: {' '.join(late)} (see 'hull --help')")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = _parse(build_parser(argv), argv)
        if args.version or getattr(args, "command", None) == "version":
            from hull import __version__

            print(f"hull version {__version__}")
            return 0
        if getattr(args, "command", None) is None:
            raise UsageError("missing command (see 'hull --help')")
        return _dispatch(args)
    except UsageError as err:
        sys.stderr.write(f"Error: {err}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_FAILURE
    except Exception as err:  # noqa: BLE001 - the CLI's one place that turns any failure into one line
        from hull.cli.image import CommandError
        from hull.cli.login import LoginError
        from hull.image.errors import ImageError

        if isinstance(err, ImageError | CommandError | LoginError):
            sys.stderr.write(f"Error: {err}\n")
        elif isinstance(err, OSError):
            where = f"{err.filename}: " if err.filename else ""
            sys.stderr.write(f"Error: {where}{err.strerror or err}\n")
        else:
            raise
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
