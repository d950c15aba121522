#!/usr/bin/env bash
# Installs the Debian packages Sluice needs to build, test and run, skipping
# the ones already present. Used by `make run`, `make test` and .ci/run.
#   --test     also what the tests need
#   --deb      also what `make deb` needs (dpkg-dev for dpkg-shlibdeps, lintian)
#   --aarch64  also the arm64 cross toolchain, qemu-user-static and, through
#              multiarch (adds the arm64 architecture to dpkg), the arm64
#              -dev packages of every library (`make test-aarch64`)
# The list and the reason for each package are in docs/dependencies.md.
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config clang clang-format python3
            zlib1g-dev libsnappy-dev liblz4-dev libzstd-dev libssl-dev librdkafka-dev libmicrohttpd-dev)
TEST_PKGS=(kcat openssl python3-confluent-kafka python3-kafka python3-pytest libclang-rt-14-dev
           python3-snappy python3-lz4 python3-zstandard python3-prometheus-client chromium
           prometheus nodejs iproute2)

DEB_PKGS=(dpkg-dev lintian systemd adduser)
AARCH64_PKGS=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
              zlib1g-dev:arm64 libsnappy-dev:arm64 liblz4-dev:arm64 libzstd-dev:arm64 librdkafka-dev:arm64
              libmicrohttpd-dev:arm64 libssl-dev:arm64)

want=("${BUILD_PKGS[@]}")
for opt in "$@"; do
    case "$opt" in
    --test) want+=("${TEST_PKGS[@]}") ;;
    --deb) want+=("${DEB_PKGS[@]}") ;;
    --aarch64) want+=("${AARCH64_PKGS[@]}") ;;
    *) echo "install-deps: unknown option $opt" >&2; exit 2 ;;
    esac
done

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
# arm64 packages need the architecture known to dpkg first. Multiarch wants
# the same version of a library for both architectures, so this may also
# upgrade the amd64 one (e.g. zlib1g) to the archive's current version.
case " ${missing[*]}" in
*:arm64*)
    dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64 ;;
esac
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
