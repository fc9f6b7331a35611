"""``lipbench train``: a denoiser trained with the firm-nonexpansiveness penalty, one model per call, resumable.

Loss: ``ℓ(J(x + σ n), x) + λ · max{‖∂Q(x̃)‖², 1 − ε}`` (ℓ = mean ℓ1 or mean squared error), the
penalty at x̃ (the papers') or at a mix of x̃ and PnP-like points (``--penalty-points``).
At every checkpoint the log also records the converged ‖∂Q(x̃)‖² on a fixed probe set of training
patches (``probe_sigma2_max``/``_mean``), so a run shows whether the constraint holds as it trains.
Every random draw (patches, noise, τ, power-iteration start vectors) comes from one CPU
generator seeded by ``seed`` and saved in the checkpoint, so a run interrupted and resumed on
the CPU ends with bit-identical weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

import lipbench
from lipbench.data import DATASETS, PatchSampler, load_images
from lipbench.data.fetch import sha256_file
from lipbench.lipschitz import Reflected, fne_penalty, interpolate, spectral_norm
from lipbench.lipschitz.penalty import SOLVERS
from lipbench.models import build, read_checkpoint, save_checkpoint
from lipbench.models.checkpoint import nonfinite_entries
from lipbench.plumbing.codehash import code_hash_of
from lipbench.plumbing.command import Command
from lipbench.plumbing.device import resolve_device
from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.io import atomic_write, remove_outputs
from lipbench.plumbing.options import check, from_args, option
from lipbench.plumbing.precision import AMP, autocast, layout, tf32, to_channels_last
from lipbench.plumbing.seeding import derive_seed, generator
from lipbench.restoration.penalty_points import KINDS as POINT_KINDS
from lipbench.restoration.penalty_points import adversarial_step, penalty_points

PROBE_TOL = 1e-4
PROBE_MAX_ITER = 300
CHECKPOINT = "checkpoint.pt"
FINAL = "model.pt"
LOG = "log.csv"
# a data loss (mean error² or |error| of images in [0, 1]) above this is divergence, not training
DIVERGED_LOSS = 1e3
RESUME = ("always", "auto")  # --resume: continue or refuse; continue when the checkpoint matches, else restart


class TrainingError(LipbenchError):
    """Training cannot start or continue."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (recorded in every checkpoint); each field's
    default, help and bounds are those of ``lipbench train``'s option of the same name."""

    model: str = option("dncnn", help="registered architecture (dncnn, certified) or your own as module:factory")
    model_kwargs: dict[str, Any] = option(
        factory=lambda: {"depth": 20, "width": 64},
        help="the model's keyword arguments: KEY=VALUE pairs (depth=17 width=32) or a JSON object",
    )
    label: str | None = option(None, help="the denoiser's name in the tables", none="the model's name")
    dataset: str = option("bsd400", help="training images (grey)", choices=tuple(DATASETS))
    max_images: int | None = option(None, minimum=1, help="use only the dataset's first N images", none="all")
    patch_size: int = option(40, minimum=1, help="side of the square training patches")
    batch_size: int = option(16, minimum=1, help="patches per step")
    steps: int = option(1000, minimum=1, help="optimisation steps")
    lr: float = option(1e-4, above=0, help="Adam's learning rate")
    lr_step: int | None = option(None, minimum=1, help="multiply the LR by --lr-gamma every N steps", none="constant")
    lr_gamma: float = option(0.1, above=0, maximum=1, help="LR factor of --lr-step")
    clip: float = option(1.0, minimum=0, help="clip the gradient's norm to this (0: off)")
    sigma: float = option(0.009, above=0, help="training noise std (images in [0, 1])")
    loss: str = option("l2", choices=("l1", "l2"), help="data term: mean absolute or mean squared error")
    lam: float = option(0.0, minimum=0, help="weight λ of the firm-nonexpansiveness penalty")
    penalty_points: tuple[str, ...] = option(
        ("tilde",), choices=POINT_KINDS, help="where the penalty is evaluated, sample by sample in turn: x̃ (the "
        "papers'), blurred patches, PnP gradient steps from them, adversarial points that climb ‖∂Q‖² "
        "(lipbench.restoration.penalty_points)"
    )  # fmt: skip
    eps: float = option(0.05, minimum=0, below=1, help="the penalty acts above ‖∂Q‖² = 1 − ε")
    power_iters: int = option(5, minimum=1, help="steps of the penalty's screen over the batch")
    power_tol: float = option(1e-3, minimum=0, help="relative tolerance of the screen")
    reduction: str = option("max", choices=("max", "mean"), help="the penalty over the batch")
    penalty_solver: str = option(
        "lanczos", choices=SOLVERS, help="solver of the screen (power with --refine 0: PnP-MMO's)"
    )
    refine: int = option(2, minimum=0, metavar="K", help="refine the K worst-ranked samples by Lanczos (0: off)")
    refine_iters: int = option(100, minimum=1, help="Lanczos steps of the refinement at most")
    refine_tol: float = option(1e-3, above=0, help="relative tolerance of the refined σ")
    probe_size: int = option(16, minimum=0, metavar="N", help="log the converged ‖∂Q‖² on N fixed patches (0: off)")
    probe_every: int | None = option(None, minimum=1, metavar="STEPS", help="steps between probes",
                                     none="at every checkpoint")  # fmt: skip
    seed: int = option(0, minimum=0, help="seed of every random draw (weights, patches, noise)")
    checkpoint_every: int = option(100, minimum=1, help="steps between checkpoints (and log writes)")
    init: str | None = option(
        None,
        metavar="CHECKPOINT",
        none="seeded initialisation",
        help="start from this model.pt's weights (fine-tune λ > 0 from the λ = 0 base)",
    )
    # execution options; defaults chosen by measurement (docs/performance.md), tf32 acts on CUDA only
    tf32: bool = option(True, help="CUDA: let float32 convolutions use TF32 in training")
    amp: str = option("none", choices=AMP, help="autocast the step to bfloat16")
    channels_last: bool = option(True, help="NHWC weights and activations")

    def __post_init__(self) -> None:
        check(self, "training configuration")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _model_config(config: TrainConfig) -> dict[str, Any]:
    return {"name": config.model, **config.model_kwargs}


