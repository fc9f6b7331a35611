"""The ``lipbench`` command: one subcommand per pipeline step, each a thin layer over the library."""

from __future__ import annotations

import argparse
import json
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lipbench import __version__
from lipbench.errors import LipbenchError
from lipbench.options import add_options, from_args

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
    config = from_args(TrainConfig, args, model_kwargs=model_kwargs)
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
    """The :class:`PnPSettings` of the parsed options (and ``settings``)."""
    from lipbench.restore import PnPSettings

    return from_args(PnPSettings, args, kernel_sigma=_kernel_sigmas(args.kernel_sigma), **settings)


def cmd_pnp(args: argparse.Namespace) -> int:
    from lipbench.outputs import remove_outputs
    from lipbench.restore import PNP_OUTPUTS, run_pnp, write_pnp_outputs

    settings = _protocol(args)
    remove_outputs(args.out, PNP_OUTPUTS)  # a failed run leaves no earlier run's outputs behind
    result = run_pnp(settings, root=args.root, device=args.device)
    out = Path(args.out)
    write_pnp_outputs(result, settings, out, fmt=args.format, save_images=args.save_images)
    summary = result["final"].groupby("kernel", sort=False)[["psnr_input", "psnr", "psnr_best"]].mean()
    print(summary.to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"wrote {out / ('records.' + args.format)} ({len(result['records'])} rows) and {out / 'final.csv'}")
    return 0


