# Shared definitions: output root, λ labels, code hashes (helpers live in lipbench/workflow.py).
from lipbench.workflow import COMMON_CODE, EQUIVARIANCE, code_hash, config_hash, lam_label, long_runs

OUT = f"results/{config['name']}"
LAMBDAS = [lam_label(lam) for lam in config["train"]["lambdas"]]
METHODS = config["pnp"]["methods"]
TABLES = ["lipschitz", "psnr", "convergence", "denoising"]
FIGURES = ["convergence", "psnr_iterations", "lipschitz", "tradeoff", "panel"]
CONFIG_HASH = config_hash(config)
LONG_RUNS = long_runs(config)
ENV = "../../environment.yml"


wildcard_constraints:
    lam=r"[0-9.e+-]+",
    method="|".join(EQUIVARIANCE),
