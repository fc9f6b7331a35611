"""End to end: the wall time of ``snakemake --cores 2`` for the ci and quick configurations from an
empty results folder (goal: quick ≤ 15 min on 2 CPU cores), and of the ci configuration with λ grids
of 2, 3 and 4 values (how the workflow grows with the grid; fitted on the performance page).

The quick run takes about 10 minutes, so it is timed only when ``LIPBENCH_BENCH_QUICK=1``; otherwise,
and in smoke runs (``--benchmark-disable``), each configuration is planned (``snakemake -n``) so the
benchmark cannot rot. The timed runs work in a temporary folder: ``runs/`` is left alone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"ci": "ci.yaml", "quick": "config.yaml"}  # config name → file (config.yaml is the quick default)
GOALS_S = {"quick": 15 * 60}
GRIDS = {2: [0.0, 1e-2], 3: [0.0, 1e-3, 1e-2], 4: [0.0, 1e-3, 1e-2, 1e-1]}


def _snakemake(configfile: Path, workdir: Path, *extra: str) -> str:
    env = dict(os.environ)
    env["LIPBENCH_DATA"] = str(Path(env.get("LIPBENCH_DATA") or REPO / "resources" / "data").resolve())
    snakemake = Path(sys.executable).with_name("snakemake")
    cmd = [str(snakemake), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--cores", "2", *extra]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.mark.parametrize("config", ["ci", "quick"])
def test_end_to_end(benchmark, config, tmp_path, request):
    benchmark.group = "end-to-end[snakemake --cores 2]"
    timed = not request.config.getoption("benchmark_disable") and (
        config == "ci" or os.environ.get("LIPBENCH_BENCH_QUICK") == "1"
    )
    if not timed:  # plan only: the DAG builds and every job is there
        out = benchmark.pedantic(_snakemake, (REPO / "config" / CONFIGS[config], tmp_path, "-n"), rounds=1,
                                 iterations=1)  # fmt: skip
        jobs = re.search(r"^total\s+(\d+)", out, re.MULTILINE)
        assert jobs and int(jobs.group(1)) > 5, out[-2000:]
        return
    if config in GOALS_S:
        benchmark.extra_info["goal_s"] = GOALS_S[config]
    out = benchmark.pedantic(_snakemake, (REPO / "config" / CONFIGS[config], tmp_path, "--quiet"), rounds=1,
                             iterations=1)  # fmt: skip
    tables = tmp_path / "runs" / config / "tables"
    assert (tables / "results.csv").is_file(), out[-2000:]
    benchmark.extra_info["results"] = str(tmp_path / "runs" / config)
    keep = os.environ.get("LIPBENCH_BENCH_KEEP")  # copy the run's results out (to refresh results/quick)
    if keep:
        import shutil

        shutil.copytree(tmp_path / "runs" / config, Path(keep) / config, dirs_exist_ok=True)


def _planned(out: str) -> dict[str, int]:
    """Job counts per rule from ``snakemake -n``'s summary table."""
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.parametrize("size", sorted(GRIDS))
def test_lambda_grid(benchmark, size, tmp_path, request):
    """The ci configuration with a λ grid of ``size`` values: one fine-tune per λ > 0, one Lipschitz,
    denoising and PnP job per λ (and method); timed unless in a smoke run."""
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    config["train"]["lambdas"] = GRIDS[size]
    config.pop("denoisers", None), config.pop("tv", None)  # the λ grid's own scaling, without the baselines
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    benchmark.group = "scaling[ci workflow vs λ values]"
    benchmark.extra_info.update(stage="ci workflow, snakemake --cores 2", axis="λ values", x=size)
    planned = _planned(_snakemake(path, tmp_path / "plan", "-n"))
    methods = len(config["pnp"]["methods"])
    assert planned["finetune"] == size - 1 and planned["lipschitz"] == planned["denoise"] == size
    assert planned["pnp"] == size * methods and planned["train_base"] == planned["aggregate"] == 1
    if request.config.getoption("benchmark_disable"):
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
        return
    benchmark.pedantic(_snakemake, (path, tmp_path / "run", "--quiet"), rounds=1, iterations=1)
    assert (tmp_path / "run" / "runs" / "ci" / "tables" / "results.csv").is_file()
