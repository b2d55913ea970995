# Countersign: `make run` starts the application, `make test` runs every test.
# Each target installs what it needs (libtorch into .venv, once) and is safe to rerun.

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
BOOTSTRAP := eval "$$(scripts/bootstrap-libtorch.sh)"
CARGO ?= cargo

.PHONY: run test build lint fmt bench screenshots demo model clean-venv info train-default

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

## Retrain the bundled default model exactly as it was made (CPU, about 40-60 minutes on 2 cores; the
## card records the command). Needs the research-licensed SigComp2011 Dutch set (never copied here).
DUTCH ?= /work/shared/datasets/sigcomp2011-dutch
train-default: build
	./target/release/countersign --device cpu --threads 1 train --data $(DUTCH) \
	  --licence "SigComp2011 Dutch offline signatures (ICDAR 2011 competition data): research use only; the images are not redistributed" \
	  --holdout models/sigcomp2011-dutch-holdout.txt --synthetic 200 --synthetic-genuine 10 --synthetic-forgeries 4 \
	  --synthetic-weight 0.5 --epochs 10 --steps 60 --forgeries 3 --warmup 60 --seed 2026 \
	  --out models/countersign-default.safetensors
	rm -f models/countersign-default.checkpoint.* models/countersign-default.best.*
