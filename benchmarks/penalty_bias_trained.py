"""Bias of the penalty's estimators at training-like points of a trained (constrained) checkpoint.

    python benchmarks/penalty_bias_trained.py CHECKPOINT [BATCHES]

Per batch of 16 patches of 32² from the first 100 BSD400 images (x̃ = τ J(y) + (1 − τ) x), each
estimator's batch max of ‖∂Q(x̃) u‖² divided by the converged batch max (Lanczos to 1e-6), and
its time per batch. The result behind docs/configuration.md's "The penalty's estimator" table:
benchmarks/results/penalty-bias/.
"""

import sys
import time

import torch

from lipbench.data import PatchSampler, load_images
from lipbench.lipschitz import Reflected, interpolate, linearize
from lipbench.lipschitz.lanczos import lanczos
from lipbench.lipschitz.penalty import top_singular
from lipbench.models import load_model

VARIANTS = {
    "power10": {"solver": "power", "n_iter": 10},
    "lz10": {"n_iter": 10},
    "lz5+r2": {"n_iter": 5, "refine": 2},
    "lz10+r2": {"n_iter": 10, "refine": 2},
    "lz10+r4": {"n_iter": 10, "refine": 4},
    "lz5+r4": {"n_iter": 5, "refine": 4},
}


def main() -> None:
    torch.set_num_threads(2)
    model = load_model(sys.argv[1]).train()
    sampler = PatchSampler(load_images("bsd400")[:100], 32, 16, generator=(g := torch.Generator().manual_seed(1)))
    ratios = {k: [] for k in VARIANTS}
    seconds = dict.fromkeys(VARIANTS, 0.0)
    for t in range(int(sys.argv[2]) if len(sys.argv) > 2 else 6):
        x = sampler.sample()
        x_tilde = interpolate(model, x, x + 0.009 * torch.randn(x.shape, generator=g), g)
        with torch.no_grad():
            lin = linearize(Reflected(model), x_tilde)
        reference = lanczos(lin, x_tilde, max_iter=400, tol=1e-6, generator=torch.Generator().manual_seed(99))
        for name, kwargs in VARIANTS.items():
            start = time.perf_counter()
            est, _ = top_singular(model, x_tilde, tol=0.0, generator=torch.Generator().manual_seed(t), **kwargs)
            seconds[name] += time.perf_counter() - start
            with torch.no_grad():
                sigma2 = lin.jvp(est.vector).flatten(1).square().sum(1).max()
            ratios[name].append((sigma2 / reference.sigma.square().max()).item())
    print("estimator,ratio_mean,ratio_min,seconds_per_batch")
    for name, r in ratios.items():
        r = torch.tensor(r)
        print(f"{name},{r.mean():.4f},{r.min():.4f},{seconds[name] / len(r):.3f}")


if __name__ == "__main__":
    main()
