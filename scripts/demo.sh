#!/usr/bin/env bash
# hull's main job, offline: an image made from the host's busybox-static is
# imported into hull's image store, unpacked into an OCI bundle, and run as a
# container by hull-runtime: the three steps every engine takes (pulling from a
# registry comes with the distribution client).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

work=$(mktemp -d /tmp/hull-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
.venv/bin/python - "$work/rootfs" <<'PY'
import sys
from hull.testing.busybox import build_rootfs
build_rootfs(sys.argv[1])
PY
hull() { .venv/bin/hull --root "$work/store" "$@"; }

echo "== 1. image: import a busybox root filesystem"
hull image import \
  --change 'CMD ["sh", "-c", "echo hello from inside a hull container: hostname=$(hostname) pid=$$ user=$(id -un); ls /"]' \
  "$work/rootfs" demo/busybox:latest
hull images

echo "== 2. bundle: unpack the image (rootfs + config.json, image-spec conversion.md)"
hull unpack demo/busybox:latest "$work/bundle"
ls "$work/bundle"

echo "== 3. container: run the bundle with hull-runtime"
.venv/bin/hull-runtime --root "$work/state" run --bundle "$work/bundle" hull-demo
