#!/usr/bin/env bash
# The GPU measurement run behind docs/performance.md (about 13 minutes on one H100; no network):
#
#   OUT=benchmarks/results/<name> LIPBENCH_DATA=/path/to/data bash benchmarks/gpu.sh
#
# 1. the CUDA variants of the exact-reference tests (exact-SVD spectral norms in float64,
#    closed-form PnP fixed points, exact equivariance, no host synchronisation in the PnP loop);
# 2. the benchmark suite on CUDA (pytest-benchmark JSON, ratios measured side by side);
# 3. benchmarks/gpu_measure.py: the GPU options (TF32, bf16, channels_last, cuDNN autotuning,
#    torch.compile, pinned memory) and a timed slice of config/paper.yaml with its extrapolation;
# 4. config/gpu-slice.yaml end to end through Snakemake (needs snakemake importable by $PYTHON), its
#    tables, figures, logs and wall time copied to $OUT (commit them under results/gpu-slice/).
#
# It installs nothing: lipbench runs from this checkout (PYTHONPATH) with the python3 that holds a
# CUDA torch and lipbench's dependencies (pytest-benchmark included). Exit status: non-zero if any
# part failed; every part runs regardless, and each writes its files under $OUT as it goes.
# DEVICE=cpu runs the same plumbing on a CPU at toy sizes (a check of the script, not a measurement).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu-$(date +%F)}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export LIPBENCH_DATA="${LIPBENCH_DATA:-../shared/data}"
DEVICE="${DEVICE:-cuda}"
status=0
start=$SECONDS
if [[ $DEVICE == cpu ]]; then bench=(--benchmark-disable) measure=(--smoke --device cpu); else bench=() measure=(); fi

{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
    "$PY" -c "import torch, sys; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda,
'cudnn', torch.backends.cudnn.version(), torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO CUDA')"
} 2>&1 | tee "$OUT/environment.txt"
if [[ $DEVICE != cpu ]]; then
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'CUDA is not available'" || exit 1
fi

PARTS="${PARTS:-tests bench measure slice}"  # a subset reruns only those parts
echo "== [$((SECONDS - start)) s] CUDA correctness tests"
if [[ $PARTS == *tests* ]]; then
    LIPBENCH_TEST_DEVICE=$DEVICE "$PY" -m pytest -q -p no:cacheprovider tests/test_lipschitz.py tests/test_pnp.py \
        tests/test_groups.py tests/test_precision.py 2>&1 | tee "$OUT/cuda-tests.log" || status=1
fi

echo "== [$((SECONDS - start)) s] benchmarks on CUDA"
if [[ $PARTS == *bench* ]]; then
    LIPBENCH_BENCH_DEVICE=$DEVICE "$PY" -m pytest benchmarks -q -p no:cacheprovider "${bench[@]}" \
        -k "not performance_page and not deepinv and not gpu_measure and not end_to_end and not scaling" \
        --benchmark-json "$OUT/benchmarks-cuda.json" 2>&1 | tee "$OUT/benchmarks-cuda.log" || status=1
fi

echo "== [$((SECONDS - start)) s] GPU options and the paper slice"
if [[ $PARTS == *measure* ]]; then
    # shellcheck disable=SC2086
    "$PY" benchmarks/gpu_measure.py "${measure[@]}" ${MEASURE_ARGS:-} --out "$OUT" \
        --budget-s "${MEASURE_BUDGET_S:-240}" 2>&1 | tee "$OUT/gpu-measure.log" || status=1
fi

echo "== [$((SECONDS - start)) s] config/gpu-slice.yaml end to end (budget 480 s)"
if [[ $PARTS == *slice* && $DEVICE != cpu ]]; then  # on a CPU, tests/test_workflow.py runs it at toy sizes
    shim=$(mktemp -d)  # the rules call `lipbench`: this checkout's, through this python
    printf '#!/bin/sh\nexec "%s" -m lipbench.cli "$@"\n' "$PY" > "$shim/lipbench" && chmod +x "$shim/lipbench"
    rm -rf runs/gpu-slice
    t0=$SECONDS
    PATH="$shim:$PATH" "$PY" -m snakemake --cores all --configfile config/gpu-slice.yaml 2>&1 \
        | tee "$OUT/gpu-slice-snakemake.log" || status=1
    wall=$((SECONDS - t0))
    echo "config/gpu-slice.yaml: ${wall} s end to end (budget 480 s)" | tee "$OUT/gpu-slice-wall.txt"
    (( wall <= 480 )) || status=1
    mkdir -p "$OUT/gpu-slice" && cp -r runs/gpu-slice/{tables,figures,logs,benchmarks} "$OUT/gpu-slice/" || status=1
fi

echo "== [$((SECONDS - start)) s] done (status $status); files in $OUT"
exit $status
