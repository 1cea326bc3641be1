#!/usr/bin/env bash
# hull's main job, for now: build a busybox bundle from the host's busybox-static
# and run a container from it with hull-runtime.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

work=$(mktemp -d /tmp/hull-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
.venv/bin/python - "$work/bundle" <<'PY'
import sys
from hull.testing.busybox import build_bundle, default_config
config = default_config(["sh", "-c", 'echo "hello from inside a hull container: hostname=$(hostname) pid=$$ user=$(id -un)"; ls /'])
build_bundle(sys.argv[1], config["process"]["args"], config)
PY
echo "bundle: $work/bundle"
.venv/bin/hull-runtime --root "$work/state" run --bundle "$work/bundle" hull-demo
