#!/usr/bin/env bash
# Runs the whole test suite: unit, property, golden-vector, multi-process cluster and chaos
# smoke tests (the bench harness's smoke test among them), the criterion benches once each, then
# the offline checks of the deployment files (deploy/check.sh: promtool, kustomize and schema
# validation, hadolint, systemd-analyze).
# Builds in release mode (the profile `scripts/run.sh` uses too, so RocksDB is built once).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# The chaos harness's tools (nftables, libfaketime, libfiu, eatmydata); without them its tests
# run on loopback ports and skip what needs the tools.
bash chaos/setup.sh >/dev/null || echo "test: chaos tools not installed (see chaos/setup.sh)" >&2
# The chaos suite's negative control runs a build that loses acknowledged writes on purpose
# (feature fault-injection); it is built first and set aside as licstored-faulty, and the test
# build below puts the normal licstored back.
echo "test: licstored-faulty (feature fault-injection) for the chaos suite's negative control" >&2
cargo build --release --locked -p licstore-server --features fault-injection --bin licstored
cp "$CARGO_TARGET_DIR/release/licstored" "$CARGO_TARGET_DIR/release/licstored-faulty"
echo "test: cargo test --release (target dir $CARGO_TARGET_DIR)" >&2
cargo test --release --workspace --locked -- --test-threads=2
echo "test: criterion micro-benchmarks, each run once (test mode, 2000-record store)" >&2
LICBENCH_MICRO_RECORDS=2000 cargo test --release --workspace --locked \
  --bench validate --bench codec --bench apply --bench read --bench seal
echo "test: deploy/check.sh" >&2
# With the daemon just built, so the Kubernetes configs are also fed to a real licstored.
LICSTORED="$CARGO_TARGET_DIR/release/licstored" bash deploy/check.sh
