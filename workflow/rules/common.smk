# Shared definitions: output root, denoisers, PnP runs, code hashes (lipbench/workflow/).
import re
from pathlib import Path

from lipbench.steps.pnp import METHODS
from lipbench.workflow.codehash import command_code_hash
from lipbench.workflow.rules import (
    config_hash,
    denoisers,
    lambda_values,
    long_runs,
    pnp_runs,
    pretrained,
    root_arg,
    shared_args,
)

OUT = f"runs/{config['name']}"  # git-ignored; what is published lives in results/<name>/ (docs/workflow.md)
LAMBDA_VALUES = lambda_values(config)  # folder label (lam<label>) -> the exact λ of the grid
LAMBDAS = list(LAMBDA_VALUES)
DENOISERS = denoisers(config)  # lam<λ> for the λ grid, the `denoisers` section's names, tv
PRETRAINED = pretrained(config)  # `denoisers` entries with weights: no training
EXTRA = [name for name in config["denoisers"] if name not in PRETRAINED]
PNP_RUNS = pnp_runs(config)  # (denoiser, method)
FIGURES = ["convergence", "psnr_iterations", "lipschitz", "tradeoff", "panel"]
CONFIG_HASH = config_hash(config)
LONG_RUNS = long_runs(config)
TABLES = [
    "lipschitz", "bounds", "psnr", "convergence", "denoising",
    *(["tv_tuning"] if config.get("tv") else []), *(["stability"] if LONG_RUNS else []),
]
SHARED = shared_args(config)  # --device, --root
ENV = "../../environment.yml"


def alternatives(names):
    """A wildcard constraint matching exactly ``names`` (none: nothing)."""
    return "|".join(map(re.escape, names)) or "(?!)"


def print_reference(path):
    """The end of a run: does it reproduce the published reference? (the reference rule's verdict)"""
    if Path(path).is_file():
        print(Path(path).read_text().split("\n\n")[0])


wildcard_constraints:
    lam=r"[0-9.e+-]+",
    denoiser=alternatives(DENOISERS),
    method="|".join(METHODS),
