#!/usr/bin/env bash
# A penalised fine-tune of the published cpu base, trained in stages and evaluated after each one
# as results/cpu evaluates (the firmly nonexpansive denoiser's PnP gap to TV against fine-tune steps).
#   bash benchmarks/results/cpu-scale/fne_finetune_steps.sh OUT LAM LR EPS STAGE...
# Run from the repository root with LIPBENCH_DATA set; one torch thread; appends to OUT/stages.jsonl.
# INIT (default: the published cpu base) and WIDTH (default: 32) name another DnCNN-10 base;
# STAGE 0 evaluates the base itself.
set -euo pipefail
out=$1 lam=$2 lr=$3 eps=$4
shift 4
init=${INIT:-results/cpu/models/lam0/model.pt} width=${WIDTH:-32}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$out"
for steps in "$@"; do
  start=$(date +%s)
  stage="$out/s$steps"
  mkdir -p "$stage"
  if [ "$steps" -eq 0 ]; then
    cp "$init" "$stage/model.pt"
  else
    lipbench train --out "$out/train" --init "$init" --resume auto \
      --model-kwargs depth=10 width="$width" --lam "$lam" --lr "$lr" --eps "$eps" --power-iters 10 \
      --refine-iters 50 --penalty-points tilde gradient adversarial --steps "$steps" \
      >> "$out/train.log" 2>&1
    cp "$out/train/model.pt" "$stage/model.pt"
  fi
  trained=$(date +%s)
  bash "$(dirname "$0")/evaluate_stage.sh" "$stage"
  echo "{\"width\": $width, \"lam\": $lam, \"lr\": $lr, \"eps\": $eps, \"steps\": $steps, \"stage_train_s\": $((trained - start)), \"stage_eval_s\": $(( $(date +%s) - trained )), \"dir\": \"$stage\"}" >> "$out/stages.jsonl"
done
