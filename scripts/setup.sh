#!/usr/bin/env bash
# Install what hull needs on Debian 12 (as root) and a virtualenv with hull in it.
# Idempotent; sourced by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# podman, containerd and docker.io: the real engines that drive hull-runtime in tests/integration/test_engines.py.
# skopeo and umoci: the OCI image tools hull's content store interoperates with (tests/integration/test_content_store.py).
# docker-registry: distribution 2.8, the registry tests/integration/test_registry.py starts on loopback.
# apache2-utils: htpasswd -B, the bcrypt password file of the Basic-auth registry in test_registry_auth.py.
# tini: /usr/bin/tini-static, the init `hull run --init` binds at /dev/init (as docker's docker-init).
# containernetworking-plugins, iptables: the CNI plugins in /usr/lib/cni that hull.network.cni runs, and the
# iptables that bridge/portmap/firewall call (tests/integration/test_cni.py).
APT_PACKAGES=(busybox-static runc crun python3-venv python3-pip iproute2 util-linux procps bsdutils
  podman containerd docker.io uidmap skopeo umoci docker-registry apache2-utils debootstrap tini
  containernetworking-plugins iptables)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# compat mode: a plain .pth path entry, no import-hook finder on every start-up.
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]' --config-settings editable_mode=compat
# Byte-compile now: where PYTHONDONTWRITEBYTECODE is set, every hull-runtime start would recompile.
.venv/bin/python -m compileall -q src >/dev/null
