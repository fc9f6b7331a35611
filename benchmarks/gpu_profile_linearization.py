"""Where a fast-path power-iteration step spends its time on a GPU at BSD10 size (float32, no TF32):
forward, J u, Jᵀ w, and the two convolution primitives of Jᵀ w (``conv_transpose2d`` and the
equivalent ``conv2d`` with flipped, transposed weights), at batches 1, 2 and 16. Prints a table and
writes ``OUT/linearization-profile.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpu_measure import timed

from lipbench.lipschitz import linearize
from lipbench.models import DnCNN
from lipbench.plumbing.precision import tf32


def main() -> int:
    out = Path(sys.argv[1])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    side = (321, 481) if device.type == "cuda" else (32, 48)
    torch.manual_seed(0)
    model = DnCNN(depth=20, width=64).eval().to(device)
    w = model.body[2].weight
    rows = {}
    with torch.no_grad(), tf32(False):
        for batch in (1, 2, 16):
            x = torch.rand(batch, 1, *side, device=device)
            h = torch.rand(batch, 64, *side, device=device)
            lin = linearize(model, x, "fast")
            u = torch.randn_like(x)
            flipped = w.flip(-1, -2).transpose(0, 1).contiguous()
            rows[batch] = {
                name: timed(fn, device, 10)["median"]
                for name, fn in {
                    "forward": lambda: model(x),  # noqa: B023
                    "jvp": lambda: lin.jvp(u),  # noqa: B023
                    "vjp": lambda: lin.vjp(u),  # noqa: B023
                    "conv2d 64→64": lambda: F.conv2d(h, w, None, 1, 1),  # noqa: B023
                    "conv_transpose2d 64→64": lambda: F.conv_transpose2d(h, w, None, 1, 1),  # noqa: B023
                    "conv2d flipped 64→64": lambda: F.conv2d(h, flipped, None, 1, 1),  # noqa: B023
                }.items()
            }
            print(batch, {k: f"{v * 1e3:.2f} ms" for k, v in rows[batch].items()}, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "linearization-profile.json").write_text(json.dumps({"device": str(device), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
