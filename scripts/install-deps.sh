#!/usr/bin/env bash
# Installs the Debian packages Sluice needs to build, test and run, skipping
# the ones already present. Used by `make run`, `make test` and .ci/run.
# The list and the reason for each package are in docs/dependencies.md.
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config clang clang-format python3
            zlib1g-dev libsnappy-dev liblz4-dev libzstd-dev libssl-dev librdkafka-dev)
TEST_PKGS=(kcat python3-confluent-kafka python3-kafka python3-pytest python3-snappy python3-lz4 python3-zstandard
           libclang-rt-14-dev)

want=("${BUILD_PKGS[@]}")
if [ "${1:-}" = "--test" ]; then
    want+=("${TEST_PKGS[@]}")
fi

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
