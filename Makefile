# Shortcuts; the scripts are the source of truth (they also work without make).
.PHONY: run stop test verify fmt

run:
	bash scripts/run.sh

stop:
	bash scripts/stop.sh

test:
	bash scripts/test.sh

fmt:
	cargo fmt --all

# Everything CI checks and more: formatting, lints as errors, docs, tests.
verify:
	bash -c 'source scripts/setup.sh && cargo fmt --all -- --check \
	  && cargo clippy --release --workspace --all-targets --locked -- -D warnings \
	  && RUSTDOCFLAGS="-D warnings" cargo doc --release --workspace --no-deps --locked \
	  && bash scripts/test.sh'
