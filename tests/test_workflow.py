"""The Snakemake workflow: config validation, the ci run end to end, and code-driven reruns."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lipbench.errors import LipbenchError
from lipbench.figures import FIGURES
from lipbench.workflow import (
    code_closure,
    code_hash_of,
    command_code_hash,
    denoise_args,
    extra_args,
    finetune_args,
    grid_args,
    lam_label,
    lambda_values,
    lipschitz_args,
    pnp_args,
    tv_args,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
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


def validated(config: dict) -> dict:
    """A copy of ``config`` as the Snakefile's ``validate`` leaves it: checked, every schema default filled."""
    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))
    return config


def _minimal() -> dict:
    """A configuration of the schema's required keys only (and the optional sections, empty but for
    theirs): everything else comes from the schema's defaults."""
    return {
        "name": "minimal", "device": "cpu", "data": {"sources": ["levin"]}, "model": {"depth": 3, "width": 4},
        "train": {"dataset": "bsd400", "lambdas": [0.0, 1.0e-5], "base_steps": 2, "finetune_steps": 1},
        "pnp": {"kernels": ["levin1"], "iters": 5, "methods": ["standard"],
                "long_runs": {"lambdas": [0.0], "methods": ["standard"], "iters": 7}},
        "lipschitz": {}, "tv": {"weights": [1.0e-3, 1.0e-2, 1.0e-1]},
        "denoisers": {"certified": {"model": {"name": "certified", "depth": 3, "width": 4}}},
    }  # fmt: skip


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


# the modules each command's cmd_* function in lipbench/cli.py imports, written out by hand: the
# independent check of the code hash's static import closure
ENTRY_MODULES = {
    "verify": ["lipbench.data"],
    "train": ["lipbench.options", "lipbench.training"],
    "pnp": ["lipbench.outputs", "lipbench.restore"],
    "tune-tv": ["lipbench.baseline", "lipbench.data", "lipbench.outputs", "lipbench.restore"],
    "lipschitz": ["lipbench.evaluate", "lipbench.outputs"],
    "denoise": ["lipbench.evaluate", "lipbench.outputs"],
    "aggregate": ["lipbench.aggregate"],
    "grid": ["lipbench.calibration", "lipbench.outputs"],
    "figures": ["lipbench.figures"],
}
# imports the entry modules of each command in a forked child; the parent imports them all first and
# then forgets lipbench's modules, so third-party ones (torch, matplotlib) are imported once
LOADED = """
import importlib, json, os, sys
entries = json.loads(sys.argv[1])
for module in ["lipbench.cli", *(m for modules in entries.values() for m in modules)]:
    importlib.import_module(module)
for name in [n for n in sys.modules if n.split(".")[0] == "lipbench"]:
    del sys.modules[name]
for command, modules in entries.items():
    pid = os.fork()
    if pid == 0:
        import lipbench.cli
        for module in modules:
            importlib.import_module(module)
        files = [m.__file__ for n, m in list(sys.modules.items()) if n.split(".")[0] == "lipbench"]
        print(json.dumps([command, sorted(files)]), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
"""


