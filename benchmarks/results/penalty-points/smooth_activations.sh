#!/bin/bash
# The fourth round of README.md: quick's DnCNN-6/24 with a smooth activation, its 800-step base and
# one fine-tune at λ (quick's settings, --eps and --seed as given), each evaluated as quick does.
#   LIPBENCH_DATA=... bash benchmarks/results/penalty-points/smooth_activations.sh OUT silu 0.1 0.01 0
set -euo pipefail
out=$1 act=$2 lam=$3 eps=$4 seed=$5
export PYTHONPATH="$(cd "$(dirname "$0")" && pwd)${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1
model=(--model smoothnet:dncnn --model-kwargs depth=6 width=24 smooth="$act")
data=(--max-images 100 --patch-size 32 --lr 0.001 --device cpu --quiet)
base=$out/$act/lam0 tuned=$out/$act/lam${lam}_eps${eps}_seed$seed

evaluate() {  # quick's denoising, PnP (standard) and Lipschitz evaluation of $1/model.pt
  lipbench denoise --checkpoint "$1/model.pt" --out "$1/denoise.csv" --crop 128 --device cpu
  lipbench pnp --checkpoint "$1/model.pt" --out "$1/pnp" --equivariance none --crop 64 --kernels levin1 \
    gaussian_1_6 --kernel-sigma gaussian_1_6=0.008 --iters 150 --device cpu
  lipbench lipschitz --checkpoint "$1/model.pt" --out "$1/lipschitz.csv" --kernels levin1 --iters 150 --crop 24 \
    --points noisy y adjoint iterates search --iterates 0 1 5 20 100 --tol 0.001 --max-iter 300 --device cpu
}

if [ ! -f "$base/model.pt" ]; then
  lipbench train --out "$base" "${model[@]}" "${data[@]}" --steps 800
  evaluate "$base"
fi
lipbench train --out "$tuned" --lam "$lam" --init "$base/model.pt" "${model[@]}" "${data[@]}" --steps 150 \
  --power-iters 10 --refine-iters 50 --penalty-points tilde gradient adversarial --eps "$eps" --seed "$seed"
evaluate "$tuned"
