#!/usr/bin/env bash
# The certified denoiser's scaling axis (C5's second half): a certified model (J = (Id + Q)/2, Q
# 1-Lipschitz by construction) of DEPTH and WIDTH trained at LR in resumed stages, each evaluated
# as results/cpu evaluates (standard PnP, denoising; max ‖∂Q‖² at the noisy crops at the last stage).
#   bash benchmarks/results/cpu-scale/certified_scale.sh OUT DEPTH WIDTH LR STAGE...
# Run from the repository root with LIPBENCH_DATA set; one torch thread; appends to OUT/stages.jsonl.
# STAGE 0 evaluates CHECKPOINT (default: the published certified model, results/cpu/models/certified).
# INIT: start the training from this model.pt (default: from scratch). ACTIVATION: the SLL blocks'
# σ, leaky_relu (default) or spline (certified_spline.py beside this file; spline_init.py turns a
# LeakyReLU model into an INIT for it).
# No training probes, and ‖∂Q‖² measured at the last stage only (LIPSCHITZ=all: at every stage, none:
# at none): on this model both cost as much as the training (the bound ≤ 1 holds by construction).
set -euo pipefail
out=$1 depth=$2 width=$3 lr=$4
shift 4
last=${*: -1}
activation=${ACTIVATION:-leaky_relu}
model=(--model certified --model-kwargs depth="$depth" width="$width" activation="$activation")
if [ "$activation" = spline ]; then
  model=(--model certified_spline:build --model-kwargs depth="$depth" width="$width")
  export PYTHONPATH="$(cd "$(dirname "$0")" && pwd)${PYTHONPATH:+:$PYTHONPATH}"
fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$out"
for steps in "$@"; do
  start=$(date +%s)
  stage="$out/s$steps"
  mkdir -p "$stage"
  if [ "$steps" -eq 0 ]; then
    cp "${CHECKPOINT:-results/cpu/models/certified/model.pt}" "$stage/model.pt"
  else
    lipbench train --out "$out/train" --resume auto "${model[@]}" ${INIT:+--init "$INIT"} --lr "$lr" \
      --steps "$steps" --probe-size 0 >> "$out/train.log" 2>&1
    cp "$out/train/model.pt" "$stage/model.pt"
  fi
  trained=$(date +%s)
  lipschitz=${LIPSCHITZ:-last} skip=--no-lipschitz
  if [ "$lipschitz" = all ] || { [ "$lipschitz" = last ] && [ "$steps" -eq "$last" ]; }; then
    skip=
  fi
  bash "$(dirname "$0")/evaluate_stage.sh" "$stage" $skip
  echo "{\"depth\": $depth, \"width\": $width, \"lr\": $lr, \"steps\": $steps, \"init\": \"${INIT:-}\", \"activation\": \"$activation\", \"stage_train_s\": $((trained - start)), \"stage_eval_s\": $(( $(date +%s) - trained )), \"dir\": \"$stage\"}" >> "$out/stages.jsonl"
done