def _data_loss(kind: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (out - target).abs().mean() if kind == "l1" else (out - target).square().mean()


@dataclass
class TrainState:
    """Everything a training run carries from step to step (and saves in its checkpoint)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    generator: torch.Generator
    step: int = 0
    log: list[dict[str, float]] = field(default_factory=list)
    particles: torch.Tensor | None = None  # the adversarial penalty points, carried from step to step


def initial_state(config: TrainConfig, device: torch.device) -> TrainState:
    """Model (seeded init, or ``config.init``'s weights), Adam, LR schedule and the run's generator."""
    with torch.random.fork_rng(devices=[]):  # initial weights from the seed, global RNG left as it was
        torch.manual_seed(derive_seed("init", config.seed))
        model = build(config.model, **config.model_kwargs)
    if config.init:
        payload = read_checkpoint(config.init)
        if dict(payload["model_config"]) != _model_config(config):
            raise TrainingError(
                f"--init {config.init} holds a {payload['model_config']} model, not {_model_config(config)}: "
                "use the same architecture arguments"
            )
        model.load_state_dict(payload["model"])
    to_channels_last(model.to(device), config.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step, config.lr_gamma) if config.lr_step else None
    return TrainState(model, optimizer, scheduler, torch.Generator().manual_seed(config.seed))


def _file_sha256(path: str | None) -> str | None:
    return sha256_file(Path(path)) if path else None


def run_identity(config: TrainConfig) -> dict[str, Any]:
    """What makes a checkpoint this run's: the training code (its code hash), torch's version and the
    ``--init`` weights' SHA-256 (their path is in the configuration, their content may have changed)."""
    return {
        "code_hash": code_hash_of("lipbench.steps.train"),
        "torch_version": str(torch.__version__),
        "init_sha256": _file_sha256(config.init),
    }


def _payload(state: TrainState, config: TrainConfig) -> dict[str, Any]:
    return {
        "model": state.model.state_dict(),
        "model_config": _model_config(config),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict() if state.scheduler else None,
        "generator": state.generator.get_state(),
        "step": state.step,
        "particles": state.particles,
        "train_config": config.to_dict(),
        "label": config.label or config.model,
        "lipbench_version": lipbench.__version__,
        **run_identity(config),
    }


def why_not_resume(payload: dict[str, Any], config: TrainConfig, identity: dict[str, Any]) -> str | None:
    """Why a checkpoint's ``payload`` cannot be continued as the run of ``config`` (None: it can)."""
    saved = dict(payload.get("train_config", {}))
    current = config.to_dict()
    changed = sorted(k for k in current if k not in ("steps", "label") and saved.get(k) != current[k])
    if changed:
        return f"it was trained with different {', '.join(changed)} (saved {[saved.get(k) for k in changed]})"
    if int(payload.get("step", 0)) > config.steps:
        return f"it is at step {payload['step']}, past --steps {config.steps}"
    what = {"code_hash": "training code", "torch_version": "torch version", "init_sha256": "--init weights"}
    for key, name in what.items():
        if payload.get(key) != identity[key]:
            return f"it was written with other {name} ({payload.get(key)}, now {identity[key]})"
    return None


def _resume_state(payload: dict[str, Any], config: TrainConfig, device: torch.device, out: Path) -> TrainState:
    state = initial_state(dataclasses.replace(config, init=None), device)
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    if state.scheduler is not None:
        state.scheduler.load_state_dict(payload["scheduler"])
    state.generator.set_state(payload["generator"])
    state.step = int(payload["step"])
    if payload.get("particles") is not None:
        state.particles = payload["particles"].to(device)
    if (out / LOG).is_file():
        state.log = pd.read_csv(out / LOG).query("step <= @state.step").to_dict("records")
    return state


def _write_log(rows: list[dict[str, float]], path: Path) -> None:
    with atomic_write(path, "w") as fh:
        pd.DataFrame(rows).to_csv(fh, index=False)


def _advance(state: TrainState, clean: torch.Tensor) -> torch.Tensor:
    """The adversarial penalty points one search step further (started from the first batch's clean
    patches of that kind), kept in ``state``."""
    if state.particles is None:
        state.particles = clean.detach().clone()
    state.particles = adversarial_step(state.model, state.particles, state.generator)
    return state.particles


def train_step(state: TrainState, config: TrainConfig, sampler: PatchSampler, device: torch.device) -> dict[str, Any]:
    """One optimisation step; returns the logged quantities, as 0-d device tensors where they come
    from the device (no host synchronisation: :func:`log_row` converts them when the log is written)."""
    start = time.perf_counter()
    x = layout(sampler.sample().to(device, non_blocking=True), config.channels_last)
    noise = torch.randn(x.shape, generator=state.generator, dtype=x.dtype).to(device, non_blocking=True)
    y = x + config.sigma * noise
    nan = torch.full((), math.nan, device=device)
    with tf32(config.tf32):
        with autocast(config.amp, device):
            denoised = state.model(y)
            loss = _data_loss(config.loss, denoised.float(), x)
            total, penalty_value, sigma2_max, refine_steps = loss, torch.zeros_like(nan), nan, 0
            if config.lam > 0:
                points = None  # x̃, drawn by fne_penalty: the papers' sampling, as it always drew it
                if tuple(config.penalty_points) != ("tilde",):
                    needs_tilde = "tilde" in config.penalty_points
                    tilde = interpolate(state.model, x, y, state.generator, denoised) if needs_tilde else None
                    points = penalty_points(
                        config.penalty_points, x, tilde, state.generator, lambda clean: _advance(state, clean)
                    )
                penalty = fne_penalty(
                    state.model, x, y, eps=config.eps, n_iter=config.power_iters, generator=state.generator,
                    reduction=config.reduction, tol=config.power_tol, denoised=denoised,
                    solver=config.penalty_solver, refine=config.refine, refine_iters=config.refine_iters,
                    refine_tol=config.refine_tol, points=points,
                )  # fmt: skip
                total = loss + config.lam * penalty.value.float()
                penalty_value, sigma2_max = penalty.value.detach().float(), penalty.sigma2.max().float()
                refine_steps = penalty.refine_steps
        state.optimizer.zero_grad(set_to_none=True)
        total.backward()
    if config.clip:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), config.clip)
    lr = state.optimizer.param_groups[0]["lr"]
    state.optimizer.step()
    if state.scheduler is not None:
        state.scheduler.step()
    state.step += 1
    return {
        "step": state.step, "loss": loss.detach(), "penalty": penalty_value, "sigma2_max": sigma2_max,
        "refine_steps": refine_steps, "lr": lr, "seconds": time.perf_counter() - start,
        "probe_sigma2_max": math.nan, "probe_sigma2_mean": math.nan,  # filled in where train() probes
    }  # fmt: skip


