#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 / Ubuntu 22.04+ machine.
#
# Installs what is missing, and nothing else:
#   1. the Debian packages needed to build and run fastsam-track
#      (GStreamer + plugins, OpenCV, clang for the opencv binding generator);
#   2. ONNX Runtime (CPU) from the PyPI wheel, unpacked into ./third_party/onnxruntime
#      (ignored by git). The binary finds it there by itself.
#
# Environment knobs:
#   FASTSAM_ORT_VERSION   ONNX Runtime version (default 1.32.0, the goldens' version)
#   FASTSAM_SKIP_APT=1    do not touch apt (e.g. packages managed elsewhere)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ORT_VERSION="${FASTSAM_ORT_VERSION:-1.32.0}"
ORT_DIR="$ROOT/third_party/onnxruntime"

APT_PACKAGES=(
  pkg-config clang libclang-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  libgstrtspserver-1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-base-apps
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gstreamer1.0-libav gstreamer1.0-rtsp
  libopencv-dev
  python3 python3-pip unzip ca-certificates curl
)

log() { printf '[setup] %s\n' "$*" >&2; }

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_apt() {
  if [ "${FASTSAM_SKIP_APT:-0}" = "1" ]; then
    log "FASTSAM_SKIP_APT=1: skipping apt packages"
    return
  fi
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "apt packages: all present"
    return
  fi
  log "apt packages missing: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_rust() {
  if command -v cargo >/dev/null 2>&1; then
    return
  fi
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    return
  fi
  log "cargo not found: installing Rust with rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
}

install_ort() {
  local lib="$ORT_DIR/libonnxruntime.so.$ORT_VERSION"
  if [ -f "$lib" ]; then
    log "ONNX Runtime $ORT_VERSION: present in $ORT_DIR"
    return
  fi
  log "downloading the onnxruntime==$ORT_VERSION wheel from PyPI"
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  local py=python3
  "$py" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 \
    "onnxruntime==$ORT_VERSION" -d "$tmp"
  local whl
  whl="$(ls "$tmp"/onnxruntime-*.whl | head -n1)"
  mkdir -p "$tmp/x"
  unzip -q -o "$whl" 'onnxruntime/capi/libonnxruntime*' -d "$tmp/x"
  mkdir -p "$ORT_DIR"
  cp "$tmp/x/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/"
  if [ -f "$tmp/x/onnxruntime/capi/libonnxruntime_providers_shared.so" ]; then
    cp "$tmp/x/onnxruntime/capi/libonnxruntime_providers_shared.so" "$ORT_DIR/"
  fi
  ln -sf "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/libonnxruntime.so"
  log "ONNX Runtime $ORT_VERSION installed in $ORT_DIR"
}

install_apt
install_rust
install_ort
log "setup complete"
