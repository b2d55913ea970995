#!/usr/bin/env bash
# The accuracy protocol of docs/ACCURACY.md: leave one collection out (train without a collection,
# test on all of its writers) for each real collection, plus the held-out figures per collection.
#
#   scripts/accuracy.sh OUT_DIR [extra train options...]
#
# Environment: COUNTERSIGN (the binary, default target/release/countersign), DATASETS (default
# ../shared/datasets), STEPS and EPOCHS (default 15 x 100), THREADS (default 2). Each run writes
# OUT_DIR/<run>.safetensors + card, a training log and an evaluation log; the summary table goes to
# OUT_DIR/summary.txt. The options after OUT_DIR are the lever being measured (e.g. --input 220x150).
set -euo pipefail
out="${1:?usage: scripts/accuracy.sh OUT_DIR [train options...]}"
shift
bin="${COUNTERSIGN:-target/release/countersign}"
data="${DATASETS:-$(cd "$(dirname "$0")/../.." && pwd)/shared/datasets}"
epochs="${EPOCHS:-15}"
steps="${STEPS:-100}"
threads="${THREADS:-2}"
mkdir -p "$out"
dutch="$data/sigcomp2011-dutch"
bengali="$data/bhsig260/bengali"
hindi="$data/bhsig260/hindi"
licence="research use only; images not redistributed"
common=(--device cpu --threads "$threads")
train_opts=(--synthetic 200 --synthetic-genuine 10 --synthetic-forgeries 4 --synthetic-weight 0.5
  --epochs "$epochs" --steps "$steps" --forgeries 3 --warmup 100 --seed 2026 --quiet "$@")

# Leave one collection out: the left-out collection is validation data only (all its writers).
loco() {
  local name="$1" left="$2"; shift 2
  local args=()
  for d in "$@"; do args+=(--data "$d" --licence "$licence"); done
  if [ ! -f "$out/loco-$name.safetensors" ]; then
    "$bin" "${common[@]}" train "${args[@]}" --no-holdout --val-data "$left" \
      --out "$out/loco-$name.safetensors" "${train_opts[@]}" > "$out/loco-$name.train.log" 2>&1
  fi
  for z in "" --znorm; do
    "$bin" "${common[@]}" --model "$out/loco-$name.safetensors" evaluate --data "$left" $z \
      > "$out/loco-$name.eval${z}.log" 2>&1
  done
}
loco sigcomp2011-dutch "$dutch" "$bengali" "$hindi"
loco bengali "$bengali" "$dutch" "$hindi"
loco hindi "$hindi" "$dutch" "$bengali"

{
  echo "leave one collection out (options: ${*:-none}; ${epochs}x${steps} steps)"
  for name in sigcomp2011-dutch bengali hindi; do
    for z in "" --znorm; do
      echo "== $name ${z:-raw}"
      grep -A2 '^collection' "$out/loco-$name.eval${z}.log" | tail -n +2
    done
  done
} | tee "$out/summary.txt"
