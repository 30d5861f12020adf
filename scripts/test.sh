#!/usr/bin/env bash
# The test command: installs whatever is missing, builds, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

# The dashboard test drives a real headless Chromium; TRAFFIC_SKIP_BROWSER_TEST=1 skips it
# (and the browser install) on purpose.
if [ "${TRAFFIC_SKIP_BROWSER_TEST:-}" = "1" ]; then
  scripts/install-deps.sh
else
  scripts/install-deps.sh chromium
fi

# The interop test runs the original framework's Python worker (../shared/peers/experiment_py)
# against a stream this tool wrote: it needs the venv with redis, numpy and scikit-learn.
scripts/bench-venv.sh >/dev/null

swift build --build-tests
export TEST_OUTPUT_DIR="${TEST_OUTPUT_DIR:-$PWD/.build/test-output}"
swift test --skip-build 2>&1 | tee .build/test-output.log
