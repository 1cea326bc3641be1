"""``inspect`` output as docker prints it: a JSON array of documents, or each through ``--format``; then
one ``Error:`` line per name that was not found (status 1)."""

from __future__ import annotations

import json
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def print_inspect(docs: list[dict[str, Any]], errors: list[str], fmt: str) -> int:
    if fmt:
        from hull.cli.gotemplate import render

        sys.stdout.write(render(fmt, docs, None))
    elif docs or not errors:
        print(json.dumps(docs, indent=4))
    for message in errors:
        sys.stderr.write(f"Error: {message}\n")
    return 1 if errors else 0
