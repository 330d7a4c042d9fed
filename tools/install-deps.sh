#!/usr/bin/env bash
# Installs the distribution packages Headcount builds against, when they are missing.
# Used by tools/serve.sh and tools/test.sh; safe to run again (it installs nothing twice).
set -euo pipefail

packages=(libuv1-dev libhttp-parser-dev libsimdjson-dev libjemalloc-dev pkg-config)
if [[ "${1:-}" == "--test" ]]; then
    packages+=(python3 python3-pip)
fi

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if (( ${#missing[@]} > 0 )); then
    sudo=""
    if [[ "$(id -u)" != "0" ]]; then sudo="sudo"; fi
    echo "headcount: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The seat-map service's official Python client, driven by StatusChangesOfficialClientTests.
if [[ "${1:-}" == "--test" ]] && ! python3 -c "import seatsio" 2>/dev/null; then
    echo "headcount: installing seatsio==83.21.0 (pip)" >&2
    python3 -m pip install -q --disable-pip-version-check seatsio==83.21.0 2>/dev/null \
        || python3 -m pip install -q --disable-pip-version-check --break-system-packages seatsio==83.21.0
fi
