#!/bin/bash
# λ sweep at the quick configuration's scale (config/config.yaml): fine-tune its λ = 0 base with
# each variant below, measure max ‖∂Q‖² of J on BSD10 crops (`lipbench lipschitz`, noisy points,
# x̃ too where marked), and collect one row per variant. This is the measurement behind the quick
# grid, its power_iters and the placement of config/paper.yaml's provisional grid.
#   LIPBENCH_DATA=../shared/data bash benchmarks/lambda_sweep.sh [WORKDIR]   (about 45 min, 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-/tmp/lambda-sweep}
mkdir -p "$D"
mapfile -t ARGS < <(python - <<'PY'
import yaml
from lipbench.workflow.rules import base_args, finetune_args, lipschitz_args
c = yaml.safe_load(open("config/config.yaml"))
c["train"]["power_iters"] = 3  # the variants set their own
print(base_args(c)); print(finetune_args(c)); print(lipschitz_args(c))
PY
)
read -ra BASE <<< "${ARGS[0]}"; read -ra FT <<< "${ARGS[1]}"; read -ra LIP <<< "${ARGS[2]}"
[ -f "$D/lam0/model.pt" ] || lipbench train --out "$D/lam0" --lam 0 "${BASE[@]}"
[ -f "$D/lam0.csv" ] || lipbench lipschitz --checkpoint "$D/lam0/model.pt" --out "$D/lam0.csv" "${LIP[@]}" --points noisy tilde
# name            λ      points          extra fine-tuning arguments
while read -r name lam points extra; do
  [ -z "$name" ] && continue
  read -ra more <<< "$extra"
  [ -f "$D/$name/model.pt" ] || lipbench train --out "$D/$name" --lam "$lam" --init "$D/lam0/model.pt" "${FT[@]}" "${more[@]}"
  [ -f "$D/$name.csv" ] || lipbench lipschitz --checkpoint "$D/$name/model.pt" --out "$D/$name.csv" "${LIP[@]}" --points ${points//+/ }
done <<'VARIANTS'
control-lam0      0      noisy+tilde  --power-iters 3
p3-lam1e-5        1e-5   noisy        --power-iters 3
p3-lam1e-4        1e-4   noisy        --power-iters 3
p3-lam0.1         0.1    noisy+tilde  --power-iters 3
p3-lam1           1      noisy        --power-iters 3
p3-lam0.1-600     0.1    noisy+tilde  --power-iters 3 --steps 600
p10-lam1e-7       1e-7   noisy        --power-iters 10
p10-lam1e-6       1e-6   noisy        --power-iters 10
p10-lam1e-5       1e-5   noisy+tilde  --power-iters 10
p10-lam1e-4       1e-4   noisy        --power-iters 10
p10-lam1e-3       1e-3   noisy+tilde  --power-iters 10
p10-lam0.1        0.1    noisy        --power-iters 10
p10-lam1          1      noisy+tilde  --power-iters 10
p20-lam0.1        0.1    noisy+tilde  --power-iters 20
p10-lam0.1-eps0.1 0.1    noisy+tilde  --power-iters 10 --eps 0.1
p10-lam1-600      1      noisy        --power-iters 10 --steps 600
p10-lam0.1-lr1e-4 0.1    noisy+tilde  --power-iters 10 --lr 1e-4
p10-lam0.1-lr1e-4-600 0.1 noisy+tilde --power-iters 10 --lr 1e-4 --steps 600
p10-lam1-lr1e-4   1      noisy+tilde  --power-iters 10 --lr 1e-4
VARIANTS
python - "$D" <<'PY'
import sys
from pathlib import Path
import pandas as pd
rows = []
for path in sorted(Path(sys.argv[1]).glob("*.csv")):
    lip = pd.read_csv(path)
    for point, part in lip[lip.operator == "J"].groupby("point"):
        rows.append({"variant": path.stem, "lam": part.lam.iloc[0], "point": point,
                     "lip2_Q_max": part.lip2_Q.max(), "lip2_Q_mean": part.lip2_Q.mean()})
print(pd.DataFrame(rows).to_csv(index=False, float_format="%.5g"), end="")
PY
