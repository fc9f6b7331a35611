#!/usr/bin/env bash
# The width axis of the firmly nonexpansive fine-tune study: a DnCNN-10 base of width WIDTH trained
# at λ = 0 for BASE_STEPS steps (LR 1e-3, the rest as cpu.yaml), evaluated as is (stage 0), then
# fine-tuned with the penalty in resumed stages by fne_finetune_steps.sh.
#   bash benchmarks/results/cpu-scale/fne_width.sh OUT WIDTH BASE_STEPS LAM LR EPS STAGE...
# Run from the repository root with LIPBENCH_DATA set; one torch thread.
set -euo pipefail
out=$1 width=$2 base_steps=$3
shift 3
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$out"
start=$(date +%s)
lipbench train --out "$out/base" --resume auto --model-kwargs depth=10 width="$width" --lam 0 \
  --lr 1e-3 --steps "$base_steps" >> "$out/base.log" 2>&1
echo "{\"width\": $width, \"base_steps\": $base_steps, \"base_train_s\": $(( $(date +%s) - start ))}" >> "$out/base.jsonl"
INIT="$out/base/model.pt" WIDTH="$width" bash "$(dirname "$0")/fne_finetune_steps.sh" "$out/ft" "$@"
