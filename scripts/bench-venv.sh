#!/usr/bin/env bash
# Creates (or updates) the Python venv used by the ML benchmarks and fixture scripts.
# Idempotent: reuses an existing venv and only installs what is missing.
# Usage: scripts/bench-venv.sh [--upgrade]
# Override the location with BENCH_VENV=/path.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${BENCH_VENV:-$PWD/.venv-bench}"
PACKAGES=(scikit-learn pandas numpy redis websockets)

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating venv at $VENV" >&2
  python3 -m venv "$VENV"
fi

if [ "${1:-}" = "--upgrade" ]; then
  "$VENV/bin/pip" install --quiet --upgrade "${PACKAGES[@]}"
elif ! "$VENV/bin/python" -c 'import sklearn, pandas, numpy, redis, websockets' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet "${PACKAGES[@]}"
fi

"$VENV/bin/python" -c 'import sklearn, numpy, pandas, redis, sys; print(f"venv ok: {sys.prefix} python {sys.version.split()[0]} sklearn {sklearn.__version__} numpy {numpy.__version__} pandas {pandas.__version__} redis {redis.__version__}")' >&2
echo "$VENV"
