"""The Snakemake workflow: config validation, the ci run end to end, and code-driven reruns."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lipbench.figures import FIGURES
from lipbench.workflow import LONG_RUN_PROTOCOL, TABLE_PROTOCOL, code_hash, finetune_args, lam_label, pnp_args

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2"]


def _workdir(tmp_path: Path, config: dict | None = None) -> Path:
    (tmp_path / "config").mkdir(parents=True)
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "config")
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    ci = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    (tmp_path / "config" / "ci.yaml").write_text(yaml.safe_dump(config or ci))
    return tmp_path


def _snakemake(workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(workdir / "config" / "ci.yaml"), *args]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # the `lipbench` script
    return subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "PATH": path, **(env or {})}, cwd=workdir
    )


def _ci() -> dict:
    return yaml.safe_load((REPO / "config" / "ci.yaml").read_text())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["train"].update(lamda=[0.1]), "'lamda' was unexpected"),
        (lambda c: c["train"].update(lambdas=[0.0, -1.0]), "-1.0 is less than the minimum of 0"),
        (lambda c: c["train"].update(lambdas=[0.01]), "lambdas"),
        (lambda c: c["pnp"].update(methods=["fancy"]), "'fancy' is not one of"),
        (lambda c: c["pnp"]["long_runs"].update(gamma_unit="relative"), "'relative' is not one of"),
        (lambda c: c.update(device="tpu"), "'tpu' does not match"),
        (lambda c: c.update(denoisers={"lam1": {"model": {"name": "certified"}}}), "'lam1' does not match"),
        (lambda c: c["denoisers"]["certified"]["model"].update(name="a b"), "'a b' does not match"),
        (lambda c: c["tv"].update(weights=[1e-3, -1.0, 1e-2]), "-1.0 is less than or equal to the minimum of 0"),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, edit, message):
    config = _ci()
    edit(config)
    workdir = _workdir(tmp_path, config)
    proc = _snakemake(workdir, "-n")
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (workdir / "results").exists()


@pytest.mark.workflow
def test_ci_config_runs_end_to_end_and_reruns_only_what_code_changes_touch(tmp_path):
    workdir = _workdir(tmp_path / "run")
    proc = _snakemake(workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tables = workdir / "results" / "ci" / "tables"
    for name in ("lipschitz", "psnr", "convergence", "denoising", "grid", "tv_tuning"):
        assert all((tables / f"{name}.{ext}").is_file() for ext in ("csv", "md", "tex"))
    lip = pd.read_csv(tables / "lipschitz.csv")
    plain = lip[(lip.operator == "J") & (lip.point == "noisy")]
    worst = plain[plain.denoiser == "dncnn"].set_index("lam").lip2_Q_max
    assert worst.is_monotonic_decreasing and worst.iloc[-1] < worst.iloc[0]
    # the talk's comparisons are rows of every table: certified (‖∂Q‖ ≤ 1 by construction) and TV
    # (its prox truncated at 10 FGP iterations in ci is not firmly nonexpansive: measured, not asserted)
    assert plain.set_index("denoiser").loc["certified", "lip2_Q_max"] <= 1 + 1e-4
    for name in ("psnr", "convergence", "denoising", "lipschitz"):
        assert {"dncnn", "certified", "tv"} <= set(pd.read_csv(tables / f"{name}.csv").denoiser)
    results = pd.read_csv(tables / "results.csv")
    assert {"git_commit", "lipbench_version", "torch_version", "device", "config_hash"} <= set(results.columns)
    figures = workdir / "results" / "ci" / "figures"
    assert all((figures / f"{f}.{ext}").stat().st_size > 1000 for f in FIGURES for ext in ("pdf", "png"))
    # the metrics match the golden table (lipbench compare exits 0), and the report builds offline
    golden = REPO / "tests" / "golden" / "ci" / "results.csv"
    compared = subprocess.run(
        [sys.executable, "-m", "lipbench.cli", "compare", str(golden), str(tables / "results.csv")]
    )
    assert compared.returncode == 0
    report = _snakemake(workdir, "--report", str(workdir / "report.html"))
    assert report.returncode == 0 and (workdir / "report.html").stat().st_size > 100_000
    assert "Nothing to be done" in _snakemake(workdir).stdout + _snakemake(workdir).stderr

    # an identical copy of the code plans nothing; editing the PnP module reruns PnP and the
    # aggregation, not training or the Lipschitz estimates
    code = tmp_path / "code"
    shutil.copytree(REPO / "lipbench", code, ignore=shutil.ignore_patterns("__pycache__"))
    same = _snakemake(workdir, "-n", "--quiet", "rules", env={"LIPBENCH_CODE_ROOT": str(code)})
    assert same.returncode == 0 and _planned(same.stdout + same.stderr) == {}
    with open(code / "pnp.py", "a") as fh:
        fh.write("\n# an edit\n")
    plan = _snakemake(workdir, "-n", "--quiet", "rules", env={"LIPBENCH_CODE_ROOT": str(code)})
    assert plan.returncode == 0, plan.stderr
    # TV's weight is chosen by PnP runs, so its tuning and its evaluations rerun too
    expected = {"pnp": 7, "pnp_long": 2, "tune_tv": 1, "lipschitz": 1, "denoise": 1, "aggregate": 1, "figures": 1}
    assert _planned(plan.stdout + plan.stderr) == {**expected, "all": 1}


def _planned(text: str) -> dict[str, int]:
    """The job counts of Snakemake's "Job stats" table."""
    counts = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


