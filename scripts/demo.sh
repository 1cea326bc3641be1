#!/usr/bin/env bash
# hull's main job, offline: image -> bundle -> container, the three steps every engine takes.
# The image is hull's built-in localhost/busybox (made from the host's busybox-static on first
# use, no network needed); set HULL_DEMO_IMAGE to pull another from a registry instead
# (e.g. HULL_DEMO_IMAGE=docker.io/library/busybox:latest when one is reachable).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

work=$(mktemp -d /tmp/hull-demo.XXXXXX)
hull() { .venv/bin/hull --root "$work/root" --runroot "$work/run" "$@"; }
cleanup() {
  hull ps -a -q | xargs -r .venv/bin/hull --root "$work/root" --runroot "$work/run" rm -f >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
image=${HULL_DEMO_IMAGE:-localhost/busybox:latest}

echo "== 1. image: $image"
if [ -n "${HULL_DEMO_IMAGE:-}" ]; then
  hull pull "$image"
else
  hull unpack "$image" "$work/warm-up" >/dev/null  # builds the built-in image into the store
  rm -rf "$work/warm-up"
fi
hull images

echo "== 2. bundle: unpack the image (rootfs + config.json, image-spec conversion.md)"
hull unpack "$image" "$work/bundle"
ls "$work/bundle"
.venv/bin/hull-runtime --root "$work/state" run --bundle "$work/bundle" hull-demo-bundle \
  || true  # the image's own command (sh) with no terminal: exits at once

echo "== 3. container: hull run (the engine: snapshot, config, network, monitor, runtime)"
hull run --rm "$image" sh -c 'echo "hello from inside a hull container: hostname=$(hostname) pid=$$ user=$(id -un)"; ls /'
hull run -d --name demo-web -p 127.0.0.1::80 "$image" \
  sh -c 'echo "hello over the network from $(hostname)" > /tmp/index.html; exec httpd -f -p 80 -h /tmp' >/dev/null
hull ps
port=$(hull port demo-web | sed 's/.*://')
echo "-- from the host, through the published port $port:"
for _ in 1 2 3 4 5 6 7 8 9 10; do
  .venv/bin/python -c "import urllib.request, sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$port/', timeout=2).read().decode())" && break
  sleep 0.2
done
echo "-- from another container on the default network, by name:"
hull run --rm "$image" wget -qO- http://demo-web/
hull logs demo-web
hull stop -t 1 demo-web >/dev/null
hull ps -a
hull rm demo-web >/dev/null
