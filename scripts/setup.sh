#!/usr/bin/env bash
# Installs what building licstore needs beyond the Rust toolchain, and sets the shared
# target directory. Sourced by scripts/run.sh and scripts/test.sh.
#
# - libclang-dev: RocksDB's Rust bindings are generated with bindgen, which needs libclang.
# - g++ and make: RocksDB's C++ sources are compiled from the crate (once; minutes on 2 cores).
# - openssl: scripts/run.sh makes a local CA and certificates for its cluster's TLS.
set -euo pipefail

need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup: installing ${need[*]} with apt-get" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# One target directory outside the clone, shared by run, test and CI, so RocksDB's C++ build
# is paid once per machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/licstore-target}"
mkdir -p "$CARGO_TARGET_DIR"
