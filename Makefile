# Shortcuts; the scripts are the source of truth (they also work without make).
.PHONY: run stop test verify fmt bench

run:
	bash scripts/run.sh

stop:
	bash scripts/stop.sh

test:
	bash scripts/test.sh

# licstore next to etcd 3.5.1, etcd 3.4.23 and a gRPC echo server; writes benches/report/.
bench:
	bash benches/run

fmt:
	cargo fmt --all

# Everything CI checks and more: formatting, lints as errors, docs, tests.
verify:
	bash -c 'source scripts/setup.sh && cargo fmt --all -- --check \
	  && cargo clippy --release --workspace --all-targets --locked -- -D warnings \
	  && RUSTDOCFLAGS="-D warnings" cargo doc --release --workspace --no-deps --locked \
	  && bash scripts/test.sh'

# The chaos suite: every scenario of chaos/scenarios at its own minute-scale durations against
# real licstored processes (network namespaces as root, else loopback ports), with the
# negative control on licstored-faulty; writes target/chaos/summary.md and exits non-zero
# unless every verdict is the expected one. See chaos/README.md.
.PHONY: chaos
chaos:
	bash -c 'source scripts/setup.sh && bash chaos/setup.sh \
	  && cargo build --release --locked -p licstore-server --features fault-injection --bin licstored \
	  && cp "$$CARGO_TARGET_DIR/release/licstored" "$$CARGO_TARGET_DIR/release/licstored-faulty" \
	  && cargo build --release --locked -p licstore-server -p licstore-chaos \
	  && "$$CARGO_TARGET_DIR/release/licchaos" suite --out target/chaos'
