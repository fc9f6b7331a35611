#!/usr/bin/env bash
# A separate virtual environment for benchmarks/test_deepinv_reference.py: the CPU torch, lipbench
# (editable, with its test extra) and deepinv, under benchmarks/deepinv-constraints.txt.
#
#   bash benchmarks/setup-deepinv-env.sh                  # makes .bench-venv (gitignored)
#   LIPBENCH_BENCH_VENV=DIR bash benchmarks/setup-deepinv-env.sh
#   LIPBENCH_DATA=... .bench-venv/bin/python -m pytest benchmarks/test_deepinv_reference.py \
#       --benchmark-json benchmarks/results/deepinv/<name>.json
#
# Why separate: the benchmark environment must never change the test environment (.ci-venv, a
# developer's venv). A plain `pip install deepinv` replaces the pinned CPU torch with a CUDA build,
# and deepinv needs torchvision, whose PyPI Linux wheels are CUDA builds that cannot load their C++
# ops beside the CPU torch (see the stub below). So deepinv lives only here; in the test
# environment benchmarks/test_deepinv_reference.py skips, saying how to get here.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${LIPBENCH_BENCH_VENV:-.bench-venv}"
CONSTRAINTS=benchmarks/deepinv-constraints.txt
MARK=.lipbench-bench-venv
if [[ -e "$VENV" && ! -e "$VENV/$MARK" ]]; then
    echo "error: $VENV exists and was not made by this script: remove it or set LIPBENCH_BENCH_VENV" >&2
    exit 1
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
touch "$VENV/$MARK"
PY="$VENV/bin/python"

# torch first: the pinned CPU wheel lies on these machines; any other request pulls a CUDA build.
"$PY" -m pip install --quiet torch==2.13.0
"$PY" -m pip install --quiet -c "$CONSTRAINTS" -e '.[test]' deepinv
"$PY" -c "import torch; assert torch.version.cuda is None, f'a CUDA torch got in: {torch.__version__}'"

# torchvision 0.28.0 from PyPI is a CUDA build: its _C.so needs libtorch_cuda.so, so its ops never
# register and `import torchvision` (hence `import deepinv`) dies in _meta_registrations.py with
# "operator torchvision::nms does not exist". No CPU build of it is on PyPI (no sdist either). Where
# that happens, declare the two op schemas that module needs (no kernels) just before it runs:
# torchvision's Python parts (transforms, utils), all deepinv uses here, then work, and its ops
# (nms, roi_align, ...) raise torchvision's own "Couldn't load custom C++ ops". Only this venv sees it.
if ! "$PY" -c "import torchvision" 2>/dev/null; then
    SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    cat >"$SITE/lipbench_torchvision_ops_stub.py" <<'EOF'
"""Declares torchvision::nms and ::qnms (no kernels) when torchvision's C++ ops did not load.

Written by lipbench's benchmarks/setup-deepinv-env.sh, loaded by lipbench_torchvision_ops_stub.pth.
Acts once, just before torchvision._meta_registrations is imported, and only if
torchvision.extension._has_ops() is False; it changes nothing else.
"""

import importlib.abc
import sys

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_libraries = []  # a torch.library.Library drops its definitions when it is garbage-collected


class _DeclareMissingOps(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torchvision._meta_registrations" and not _libraries:
            import torch
            import torchvision.extension

            if not torchvision.extension._has_ops():
                lib = torch.library.Library("torchvision", "FRAGMENT")
                for schema in _SCHEMAS:
                    lib.define(schema)
                _libraries.append(lib)
        return None  # the ordinary finders import the module itself


sys.meta_path.insert(0, _DeclareMissingOps())
EOF
    echo "import lipbench_torchvision_ops_stub" >"$SITE/lipbench_torchvision_ops_stub.pth"
fi

"$PY" - <<'EOF'
import deepinv
import torch
import torchvision

ops = "loaded" if torchvision.extension._has_ops() else "not loaded (stub)"
print(f"torch {torch.__version__}, torchvision {torchvision.__version__} (C++ ops {ops}), deepinv {deepinv.__version__}")
EOF
echo "ready: $VENV/bin/python -m pytest benchmarks/test_deepinv_reference.py"