def test_slurm_profile_plans_the_paper_configuration(tmp_path):
    workdir = _workdir(tmp_path, _ci())
    shutil.copy(REPO / "config" / "paper.yaml", workdir / "config" / "paper.yaml")
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(workdir / "config" / "paper.yaml")]
    proc = subprocess.run([*cmd, "-n", "--profile", str(REPO / "profiles" / "slurm"), "--quiet", "rules"],
                          capture_output=True, text=True, cwd=workdir)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    planned = _planned(proc.stdout + proc.stderr)
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    lambdas, methods = len(paper["train"]["lambdas"]), len(paper["pnp"]["methods"])
    assert planned["train_base"] == 1 and planned["finetune"] == lambdas - 1
    extra = len(paper["denoisers"])  # and TV: tuned once, one PGD run
    assert planned["train_extra"] == extra and planned["tune_tv"] == 1
    assert planned["pnp"] == (lambdas + extra) * methods + 1 and planned["lipschitz"] == lambdas + extra + 1
    assert planned["figures"] == 1
    # no job arrays (they hang with plugin 2.8.0), and job status by squeue (no accounting needed)
    for name in ("slurm", "slurm-ci"):
        profile = yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())
        assert "slurm-array-jobs" not in profile and profile["slurm-status-command"] == "squeue"


def _tiny(config: dict) -> dict:
    """``config`` at toy sizes on the CPU, its structure kept: the same λ count, methods, kernels,
    long runs and evaluations (TV aside); a 3-layer net, a few steps and iterations, small crops."""
    t, p, lip = config["train"], config["pnp"], config["lipschitz"]
    t.update(max_images=8, batch_size=4, patch_size=24, base_steps=4, finetune_steps=2, power_iters=2)
    t.update(refine_iters=3)
    p.update(crop=32, iters=5)
    p["long_runs"].update(iters=4, record_every=2)
    config.pop("tv")  # the same section as ci's, which test_ci_config_runs_end_to_end runs
    config["denoise"]["crop"] = 32
    lip.update(crop=16, tol=1e-2, max_iter=20)
    return {**config, "device": "cpu", "model": {"depth": 3, "width": 8}}