def cmd_tune_tv(args: argparse.Namespace) -> int:
    from lipbench.baseline import TuningSettings, chosen_weight, tune_tv, tuning_settings, write_tv
    from lipbench.data import image_ids
    from lipbench.outputs import remove_outputs

    tuning = from_args(TuningSettings, args)
    remove_outputs(args.out, ("model.pt", "tuning.csv"))
    settings = tuning_settings(_protocol(args, checkpoint=""), tuning.images)
    shared = set(image_ids(args.dataset, args.root)[: tuning.images]) & set(image_ids(tuning.test_dataset, args.root))
    if shared:
        raise LipbenchError(
            f"tuning images {sorted(shared)} of {args.dataset} are in the test set {tuning.test_dataset}: "
            "tune TV on other images (e.g. --dataset bsd400)"
        )
    table = tune_tv(settings, tuning.weights, prox_iters=tuning.prox_iters, refine=tuning.refine, root=args.root,
                    device=args.device)  # fmt: skip
    path = write_tv(table, settings, args.out, prox_iters=tuning.prox_iters, train_sigma=tuning.train_sigma)
    print(table[["stage", "prox_weight", "psnr", "chosen"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"TV prox weight {chosen_weight(table):.4g} chosen on {tuning.images} {args.dataset} images; wrote {path}")
    return 0


def cmd_lipschitz(args: argparse.Namespace) -> int:
    from lipbench.evaluate import LipschitzSettings, evaluate_lipschitz
    from lipbench.outputs import write_table

    table = evaluate_lipschitz(from_args(LipschitzSettings, args), root=args.root, device=args.device)
    path = write_table(table, args.out)
    summary = table.groupby(["point", "operator"])[["lip_J", "lip2_Q", "iterations_J"]].agg(["mean", "max"])
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {path} ({len(table)} rows)")
    return 0


def cmd_denoise(args: argparse.Namespace) -> int:
    from lipbench.evaluate import DenoiseSettings, denoising_psnr
    from lipbench.outputs import write_table

    settings = from_args(DenoiseSettings, args)
    table = denoising_psnr(settings, root=args.root, device=args.device)
    path = write_table(table, args.out)
    print(
        f"{settings.dataset}: PSNR {table.psnr.mean():.2f} dB (noisy input {table.psnr_noisy.mean():.2f} dB); "
        f"wrote {path}"
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

    if not 0 < args.no_effect <= 1:
        raise LipbenchError(f"--no-effect must be a relative reduction in (0, 1], got {args.no_effect}")
    if not 0 < args.target < float("inf"):
        raise LipbenchError(f"--target must be a finite number > 0, got {args.target}")
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


def cmd_check_config(args: argparse.Namespace) -> int:
    from lipbench.configfile import check_config
    from lipbench.workflow import denoisers

    for path in args.configs:
        config = check_config(path)
        print(f"{path}: ok (results/{config['name']}, {len(denoisers(config))} denoisers)")
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


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``lipbench train: error: argument --loss: invalid choice ...``."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


ROOT_HELP = "data root (default: $LIPBENCH_DATA, else resources/data)"
DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N (default: %(default)s)"


def _fetch(p: argparse.ArgumentParser) -> None:
    _sources(p)
    p.add_argument(
        "--source-url",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="download one source from this URL instead (a mirror, or file:///path offline)",
    )
    p.add_argument("--list", action="store_true", help="list the sources and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", help=ROOT_HELP)
    p.add_argument("--only", nargs="+", metavar="SOURCE", help="only these sources (default: the default ones)")
    p.add_argument("--all", action="store_true", help="every source, optional ones included")


def _degrade(p: argparse.ArgumentParser) -> None:
    from lipbench.restore import PnPSettings

    add_options(p, PnPSettings, only=("dataset", "kernels", "sigma", "crop"))
    p.add_argument("--save-images", type=int, default=2, metavar="N", help="PNGs of the first N images (default: 2)")
    p.add_argument("--root", help=ROOT_HELP)
    p.add_argument("--out", required=True, help="output folder")


def _train(p: argparse.ArgumentParser) -> None:
    from lipbench.options import default_of
    from lipbench.training import TrainConfig

    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, log.csv, model.pt")
    add_options(p, TrainConfig)
    kwargs = default_of(TrainConfig, "model_kwargs")
    p.add_argument(
        "--model-kwargs",
        metavar="JSON",
        help="the model's keyword arguments as a JSON object (replaces --depth, --width, ...)",
    )
    p.add_argument("--depth", type=int, default=kwargs["depth"], help="DnCNN layers (default: %(default)s)")
    p.add_argument("--width", type=int, default=kwargs["width"], help="DnCNN channels (default: %(default)s)")
    p.add_argument(
        "--activation",
        default="leaky_relu",
        choices=["leaky_relu", "relu"],
        help="DnCNN activation (default: %(default)s)",
    )
    p.add_argument("--no-bias", action="store_true", help="DnCNN without biases")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--root", help=ROOT_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _protocol_args(p: argparse.ArgumentParser, **defaults: Any) -> None:
    """The deblurring protocol `pnp` and `tune-tv` share."""
    from lipbench.restore import PnPSettings

    add_options(p, PnPSettings, skip=("checkpoint", "equivariance", "lipschitz_every", "max_images"), defaults=defaults)
    p.add_argument(
        "--kernel-sigma",
        action="append",
        default=[],
        metavar="KERNEL=SIGMA",
        help="noise for one kernel (the papers: gaussian_1_6=0.008; default: --sigma for every kernel)",
    )
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--root", help=ROOT_HELP)


def _pnp(p: argparse.ArgumentParser) -> None:
    from lipbench.restore import PnPSettings

    p.add_argument("--out", required=True, help="folder: records, final.csv, final.pt, images/, settings.json")
    add_options(p, PnPSettings, only=("checkpoint", "equivariance", "lipschitz_every", "max_images"))
    _protocol_args(p)
    p.add_argument(
        "--format", default="csv", choices=["csv", "parquet"], help="format of the records table (default: %(default)s)"
    )
    p.add_argument("--save-images", type=int, default=2, metavar="N", help="PNGs of the first N images (default: 2)")


def _tune_tv(p: argparse.ArgumentParser) -> None:
    from lipbench.baseline import TuningSettings

    p.add_argument("--out", required=True, help="folder: model.pt (the tuned TV denoiser), tuning.csv")
    _protocol_args(p, dataset="bsd400")
    add_options(p, TuningSettings)


def _evaluation(p: argparse.ArgumentParser, cls: type) -> None:
    """A checkpoint evaluated on noisy test images (`lipschitz`, `denoise`)."""
    p.add_argument("--out", required=True, help="output table (.csv or .parquet)")
    add_options(p, cls)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--root", help=ROOT_HELP)


def _lipschitz(p: argparse.ArgumentParser) -> None:
    from lipbench.evaluate import LipschitzSettings

    _evaluation(p, LipschitzSettings)


def _denoise(p: argparse.ArgumentParser) -> None:
    from lipbench.evaluate import DenoiseSettings

    _evaluation(p, DenoiseSettings)


def _aggregate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--finals", nargs="+", required=True, help="final.csv files of `lipbench pnp`")
    p.add_argument("--records", nargs="+", required=True, help="records files of `lipbench pnp`")
    p.add_argument("--lipschitz", nargs="+", required=True, help="tables of `lipbench lipschitz`")
    p.add_argument("--denoise", nargs="*", default=[], help="tables of `lipbench denoise` (default: none)")
    p.add_argument("--tuning", nargs="*", default=[], help="tuning.csv of `lipbench tune-tv` (default: none)")
    p.add_argument("--out", required=True, help="folder for the tables (CSV, Markdown, LaTeX) and results.csv")
    p.add_argument("--config-name", default="adhoc", help="recorded in the provenance columns (default: %(default)s)")
    p.add_argument("--config-hash", default="", help="hash of the effective configuration (recorded; default: none)")
    p.add_argument("--device", default="cpu", help="device recorded in the provenance columns (default: %(default)s)")


def _grid(p: argparse.ArgumentParser) -> None:
    from lipbench.calibration import NO_EFFECT_RTOL, TARGET

    p.add_argument("--lipschitz", nargs="+", required=True, help="tables of `lipbench lipschitz`, λ = 0 included")
    p.add_argument("--out", required=True, help="folder for grid.csv, grid.md, grid.tex")
    p.add_argument(
        "--no-effect",
        type=float,
        default=NO_EFFECT_RTOL,
        help="a smaller relative reduction of max ‖∂Q‖² from λ = 0 is no effect (default: %(default)s)",
    )
    p.add_argument(
        "--target", type=float, default=TARGET, help="max ‖∂Q‖² the largest λ must reach (default: %(default)s)"
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when the grid does not span both ends")


def _figures(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pnp", nargs="+", required=True, help="output folders of `lipbench pnp`")
    p.add_argument("--lipschitz", nargs="+", required=True, help="tables of `lipbench lipschitz`")
    p.add_argument("--long", nargs="*", default=[], help="folders of long PnP runs (PSNR-vs-iteration figure)")
    p.add_argument("--out", required=True, help="folder for the PDFs and PNGs")
    p.add_argument("--root", help=ROOT_HELP)


def _check_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("configs", nargs="+", metavar="CONFIG", help="YAML files given to snakemake --configfile")


def _compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("baseline", help="reference results.csv (e.g. tests/golden/ci/results.csv)")
    p.add_argument("new", help="results.csv to check")
    p.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="override a tolerance: psnr=0.2 (absolute) or lip_J=2%% (relative)",
    )


# name: (summary, arguments, function)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "fetch": ("download the datasets and kernels, verifying every file by SHA-256", _fetch, cmd_fetch),
    "verify": ("check installed data files against the shipped SHA-256 digests", _sources, cmd_verify),
    "degrade": ("blur + noise a dataset; write observations.csv (PSNR/SSIM) and PNGs", _degrade, cmd_degrade),
    "train": ("train one denoiser (one λ) with the firm-nonexpansiveness penalty", _train, cmd_train),
    "pnp": ("PnP-PGD deblurring of a dataset × kernels with one denoiser", _pnp, cmd_pnp),
    "tune-tv": ("the TV baseline: choose its weight on tuning images (not the test set)", _tune_tv, cmd_tune_tv),
    "lipschitz": ("‖∂J‖, ‖∂Q‖² per image for J, J at T_g x and the D4 mean J_G", _lipschitz, cmd_lipschitz),
    "denoise": ("denoising PSNR of a checkpoint on a test set (BSD68) at its noise level", _denoise, cmd_denoise),
    "aggregate": ("results table with provenance + Lipschitz, PSNR, convergence tables", _aggregate, cmd_aggregate),
    "grid": ("is the λ grid calibrated? max ‖∂Q‖² per λ from 'no effect' to <= 1", _grid, cmd_grid),
    "figures": ("the papers' figures (PDF + PNG) from PnP folders and Lipschitz tables", _figures, cmd_figures),
    "check-config": (
        "check workflow configs as the Snakefile does, naming the file, line or key",
        _check_config,
        cmd_check_config,
    ),
    "compare": ("metric regression: compare two results.csv tables; exit 1 on a regression", _compare, cmd_compare),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``lipbench`` parser; ``command``: only that subcommand's options are built (the others
    import nothing), for a fast start. Options of the settings dataclasses come from their fields."""
    description = "lipbench: Lipschitz-constrained denoisers for plug-and-play restoration."
    parser = Parser(prog="lipbench", description=description)
    parser.add_argument("--version", action="version", version=f"lipbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, arguments, func) in COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=summary)
        if command in (None, name):
            arguments(p)
        p.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one subcommand; a :class:`LipbenchError` becomes one line on stderr, exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
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
