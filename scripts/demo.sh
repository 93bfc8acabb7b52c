#!/usr/bin/env bash
# The main job, about 15 minutes on 2 CPU cores: an ENAS macro search on Fashion-MNIST
# (3.5 minutes), the report, a retrain of the derived child fitted to 10.5 minutes, and
# its export as a SavedModel. The search sees a 12,000-image slice, so about seven ENAS
# epochs (140 controller updates) fit its budget; the retrain uses all 55,000 training
# images. A quarter of the time searching, not half, because that is what scored better
# in benchmarks/peers.py (--search-fraction 0.25 against 0.5, same seeds). The retrain takes
# minibatches of 64, not the reference code's 128: at 7-8 epochs twice the updates for the same
# images per second scored better (benchmarks/retrain_recipe.py).
#
# Then the floor the search must beat: benchmarks/peers.py's hand-written 2-conv + BN CNN
# trained on the same images for the main job's measured wall time, on this machine and in
# this run, so both see the same load; the two test accuracies are printed side by side
# (about 15 more minutes). `--no-floor` stops after the main job.
#
# Usage: scripts/demo.sh [--no-floor] [RUN_DIRECTORY]
set -euo pipefail
cd "$(dirname "$0")/.."
floor=1
if [[ "${1:-}" == "--no-floor" ]]; then
  floor=0
  shift
fi
run=${1:-runs/fashion_mnist_enas}
began=$(date +%s)
.venv/bin/keras-rlnas search --space enas-macro --dataset fashion_mnist --directory "$run" \
  --layers 6 --epochs 20 --max-minutes 3.5 --limit 12000 --overwrite \
  --space-options '{"filters": 24}' --tuner-options '{"controller_steps": 20, "controller_batch": 10, "derive_samples": 50}'
.venv/bin/keras-rlnas report "$run"
.venv/bin/keras-rlnas retrain "$run" --epochs 20 --max-minutes 10.5 --limit 0 --batch-size 64
.venv/bin/keras-rlnas export "$run" --format saved_model
main_job_seconds=$(( $(date +%s) - began ))
[[ $floor == 1 ]] || exit 0

minutes=$(awk -v s="$main_job_seconds" 'BEGIN { printf "%.2f", s / 60 }')
rm -f "$run/floor.jsonl"
.venv/bin/python benchmarks/peers.py --system cnn-bn --budget-minutes "$minutes" --seed 0 --results "$run/floor.jsonl"
.venv/bin/python benchmarks/versus_floor.py "$run" "$main_job_seconds"
