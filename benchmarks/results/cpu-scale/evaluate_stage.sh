#!/usr/bin/env bash
# One stage of a cpu-scale study evaluated as results/cpu evaluates: max ‖∂Q‖² at the noisy 32×32
# crops (unless --no-lipschitz), standard PnP on the 96×96 BSD10 crops with the config's kernels and
# noise, and denoising on BSD68 at the training σ. Shared by fne_finetune_steps.sh and
# certified_scale.sh, so that every study reads its numbers off the same protocol.
#   bash benchmarks/results/cpu-scale/evaluate_stage.sh STAGE_DIR [--no-lipschitz]   # STAGE_DIR/model.pt
set -euo pipefail
stage=$1
if [ "${2:-}" != --no-lipschitz ]; then
  lipbench lipschitz --checkpoint "$stage/model.pt" --out "$stage/lipschitz.csv" --crop 32 \
    --points noisy --tol 1e-3 --max-iter 300 > "$stage/lipschitz.log" 2>&1
fi
lipbench pnp --checkpoint "$stage/model.pt" --out "$stage/pnp" --equivariance none --crop 96 \
  --kernels levin1 gaussian_1_6 --kernel-sigma gaussian_1_6=0.008 --iters 150 > "$stage/pnp.log" 2>&1
lipbench denoise --checkpoint "$stage/model.pt" --out "$stage/denoise.csv" > "$stage/denoise.log" 2>&1