@pytest.mark.workflow
def test_gpu_slice_is_the_paper_protocol_shortened_and_runs_at_tiny_size_on_cpu(tmp_path):
    """config/gpu-slice.yaml (run on a lent GPU by benchmarks/gpu.sh): the paper's model, PnP protocol,
    full BSD10 images and kernels, planned as a dry run, then run end to end at toy sizes."""
    gpu, paper = (yaml.safe_load((REPO / "config" / f"{n}.yaml").read_text()) for n in ("gpu-slice", "paper"))
    assert gpu["model"] == paper["model"] and 2 <= len(gpu["train"]["lambdas"]) <= 3
    same = ["dataset", "kernels", "sigma", "kernel_sigma", "gamma", "gamma_unit", "x0", "group", "clamp", "tf32"]
    assert {k: gpu["pnp"][k] for k in same} == {k: paper["pnp"][k] for k in same} and "crop" not in gpu["pnp"]
    assert gpu["pnp"]["long_runs"]["kernels"] == paper["pnp"]["long_runs"]["kernels"]
    assert gpu["train"]["base_steps"] < paper["train"]["base_steps"] / 10
    workdir = _workdir(tmp_path, gpu)
    plan = _snakemake(workdir, "-n", "--quiet", "rules")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert _planned(plan.stdout + plan.stderr)["pnp"] == 2 * 2 + 1  # 2 λ × 2 methods, TV once
    workdir = _workdir(tmp_path / "tiny", _tiny(gpu))
    run = _snakemake(workdir)
    assert run.returncode == 0, run.stderr[-3000:]
    psnr = pd.read_csv(workdir / "results" / "gpu-slice" / "tables" / "psnr.csv")
    assert set(psnr.kernel) == set(gpu["pnp"]["kernels"])
    assert set(psnr.method) == {"pnp", "equivariant-random", "blurred input"} and set(psnr.denoiser) == {
        "dncnn",
        "none",
    }  # none: the blurred input
    long = pd.read_csv(workdir / "results" / "gpu-slice" / "pnp-long" / "lam0" / "random" / "final.csv")
    assert set(long.kernel) == {"levin1", "gaussian_1_0"} and len(long) == 10 * 2


