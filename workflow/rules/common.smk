# Shared definitions: output root, denoisers, PnP runs, code hashes (helpers in lipbench/workflow.py).
import re

from lipbench.configfile import check_kernels
from lipbench.workflow import (
    EQUIVARIANCE,
    check_models,
    command_code_hash,
    config_hash,
    denoisers,
    lambda_values,
    long_runs,
    pnp_runs,
)

check_models(config)
check_kernels(config)  # an unknown kernel stops the run before any job (not in the pnp rule, after training)
OUT = f"results/{config['name']}"
LAMBDA_VALUES = lambda_values(config)  # folder label (lam<label>) -> the exact λ of the grid
LAMBDAS = list(LAMBDA_VALUES)
DENOISERS = denoisers(config)  # lam<λ> for the λ grid, the `denoisers` section's names, tv
EXTRA = list(config["denoisers"])
PNP_RUNS = pnp_runs(config)  # (denoiser, method)
TABLES = ["lipschitz", "psnr", "convergence", "denoising", *(["tv_tuning"] if config.get("tv") else [])]
FIGURES = ["convergence", "psnr_iterations", "lipschitz", "tradeoff", "panel"]
CONFIG_HASH = config_hash(config)
LONG_RUNS = long_runs(config)
ENV = "../../environment.yml"


def alternatives(names):
    """A wildcard constraint matching exactly ``names`` (none: nothing)."""
    return "|".join(map(re.escape, names)) or "(?!)"


wildcard_constraints:
    lam=r"[0-9.e+-]+",
    denoiser=alternatives(DENOISERS),
    method="|".join(EQUIVARIANCE),
