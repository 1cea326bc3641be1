"""``hull``: the engine's command line (for now only ``--version``; the engine comes later)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from hull import __version__

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["--version"], ["-v"], ["version"]):
        print(f"hull version {__version__}")
        return 0
    sys.stderr.write("usage: hull --version\n(the engine's commands arrive with a later release)\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