@dataclass(frozen=True)
class Probe:
    """Fixed training patches ``x``, their noise and τ: the points ``x̃ = τ J(x + σ n) + (1 − τ) x``
    at which :func:`probe` measures the converged ‖∂Q‖² (the penalty's points, at a fixed draw)."""

    x: torch.Tensor
    noise: torch.Tensor
    tau: torch.Tensor


def probe_set(config: TrainConfig, images: list[torch.Tensor]) -> Probe | None:
    """``config.probe_size`` patches drawn from a generator of their own (the run's draws do not move)."""
    if config.probe_size == 0:
        return None
    g = generator("probe", config.seed)
    x = PatchSampler(images, config.patch_size, config.probe_size, generator=g).sample()
    noise = torch.randn(x.shape, generator=g)
    return Probe(x, noise, torch.rand(x.shape[0], generator=g).view(-1, 1, 1, 1))


def probe(model: torch.nn.Module, points: Probe, sigma: float, device: torch.device) -> dict[str, float]:
    """Max and mean over the probe patches of ‖∂Q(x̃)‖², converged (Lanczos to 1e-4, full float32), in
    eval mode (batch-norm on its running statistics; the same function for a net without it)."""
    x, noise, tau = (t.to(device) for t in (points.x, points.noise, points.tau))
    training = model.training
    try:
        with torch.no_grad(), tf32(False):
            model.eval()
            x_tilde = tau * model(x + sigma * noise) + (1 - tau) * x
            res = spectral_norm(
                Reflected(model), x_tilde, max_iter=PROBE_MAX_ITER, tol=PROBE_TOL, solver="lanczos",
                generator=generator("probe-start", 0),
            )  # fmt: skip
    finally:
        model.train(training)
    sigma2 = res.sigma.double().square()
    return {"probe_sigma2_max": sigma2.max().item(), "probe_sigma2_mean": sigma2.mean().item()}


