# Shared definitions: output root, denoisers, PnP runs, code hashes (helpers in lipbench/workflow.py).
import re

from lipbench.workflow import (
    COMMON_CODE,
    EQUIVARIANCE,
    check_models,
    code_hash,
    config_hash,
    denoisers,
    lam_label,
    long_runs,
    pnp_runs,
)

check_models(config)
OUT = f"results/{config['name']}"
LAMBDAS = [lam_label(lam) for lam in config["train"]["lambdas"]]
DENOISERS = denoisers(config)  # lam<λ> for the λ grid, the `denoisers` section's names, tv
EXTRA = list(config.get("denoisers", {}))
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
