#!/usr/bin/env bash
# Runs every test: unit, oracle, storage, HTTP, and end-to-end against the real binary.
# Installs what is missing first. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh --test
swift build --build-tests
swift test --skip-build "$@"