def test_a_configfile_replaces_the_quick_default_instead_of_inheriting_its_keys(tmp_path):
    # Snakemake merges --configfile into a `configfile:` directive's config: the paper run used to
    # inherit the quick run's crops and image cap
    workdir = _workdir(tmp_path)
    shutil.copy(REPO / "config" / "paper.yaml", workdir / "config" / "paper.yaml")
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "-n", "-p", "--configfile", str(workdir / "config" / "paper.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    commands = [line for line in (proc.stdout + proc.stderr).splitlines() if "Shell command: lipbench " in line]
    assert len(commands) > 20 and not [c for c in commands if "--crop" in c or "--max-images" in c]
    # without --configfile the quick configuration applies
    quick = subprocess.run([*SNAKEMAKE, "--directory", str(workdir), "-n", "-p"], capture_output=True, text=True)
    assert quick.returncode == 0 and "results/quick/" in quick.stderr + quick.stdout
    assert "--crop 64" in quick.stderr + quick.stdout


def test_calibrate_target_builds_only_the_models_and_their_lipschitz_tables(tmp_path):
    workdir = _workdir(tmp_path)
    plan = _snakemake(workdir, "-n", "calibrate", "--quiet", "rules")  # after an option: --configfile is greedy
    assert plan.returncode == 0, plan.stderr[-2000:]
    lambdas = len(_ci()["train"]["lambdas"])
    expected = {"verify_data": 1, "train_base": 1, "finetune": lambdas - 1, "lipschitz": lambdas, "calibrate": 1}
    assert _planned(plan.stdout + plan.stderr) == expected


def test_code_hash_follows_the_code(tmp_path, monkeypatch):
    code = tmp_path / "lipbench"
    shutil.copytree(REPO / "lipbench", code, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("LIPBENCH_CODE_ROOT", str(code))
    before = code_hash("pnp.py", "data")
    assert code_hash("data", "pnp.py") == before  # order does not matter
    (code / "data" / "images.py").write_text((code / "data" / "images.py").read_text() + "\n")
    assert code_hash("pnp.py", "data") != before and code_hash("pnp.py") == code_hash("pnp.py")
    with pytest.raises(FileNotFoundError, match="nope.py"):
        code_hash("nope.py")


def test_step_arguments_follow_the_config():
    config = _ci()
    assert lam_label(0.0) == "0" and lam_label(1e-5) == "1e-05"
    args = finetune_args(config)
    assert "--steps 30" in args and "--lr 0.001" in args and "--max-images 20" in args
    p = pnp_args(config)
    assert "--kernels levin1 gaussian_1_6" in p and "--kernel-sigma gaussian_1_6=0.008" in p and "--crop 32" in p


@pytest.mark.parametrize("name", ["paper", "config", "ci"])
def test_long_runs_follow_paper_2_and_the_tables_paper_1(name):
    """The command lines, parsed by lipbench's own parser: the tables with PnP-MMO's test protocol,
    the long runs (the stability figure) with Equivariant PnP's, whatever else is shared."""
    from lipbench.cli import build_parser

    config = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())

    def parsed(args: str) -> argparse.Namespace:
        return build_parser().parse_args(["pnp", "--checkpoint", "m.pt", "--out", "o", *shlex.split(args)])

    table, long = parsed(pnp_args(config)), parsed(pnp_args(config, long=True))
    protocol = ["gamma", "gamma_unit", "x0", "group", "clamp"]
    assert [getattr(table, k) for k in protocol] == [1.99, "absolute", "y", "d4", "both"]  # paper 1
    assert [getattr(long, k) for k in protocol] == [1.0, "lipschitz", "adjoint", "rotations", "output"]  # paper 2
    assert (table.iters, long.iters) == (config["pnp"]["iters"], config["pnp"]["long_runs"]["iters"])
    shared = ["dataset", "sigma", "crop", "seed", "device", "compile", "root"]
    assert [getattr(table, k) for k in shared] == [getattr(long, k) for k in shared]
    assert long.kernels == config["pnp"]["long_runs"].get("kernels", table.kernels)
    assert long.kernel_sigma == [ks for ks in table.kernel_sigma if ks.split("=")[0] in long.kernels]
    assert (table.tf32, long.tf32) == (config["pnp"].get("tf32", False), config["pnp"]["long_runs"].get("tf32", False))
    if name == "paper":  # paper 1 tests with 300 iterations on 9 kernels; paper 2 runs 10 001 on its 2
        assert (table.iters, long.iters) == (300, 10001)
        assert (len(table.kernels), long.kernels) == (9, ["levin1", "gaussian_1_0"])


def test_protocol_defaults_are_the_papers_and_the_schemas():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    pnp = schema["properties"]["pnp"]["properties"]
    assert {k: pnp[k]["default"] for k in TABLE_PROTOCOL} == TABLE_PROTOCOL
    assert {k: pnp["long_runs"]["properties"][k]["default"] for k in LONG_RUN_PROTOCOL} == LONG_RUN_PROTOCOL
    # a configuration that names no protocol gets paper 1's for the tables and paper 2's for the long runs
    config = {"device": "cpu", "data": {}, "pnp": {"kernels": ["levin1"], "iters": 5}}
    config["pnp"]["long_runs"] = {"lambdas": [0.0], "methods": ["standard"], "iters": 7}
    assert "--gamma 1.99 --gamma-unit absolute --x0 y --iters 5 --record-every 1 --group d4 --clamp both" in pnp_args(
        config
    )
    long = pnp_args(config, long=True)
    assert "--gamma 1.0 --gamma-unit lipschitz --x0 adjoint --iters 7 --record-every 10 --group rotations" in long
    assert "--clamp output" in long


def _schema_keys(properties: dict, prefix: str = "") -> list[str]:
    keys = []
    for name, spec in properties.items():
        if spec.get("type") == "object" and "properties" in spec:
            keys += _schema_keys(spec["properties"], f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_config_readme_documents_every_schema_key():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    rows = [line for line in (REPO / "config" / "README.md").read_text().splitlines() if line.startswith("| `")]
    keys = _schema_keys(schema["properties"])
    assert len(keys) > 40

    def documented(key: str) -> bool:  # `a.b.c`, or `a.b.x`, `.c` in one row
        parent, _, last = key.rpartition(".")
        return any(f"`{key}`" in row or (parent and f"`{parent}." in row and f"`.{last}`" in row) for row in rows)

    assert [k for k in keys if not documented(k)] == []
