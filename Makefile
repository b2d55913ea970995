# Countersign: `make run` starts the application, `make test` runs every test.
# Each target installs what it needs (libtorch into .venv, once) and is safe to rerun.

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
BOOTSTRAP := eval "$$(scripts/bootstrap-libtorch.sh)"
CARGO ?= cargo

.PHONY: run test build lint fmt bench screenshots demo model clean-venv info train-default accuracy

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

## Retrain the bundled default model exactly as it was made (CPU, 2 threads; the card records the
## command). Needs the research-licensed SigComp2011 Dutch and BHSig260 sets (never copied here).
## After training: calibrate and record the per-collection figures as docs/ACCURACY.md says.
DATASETS ?= $(abspath ../shared/datasets)
DUTCH ?= $(DATASETS)/sigcomp2011-dutch
BHSIG ?= $(DATASETS)/bhsig260
LICENCE := research use only; the images are not redistributed
train-default: build
	./target/release/countersign --device cpu --threads 2 train \
	  --data $(DUTCH) --licence "SigComp2011 Dutch offline signatures (ICDAR 2011 competition data): $(LICENCE)" \
	  --data $(BHSIG)/bengali --licence "BHSig260 Bengali (Pal et al., DAS 2016): $(LICENCE)" \
	  --data $(BHSIG)/hindi --licence "BHSig260 Hindi (Pal et al., DAS 2016): $(LICENCE)" \
	  --holdout models/holdout-writers.txt --synthetic 200 --synthetic-genuine 10 --synthetic-forgeries 4 \
	  --synthetic-weight 0.5 --input 220x150 --ink binary --epochs 12 --steps 150 --forgeries 3 --warmup 150 \
	  --seed 2026 --no-augment --out models/countersign-default.safetensors --quiet
	rm -f models/countersign-default.checkpoint.* models/countersign-default.best.*

## The accuracy protocol (docs/ACCURACY.md): leave each real collection out in turn; OUT= a folder.
OUT ?= target/accuracy
accuracy: build
	COUNTERSIGN=./target/release/countersign DATASETS=$(DATASETS) scripts/accuracy.sh $(OUT) --input 220x150 --ink binary
