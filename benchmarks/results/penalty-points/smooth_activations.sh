#!/bin/bash
# The fourth round of README.md: quick's DnCNN-6/24 with a smooth activation, its 800-step base, the
# top λ's fine-tune (quick's settings, --eps and --seed as given) and quick's evaluation of it.
#   LIPBENCH_DATA=... bash benchmarks/results/penalty-points/smooth_activations.sh OUT silu 0.01 0
set -euo pipefail
out=$1 act=$2 eps=$3 seed=$4
export PYTHONPATH="$(cd "$(dirname "$0")" && pwd)${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1
model=(--model smoothnet:dncnn --model-kwargs depth=6 width=24 smooth="$act")
data=(--max-images 100 --patch-size 32 --lr 0.001 --device cpu --quiet)
base=$out/$act/lam0 top=$out/$act/lam0.1_eps${eps}_seed$seed
[ -f "$base/model.pt" ] || lipbench train --out "$base" "${model[@]}" "${data[@]}" --steps 800
lipbench train --out "$top" --lam 0.1 --init "$base/model.pt" "${model[@]}" "${data[@]}" --steps 150 \
  --power-iters 10 --refine-iters 50 --penalty-points tilde gradient adversarial --eps "$eps" --seed "$seed"
for m in "$base" "$top"; do
  lipbench denoise --checkpoint "$m/model.pt" --out "$m/denoise.csv" --crop 128 --device cpu
  lipbench pnp --checkpoint "$m/model.pt" --out "$m/pnp" --equivariance none --crop 64 --kernels levin1 \
    gaussian_1_6 --kernel-sigma gaussian_1_6=0.008 --iters 150 --device cpu
done
lipbench lipschitz --checkpoint "$top/model.pt" --out "$top/lipschitz.csv" --kernels levin1 --iters 150 --crop 24 \
  --points noisy y adjoint iterates search --iterates 0 1 5 20 100 --tol 0.001 --max-iter 300 --device cpu
