#!/usr/bin/env bash
# The test command: installs whatever is missing, builds, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

scripts/install-deps.sh

swift build --build-tests
swift test --skip-build 2>&1 | tee .build/test-output.log
