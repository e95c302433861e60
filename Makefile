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
