"""What a job would refuse, refused before any job runs (by the Snakefile and ``lipbench
check-config``), so that a configuration never fails hours into a run: long runs' λ outside the grid,
crops and patches larger than their images, TV tuned on test images, models that do not build,
pretrained weights that do not verify or fit."""

from __future__ import annotations

from typing import Any

import torch

from lipbench.data import DATASETS, image_ids
from lipbench.plumbing.errors import DataError, LipbenchError
from lipbench.workflow.rules import effective, lambda_values


def _sizes(run: dict[str, Any]) -> list[tuple[str, int | None, str]]:
    """``(config key, crop or patch side, dataset)`` of every job that crops its images (``run``: the
    effective configuration)."""
    pnp = run["pnp"]
    sizes = [
        ("train.patch_size", run["train"]["patch_size"], run["train"]["dataset"]),
        ("pnp.crop", pnp["crop"], pnp["dataset"]),
        ("lipschitz.crop", run["lipschitz"]["crop"], run["lipschitz"]["dataset"]),
        ("denoise.crop", run["denoise"]["crop"], run["denoise"]["dataset"]),
    ]
    if pnp.get("long_runs"):
        sizes.append(("pnp.long_runs.crop", pnp["long_runs"]["crop"], pnp["long_runs"]["dataset"]))
    if run.get("tv"):  # TV is tuned with pnp's protocol, its crop included, on its own images
        sizes.append(("pnp.crop", pnp["crop"], run["tv"]["dataset"]))
    return sizes


def check_sizes(run: dict[str, Any]) -> None:
    """Every crop and patch of the effective configuration ``run`` fits the smallest image of its dataset."""
    for key, side, dataset in _sizes(run):
        smallest = DATASETS[dataset].min_side
        if side is not None and side > smallest:
            raise LipbenchError(
                f"config {key}: {side} is larger than the smallest {dataset} image side ({smallest}): "
                f"choose at most {smallest}"
            )


def check_tv_images(run: dict[str, Any]) -> None:
    """TV's weight is chosen on images that are not test images (the tune-tv job refuses them)."""
    if not run.get("tv"):
        return
    tuning, test, count = run["tv"]["dataset"], run["pnp"]["dataset"], run["tv"]["images"]
    root = run["data"].get("root")
    try:
        shared = set(image_ids(tuning, root)[:count]) & set(image_ids(test, root))
    except DataError:  # no data yet: the names at least
        shared = {tuning} if tuning == test else set()
    if shared:
        raise LipbenchError(
            f"config tv.dataset: {tuning}'s first {count} images include test images of {test} "
            f"({', '.join(sorted(shared)[:3])}): tune TV on other images (e.g. bsd400)"
        )


def check_models_build(run: dict[str, Any]) -> None:
    """Every model the workflow trains builds: the λ grid's (``model``) and each ``denoisers``
    entry's, called once on the CPU (a user's factory raising, or returning something else than a
    torch module, is one error naming its key)."""
    from lipbench.models import build

    entries = {"model": run["model"]}
    entries |= {  # a pretrained entry is built, loaded and run by check_pretrained
        f"denoisers.{name}.model": entry["model"]
        for name, entry in run.get("denoisers", {}).items()
        if "weights" not in entry
    }
    for key, model in entries.items():
        kwargs = {k: v for k, v in model.items() if k != "name"}
        try:
            with torch.random.fork_rng(devices=[]):
                build(model["name"], **kwargs)
        except LipbenchError as exc:
            raise LipbenchError(f"config {key}: {exc}") from None


def check_pretrained(run: dict[str, Any]) -> None:
    """Every pretrained denoiser (a ``denoisers`` entry with ``weights``) loads: the file exists, has the
    SHA-256 given, fits its model and is finite, and the denoiser keeps the image's shape."""
    from lipbench.models.pretrained import pretrained_payload

    for name, entry in run.get("denoisers", {}).items():
        if "weights" not in entry:
            continue
        kwargs = {k: v for k, v in entry["model"].items() if k != "name"}
        weights = entry["weights"]
        try:
            with torch.random.fork_rng(devices=[]):
                pretrained_payload(entry["model"]["name"], kwargs, weights["path"], weights["sha256"], name)
        except LipbenchError as exc:
            raise LipbenchError(f"config denoisers.{name}.weights: {exc}") from None


def preflight(config: dict[str, Any]) -> None:
    """Everything above, on a validated ``config``; the first problem raises :class:`LipbenchError`."""
    lambda_values(config)  # a long run's λ outside the grid, two λ sharing a folder
    run = effective(config)
    check_sizes(run)
    check_tv_images(run)
    check_models_build(run)
    check_pretrained(run)
