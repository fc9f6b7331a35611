"""Wall time of ``config/paper.yaml`` on one GPU, two ways: from FLOP counts at measured rates, and
from the unit costs of the timed slice (``benchmarks/gpu_measure.py``). Jobs run one after another.

A unit is one DnCNN-20/64 forward on one BSD10 image (481×321 grey): 0.205 TFLOP. Backward passes
count two forwards, a Jacobian-vector or vector-Jacobian product one.
"""

from __future__ import annotations

from typing import Any

PIXELS = 481 * 321
FORWARD_TFLOP = 2 * 9 * (64 + 18 * 64 * 64 + 64) * PIXELS / 1e12  # DnCNN-20/64, 3×3 convolutions
IMAGES = {"bsd10": 10, "bsd68": 68}
FORWARDS_PER_CALL = {"standard": 1, "random": 1, "mean": 8}  # J_G averages the 8 elements of D4
# a certified (SLL) layer applies its weight twice, C and Cᵀ: a training step measured 2.0–2.5× a DnCNN
# step of the same depth and width on 2 CPU cores; the TV baseline's FGP is elementwise and not counted
EXTRA_COST = 2.0


def with_extra(paper: dict[str, Any], stages: dict[str, float]) -> dict[str, float]:
    """``stages`` plus the ``denoisers`` section: each trained from scratch like the base and evaluated
    like one more λ, at ``EXTRA_COST`` times the DnCNN cost (assumed the grid's depth and width)."""
    extra = paper.get("denoisers", {})
    if not extra:
        return stages
    lams = len(paper["train"]["lambdas"])
    per_lambda = sum(stages[k] for k in ("PnP", "Lipschitz", "denoise BSD68")) / lams
    steps = [e.get("steps") or paper["train"]["base_steps"] for e in extra.values()]
    base = stages["train base"] / paper["train"]["base_steps"]
    extra_s = EXTRA_COST * (base * sum(steps) + len(extra) * per_lambda)
    return {**stages, "train and evaluate more denoisers (certified)": extra_s}


def lipschitz_unit(effects: dict[str, Any]) -> tuple[float, float]:
    """``(power iterations to the tolerance, seconds of one power-iteration step per image)`` from the
    ``precision_effects`` section of ``gpu_measure.py`` (‖∂J‖ and ‖∂Q‖ of a batch of images)."""
    counts = effects["J_iterations"] + effects["Q_iterations"]
    per_image = (effects["J_iteration_s"] + effects["Q_iteration_s"]) / 2 / len(effects["J_iterations"])
    return sum(counts) / len(counts), per_image


def penalty_step_forwards(t: dict[str, Any], refined: bool = True) -> float:
    """Forwards of one penalty step per patch of the batch: forward and backward (3), the screen's
    ``power_iters`` products (2 each), the differentiable product and its backward (3), and the
    refinement of ``refine`` samples (a forward and at most ``refine_iters`` products each)."""
    plain = 3 + 2 * t["power_iters"] + 3
    if not refined:
        return plain
    refine = t.get("refine", 2) * (1 + 2 * t.get("refine_iters", 100))
    return plain + refine / t["batch_size"]


def refinement_factor(t: dict[str, Any]) -> float:
    """How much the refinement adds to a penalty step timed without it (the H100 slice predates it):
    the ratio of forwards, an upper bound (every refinement runs its ``refine_iters`` steps)."""
    return penalty_step_forwards(t) / penalty_step_forwards(t, refined=False)


def forward_units(paper: dict[str, Any], lipschitz_iterations: float) -> dict[str, float]:
    """Denoiser forwards (BSD10-image units) of every stage."""
    t, p, lip = paper["train"], paper["pnp"], paper["lipschitz"]
    lams = len(t["lambdas"])
    fine = sum(1 for lam in t["lambdas"] if lam > 0)
    patches = t["batch_size"] * t["patch_size"] ** 2 / PIXELS
    jobs = IMAGES[p.get("dataset", "bsd10")] * len(p["kernels"])
    long = p.get("long_runs") or {}
    # per point: J at the 8 elements and J_G (8 forwards per product), for ‖∂J‖ and for ‖∂Q‖
    lipschitz_products = IMAGES[lip.get("dataset", "bsd10")] * (8 + 8) * 2 * 2 * lipschitz_iterations
    units = {
        "train base": t["base_steps"] * 3 * patches,
        "fine-tune λ > 0": fine * t["finetune_steps"] * penalty_step_forwards(t) * patches,
        "PnP": lams * p["iters"] * jobs * sum(FORWARDS_PER_CALL[m] for m in p["methods"]),
        "long PnP runs": len(long.get("lambdas", [])) * long.get("iters", 0) * jobs
        * sum(FORWARDS_PER_CALL[m] for m in long.get("methods", [])),
        "Lipschitz": lams * len(lip["points"]) * lipschitz_products,
        "denoise BSD68": lams * IMAGES[paper.get("denoise", {}).get("dataset", "bsd68")],
    }  # fmt: skip
    return with_extra(paper, units)


def from_flops(paper: dict[str, Any], tflops: dict[str, float], lipschitz_iterations: float) -> dict[str, float]:
    """Seconds per stage at the measured rates: ``tflops["train"]`` (TF32, lipbench's training
    default) and ``tflops["eval"]`` (full float32, its default for PnP, spectral norms and metrics)."""
    units = forward_units(paper, lipschitz_iterations)
    rate = {k: tflops["train" if k.startswith(("train", "fine")) else "eval"] for k in units}
    return {k: v * FORWARD_TFLOP / rate[k] for k, v in units.items()}


def from_slice(paper: dict[str, Any], unit: dict[str, float], lipschitz_iterations: float) -> dict[str, float]:
    """Seconds per stage from the slice's measured unit costs (lipbench's own entry points)."""
    t, p, lip = paper["train"], paper["pnp"], paper["lipschitz"]
    lams = t["lambdas"]
    per_method = {m: unit[f"pnp_{m}_iteration_s"] for m in FORWARDS_PER_CALL}
    long = p.get("long_runs") or {}
    images = IMAGES[lip.get("dataset", "bsd10")]
    stages = {
        "train base": t["base_steps"] * unit["base_step_s"],
        "fine-tune λ > 0": sum(1 for lam in lams if lam > 0) * t["finetune_steps"] * unit["penalty_step_s"]
        * refinement_factor(t),
        "PnP": len(lams) * p["iters"] * sum(per_method[m] for m in p["methods"]),
        "long PnP runs": len(long.get("lambdas", [])) * long.get("iters", 0)
        * sum(per_method[m] for m in long.get("methods", [])),
        # one power-iteration step of one image (‖∂J‖ or ‖∂Q‖) costs unit["lipschitz_image_iteration_s"]
        "Lipschitz": len(lams) * len(lip["points"]) * images * (8 + 8) * 2 * lipschitz_iterations
        * unit["lipschitz_image_iteration_s"],
        "denoise BSD68": len(lams) * unit["denoise_bsd68_s"],
    }  # fmt: skip
    return with_extra(paper, stages)