def test_code_hash_is_the_import_closure_of_each_command():
    package = REPO / "lipbench"
    train = set(code_closure(command="train"))
    always = {"cli.py", "__init__.py", "errors.py"}
    assert {"training.py", "precision.py", "seeding.py"} | always <= train
    for folder in ("lipschitz", "models", "data"):
        assert {f"{folder}/{f.name}" for f in (package / folder).glob("*.py")} <= train
    assert "restore.py" not in train and "workflow.py" not in train  # no other command's code
    assert set(code_closure("lipbench.training")) <= train  # cmd_train imports lipbench.training
    aggregate = set(code_closure(command="aggregate"))
    assert {"aggregate.py", "outputs.py", "io.py", *always} <= aggregate
    assert not aggregate & {"training.py", "restore.py", "evaluate.py", "precision.py", "models/__init__.py"}
    # independent: what Python loads when it imports the command's entry modules is in the closure
    proc = subprocess.run([sys.executable, "-c", LOADED, json.dumps(ENTRY_MODULES)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = dict(json.loads(line) for line in proc.stdout.splitlines())
    assert set(loaded) == set(ENTRY_MODULES)
    for command, files in loaded.items():
        relative = {Path(f).resolve().relative_to(package.resolve()).as_posix() for f in files}
        assert relative - set(code_closure(command=command)) == set(), command


def test_code_hash_follows_the_code(tmp_path, monkeypatch):
    hashes = {c: command_code_hash(c) for c in ("train", "pnp", "lipschitz", "aggregate", "grid")}
    code = tmp_path / "lipbench"
    shutil.copytree(REPO / "lipbench", code, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("LIPBENCH_CODE_ROOT", str(code))
    assert {c: command_code_hash(c) for c in hashes} == hashes  # relative paths: a copy hashes the same
    (code / "precision.py").write_text((code / "precision.py").read_text() + "\n# an edit\n")
    edited = {c: command_code_hash(c) for c in hashes}
    assert [c for c in hashes if edited[c] != hashes[c]] == ["train", "pnp", "lipschitz"]
    assert code_hash_of("lipbench.precision") != code_hash_of("lipbench.tv")
    with pytest.raises(FileNotFoundError, match="lipbench.nope"):
        code_hash_of("lipbench.nope")
    with pytest.raises(LipbenchError, match="no command 'nope'"):
        command_code_hash("nope")


CLI = """
from typing import TYPE_CHECKING
from lipbench import errors
if TYPE_CHECKING:
    from lipbench import typed

def cmd_run(args):
    helper()

def helper():
    import lipbench.a.b

def _run_options(parser):
    from lipbench.options import defaults

def cmd_other(args):
    from lipbench import other

def _other_options(parser):
    import lipbench.other_options

def build_parser():
    for name, (summary, options, function) in COMMANDS.items():
        options(None)

def main():
    build_parser()

COMMANDS = {"run": ("summary", _run_options, cmd_run), "other": ("summary", _other_options, cmd_other)}
"""


def test_code_closure_follows_every_kind_of_import(tmp_path, monkeypatch):
    """Relative imports, ``from package import submodule``, imports inside functions, parent
    packages' ``__init__.py``, a command's options builder named in cli.py's table of commands;
    ``if TYPE_CHECKING:`` imports never run, and other commands' imports do not count."""
    files = {
        "__init__.py": "", "cli.py": CLI, "errors.py": "", "typed.py": "", "other.py": "", "unused.py": "",
        "options.py": "defaults = 1\n", "other_options.py": "",
        "a/__init__.py": "", "a/b.py": "from . import c\nfrom .d import thing\n\ndef f():\n    from ..e import g\n",
        "a/c.py": "", "a/d.py": "thing = 1\n", "e/__init__.py": "g = 1\n", "e/f.py": "",
    }  # fmt: skip
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setenv("LIPBENCH_CODE_ROOT", str(tmp_path))
    assert code_closure(command="run") == [
        "__init__.py", "a/__init__.py", "a/b.py", "a/c.py", "a/d.py", "cli.py", "e/__init__.py", "errors.py",
        "options.py",
    ]  # fmt: skip
    assert {"other.py", "other_options.py"} <= set(code_closure(command="other"))
    assert code_closure("lipbench.a.d") == ["__init__.py", "a/__init__.py", "a/d.py", "cli.py", "errors.py"]


def test_every_rule_hashes_the_command_it_runs():
    """``params: code=command_code_hash("X")`` of each rule names the ``lipbench X`` of its shell."""
    seen = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        assert "code_hash(" not in text.replace("command_code_hash(", "")
        for block in re.split(r"\n(?=rule |use rule )", text)[1:]:
            name = re.match(r"(?:use )?rule (\w+)", block).group(1)
            hashed = re.findall(r'code=command_code_hash\("([\w-]+)"\)', block)
            shell = re.findall(r'"lipbench ([\w-]+) ', block)
            base = re.match(r"use rule (\w+) as (\w+)", block)
            if base:
                name, shell = base.group(2), [seen[base.group(1)]]
            assert len(hashed) == 1 and hashed == shell, (smk.name, name)
            seen[name] = hashed[0]
    assert len(seen) >= 12


def test_step_arguments_follow_the_config():
    config = validated(_ci())
    assert lam_label(0.0) == "0" and lam_label(1e-5) == "1e-05"
    args = finetune_args(config)
    assert "--steps 30" in args and "--lr 0.001" in args and "--max-images 20" in args
    p = pnp_args(config)
    assert "--kernels levin1 gaussian_1_6" in p and "--kernel-sigma gaussian_1_6=0.008" in p and "--crop 32" in p


LAMBDAS = [1e-5, 1.0000001e-5, 0.1 + 0.2, 0, 0.0, 1, 1.0, 1e-3, 1e-7, 2.5e-4, 123456789.0, 1e16, 5e-324, -0.0]


def test_lam_labels_are_exact_and_unique():
    for lam in LAMBDAS:
        label = lam_label(lam)
        assert float(label) == lam and re.fullmatch(r"[0-9.e+-]+", label) and not label.endswith(".0"), lam
    assert len({lam_label(lam) for lam in LAMBDAS}) == len(set(LAMBDAS))
    assert [lam_label(x) for x in (0, 0.01, 1e-5, 1.0000001e-5, 0.1 + 0.2)] == [
        "0", "0.01", "1e-05", "1.0000001e-05", "0.30000000000000004"
    ]  # fmt: skip
    with pytest.raises(LipbenchError, match="finite"):
        lam_label(float("inf"))


def test_the_configured_lambdas_keep_their_folder_names():
    """results/quick and tests/golden/ci name their folders by the old ``f"{lam:g}"`` labels."""
    for path in sorted((REPO / "config").glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        lambdas = config["train"]["lambdas"] + config["pnp"].get("long_runs", {}).get("lambdas", [])
        assert [lam_label(lam) for lam in lambdas] == [f"{lam:g}" for lam in lambdas], path.name
        assert list(lambda_values(config).values()) == config["train"]["lambdas"]


def test_finetune_gets_the_exact_lambda_of_the_config():
    config = _ci()
    config["train"]["lambdas"] = [0.0, 1e-5, 1.0000001e-5, 0.1 + 0.2]
    values = lambda_values(config)
    assert values == {"0": 0.0, "1e-05": 1e-5, "1.0000001e-05": 1.0000001e-5, "0.30000000000000004": 0.1 + 0.2}
    assert all(type(v) is float for v in values.values())
    # two spellings of one λ (the schema's uniqueItems refuses them first), a long run outside the grid
    config["train"]["lambdas"] = [0, 1.0e-5, 0.00001]
    with pytest.raises(LipbenchError, match=r"1e-05 and 1e-05 are the same λ \(folder lam1e-05\)"):
        lambda_values(config)
    config["train"]["lambdas"], config["pnp"]["long_runs"]["lambdas"] = [0.0, 1e-5], [1.0000001e-5]
    with pytest.raises(LipbenchError, match="pnp.long_runs.lambdas"):
        lambda_values(config)
    # the rule passes the mapped value, not its folder's text
    train = (REPO / "workflow" / "rules" / "train.smk").read_text()
    assert "--lam {params.lam}" in train and "{wildcards.lam}" not in train
    assert "lam=lambda wildcards: LAMBDA_VALUES[wildcards.lam]" in train


def test_finetune_commands_carry_every_digit_of_lambda(tmp_path):
    config = _ci()
    config["train"]["lambdas"] = [0.0, 1.0e-5, 1.0000001e-5]
    workdir = _workdir(tmp_path, config)
    plan = _snakemake(workdir, "-n", "-p", "calibrate")
    assert plan.returncode == 0, plan.stderr[-2000:]
    text = plan.stdout + plan.stderr
    for label in ("1e-05", "1.0000001e-05"):
        assert f"--out results/ci/models/lam{label} --lam {label} --init" in text


@pytest.mark.parametrize("name", ["paper", "config", "ci"])
def test_long_runs_follow_paper_2_and_the_tables_paper_1(name):
    """The command lines, parsed by lipbench's own parser: the tables with PnP-MMO's test protocol,
    the long runs (the stability figure) with Equivariant PnP's, whatever else is shared."""
    from lipbench.cli import build_parser

    raw = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
    config = validated(raw)

    def parsed(args: str) -> argparse.Namespace:
        return build_parser().parse_args(["pnp", "--checkpoint", "m.pt", "--out", "o", *shlex.split(args)])

    table, long = parsed(pnp_args(config)), parsed(pnp_args(config, long=True))
    protocol = ["gamma", "gamma_unit", "x0", "group", "clamp"]
    assert [getattr(table, k) for k in protocol] == [1.99, "absolute", "y", "d4", "both"]  # paper 1
    assert [getattr(long, k) for k in protocol] == [1.0, "lipschitz", "adjoint", "rotations", "output"]  # paper 2
    assert (table.iters, long.iters) == (raw["pnp"]["iters"], raw["pnp"]["long_runs"]["iters"])
    shared = ["dataset", "sigma", "crop", "seed", "device", "compile", "root"]
    assert [getattr(table, k) for k in shared] == [getattr(long, k) for k in shared]
    assert long.kernels == raw["pnp"]["long_runs"].get("kernels", table.kernels)
    assert long.kernel_sigma == [ks for ks in table.kernel_sigma if ks.split("=")[0] in long.kernels]
    assert (table.tf32, long.tf32) == (raw["pnp"].get("tf32", False), raw["pnp"]["long_runs"].get("tf32", False))
    if name == "paper":  # paper 1 tests with 300 iterations on 9 kernels; paper 2 runs 10 001 on its 2
        assert (table.iters, long.iters) == (300, 10001)
        assert (len(table.kernels), long.kernels) == (9, ["levin1", "gaussian_1_0"])


def test_protocol_defaults_are_the_papers():
    # a configuration that names no protocol gets paper 1's for the tables and paper 2's for the long runs
    config = validated(_minimal())
    assert "--gamma 1.99 --gamma-unit absolute --x0 y --iters 5 --record-every 1 --group d4 --clamp both" in pnp_args(
        config
    )
    long = pnp_args(config, long=True)
    assert "--gamma 1.0 --gamma-unit lipschitz --x0 adjoint --iters 7 --record-every 10 --group rotations" in long
    assert "--clamp output" in long


def test_a_minimal_config_validates_to_every_key_the_steps_read():
    """The step helpers read the validated configuration only (``t["sigma"]``, no fallbacks): the
    schema fills every key they read, in optional sections too (``denoise``, ``calibration``)."""
    raw = _minimal()
    config = validated(raw)
    assert config["denoise"] == {"dataset": "bsd68", "crop": None}
    assert config["calibration"] == {"no_effect": 0.05, "target": 1.0}
    assert config["denoisers"]["certified"] == {**raw["denoisers"]["certified"], "lam": 0, "steps": None, "lr": None}
    args = [finetune_args(config), pnp_args(config), pnp_args(config, long=True), lipschitz_args(config)]
    args += [denoise_args(config), grid_args(config), tv_args(config), extra_args(config, "certified")]
    assert all(args)
    with pytest.raises(KeyError):  # unvalidated: no defaults to fall back on
        finetune_args(raw)
    no_denoisers = validated({k: v for k, v in raw.items() if k != "denoisers"})
    assert no_denoisers["denoisers"] == {}


def _schema_defaults(spec: dict, prefix: str = "") -> dict:
    """Every key of the schema with a ``default``, walked generically: ``properties``, and
    ``additionalProperties`` as ``*`` (the ``denoisers`` entries)."""
    defaults = {}
    for name, sub in spec.get("properties", {}).items():
        if "default" in sub:
            defaults[f"{prefix}{name}"] = sub["default"]
        defaults |= _schema_defaults(sub, f"{prefix}{name}.")
    if isinstance(spec.get("additionalProperties"), dict):
        defaults |= _schema_defaults(spec["additionalProperties"], f"{prefix}*.")
    if isinstance(spec.get("items"), dict):
        defaults |= _schema_defaults(spec["items"], f"{prefix}[].")
    return defaults


def _same(section: str, cls: str, keys: str) -> dict:
    """``section.key`` for each of ``keys``: the field of the same name of the dataclass ``cls``."""
    return {f"{section}.{key}": (cls, key) for key in keys.split()}


PAPER_2 = "pnp.long_runs runs paper 2's protocol (Equivariant PnP), the library's defaults paper 1's"
SECTION = "an optional section: empty, so validation fills its keys' defaults"
# where each schema default lives in the library: a dataclass field, or a `lipbench` command's option
# where no dataclass holds it; a string is a listed exception, with its reason
HOMES = {
    "data.root": ("cli", "train", "root"),
    "model.name": ("TrainConfig", "model"),
    "model.activation": ("cli", "train", "activation"),
    **_same(
        "train",
        "TrainConfig",
        "max_images patch_size batch_size sigma loss lr lr_step eps power_iters penalty_solver"
        " refine refine_iters refine_tol probe_size probe_every seed tf32 amp channels_last",
    ),
    "train.finetune_lr": "null: train.lr, a key of the workflow only",
    **_same(
        "pnp",
        "PnPSettings",
        "dataset crop sigma kernel_sigma gamma gamma_unit x0 group clamp seed record_every tf32 compile",
    ),
    "pnp.long_runs.kernels": "null: pnp.kernels",
    "pnp.long_runs.tf32": ("PnPSettings", "tf32"),
    "pnp.long_runs.record_every": "10: the long runs (10 001 iterations in paper 2) are recorded sparsely",
    **{f"pnp.long_runs.{k}": PAPER_2 for k in ("gamma", "gamma_unit", "x0", "group", "clamp")},
    "denoisers": "none by default",
    "denoisers.*.lam": ("TrainConfig", "lam"),
    "denoisers.*.steps": "null: train.base_steps",
    "denoisers.*.lr": "null: train.lr",
    "tv.dataset": ("cli", "tune-tv", "dataset"),
    "tv.images": ("cli", "tune-tv", "images"),
    "tv.refine": ("cli", "tune-tv", "refine"),
    "tv.prox_iters": ("cli", "tune-tv", "prox_iters"),
    "denoise": SECTION,
    "denoise.dataset": ("cli", "denoise", "dataset"),
    "denoise.crop": ("cli", "denoise", "crop"),
    **_same("lipschitz", "LipschitzSettings", "dataset crop points tol max_iter solver tf32 sigma"),
    "calibration": SECTION,
    "calibration.no_effect": ("cli", "grid", "no_effect"),
    "calibration.target": ("cli", "grid", "target"),
}
# the smallest command line of each command whose defaults are read
COMMANDS = {
    "train": ["train", "--out", "o"],
    "tune-tv": ["tune-tv", "--out", "o", "--weights", "1"],
    "denoise": ["denoise", "--checkpoint", "m.pt", "--out", "o.csv"],
    "grid": ["grid", "--lipschitz", "l.csv", "--out", "o"],
}


def test_schema_defaults_are_the_librarys():
    """The workflow's defaults (the schema's) are the library's, key by key, but for listed exceptions."""
    from lipbench.cli import build_parser
    from lipbench.evaluate import LipschitzSettings
    from lipbench.restore import PnPSettings
    from lipbench.training import TrainConfig

    defaults = _schema_defaults(yaml.safe_load(SCHEMA.read_text()))
    assert sorted(defaults) == sorted(HOMES)  # a new default needs a home (or a reason) here
    classes = {"TrainConfig": TrainConfig, "PnPSettings": PnPSettings, "LipschitzSettings": LipschitzSettings}
    fields = {
        (name, f.name): f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        for name, cls in classes.items()
        for f in dataclasses.fields(cls)
    }
    parsed = {command: vars(build_parser().parse_args(argv)) for command, argv in COMMANDS.items()}
    wrong = {}
    for key, home in HOMES.items():
        if isinstance(home, str):
            continue
        library = fields[home] if home[0] in classes else parsed[home[1]][home[2]]
        library = list(library) if isinstance(library, tuple) else library
        if defaults[key] != library or isinstance(defaults[key], bool) != isinstance(library, bool):  # 1 == True
            wrong[key] = (defaults[key], home, library)
    assert wrong == {}
    schema_pnp = {k: defaults[f"pnp.{k}"] for k in ("gamma", "gamma_unit", "x0", "group", "clamp")}
    schema_long = {k: defaults[f"pnp.long_runs.{k}"] for k in schema_pnp}
    assert schema_pnp == {"gamma": 1.99, "gamma_unit": "absolute", "x0": "y", "group": "d4", "clamp": "both"}
    assert schema_long == {"gamma": 1.0, "gamma_unit": "lipschitz", "x0": "adjoint", "group": "rotations",
                           "clamp": "output"}  # fmt: skip


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
