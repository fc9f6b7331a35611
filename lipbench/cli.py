"""The ``lipbench`` command: one subcommand per pipeline step, each a thin layer over the library."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lipbench import __version__
from lipbench.errors import LipbenchError

COMPILE_CHOICES = ["none", "default", "reduce-overhead", "max-autotune", "eager"]

if TYPE_CHECKING:
    from lipbench.restore import PnPSettings


def _source_urls(pairs: Sequence[str]) -> dict[str, str]:
    urls = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or not name or not url:
            raise LipbenchError(f"--source-url {pair!r} is not NAME=URL (e.g. bsds500=https://mirror/BSR_bsds500.tgz)")
        urls[name] = url
    return urls


def cmd_fetch(args: argparse.Namespace) -> int:
    from lipbench.data import SOURCES, data_root, fetch

    if args.list:
        for s in SOURCES.values():
            print(f"{s.name:16} {'default ' if s.default else 'optional'} {len(s.files()):4d} files  {s.description}")
            print(f"{'':16} {s.url}")
        return 0
    root = data_root(args.root, must_exist=False)
    names = list(SOURCES) if args.all else (args.only or None)
    for report in fetch(root, names, _source_urls(args.source_url), progress=False if args.quiet else None):
        print(f"{report.name}: {len(report.installed)} installed, {len(report.present)} already present and verified")
    print(f"data root {root} is ready")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from lipbench.data import SOURCES, data_root, verify

    root = data_root(args.root)
    names = list(SOURCES) if args.all else (args.only or None)
    bad = 0
    for report in verify(root, names):
        status = "ok" if report.ok else "FAILED"
        counts = f"{len(report.present)} verified, {len(report.missing)} missing, {len(report.corrupt)} corrupt"
        print(f"{report.name}: {status} ({counts})")
        for rel in report.corrupt[:10]:
            print(f"  corrupt: {rel}")
        for rel in report.missing[:10]:
            print(f"  missing: {rel}")
        bad += not report.ok
    if bad:
        raise LipbenchError(f"{bad} source(s) failed verification under {root}: run `lipbench fetch --root {root}`")
    return 0


def cmd_degrade(args: argparse.Namespace) -> int:
    from lipbench.degrade import degrade_dataset

    table = degrade_dataset(
        args.dataset, args.kernels, args.sigma, Path(args.out), root=args.root,
        crop=args.crop, save_images=args.save_images,
    )  # fmt: skip
    summary = table.groupby("kernel", sort=False)[["psnr", "ssim"]].mean()
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {len(table)} rows to {Path(args.out) / 'observations.csv'}")
    return 0


def _json_object(text: str, flag: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LipbenchError(f"{flag} {text!r} is not JSON ({exc}): give an object, e.g. '{{\"width\": 8}}'") from exc
    if not isinstance(value, dict):
        raise LipbenchError(f"{flag} must be a JSON object of keyword arguments, got {text!r}")
    return value


def cmd_train(args: argparse.Namespace) -> int:
    from lipbench.training import TrainConfig, train

    if args.model_kwargs is not None:
        model_kwargs = _json_object(args.model_kwargs, "--model-kwargs")
    else:
        model_kwargs = {"depth": args.depth, "width": args.width, "activation": args.activation}
        model_kwargs["bias"] = not args.no_bias
    config = TrainConfig(
        model=args.model, model_kwargs=model_kwargs, label=args.label, dataset=args.dataset, max_images=args.max_images,
        patch_size=args.patch_size, batch_size=args.batch_size, steps=args.steps, lr=args.lr, lr_step=args.lr_step,
        lr_gamma=args.lr_gamma, clip=args.clip or None, sigma=args.sigma, loss=args.loss, lam=args.lam, eps=args.eps,
        power_iters=args.power_iters, power_tol=args.power_tol, reduction=args.reduction, seed=args.seed,
        penalty_solver=args.penalty_solver, refine=args.refine, refine_iters=args.refine_iters,
        refine_tol=args.refine_tol, probe_size=args.probe_size, probe_every=args.probe_every,
        checkpoint_every=args.checkpoint_every, init=args.init, tf32=args.tf32, amp=args.amp,
        channels_last=args.channels_last,
    )  # fmt: skip
    path = train(config, args.out, resume=args.resume, device=args.device, root=args.root, progress=not args.quiet)
    print(f"wrote {path}")
    return 0


def _kernel_sigmas(pairs: Sequence[str]) -> dict[str, float]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise LipbenchError(f"--kernel-sigma {pair!r} is not KERNEL=SIGMA (e.g. gaussian_1_6=0.008)")
    return out


def _protocol(args: argparse.Namespace, **settings: Any) -> PnPSettings:
    """The :class:`PnPSettings` of ``protocol_args``' options (and ``settings``)."""
    from lipbench.restore import PnPSettings

    return PnPSettings(
        dataset=args.dataset, kernels=tuple(args.kernels), sigma=args.sigma,
        kernel_sigma=_kernel_sigmas(args.kernel_sigma), gamma=args.gamma, gamma_unit=args.gamma_unit, x0=args.x0,
        iters=args.iters, group=args.group, shift_range=tuple(args.shift_range), seed=args.seed, crop=args.crop,
        clamp=args.clamp, record_every=args.record_every, max_batch=args.max_batch, tf32=args.tf32,
        compile=args.compile, channels_last=args.channels_last, **settings,
    )  # fmt: skip


