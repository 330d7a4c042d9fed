#!/usr/bin/env bash
# Starts Headcount with sane defaults (127.0.0.1:8080, ./headcount-data, generated keys).
# Installs what is missing and builds a release binary first. Extra arguments go to
# `headcount serve` (see `tools/serve.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product headcount >&2
exec .build/release/headcount serve "$@"
