# Countersign: `make run` starts the application, `make test` runs every test.
# Each target installs what it needs (libtorch into .venv, once) and is safe to rerun.

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
BOOTSTRAP := eval "$$(scripts/bootstrap-libtorch.sh)"
CARGO ?= cargo

.PHONY: run test build lint fmt bench screenshots demo model clean-venv info

DEMO_DB := target/demo/audit.sqlite3

## Build the release binary and start the desktop application with the bundled model and demo data
## (a demo database with one operator per role and four enrolled accounts; see the README).
run: build
	@scripts/demo-db.sh ./target/release/countersign $(DEMO_DB)
	./target/release/countersign --db $(DEMO_DB) gui

## Build (release) and run every test, with the lints. CI runs exactly this.
# Tests use the release profile too, so CI compiles the dependency tree once and the network runs fast.
test:
	@$(BOOTSTRAP); \
	$(CARGO) build --release --locked --all-targets; \
	$(CARGO) test --release --locked --all-targets 2>&1; \
	$(CARGO) test --release --locked --doc

build:
	@$(BOOTSTRAP); $(CARGO) build --release --locked

info: build
	./target/release/countersign info

## cargo fmt --check and clippy with warnings as errors.
lint:
	@$(BOOTSTRAP); $(CARGO) fmt --check && $(CARGO) clippy --release --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

## Benchmarks: print figures, assert nothing about time.
bench: build
	./target/release/countersign bench

## Screenshots of every screen under Xvfb into docs/screenshots/.
screenshots: build
	scripts/screenshots.sh

## Regenerate the demo assets in assets/demo with the synthetic generator.
demo: build
	./target/release/countersign synth --writers 4 --genuine 4 --forgeries 2 --cheques 2 --seed 2026 --out assets/demo

clean-venv:
	rm -rf .venv
