"""Wall time of a configuration (``config/paper.yaml``, ``config/gpu-slice.yaml``) on GPUs, two ways:
from FLOP counts at measured rates, and from the unit costs of the timed slice
(``benchmarks/gpu_measure.py``); and the plan on G GPUs, each job of the workflow on one GPU.

A unit is one DnCNN-20/64 forward on one BSD10 image (481×321 grey): 0.205 TFLOP. Backward passes
count two forwards, a Jacobian-vector or vector-Jacobian product one.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

PIXELS = 481 * 321
FORWARD_TFLOP = 2 * 9 * (64 + 18 * 64 * 64 + 64) * PIXELS / 1e12  # DnCNN-20/64, 3×3 convolutions
IMAGES = {"bsd10": 10, "bsd68": 68}
FORWARDS_PER_CALL = {"standard": 1, "random": 1, "mean": 8}  # J_G averages the 8 elements of D4
# a certified (SLL) layer applies its weight twice, C and Cᵀ: a training step measured 2.0–2.5× a DnCNN
# step of the same depth and width on 2 CPU cores; the TV baseline's FGP is elementwise and not counted
EXTRA_COST = 2.0
EXTRA_STAGE = "train and evaluate more denoisers (certified)"
STAGES = ("train base", "fine-tune λ > 0", "PnP", "long PnP runs", "Lipschitz", "denoise BSD68", EXTRA_STAGE)


@dataclass(frozen=True)
class Job:
    """One workflow job on one GPU: ``seconds`` of work, startable once the job named ``after`` ended."""

    name: str
    stage: str
    seconds: float
    after: str | None = None


@dataclass
class Plan:
    gpus: int
    makespan_s: float
    busy_s: float  # the sum of the jobs' seconds
    critical_path_s: float  # the longest chain of dependent jobs
    finish: dict[str, float] = field(default_factory=dict)

    @property
    def lower_bound_s(self) -> float:
        """No schedule on ``gpus`` GPUs ends before this: the critical path, or the work spread evenly."""
        return max(self.critical_path_s, self.busy_s / self.gpus)


def lipschitz_unit(effects: dict[str, Any], solver: str = "power") -> tuple[float, float]:
    """``(products to the tolerance, seconds of one product step per image)`` from the
    ``precision_effects`` section of ``gpu_measure.py`` (‖∂J‖ and ‖∂Q‖ of a batch of images).
    A solver's counts are ``J_<solver>_iterations`` (power iteration's: ``J_iterations``)."""
    key = "" if solver == "power" else f"{solver}_"
    counts = effects[f"J_{key}iterations"] + effects[f"Q_{key}iterations"]
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


def _kernels(paper: dict[str, Any], long: bool = False) -> int:
    p = paper["pnp"]
    return len((p.get("long_runs") or {}).get("kernels") or p["kernels"]) if long else len(p["kernels"])


def _pnp_images(paper: dict[str, Any]) -> int:
    return IMAGES[paper["pnp"].get("dataset", "bsd10")]


def forward_units(paper: dict[str, Any], lipschitz_iterations: float) -> dict[str, float]:
    """Denoiser forwards (BSD10-image units) of every stage."""
    t, p, lip = paper["train"], paper["pnp"], paper["lipschitz"]
    lams = len(t["lambdas"])
    fine = sum(1 for lam in t["lambdas"] if lam > 0)
    patches = t["batch_size"] * t["patch_size"] ** 2 / PIXELS
    long = p.get("long_runs") or {}
    # per point: J at the 8 elements and J_G (8 forwards per product), for ‖∂J‖ and for ‖∂Q‖
    lipschitz_products = IMAGES[lip.get("dataset", "bsd10")] * (8 + 8) * 2 * 2 * lipschitz_iterations
    units = {
        "train base": t["base_steps"] * 3 * patches,
        "fine-tune λ > 0": fine * t["finetune_steps"] * penalty_step_forwards(t) * patches,
        "PnP": lams * p["iters"] * _pnp_images(paper) * _kernels(paper)
        * sum(FORWARDS_PER_CALL[m] for m in p["methods"]),
        "long PnP runs": len(long.get("lambdas", [])) * long.get("iters", 0) * _pnp_images(paper)
        * _kernels(paper, long=True) * sum(FORWARDS_PER_CALL[m] for m in long.get("methods", [])),
        "Lipschitz": lams * len(lip["points"]) * lipschitz_products,
        "denoise BSD68": lams * IMAGES[paper.get("denoise", {}).get("dataset", "bsd68")],
    }  # fmt: skip
    return _with_extra(paper, units)


def _with_extra(paper: dict[str, Any], stages: dict[str, float]) -> dict[str, float]:
    """``stages`` plus the ``denoisers`` section: each trained from scratch like the base and evaluated
    like one more λ, at ``EXTRA_COST`` times the DnCNN cost (assumed the grid's depth and width)."""
    extra = paper.get("denoisers", {})
    if not extra:
        return stages
    lams = len(paper["train"]["lambdas"])
    per_lambda = sum(stages[k] for k in ("PnP", "Lipschitz", "denoise BSD68")) / lams
    steps = [e.get("steps") or paper["train"]["base_steps"] for e in extra.values()]
    base = stages["train base"] / paper["train"]["base_steps"]
    return {**stages, EXTRA_STAGE: EXTRA_COST * (base * sum(steps) + len(extra) * per_lambda)}


def from_flops(paper: dict[str, Any], tflops: dict[str, float], lipschitz_iterations: float) -> dict[str, float]:
    """Seconds per stage at the measured rates: ``tflops["train"]`` (TF32, lipbench's training
    default), ``tflops["tf32"]`` for PnP where ``pnp.tf32`` is on, ``tflops["eval"]`` (full float32)
    for the rest. The extra denoisers' stage is counted at the float32 rate."""
    units = forward_units(paper, lipschitz_iterations)
    fast = tflops.get("tf32", tflops["eval"])
    pnp_rate = fast if paper["pnp"].get("tf32") else tflops["eval"]
    long_rate = fast if (paper["pnp"].get("long_runs") or {}).get("tf32") else tflops["eval"]
    rate = {k: tflops["train" if k.startswith(("train base", "fine")) else "eval"] for k in units}
    rate.update({"PnP": pnp_rate, "long PnP runs": long_rate})
    return {k: v * FORWARD_TFLOP / rate[k] for k, v in units.items()}


def jobs(paper: dict[str, Any], unit: dict[str, float], lipschitz_iterations: float) -> list[Job]:
    """Every GPU job of the workflow with its seconds, from the slice's unit costs.

    ``unit``: ``base_step_s``, ``penalty_step_s`` (without the refinement), ``pnp_<method>_iteration_s``
    (one iteration over BSD10 × the paper's 9 kernels, float32), ``pnp_tf32_speedup`` (float32 ÷ TF32
    for one iteration; 1 when absent), ``lipschitz_image_iteration_s`` (one solver step, one image)
    and ``denoise_bsd68_s``. PnP scales with the configured images × kernels over the slice's 90, a
    spectral-norm step with the pixels of ``lipschitz.crop``; ``lipschitz_iterations`` are the
    products to the tolerance at the configured size."""
    t, p, lip = paper["train"], paper["pnp"], paper["lipschitz"]
    slice_jobs = 10 * 9
    speedup = unit.get("pnp_tf32_speedup", 1.0)

    def pnp_s(method: str, long: bool) -> float:
        fast = (p.get("long_runs") or {}).get("tf32") if long else p.get("tf32")
        per = unit[f"pnp_{method}_iteration_s"] * _pnp_images(paper) * _kernels(paper, long) / slice_jobs
        return per / (speedup if fast else 1.0)

    crop = lip.get("crop") and min(lip["crop"] ** 2 / PIXELS, 1.0)  # a step's cost taken ∝ pixels
    lipschitz_s = (len(lip["points"]) * IMAGES[lip.get("dataset", "bsd10")] * (8 + 8) * 2 * lipschitz_iterations
                   * unit["lipschitz_image_iteration_s"] * (crop or 1.0))  # fmt: skip
    out = [Job("train lam0", "train base", t["base_steps"] * unit["base_step_s"])]

    def evaluate(name: str, cost: float, stage: str | None = None) -> list[Job]:
        return [
            *[Job(f"pnp {name} {m}", stage or "PnP", cost * p["iters"] * pnp_s(m, False), f"train {name}")
              for m in p["methods"]],
            Job(f"lipschitz {name}", stage or "Lipschitz", cost * lipschitz_s, f"train {name}"),
            Job(f"denoise {name}", stage or "denoise BSD68", cost * unit["denoise_bsd68_s"], f"train {name}"),
        ]  # fmt: skip

    for lam in t["lambdas"]:
        name = f"lam{lam:g}"
        if lam > 0:
            seconds = t["finetune_steps"] * unit["penalty_step_s"] * refinement_factor(t)
            out.append(Job(f"train {name}", "fine-tune λ > 0", seconds, "train lam0"))
        out += evaluate(name, 1.0)
    long = p.get("long_runs") or {}
    for lam in long.get("lambdas", []):
        for m in long["methods"]:
            seconds = long["iters"] * pnp_s(m, True)
            out.append(Job(f"long lam{lam:g} {m}", "long PnP runs", seconds, f"train lam{lam:g}"))
    for name, entry in paper.get("denoisers", {}).items():
        steps = entry.get("steps") or t["base_steps"]
        out.append(Job(f"train {name}", EXTRA_STAGE, EXTRA_COST * steps * unit["base_step_s"]))
        out += evaluate(name, EXTRA_COST, EXTRA_STAGE)
    return out


def from_slice(paper: dict[str, Any], unit: dict[str, float], lipschitz_iterations: float) -> dict[str, float]:
    """Seconds per stage from the slice's measured unit costs (see :func:`jobs`)."""
    stages = dict.fromkeys(STAGES, 0.0)
    for job in jobs(paper, unit, lipschitz_iterations):
        stages[job.stage] += job.seconds
    return {k: v for k, v in stages.items() if v > 0 or k != EXTRA_STAGE}


def plan(work: list[Job], gpus: int) -> Plan:
    """List scheduling on ``gpus`` GPUs, as Snakemake's ``resources: gpu=1`` does: whenever a GPU is
    free, start the longest job whose predecessor has ended (ties: the order of ``work``)."""
    by_name = {j.name: j for j in work}
    unknown = sorted({j.after for j in work if j.after is not None and j.after not in by_name})
    if unknown:
        raise ValueError(f"jobs wait for jobs that are not in the plan: {unknown}")
    waiting = {j.name for j in work}
    finish: dict[str, float] = {}
    free = [0.0] * gpus  # the times the GPUs become free (a heap)
    running: list[tuple[float, str]] = []
    now = 0.0
    while waiting:
        ready = [by_name[n] for n in waiting if by_name[n].after is None or by_name[n].after in finish]
        ready = [j for j in ready if j.after is None or finish[j.after] <= now]
        if ready and free[0] <= now:
            job = max(ready, key=lambda j: (j.seconds, -work.index(j)))
            heapq.heappop(free)
            finish[job.name] = now + job.seconds
            heapq.heappush(free, finish[job.name])
            heapq.heappush(running, (finish[job.name], job.name))
            waiting.discard(job.name)
            continue
        now = min([f for f in free if f > now] + [f for f, _ in running if f > now])
    chain: dict[str, float] = {}
    for job in sorted(work, key=lambda j: finish[j.name] - j.seconds):  # predecessors start first
        chain[job.name] = job.seconds + (chain[job.after] if job.after else 0.0)
    busy = sum(j.seconds for j in work)
    return Plan(gpus, max(finish.values(), default=0.0), busy, max(chain.values(), default=0.0), finish)