def log_row(row: dict[str, Any]) -> dict[str, float]:
    """A :func:`train_step` row with its device tensors as floats (one host synchronisation)."""
    return {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in row.items()}


def _check_finite(rows: list[dict[str, float]]) -> None:
    """Stop a run whose data loss has diverged (above :data:`DIVERGED_LOSS`) or whose loss is not finite."""
    bad = next((r for r in rows if not (abs(r["loss"]) <= DIVERGED_LOSS and math.isfinite(r["penalty"]))), None)
    if bad is not None:
        what = "non-finite" if not math.isfinite(bad["loss"] + bad["penalty"]) else "diverged"
        raise TrainingError(
            f"{what} loss {bad['loss']:.3g} (penalty {bad['penalty']:.3g}) at step {bad['step']}; model.pt is not "
            "written and the last good checkpoint is kept: lower --lr or --lam, or clip the gradient (--clip)"
        )


def _resumed(ckpt: Path, config: TrainConfig, resume: str, device: torch.device, out: Path) -> TrainState | None:
    """The state saved in ``ckpt`` when ``resume`` may continue it; None to start afresh (``auto``),
    saying why; a :class:`TrainingError` (``always``) when it may not."""
    try:
        payload = read_checkpoint(ckpt, map_location=device)
        reason = why_not_resume(payload, config, run_identity(config))
    except LipbenchError as exc:
        reason = f"it is unreadable ({exc})"
    if reason is None:
        state = _resume_state(payload, config, device, out)
        print(f"resumed from step {state.step} of {ckpt}", flush=True)
        return state
    if resume == "always":
        raise TrainingError(f"cannot resume from {ckpt}: {reason}; delete {out} or use the same settings")
    print(f"starting from step 0, not from {ckpt}: {reason}", flush=True)
    remove_outputs(out, [CHECKPOINT, LOG])
    return None


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool | str = False,
    device: str = "auto",
    root: str | None = None,
    stop_after: int | None = None,
    progress: bool | None = None,
) -> Path:
    """Train per ``config`` into ``out`` (``checkpoint.pt``, ``log.csv``, final ``model.pt``).

    ``resume`` continues from ``out/checkpoint.pt`` when it exists and was written by this run: the
    same configuration, training code, torch version and ``--init`` weights (:func:`why_not_resume`).
    When it was not, ``"always"`` (or True) refuses and ``"auto"`` starts afresh, saying why.
    ``stop_after`` ends the call after that many steps in total (for tests and time-sliced jobs)
    without writing ``model.pt``.
    """
    out = Path(out)
    dev = resolve_device(device)
    ckpt = out / CHECKPOINT
    resume = "always" if resume is True else resume or None
    if resume not in (None, *RESUME):
        raise TrainingError(f"resume must be one of {RESUME}, got {resume!r}")
    # a failed run leaves no earlier run's model.pt (nor, unless resumed, its checkpoint and log)
    remove_outputs(out, [FINAL] if resume else [FINAL, CHECKPOINT, LOG])
    state = _resumed(ckpt, config, resume, dev, out) if resume and ckpt.is_file() else None
    state = state or initial_state(config, dev)
    images = load_images(config.dataset, root)[: config.max_images]
    channels = config.model_kwargs.get("channels", 1)
    if channels != 1:
        raise TrainingError(f"only grey training is implemented (channels=1), got channels={channels}")
    sampler = PatchSampler(
        images, config.patch_size, config.batch_size, generator=state.generator, pin_memory=dev.type == "cuda"
    )
    points = probe_set(config, images)
    probe_every = config.probe_every or config.checkpoint_every
    last = min(config.steps, stop_after) if stop_after is not None else config.steps
    bar = tqdm(total=last, initial=state.step, desc=f"train λ={config.lam:g}", disable=progress is False)
    pending: list[dict[str, Any]] = []  # rows not yet synchronised with the host
    with bar:
        while state.step < last:
            pending.append(train_step(state, config, sampler, dev))
            bar.update(1)
            if points is not None and (state.step % probe_every == 0 or state.step == config.steps):
                pending[-1].update(probe(state.model, points, config.sigma, dev))
            if state.step % config.checkpoint_every == 0 or state.step == last:
                rows = [log_row(r) for r in pending]
                pending.clear()
                _check_finite(rows)  # before anything is saved: the last good checkpoint stays
                state.log.extend(rows)
                bar.set_postfix(loss=f"{rows[-1]['loss']:.3g}", sigma2=f"{rows[-1]['sigma2_max']:.3g}")
                save_checkpoint(_payload(state, config), ckpt)
                _write_log(state.log, out / LOG)
    if state.step < config.steps:
        return ckpt
    bad = nonfinite_entries(state.model.state_dict())
    if bad:
        raise TrainingError(f"the weights trained in {out} are not finite ({', '.join(bad[:3])}): lower --lr or --lam")
    final = _payload(state, config)
    del final["optimizer"], final["scheduler"], final["generator"]
    save_checkpoint(final, out / FINAL)
    return out / FINAL


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--resume",
        nargs="?",
        const="always",
        choices=RESUME,
        help="continue from OUT/checkpoint.pt if it exists; `--resume auto`: only if that run's configuration, "
        "code, torch and --init weights are these, else start afresh saying why (the workflow's choice)",
    )


def run(args: argparse.Namespace) -> int:
    config = from_args(TrainConfig, args)
    path = train(config, args.out, resume=args.resume, device=args.device, root=args.root, progress=not args.quiet)
    print(f"wrote {path}")
    return 0


COMMAND = Command(
    run,
    settings=(TrainConfig,),
    out="run folder: checkpoint.pt, log.csv, model.pt",
    device=True,
    root=True,
    quiet=True,
    arguments=_arguments,
)
