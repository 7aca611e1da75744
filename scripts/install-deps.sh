#!/bin/sh
# Installs the Debian packages elm builds, tests and serves with. Run as root (or through sudo).
# With --aarch64 (on an x86-64 host) it also installs the aarch64 cross toolchain, qemu-user and the
# arm64 -dev libraries that scripts/test-aarch64.sh builds and runs the NEON kernels with.
set -e
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
PKGS="build-essential cmake ninja-build pkg-config git \
  nlohmann-json3-dev libpcre2-dev libutf8proc-dev libcli11-dev libcpp-httplib-dev \
  libgtest-dev libgmock-dev libbenchmark-dev \
  libvulkan-dev glslc mesa-vulkan-drivers spirv-tools \
  python3-numpy \
  clang-14 libclang-rt-14-dev chromium"
if [ "${1:-}" = --aarch64 ] && [ "$(dpkg --print-architecture)" = amd64 ]; then
  PKGS="$PKGS g++-aarch64-linux-gnu qemu-user libpcre2-dev:arm64 libutf8proc-dev:arm64 libgtest-dev:arm64"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
    NEED_UPDATE=1
  fi
fi
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ] || [ -n "${NEED_UPDATE:-}" ]; then
  $SUDO apt-get update -qq
fi
if [ -n "$missing" ]; then
  $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
# Node.js and npm for the end-to-end tests (tests/e2e): Debian's, unless a Node.js is already there
# (mixing Debian's npm with another nodejs build breaks apt).
if ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
