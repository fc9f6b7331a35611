"""cpu λ = 0.1 fine-tune with the penalty also at noisy training patches x + σn (J's own inputs in training).

The package has no `noisy` penalty kind; this script lends the `blurred` slots to it
(lipbench.steps.train.penalty_points wrapped), everything else as `lipbench train` with cpu.yaml's settings.
    python benchmarks/results/cpu-scale/finetune_noisy_points.py OUT   (LIPBENCH_DATA set, run from the repository root)
"""

import sys

import torch

from lipbench.restoration import penalty_points as P
from lipbench.steps import train as T

SIGMA = 0.009
original = P.penalty_points


def with_noisy(kinds, x, tilde, generator, adversarial=None):
    out = original([k if k != "blurred" else "tilde" for k in kinds], x, tilde, generator, adversarial)
    index = torch.arange(kinds.index("blurred"), x.shape[0], len(kinds))
    noise = torch.randn(x[index].shape, generator=generator, dtype=x.dtype)
    out[index] = x[index] + SIGMA * noise
    return out


T.penalty_points = with_noisy
cfg = T.TrainConfig(
    model_kwargs={"depth": 10, "width": 32},
    lr=1e-3,
    power_iters=10,
    refine_iters=50,
    penalty_points=("tilde", "gradient", "adversarial", "blurred"),
    lam=0.1,
    steps=300,
    init="results/cpu/models/lam0/model.pt",
)
print(T.train(cfg, sys.argv[1], device="cpu", progress=False))