def cmd_pnp(args: argparse.Namespace) -> int:
    from lipbench.restore import run_pnp, write_pnp_outputs

    settings = _protocol(
        args, checkpoint=args.checkpoint, equivariance=args.equivariance, lipschitz_every=args.lipschitz_every
    )
    result = run_pnp(settings, root=args.root, device=args.device)
    out = Path(args.out)
    write_pnp_outputs(result, settings, out, fmt=args.format, save_images=args.save_images)
    summary = result["final"].groupby("kernel", sort=False)[["psnr_input", "psnr", "psnr_best"]].mean()
    print(summary.to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"wrote {out / ('records.' + args.format)} ({len(result['records'])} rows) and {out / 'final.csv'}")
    return 0


def cmd_tune_tv(args: argparse.Namespace) -> int:
    from lipbench.baseline import chosen_weight, tune_tv, tuning_settings, write_tv
    from lipbench.data import image_ids

    settings = tuning_settings(_protocol(args, checkpoint=""), args.images)
    shared = set(image_ids(args.dataset, args.root)[: args.images]) & set(image_ids(args.test_dataset, args.root))
    if shared:
        raise LipbenchError(
            f"tuning images {sorted(shared)} of {args.dataset} are in the test set {args.test_dataset}: "
            "tune TV on other images (e.g. --dataset bsd400)"
        )
    table = tune_tv(settings, args.weights, prox_iters=args.prox_iters, refine=args.refine, root=args.root,
                    device=args.device)  # fmt: skip
    path = write_tv(table, settings, args.out, prox_iters=args.prox_iters, train_sigma=args.train_sigma)
    print(table[["stage", "prox_weight", "psnr", "chosen"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"TV prox weight {chosen_weight(table):.4g} chosen on {args.images} {args.dataset} images; wrote {path}")
    return 0


def cmd_lipschitz(args: argparse.Namespace) -> int:
    from lipbench.evaluate import LipschitzSettings, evaluate_lipschitz
    from lipbench.outputs import write_table

    settings = LipschitzSettings(
        checkpoint=args.checkpoint, dataset=args.dataset, crop=args.crop, sigma=args.sigma, points=tuple(args.points),
        pnp_final=args.pnp_final, max_iter=args.max_iter, tol=args.tol, seed=args.seed, tf32=args.tf32,
        solver=args.solver,
    )  # fmt: skip
    table = evaluate_lipschitz(settings, root=args.root, device=args.device)
    path = write_table(table, args.out)
    summary = table.groupby(["point", "operator"])[["lip_J", "lip2_Q", "iterations_J"]].agg(["mean", "max"])
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {path} ({len(table)} rows)")
    return 0


def cmd_denoise(args: argparse.Namespace) -> int:
    from lipbench.evaluate import denoising_psnr
    from lipbench.outputs import write_table

    table = denoising_psnr(
        args.checkpoint, args.dataset, sigma=args.sigma, crop=args.crop, root=args.root, device=args.device,
        allow_tf32=args.tf32,
    )  # fmt: skip
    path = write_table(table, args.out)
    print(
        f"{args.dataset}: PSNR {table.psnr.mean():.2f} dB (noisy input {table.psnr_noisy.mean():.2f} dB); wrote {path}"
    )
    return 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    from lipbench.aggregate import aggregate, provenance

    prov = provenance(args.config_name, args.config_hash, args.device)
    tables = aggregate(
        args.finals, args.records, args.lipschitz, Path(args.out), prov, denoise=args.denoise, tuning=args.tuning
    )
    for name, table in tables.items():
        print(f"{name}: {len(table)} rows")
    print(f"wrote {args.out}")
    return 0


def cmd_grid(args: argparse.Namespace) -> int:
    from lipbench.calibration import assess, grid_table, summary, write_grid
    from lipbench.outputs import read_tables

    lip = read_tables(args.lipschitz, ["lam", "point", "operator", "element", "lip2_Q"])
    table = grid_table(lip, args.no_effect, args.target)
    verdict = assess(table, args.no_effect, args.target)
    write_grid(table, verdict, Path(args.out), args.target)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(summary(table, verdict, args.target))
    return 1 if args.strict and not verdict.calibrated else 0


def cmd_figures(args: argparse.Namespace) -> int:
    from lipbench.figures import make_figures

    names = make_figures(
        [Path(d) for d in args.pnp], [Path(p) for p in args.lipschitz], Path(args.out), args.root,
        [Path(d) for d in args.long],
    )  # fmt: skip
    print(f"wrote {', '.join(names)} (PDF and PNG) to {args.out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from lipbench.compare import compare_files, parse_tolerances

    report, compared = compare_files(args.baseline, args.new, parse_tolerances(args.tolerance))
    if report.empty:
        print(f"no regression: {compared} values within tolerance")
        return 0
    print(report.to_string(index=False, max_rows=60))
    print(f"{len(report)} of {compared} values regressed (beyond tolerance or missing)", file=sys.stderr)
    return 1


def _tf32_arg(p: argparse.ArgumentParser, default: bool, what: str) -> None:
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=default,
                   help=f"CUDA: let float32 convolutions use TF32 for {what} (default: %(default)s)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lipbench", description="lipbench: Lipschitz-constrained denoisers for plug-and-play restoration."
    )
    parser.add_argument("--version", action="version", version=f"lipbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--root", help="data root (default: $LIPBENCH_DATA, else resources/data)")
        p.add_argument("--only", nargs="+", metavar="SOURCE", help="only these sources (see `fetch --list`)")
        p.add_argument("--all", action="store_true", help="every source, optional ones included")

    p = sub.add_parser("fetch", help="download the datasets and kernels, verifying every file by SHA-256")
    data_args(p)
    p.add_argument("--source-url", action="append", default=[], metavar="NAME=URL", help="mirror for one source")
    p.add_argument("--list", action="store_true", help="list the sources and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("verify", help="check installed data files against the shipped SHA-256 digests")
    data_args(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("degrade", help="blur + noise a dataset; write observations.csv (PSNR/SSIM) and PNGs")
    p.add_argument("--dataset", default="bsd10")
    p.add_argument("--kernels", nargs="+", default=["levin1"], metavar="KERNEL")
    p.add_argument("--sigma", type=float, default=0.01, help="noise standard deviation (images in [0, 1])")
    p.add_argument("--crop", type=int, help="centre crop size (default: full images)")
    p.add_argument("--save-images", type=int, default=2, metavar="N", help="write PNGs of the first N images")
    p.add_argument("--root", help="data root (default: $LIPBENCH_DATA, else resources/data)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_degrade)

    p = sub.add_parser("train", help="train one denoiser (one λ) with the firm-nonexpansiveness penalty")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, log.csv, model.pt")
    p.add_argument("--model", default="dncnn",
                   help="registered architecture (dncnn, certified) or your own as module:factory")  # fmt: skip
    p.add_argument("--model-kwargs", metavar="JSON",
                   help="the model's keyword arguments as a JSON object (replaces --depth, --width, ...)")  # fmt: skip
    p.add_argument("--label", help="the denoiser's name in the tables (default: the model's name)")
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--activation", default="leaky_relu", choices=["leaky_relu", "relu"])
    p.add_argument("--no-bias", action="store_true")
    p.add_argument("--dataset", default="bsd400", help="training images (grey)")
    p.add_argument("--max-images", type=int, help="use only the first N images")
    p.add_argument("--patch-size", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lr-step", type=int, help="multiply the LR by --lr-gamma every N steps")
    p.add_argument("--lr-gamma", type=float, default=0.1)
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping (0: off)")
    p.add_argument("--sigma", type=float, default=0.009, help="training noise std (images in [0, 1])")
    p.add_argument("--loss", default="l2", choices=["l1", "l2"])
    p.add_argument("--lam", type=float, default=0.0, help="weight λ of the FNE penalty")
    p.add_argument("--eps", type=float, default=0.05, help="penalty threshold 1 − ε")
    p.add_argument("--power-iters", type=int, default=5,
                   help="steps of the penalty's screen over the batch (default: %(default)s)")  # fmt: skip
    p.add_argument("--power-tol", type=float, default=1e-3, help="tolerance of the screen (default: %(default)s)")
    p.add_argument("--penalty-solver", default="lanczos", choices=["lanczos", "power"],
                   help="solver of the screen (default: %(default)s; power, --refine 0: PnP-MMO's)")  # fmt: skip
    p.add_argument("--refine", type=int, default=2, metavar="K",
                   help="refine the K worst-ranked samples by Lanczos (0: off; default: %(default)s)")  # fmt: skip
    p.add_argument("--refine-iters", type=int, default=100, help="Lanczos steps at most (default: %(default)s)")
    p.add_argument("--refine-tol", type=float, default=1e-3,
                   help="relative tolerance of the refined σ (default: %(default)s)")  # fmt: skip
    p.add_argument("--probe-size", type=int, default=16, metavar="N",
                   help="log the converged ‖∂Q‖² on N fixed patches (0: off; default: %(default)s)")  # fmt: skip
    p.add_argument("--probe-every", type=int, metavar="STEPS",
                   help="steps between probes (default: at every checkpoint)")  # fmt: skip
    p.add_argument("--reduction", default="max", choices=["max", "mean"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--init", help="start from this checkpoint's weights (fine-tune λ > 0 from the λ = 0 base)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    _tf32_arg(p, True, "training")
    p.add_argument("--amp", default="none", choices=["none", "bf16"], help="autocast the step to bfloat16")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="NHWC weights and activations (default: %(default)s)")  # fmt: skip
    p.add_argument("--root", help="data root (default: $LIPBENCH_DATA, else resources/data)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    def protocol_args(p: argparse.ArgumentParser, dataset: str) -> None:
        """The deblurring protocol `pnp` and `tune-tv` share."""
        p.add_argument("--dataset", default=dataset)
        p.add_argument("--kernels", nargs="+", default=["levin1"], metavar="KERNEL")
        p.add_argument("--sigma", type=float, default=0.01, help="measurement noise std")
        p.add_argument("--kernel-sigma", action="append", default=[], metavar="KERNEL=SIGMA",
                       help="noise for one kernel (the papers: gaussian_1_6=0.008)")  # fmt: skip
        p.add_argument("--gamma", type=float, default=1.99,
                       help="step size, unit: --gamma-unit (paper 1: 1.99 absolute; paper 2: 1 lipschitz)")  # fmt: skip
        p.add_argument("--gamma-unit", default="absolute", metavar="{absolute,lipschitz}",
                       help="absolute: γ = GAMMA; lipschitz: γ = GAMMA / ‖AᵀA‖, computed per kernel on the image grid "
                       "(default: %(default)s)")  # fmt: skip
        p.add_argument("--x0", default="y", choices=["y", "adjoint"])
        p.add_argument("--iters", type=int, default=300)
        p.add_argument("--group", default="d4", help="d4, rotations, flips, shifts, or TURNS+shifts")
        p.add_argument("--shift-range", type=int, nargs=2, default=[-64, 63], metavar=("LOW", "HIGH"))
        p.add_argument("--seed", type=int, default=0, help="seed of the random group draws and Lipschitz estimates")
        p.add_argument("--crop", type=int, help="centre crop size (quick CPU runs)")
        p.add_argument("--clamp", default="both", choices=["both", "output", "none"],
                       help="clip J's input and output (paper 1), the iterate only (paper 2), or nothing")  # fmt: skip
        p.add_argument("--record-every", type=int, default=1)
        p.add_argument("--max-batch", type=int, default=16, help="images × kernels per batch")
        p.add_argument("--device", default="auto")
        _tf32_arg(p, False, "the restorations")
        p.add_argument("--compile", default="none", choices=COMPILE_CHOICES,
                       help="torch.compile the denoiser (default: %(default)s)")  # fmt: skip
        p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False,
                       help="NHWC weights and activations (default: %(default)s)")  # fmt: skip
        p.add_argument("--root", help="data root (default: $LIPBENCH_DATA, else resources/data)")

    p = sub.add_parser("pnp", help="PnP-PGD deblurring of a dataset × kernels with one denoiser")
    p.add_argument("--checkpoint", required=True, help="a model.pt written by `lipbench train` or `tune-tv`")
    p.add_argument("--out", required=True, help="folder: records, final.csv, final.pt, images/, settings.json")
    protocol_args(p, "bsd10")
    p.add_argument("--equivariance", default="none", choices=["none", "random", "mean"])
    p.add_argument("--lipschitz-every", type=int, default=0, help="‖∂J‖ at J's input every N iterations (0: off)")
    p.add_argument("--format", default="csv", choices=["csv", "parquet"], help="format of the records table")
    p.add_argument("--save-images", type=int, default=2, metavar="N", help="PNGs of the first N images")
    p.set_defaults(func=cmd_pnp)

    p = sub.add_parser("tune-tv", help="the TV baseline: choose its weight on tuning images (not the test set)")
    p.add_argument("--out", required=True, help="folder: model.pt (the tuned TV denoiser), tuning.csv")
    protocol_args(p, "bsd400")
    p.add_argument("--images", type=int, default=4, help="tune on the dataset's first N images (default: 4)")
    p.add_argument("--test-dataset", default="bsd10", help="refuse tuning images that belong to it (default: bsd10)")
    p.add_argument("--weights", type=float, nargs="+", required=True, metavar="W",
                   help="prox weights w = γλ tried (a log grid; the best must lie inside it)")  # fmt: skip
    p.add_argument("--refine", type=int, default=4, help="weights tried between the best one's neighbours")
    p.add_argument("--prox-iters", type=int, default=100, help="FGP iterations per TV prox (default: 100)")
    p.add_argument("--train-sigma", type=float, default=0.009,
                   help="noise of its Lipschitz and denoising evaluations (default: 0.009)")  # fmt: skip
    p.set_defaults(func=cmd_tune_tv)

    def evaluation_args(p: argparse.ArgumentParser, dataset: str, sigma: str, what: str) -> None:
        """The arguments `lipschitz` and `denoise` share: a checkpoint evaluated on noisy test images."""
        p.add_argument("--checkpoint", required=True)
        p.add_argument("--out", required=True, help="output table (.csv or .parquet)")
        p.add_argument("--dataset", default=dataset)
        p.add_argument("--crop", type=int, help="centre crop size (quick CPU runs)")
        p.add_argument("--sigma", type=float, help=f"{sigma} (default: the training noise level)")
        p.add_argument("--device", default="auto")
        _tf32_arg(p, False, what)
        p.add_argument("--root", help="data root (default: $LIPBENCH_DATA, else resources/data)")

    p = sub.add_parser("lipschitz", help="‖∂J‖, ‖∂Q‖² per image for J, J at T_g x and the D4 mean J_G")
    evaluation_args(p, "bsd10", "noise of the noisy points", "the spectral norms")
    p.add_argument("--points", nargs="+", default=["noisy", "tilde"], choices=["noisy", "tilde", "pnp"])
    p.add_argument("--pnp-final", help="final.pt of `lipbench pnp` (for --points pnp)")
    p.add_argument("--max-iter", type=int, default=500)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--solver", default="lanczos", choices=["lanczos", "power"],
                   help="Lanczos on JᵀJ (default) or power iteration (PnP-MMO's test_jacobian.py)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_lipschitz)

    p = sub.add_parser("denoise", help="denoising PSNR of a checkpoint on a test set (BSD68) at its noise level")
    evaluation_args(p, "bsd68", "noise std", "the denoised images")
    p.set_defaults(func=cmd_denoise)

    p = sub.add_parser("aggregate", help="results table with provenance + Lipschitz, PSNR, convergence tables")
    p.add_argument("--finals", nargs="+", required=True, help="final.csv files of `lipbench pnp`")
    p.add_argument("--records", nargs="+", required=True, help="records files of `lipbench pnp`")
    p.add_argument("--lipschitz", nargs="+", required=True, help="tables of `lipbench lipschitz`")
    p.add_argument("--denoise", nargs="*", default=[], help="tables of `lipbench denoise`")
    p.add_argument("--tuning", nargs="*", default=[], help="tuning.csv of `lipbench tune-tv` (the TV baseline)")
    p.add_argument("--out", required=True, help="folder for the tables (CSV, Markdown, LaTeX) and results.csv")
    p.add_argument("--config-name", default="adhoc", help="recorded in the provenance columns")
    p.add_argument("--config-hash", default="", help="hash of the effective configuration (recorded)")
    p.add_argument("--device", default="cpu", help="device recorded in the provenance columns")
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser("grid", help="is the λ grid calibrated? max ‖∂Q‖² per λ from 'no effect' to <= 1")
    p.add_argument("--lipschitz", nargs="+", required=True, help="tables of `lipbench lipschitz`, λ = 0 included")
    p.add_argument("--out", required=True, help="folder for grid.csv, grid.md, grid.tex")
    p.add_argument(
        "--no-effect",
        type=float,
        default=0.05,
        help="a smaller reduction of max ‖∂Q‖² from λ = 0 is no effect (default 0.05)",
    )
    p.add_argument("--target", type=float, default=1.0, help="max ‖∂Q‖² the largest λ must reach")
    p.add_argument("--strict", action="store_true", help="exit 1 when the grid does not span both ends")
    p.set_defaults(func=cmd_grid)

    p = sub.add_parser("figures", help="the papers' figures (PDF + PNG) from PnP folders and Lipschitz tables")
    p.add_argument("--pnp", nargs="+", required=True, help="output folders of `lipbench pnp`")
    p.add_argument("--lipschitz", nargs="+", required=True, help="tables of `lipbench lipschitz`")
    p.add_argument("--long", nargs="*", default=[], help="folders of long PnP runs (PSNR-vs-iteration figure)")
    p.add_argument("--out", required=True)
    p.add_argument("--root", help="data root (default: $LIPBENCH_DATA, else resources/data)")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("compare", help="metric regression: compare two results.csv tables; exit 1 on a regression")
    p.add_argument("baseline", help="reference results.csv (e.g. tests/golden/ci/results.csv)")
    p.add_argument("new", help="results.csv to check")
    p.add_argument("--tolerance", action="append", default=[], metavar="METRIC=VALUE",
                   help="override a tolerance: psnr=0.2 (absolute) or lip_J=2%% (relative)")  # fmt: skip
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one subcommand; a :class:`LipbenchError` becomes one line on stderr, exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LipbenchError as exc:
        print(f"lipbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the checks above did not name (permissions, a full disk)
        print(f"lipbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lipbench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
