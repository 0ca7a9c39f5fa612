#!/usr/bin/env bash
# Sets up a fresh Debian machine for Berth: system packages, npm dependencies, the build,
# and `berth`/`berthd` on PATH. Idempotent: a second run only rebuilds.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(runc conmon libseccomp-dev iptables iproute2 skopeo zstd busybox-static tmux docker-registry redis-server redis-tools docker-compose chromium tini debootstrap)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# docker-registry is for tests (each starts its own on a free loopback port); its packaged service
# would take port 5000, where the local hub listens.
if command -v systemctl >/dev/null && systemctl is-enabled docker-registry >/dev/null 2>&1; then
  ${sudo:-} systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# `npm install` rather than `npm ci`: node-unix-socket lists optional per-platform packages that
# were never published, which npm ci rejects as a lock mismatch.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund
fi
npm run build --silent

if [ "$(id -u)" -eq 0 ]; then
  ln -sf "$PWD/bin/berth" /usr/local/bin/berth
  ln -sf "$PWD/bin/berthd.js" /usr/local/bin/berthd
  # With no internet, the local hub is docker.io's mirror: berthd serves it and pulls through it.
  if [ ! -f /etc/berth/daemon.json ]; then
    mkdir -p /etc/berth
    cat > /etc/berth/daemon.json <<'JSON'
{
  "registry-mirrors": ["http://127.0.0.1:5000"],
  "hub-listen": "127.0.0.1:5000",
  "hub-root": "/var/lib/berth-hub"
}
JSON
  fi
  # BERTH_SEED_DEBIAN=1 also seeds library/debian:bookworm-slim (debootstrap: minutes the first time,
  # then cached by content in /var/cache/berth).
  node bin/berth.js hub seed --root /var/lib/berth-hub ${BERTH_SEED_DEBIAN:+--with debian} >/dev/null
fi
echo "setup: done ($(node bin/berth.js --version))"
