"""Fail if a lower layer of src/hull imports a higher one (DEVELOPERS.md "Architecture").

Layers, lowest first; a module may import its own layer and any lower one.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LAYERS = ["oci", "runtime", "image", "distribution", "network", "engine", "testing", "cli"]
SRC = Path(__file__).resolve().parent.parent / "src" / "hull"


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "hull" and parts[1] in LAYERS else None


def main() -> int:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent)
        own = layer_of(".".join(rel.with_suffix("").parts))
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                other = layer_of(name)
                if other and LAYERS.index(other) > LAYERS.index(own):
                    bad.append(f"{rel}:{node.lineno}: layer {own!r} imports higher layer {other!r} ({name})")
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
