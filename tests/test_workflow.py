"""The Snakemake workflow: the configuration (one schema, the steps' defaults in one home), the
command line of each rule, the ci run end to end with its golden comparison, and code-driven reruns."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import types
import typing
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from lipbench.cli import STEPS, build_parser, command, main, step_module
from lipbench.plumbing.codehash import code_closure, code_hash_of
from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.options import from_args, to_flags
from lipbench.steps.figures import FIGURES
from lipbench.workflow.codehash import command_code_hash
from lipbench.workflow.config import SCHEMA, SECTIONS, options_markdown, schema, validated
from lipbench.workflow.rules import (
    config_hash,
    data_stamp,
    denoise_args,
    effective,
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
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2"]
GOLDEN = REPO / "tests" / "golden" / "ci" / "results.csv"


def _ci() -> dict:
    return yaml.safe_load((REPO / "config" / "ci.yaml").read_text())


def _workdir(tmp_path: Path, config: dict | None = None) -> Path:
    """A folder to run the workflow in: the quick config, the profiles, and ``config`` (default: ci's,
    its golden table by absolute path) as config/ci.yaml."""
    (tmp_path / "config").mkdir(parents=True)
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "config")
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    config = config or _ci()
    if config.get("reference", {}).get("table"):
        config["reference"]["table"] = str(REPO / config["reference"]["table"])
    (tmp_path / "config" / "ci.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def _snakemake(workdir: Path, *args: str, env: dict | None = None, config: str = "ci") -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(workdir / "config" / f"{config}.yaml"), *args]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # the `lipbench` script
    return subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "PATH": path, **(env or {})}, cwd=workdir
    )


def _planned(text: str) -> dict[str, int]:
    """The job counts of Snakemake's "Job stats" table."""
    counts = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job") and parts[0][-1] != ":":
            counts[parts[0]] = int(parts[1])
    return counts


def _minimal() -> dict:
    """A configuration of the required keys only (and the optional sections, empty but for theirs)."""
    return {
        "name": "minimal", "device": "cpu", "data": {"sources": ["levin"]},
        "train": {"lambdas": [0.0, 1.0e-5], "base_steps": 2, "finetune_steps": 1},
        "pnp": {"kernels": ["levin1"], "iters": 5, "methods": ["standard"],
                "long_runs": {"lambdas": [0.0], "methods": ["standard"], "iters": 7}},
        "tv": {"weights": [1.0e-3, 1.0e-2, 1.0e-1]},
        "denoisers": {"certified": {"model": {"name": "certified", "depth": 3, "width": 4}}},
    }  # fmt: skip


# -- the configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["train"].update(lamda=[0.1]), "train: Additional properties are not allowed ('lamda'"),
        (lambda c: c["train"].update(lambdas=[0.0, -1.0]), "train.lambdas.1: -1.0 is less than the minimum of 0"),
        (lambda c: c["train"].update(lambdas=[0.01]), "train.lambdas: [0.01] does not contain items matching"),
        (lambda c: c["train"].update(sigma=-1), "train.sigma: -1 is less than or equal to the minimum of 0"),
        (lambda c: c["train"].update(loss="l3"), "train.loss: 'l3' is not one of ['l1', 'l2']"),
        (lambda c: c["train"].update(steps=5), "train: Additional properties are not allowed ('steps'"),
        (lambda c: c["pnp"].update(methods=["fancy"]), "pnp.methods.0: 'fancy' is not one of"),
        (lambda c: c["pnp"].update(protocol="paper3"), "pnp.protocol: 'paper3' is not one of ['paper1', 'paper2']"),
        (lambda c: c["pnp"]["long_runs"].update(gamma_unit="relative"), "'relative' is not one of"),
        (lambda c: c["pnp"].update(kernel_sigma={"levin1": "x"}), "pnp.kernel_sigma.levin1: 'x' is not of type"),
        (lambda c: c.update(device="tpu"), "device: 'tpu' does not match"),
        (lambda c: c.update(denoisers={"lam1": {"model": {"name": "certified"}}}), "denoisers.lam1: the name tv is"),
        (lambda c: c["denoisers"]["certified"]["model"].update(name="a b"), "'a b' does not match"),
        (lambda c: c["tv"].update(weights=[1e-3, -1.0, 1e-2]), "tv.weights.1: -1.0 is less than or equal to"),
        (lambda c: c["tv"].update(iters=3), "tv: Additional properties are not allowed ('iters'"),
        (lambda c: c["lipschitz"].update(points=["noisy", "far"]), "lipschitz.points.1: 'far' is not one of"),
        (lambda c: c["pnp"].update(kernels=["levin9"]), "config pnp.kernels: unknown kernel 'levin9'"),
    ],
)
def test_a_bad_config_is_one_error_naming_its_key(edit, message):
    config = _ci()
    edit(config)
    with pytest.raises(LipbenchError) as info:
        validated(config)
    assert message in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["train"].update(lamda=[0.1]), "train: Additional properties are not allowed ('lamda' was"),
        (lambda c: c["pnp"].update(crop=400), "config pnp.crop: 400 is larger than the smallest bsd10 image side"),
        (None, "key 'name' is set twice (first on line 1): keep one"),
    ],
)
def test_a_bad_config_stops_the_workflow_before_any_job(tmp_path, edit, message):
    """The schema, what a job would refuse (preflight) and a key written twice, as Snakemake reads the file."""
    config = _ci()
    if edit is not None:
        edit(config)
    workdir = _workdir(tmp_path, config)
    if edit is None:
        text = (workdir / "config" / "ci.yaml").read_text()
        (workdir / "config" / "ci.yaml").write_text("name: twice\n" + text)  # sorted keys: name comes later
    proc = _snakemake(workdir, "-n")
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (workdir / "runs").exists()


def test_long_jobs_go_first(tmp_path):
    """Training and TV's tuning (priority 2), then the fine-tunes, Lipschitz jobs and long PnP runs (1),
    then PnP and denoising (0): no long job is left to run alone at the end (workflow/rules/train.smk)."""
    plan = _snakemake(_workdir(tmp_path), "-n").stdout
    rules = re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?:\n\n|\Z)", plan, re.S | re.M)
    priority = {name: int(m.group(1)) if (m := re.search(r"priority: (-?\d+)", body)) else 0 for name, body in rules}
    assert {name: p for name, p in priority.items() if p} == {
        "train_base": 2, "train_extra": 2, "tune_tv": 2, "finetune": 1, "lipschitz": 1, "pnp_long": 1,
    }  # fmt: skip
    assert {"pnp", "denoise"} <= priority.keys()


def test_the_schema_holds_only_the_workflows_own_defaults():
    """Every step option's default lives in its settings dataclass: the schema (the YAML file and the
    part generated from the steps) has defaults only for the workflow's own keys."""

    def defaults(spec: dict, prefix: str = "") -> set[str]:
        found = set()
        for name, sub in spec.get("properties", {}).items():
            found |= {f"{prefix}{name}"} if "default" in sub else set()
            found |= defaults(sub, f"{prefix}{name}.")
        return found

    assert defaults(schema()) == defaults(yaml.safe_load(SCHEMA.read_text())) == {
        "reference", "reference.table", "reference.tolerance", "reference.strict", "data.root", "model",
        "pnp.long_runs.protocol", "pnp.long_runs.record_every", "denoisers", "certify",
    }  # fmt: skip
    # and every option of every configured step is a key of its section, typed (tv: TV's own options,
    # and its image set; the protocol is pnp's)
    spec = schema()
    for path, (step, controlled) in SECTIONS.items():
        section = spec
        for key in path:
            section = section["properties"][key]
        options = {f.name for cls in command(step).settings[-1:] for f in dataclasses.fields(cls)} - set(controlled)
        assert options and options <= {k for k, v in section["properties"].items() if "type" in v}, path
    assert set(spec["properties"]["tv"]["properties"]) == {"dataset", "weights", "images", "refine", "prox_iters"}


def _all_options(cls: type) -> dict:
    """A value other than its default for every option of ``cls``, within its bounds."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        meta, hint = f.metadata, hints[f.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if meta["choices"]:
            first = default[0] if isinstance(default, tuple) else default
            other = next(c for c in meta["choices"] if c != first)
            values[f.name] = (other,) if origin is tuple else other
        elif hint is bool:
            values[f.name] = not default
        elif hint is float:
            values[f.name] = default / 3 if isinstance(default, float) and default else 0.1
        elif hint is int:
            values[f.name] = max(default or 0, meta["minimum"] or 0) + 3
        elif origin is dict:
            values[f.name] = {**default, "width": 7} if default else {"levin1": 0.02}
        elif origin is tuple:
            low = meta["minimum"] + 3 if meta["minimum"] is not None else -3
            values[f.name] = {int: (low, 5), float: (0.5, 2.0), str: ("levin1", "levin2")}[args[0]]
        else:
            values[f.name] = "given"
    return values


@pytest.mark.parametrize("step", ["train", "pnp", "tune-tv", "lipschitz", "denoise", "grid"])
def test_a_rule_passes_every_option_to_its_step_exactly(step):
    """The workflow's generic mapping (config key → flag) and the command line's parsing are inverse:
    every option of the step, set to a value other than its default, reaches its settings unchanged."""
    spec = command(step)
    values = {cls: {k: v for k, v in _all_options(cls).items() if k not in spec.skip} for cls in spec.settings}
    flags = to_flags(spec.settings, {k: v for per_class in values.values() for k, v in per_class.items()})
    extra = ["--out", "o", "--lipschitz", "l.csv"] if step == "grid" else ["--out", "o"]
    args = build_parser(step).parse_args([step, *flags, *extra])
    for cls, expected in values.items():
        read = from_args(cls, args, **({"checkpoint": "m.pt"} if step == "tune-tv" and cls is spec.settings[0] else {}))
        assert {name: getattr(read, name) for name in expected} == expected, step


def test_step_arguments_follow_the_config():
    config = validated(_ci())
    args = finetune_args(config)
    assert "--steps 30" in args and "--lr 0.001" in args and "--max-images 20" in args
    assert "--model-kwargs depth=4 width=8" in args
    assert "--sigma" not in args and "--probe-size" not in args  # not set: the step's own default
    p = pnp_args(config)
    assert "--kernels levin1 gaussian_1_6" in p and "--kernel-sigma gaussian_1_6=0.008" in p and "--crop 32" in p
    assert "--gamma" not in p and "--methods" not in p
    assert lipschitz_args(config) == (  # the points where PnP goes: pnp's protocol, the section's kernels
        "--kernels levin5 --iters 30 --crop 16 --points noisy y iterates search --iterates 0 5 --search-starts 2 "
        "--search-random 1 --search-steps 10 --tol 0.01 --max-iter 200"
    )
    assert denoise_args(config) == "--crop 32" and grid_args(config) == ""
    tv = tv_args(config)
    assert "--dataset train400 --images 2" in tv and "--kernels levin1 gaussian_1_6" in tv
    assert "--test-dataset" not in tv and "--iters 30" in tv  # pnp's test set and protocol
    certified = extra_args(config, "certified")
    assert "--model certified --model-kwargs depth=3 width=8 activation=leaky_relu" in certified
    assert "--steps 60 --label certified" in certified


@pytest.mark.parametrize("name", ["paper", "config", "ci", "gpu-slice", "cpu"])
def test_long_runs_follow_paper_2_and_the_tables_paper_1(name):
    """The command lines, parsed by lipbench's own parser: the tables with PnP-MMO's test protocol,
    the long runs (the stability figure) with Equivariant PnP's, whatever else is shared."""
    raw = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
    config = validated(raw)

    def parsed(args: str):
        argv = ["pnp", "--checkpoint", "m.pt", "--out", "o", *shlex.split(args)]
        return build_parser("pnp", argv).parse_args(argv)

    table, long = parsed(pnp_args(config)), parsed(pnp_args(config, long=True))
    protocol = ["gamma", "gamma_unit", "x0", "group", "clamp"]
    assert [getattr(table, k) for k in protocol] == [1.99, "absolute", "y", "d4", "both"]  # paper 1
    assert [getattr(long, k) for k in protocol] == [1.0, "lipschitz", "adjoint", "rotations", "output"]  # paper 2
    assert (table.iters, long.iters) == (raw["pnp"]["iters"], raw["pnp"]["long_runs"]["iters"])
    assert long.record_every == raw["pnp"]["long_runs"].get("record_every", 10) and table.record_every == 1
    shared = ["dataset", "sigma", "crop", "seed", "compile"]
    assert [getattr(table, k) for k in shared] == [getattr(long, k) for k in shared]
    assert long.kernels == raw["pnp"]["long_runs"].get("kernels", table.kernels)
    assert long.kernel_sigma == ([f"{k}={v}" for k, v in raw["pnp"]["kernel_sigma"].items() if k in long.kernels]
                                 or None)  # fmt: skip
    assert (table.tf32, long.tf32) == (raw["pnp"].get("tf32", False), raw["pnp"]["long_runs"].get("tf32", False))
    if name == "paper":  # paper 1 tests with 300 iterations on 9 kernels; paper 2 runs 10 001 on its 2
        assert (table.iters, long.iters) == (300, 10001)
        assert (len(table.kernels), long.kernels) == (9, ["levin1", "gaussian_1_0"])


def test_a_protocol_preset_gives_way_to_the_options_beside_it():
    argv = ["pnp", "--checkpoint", "m.pt", "--out", "o", "--gamma", "0.5", "--protocol", "paper2"]
    args = build_parser("pnp", argv).parse_args(argv)
    assert (args.gamma, args.gamma_unit, args.x0, args.clamp) == (0.5, "lipschitz", "adjoint", "output")
    config = _minimal()
    config["pnp"]["long_runs"]["clamp"] = "both"
    long = pnp_args(validated(config), long=True)
    assert long.startswith("--protocol paper2 ") and "--clamp both" in long


def test_a_minimal_config_runs_every_step_with_its_defaults():
    config = validated(_minimal())
    assert config["denoisers"]["certified"] == _minimal()["denoisers"]["certified"]  # nothing filled in
    assert config["pnp"]["long_runs"]["protocol"] == "paper2" and config["reference"]["strict"] is False
    args = [finetune_args(config), pnp_args(config), pnp_args(config, long=True), lipschitz_args(config)]
    args += [denoise_args(config), grid_args(config), tv_args(config), extra_args(config, "certified")]
    assert args[0] == "--steps 1" and args[4] == args[5] == ""
    assert args[3] == "--kernels levin1 --iters 5 --iterates 0 1 5"  # the default iterates a 5-step PnP reaches
    assert args[1] == "--kernels levin1 --iters 5"
    assert args[2] == "--protocol paper2 --kernels levin1 --iters 7 --record-every 10"


def test_the_effective_configuration_fills_in_the_steps_defaults():
    """For tools that read every value a run uses (estimates, benchmarks): from the settings, not copies."""
    paper = effective(validated(yaml.safe_load((REPO / "config" / "paper.yaml").read_text())))
    assert paper["model"] == {"name": "dncnn", "depth": 20, "width": 64}
    assert (paper["train"]["patch_size"], paper["train"]["batch_size"], paper["train"]["sigma"]) == (40, 100, 0.009)
    assert paper["pnp"]["gamma"] == 1.99 and paper["pnp"]["kernel_sigma"] == {"gaussian_1_6": 0.008}
    assert paper["lipschitz"]["points"] == ["noisy", "tilde"] and paper["lipschitz"]["sigma"] == 0.01
    assert paper["tv"]["dataset"] == "bsd400" and paper["tv"]["prox_iters"] == 100
    assert "gamma" not in paper["tv"]  # TV runs pnp's protocol: the tv section holds only its own options
    long = paper["pnp"]["long_runs"]  # paper 2's preset, the kernels' noise inherited from pnp, their own kernels
    assert (long["gamma"], long["gamma_unit"], long["x0"], long["clamp"]) == (1.0, "lipschitz", "adjoint", "output")
    assert long["kernels"] == ["levin1", "gaussian_1_0"] and long["kernel_sigma"] == {} and long["iters"] == 10001
    ci = effective(validated(_ci()))
    assert ci["model"] == {"depth": 4, "width": 8, "name": "dncnn"} and ci["train"]["refine"] == 2
    assert "calibration" not in ci  # an optional section left out stays out


def test_configuration_doc_documents_every_workflow_key():
    def keys(properties: dict, prefix: str = "") -> list[str]:
        out = []
        for name, spec in properties.items():
            out.append(f"{prefix}{name}")
            out += keys(spec.get("properties", {}), f"{prefix}{name}.")
        return out

    doc = (REPO / "docs" / "configuration.md").read_text()
    missing = [k for k in keys(yaml.safe_load(SCHEMA.read_text())["properties"]) if f"`{k}`" not in doc]
    assert missing == []
    # and the step options' tables are the generated ones (defaults from the settings, not copies)
    block = re.search(r"<!-- options -->\n(.*?)<!-- /options -->", doc, re.S)
    assert block and block.group(1) == options_markdown()


# -- λ labels ----------------------------------------------------------------------------------------

LAMBDAS = [1e-5, 1.0000001e-5, 0.1 + 0.2, 0, 0.0, 1, 1.0, 1e-3, 1e-7, 2.5e-4, 123456789.0, 1e16, 5e-324, -0.0]


def test_the_config_hash_follows_the_experiment_not_its_folder_or_reference():
    """ci and ci-slurm (another name), or other reference tolerances, are the same experiment; a changed
    training option or device is another (hashes against a SHA-256 of the JSON computed here)."""
    base = validated(_ci())
    hashed = {k: v for k, v in base.items() if k not in ("name", "reference")}
    assert config_hash(base) == hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:12]
    renamed = {**base, "name": "ci-slurm", "reference": {**base["reference"], "strict": False}}
    assert config_hash(renamed) == config_hash(base)
    for other in ({**base, "device": "cuda"}, {**base, "train": {**base["train"], "lr": 2e-3}}):
        assert config_hash(other) != config_hash(base)


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


# -- planning (dry runs) ---------------------------------------------------------------------------


def _tracked_files() -> list[str]:
    proc = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        pytest.skip("not a git checkout: no fresh clone to make")
    return [f for f in proc.stdout.splitlines() if (REPO / f).is_file()]


@pytest.mark.slow
def test_a_fresh_clone_plans_the_whole_quick_run_with_the_readmes_command(tmp_path):
    """What a `git clone` holds (tracked and new files, nothing ignored): the README's `snakemake
    --cores all` plans every job of the quick configuration (the published results/quick/ are not
    its outputs), without Snakemake's provenance warnings, and ends with the reference comparison."""
    clone = tmp_path / "clone"
    for name in _tracked_files():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, clone / name)
    readme = (REPO / "README.md").read_text()
    assert "snakemake --cores all" in readme
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "all", "-n", "-p"],
                          capture_output=True, text=True, cwd=clone)  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-2000:]
    assert "provenance" not in text and "Nothing to be done" not in text
    assert "--out runs/quick/models/lam0 " in text and "--crop 64" in text  # without --configfile: quick
    quick = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    lambdas, methods = len(quick["train"]["lambdas"]), len(quick["pnp"]["methods"])
    planned = _planned(text)
    assert planned["train_base"] == 1 and planned["finetune"] == lambdas - 1 and planned["reference"] == 1
    assert planned["pnp"] == (lambdas + 1) * methods + 1 and planned["figures"] == 1  # + certified, TV once
    assert (clone / "results" / "quick" / "tables" / "results.csv").is_file()  # the reference it compares with


@pytest.mark.slow
def test_published_models_let_the_evaluation_run_without_training(tmp_path):
    """docs/workflow.md's recipe for `publish --models` (results/cpu/models): verify the data, copy the
    models in with one mtime, run. Snakemake then plans every evaluation and no training job."""
    workdir = _workdir(tmp_path)
    assert _snakemake(workdir, "-p", "runs/ci/data/verified.txt").returncode == 0
    labels = ["lam0", *(f"lam{lam_label(lam)}" for lam in _ci()["train"]["lambdas"][1:]), "certified"]
    for label in [*labels, "tv"]:  # results/<name>/models/ as published: TV too (any bytes: the plan reads none)
        (workdir / "runs" / "ci" / "models" / label).mkdir(parents=True)
        (workdir / "runs" / "ci" / "models" / label / "model.pt").write_bytes(b"published")
    stamp = time.time()
    for model in (workdir / "runs" / "ci" / "models").glob("*/model.pt"):
        os.utime(model, (stamp, stamp))  # `touch -d @<one time>`: no model is newer than another
    planned = _planned(_snakemake(workdir, "-n").stdout)
    assert not {"train_base", "finetune", "train_extra"} & planned.keys(), planned
    assert planned["tune_tv"] == 1  # its tuning table is not published: TV is tuned again (seconds)
    assert planned["lipschitz"] == len(labels) + 1 and planned["pnp"] >= len(labels) and planned["reference"] == 1


@pytest.mark.slow
def test_slurm_profile_plans_the_paper_configuration_which_replaces_the_quick_default(tmp_path):
    workdir = _workdir(tmp_path)
    shutil.copy(REPO / "config" / "paper.yaml", workdir / "config" / "paper.yaml")
    proc = _snakemake(workdir, "-n", "-p", "--profile", str(REPO / "profiles" / "slurm"), config="paper")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Snakemake merges --configfile into a `configfile:` directive's config: the paper run used to
    # inherit the quick run's crops and image cap
    commands = [line for line in (proc.stdout + proc.stderr).splitlines() if "lipbench " in line and "--out" in line]
    assert len(commands) > 20 and not [c for c in commands if "--crop" in c or "--max-images" in c]
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


@pytest.mark.slow
def test_calibrate_builds_only_the_models_and_their_lipschitz_tables_with_exact_lambdas(tmp_path):
    config = _ci()
    config["train"]["lambdas"] = [0.0, 1.0e-5, 1.0000001e-5]
    workdir = _workdir(tmp_path, config)
    plan = _snakemake(workdir, "-n", "-p", "calibrate")  # after an option: --configfile is greedy
    assert plan.returncode == 0, plan.stderr[-2000:]
    text = plan.stdout + plan.stderr
    expected = {"verify_data": 1, "train_base": 1, "finetune": 2, "lipschitz": 3, "calibrate": 1}
    assert _planned(text) == expected
    for label in ("1e-05", "1.0000001e-05"):  # the configured value, every digit, not the folder's text
        assert f"--out runs/ci/models/lam{label} --resume auto --lam {label} --init" in text


# -- the code hash -----------------------------------------------------------------------------------

# the modules each command's step imports, written out by hand: the independent check of the code
# hash's static import closure
LOADED = """
import importlib, json, os, sys
steps = json.loads(sys.argv[1])
for module in ["lipbench.cli", *steps.values()]:
    importlib.import_module(module)
for name in [n for n in sys.modules if n.split(".")[0] == "lipbench"]:
    del sys.modules[name]
for command, module in steps.items():
    pid = os.fork()
    if pid == 0:
        import lipbench.cli
        lipbench.cli.build_parser(command)
        importlib.import_module(module)
        files = [m.__file__ for n, m in list(sys.modules.items()) if n.split(".")[0] == "lipbench"]
        print(json.dumps([command, sorted(files)]), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
"""


@pytest.mark.slow
def test_code_hash_is_the_import_closure_of_each_step():
    package = REPO / "lipbench"
    train = set(code_closure("lipbench.steps.train"))
    always = {"cli.py", "__init__.py", "plumbing/errors.py", "plumbing/options.py"}
    assert {"steps/train.py", "plumbing/precision.py", "plumbing/seeding.py"} | always <= train
    for folder in ("lipschitz", "models", "data"):  # models/pretrained.py: `lipbench pretrained`'s, not training's
        assert {f"{folder}/{f.name}" for f in (package / folder).glob("*.py")} - {"models/pretrained.py"} <= train
    assert "steps/pnp.py" not in train and not any(f.startswith("workflow/") for f in train)
    aggregate = set(code_closure("lipbench.steps.aggregate"))
    assert {"steps/aggregate.py", "plumbing/io.py", *always} <= aggregate
    assert not aggregate & {"steps/train.py", "steps/pnp.py", "plumbing/precision.py", "models/__init__.py"}
    # independent: what Python loads when it runs a step's parser and imports its module is in the closure
    steps = {name: step_module(name) for name in STEPS}
    proc = subprocess.run([sys.executable, "-c", LOADED, json.dumps(steps)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = dict(json.loads(line) for line in proc.stdout.splitlines())
    assert set(loaded) == set(steps)
    for name, files in loaded.items():
        relative = {Path(f).resolve().relative_to(package.resolve()).as_posix() for f in files}
        assert relative - set(code_closure(steps[name])) == set(), name


def test_code_hash_follows_the_code_and_the_defaults(tmp_path, monkeypatch):
    hashes = {c: command_code_hash(c) for c in ("train", "pnp", "lipschitz", "aggregate", "grid")}
    code = tmp_path / "lipbench"
    shutil.copytree(REPO / "lipbench", code, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("LIPBENCH_CODE_ROOT", str(code))
    assert {c: command_code_hash(c) for c in hashes} == hashes  # relative paths: a copy hashes the same
    (code / "plumbing" / "precision.py").write_text((code / "plumbing" / "precision.py").read_text() + "\n# an edit\n")
    edited = {c: command_code_hash(c) for c in hashes}
    assert [c for c in hashes if edited[c] != hashes[c]] == ["train", "pnp", "lipschitz"]
    # a changed default of a step's settings reruns that step (the rules pass only what a config sets)
    grid = (code / "steps" / "grid.py").read_text()
    (code / "steps" / "grid.py").write_text(grid.replace("NO_EFFECT_RTOL = 0.05", "NO_EFFECT_RTOL = 0.06"))
    assert command_code_hash("grid") != edited["grid"]
    assert code_hash_of("lipbench.plumbing.precision") != code_hash_of("lipbench.models.tv")
    with pytest.raises(FileNotFoundError, match="lipbench.nope"):
        code_hash_of("lipbench.nope")
    with pytest.raises(LipbenchError, match="no command 'nope'"):
        command_code_hash("nope")


def test_code_closure_follows_every_kind_of_import(tmp_path, monkeypatch):
    """Relative imports, ``from package import submodule``, imports inside functions, parent
    packages' ``__init__.py``; ``if TYPE_CHECKING:`` imports never run."""
    files = {
        "__init__.py": "", "cli.py": "from lipbench import errors\n", "errors.py": "", "typed.py": "",
        "unused.py": "",
        "run.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lipbench import typed\n"
        + "def f():\n    import lipbench.a.b\n",
        "a/__init__.py": "", "a/b.py": "from . import c\nfrom .d import thing\n\ndef f():\n    from ..e import g\n",
        "a/c.py": "", "a/d.py": "thing = 1\n", "e/__init__.py": "g = 1\n", "e/f.py": "",
    }  # fmt: skip
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setenv("LIPBENCH_CODE_ROOT", str(tmp_path))
    assert code_closure("lipbench.run") == [
        "__init__.py", "a/__init__.py", "a/b.py", "a/c.py", "a/d.py", "cli.py", "e/__init__.py", "errors.py", "run.py",
    ]  # fmt: skip
    assert code_closure("lipbench.a.d") == ["__init__.py", "a/__init__.py", "a/d.py", "cli.py", "errors.py"]


def test_every_rule_hashes_the_command_it_runs():
    """``params: code=command_code_hash("X")`` of each rule names the ``lipbench X`` of its shell."""
    seen = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for block in [b for b in re.split(r"\n(?= *rule |use rule )", "\n" + text) if re.match(r" *(use )?rule ", b)]:
            name = re.match(r" *(?:use )?rule (\w+)", block).group(1)
            hashed = re.findall(r'code=command_code_hash\("([\w-]+)"\)', block)
            shell = re.findall(r'"lipbench ([\w-]+) ', block)
            base = re.match(r"use rule (\w+) as (\w+)", block)
            if base:
                name, shell = base.group(2), [seen[base.group(1)]]
            if not shell:  # a target (certify: inputs only), the reference rule without a published reference
                assert "lipbench " not in block.partition("shell:")[2].replace("`lipbench publish`", ""), name
                continue
            assert len(hashed) == 1 and hashed == shell, (smk.name, name)
            seen[name] = hashed[0]
    assert len(seen) >= 13


# -- end to end ------------------------------------------------------------------------------------


@pytest.mark.workflow
def test_ci_config_runs_end_to_end_matches_the_golden_table_and_reruns_only_what_code_changes_touch(tmp_path):
    """The ci configuration, once: every table and figure, the golden comparison (strict), the report,
    an empty rerun, and the reruns a code edit causes."""
    workdir = _workdir(tmp_path / "run")
    proc = _snakemake(workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reproduces" in proc.stdout + proc.stderr  # the reference verdict, printed at the end
    assert (workdir / "runs" / "ci" / "reference.md").read_text().startswith("runs/ci/tables/results.csv reproduces")
    tables = workdir / "runs" / "ci" / "tables"
    for name in ("lipschitz", "psnr", "convergence", "denoising", "grid", "tv_tuning"):
        assert all((tables / f"{name}.{ext}").is_file() for ext in ("csv", "md", "tex"))
    lip = pd.read_csv(tables / "lipschitz.csv")
    plain = lip[(lip.operator == "J") & (lip.point == "noisy")]
    worst = plain[plain.denoiser == "dncnn"].set_index("lam").lip2_Q_max
    assert worst.is_monotonic_decreasing and worst.iloc[-1] < worst.iloc[0]
    # the talk's comparisons are rows of every table: certified (‖∂Q‖ ≤ 1 by construction) and TV
    assert plain.set_index("denoiser").loc["certified", "lip2_Q_max"] <= 1 + 1e-4
    for name in ("psnr", "convergence", "denoising", "lipschitz"):
        assert {"dncnn", "certified", "tv"} <= set(pd.read_csv(tables / f"{name}.csv").denoiser)
    results = pd.read_csv(tables / "results.csv")
    assert {"git_commit", "lipbench_version", "torch_version", "device", "config_hash"} <= set(results.columns)
    figures = workdir / "runs" / "ci" / "figures"
    assert all((figures / f"{f}.{ext}").stat().st_size > 1000 for f in FIGURES for ext in ("pdf", "png"))
    report = _snakemake(workdir, "--report", str(workdir / "report.html"))
    assert report.returncode == 0 and (workdir / "report.html").stat().st_size > 100_000
    rerun = _snakemake(workdir)
    assert "Nothing to be done" in rerun.stdout + rerun.stderr

    # an identical copy of the code plans nothing; editing the PnP algorithm reruns PnP (and TV's
    # tuning, whose weight PnP runs choose), its evaluations (the Lipschitz ones run PnP for the points
    # where it goes, so every denoiser's, and the grid's verdict on them) and the tables, not training
    code = tmp_path / "code"
    shutil.copytree(REPO / "lipbench", code, ignore=shutil.ignore_patterns("__pycache__"))
    same = _snakemake(workdir, "-n", "--quiet", "rules", env={"LIPBENCH_CODE_ROOT": str(code)})
    assert same.returncode == 0 and _planned(same.stdout + same.stderr) == {}
    with open(code / "restoration" / "pnp.py", "a") as fh:
        fh.write("\n# an edit\n")
    plan = _snakemake(workdir, "-n", "--quiet", "rules", env={"LIPBENCH_CODE_ROOT": str(code)})
    assert plan.returncode == 0, plan.stderr
    expected = {"pnp": 7, "pnp_long": 2, "tune_tv": 1, "lipschitz": 4, "denoise": 1, "aggregate": 1, "figures": 1}
    expected["calibrate"] = 1
    assert _planned(plan.stdout + plan.stderr) == {**expected, "reference": 1, "all": 1}

    # a strict reference that the run does not reproduce fails it, naming what moved
    golden = pd.read_csv(GOLDEN, dtype={"image": str})  # as lipbench reads it (else 101085 becomes 101085.0)
    golden.loc[golden.metric == "tv_weight", "value"] *= 2
    tampered = workdir / "tampered.csv"
    golden.to_csv(tampered, index=False)
    config = yaml.safe_load((workdir / "config" / "ci.yaml").read_text())
    config["reference"]["table"] = str(tampered)
    (workdir / "config" / "ci.yaml").write_text(yaml.safe_dump(config))
    failed = _snakemake(workdir, "--forcerun", "reference")  # --forcerun is greedy: last
    assert failed.returncode != 0 and "Job stats" in failed.stdout + failed.stderr
    assert "tv_weight" in (workdir / "runs" / "ci" / "logs" / "reference.log").read_text()


@pytest.mark.workflow
def test_gpu_slice_is_the_paper_protocol_shortened_and_runs_at_tiny_size_on_cpu(tmp_path):
    """config/gpu-slice.yaml (run on a lent GPU by benchmarks/gpu.sh): the paper's model, PnP protocol,
    full BSD10 images and kernels, planned as a dry run, then run end to end at toy sizes."""
    gpu, paper = (yaml.safe_load((REPO / "config" / f"{n}.yaml").read_text()) for n in ("gpu-slice", "paper"))
    assert gpu["model"] == paper["model"] and 2 <= len(gpu["train"]["lambdas"]) <= 3
    same = ["protocol", "kernels", "kernel_sigma", "tf32"]
    assert {k: gpu["pnp"][k] for k in same} == {k: paper["pnp"][k] for k in same}
    assert not {"crop", "dataset", "sigma"} & (set(gpu["pnp"]) | set(paper["pnp"]))  # full BSD10, σ = 0.01
    assert gpu["pnp"]["long_runs"]["kernels"] == paper["pnp"]["long_runs"]["kernels"]
    assert gpu["train"]["base_steps"] < paper["train"]["base_steps"] / 10
    workdir = _workdir(tmp_path, copy.deepcopy(gpu))
    plan = _snakemake(workdir, "-n", "--quiet", "rules")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert _planned(plan.stdout + plan.stderr)["pnp"] == 2 * 2 + 1  # 2 λ × 2 methods, TV once
    tiny = copy.deepcopy(gpu)
    t, p, lip = tiny["train"], tiny["pnp"], tiny["lipschitz"]
    t.update(max_images=8, batch_size=4, patch_size=24, base_steps=4, finetune_steps=2, power_iters=2, refine_iters=3)
    p.update(crop=32, iters=5)
    p["long_runs"].update(iters=4, record_every=2)
    tiny.pop("tv")  # the same section as ci's, which the ci end-to-end test runs
    tiny["denoise"]["crop"] = 32
    lip.update(crop=16, tol=1e-2, max_iter=20)
    tiny.update(device="cpu", model={"depth": 3, "width": 8})
    workdir = _workdir(tmp_path / "tiny", tiny)
    run = _snakemake(workdir)
    assert run.returncode == 0, run.stderr[-3000:]
    psnr = pd.read_csv(workdir / "runs" / "gpu-slice" / "tables" / "psnr.csv")
    assert set(psnr.kernel) == set(gpu["pnp"]["kernels"])
    assert set(psnr.method) == {"pnp", "equivariant-random", "blurred input"}
    assert set(psnr.denoiser) == {"dncnn", "none"}  # none: the blurred input
    long = pd.read_csv(workdir / "runs" / "gpu-slice" / "pnp-long" / "lam0" / "random" / "final.csv")
    assert set(long.kernel) == {"levin1", "gaussian_1_0"} and len(long) == 10 * 2


def _train_processes(workdir: Path) -> list[int]:
    """The pids of the `lipbench train` processes writing under ``workdir``."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):  # gone meanwhile
            continue
        if " train --out " in cmdline and Path(f"/proc/{proc.name}/cwd").resolve() == workdir.resolve():
            pids.append(int(proc.name))
    return pids


@pytest.mark.workflow
def test_a_killed_training_job_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):
    """Kill the base training job (SIGKILL, as a scheduler's time limit or a lost node does) after its
    first checkpoints; the rerun says "resumed from step N" and ends with the uninterrupted run's model.pt."""
    config = _ci()
    config["train"].update(lambdas=[0.0], base_steps=300, checkpoint_every=10, probe_size=0)
    target = "runs/ci/models/lam0/model.pt"
    whole = _workdir(tmp_path / "whole", copy.deepcopy(config))
    assert _snakemake(whole, "-p", target).returncode == 0  # after an option: --configfile is greedy
    expected = hashlib.sha256((whole / target).read_bytes()).hexdigest()

    cut = _workdir(tmp_path / "cut", config)
    checkpoint = cut / "runs" / "ci" / "models" / "lam0" / "checkpoint.pt"
    cmd = [*SNAKEMAKE, "--directory", str(cut), "--configfile", str(cut / "config" / "ci.yaml"), "-p", target]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    running = subprocess.Popen(cmd, cwd=cut, env={**os.environ, "PATH": path}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (checkpoint.is_file() and _train_processes(cut)) and time.monotonic() < deadline:
            time.sleep(0.05)
        step = torch.load(checkpoint, weights_only=True)["step"]
        for pid in _train_processes(cut):
            os.kill(pid, signal.SIGKILL)
        assert running.wait(timeout=60) != 0  # Snakemake saw its job fail
    finally:
        running.kill()
    assert 10 <= step < 300 and not (cut / target).exists()

    rerun = _snakemake(cut, "-p", target)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    log = (cut / "runs" / "ci" / "logs" / "train" / "lam0.log").read_text()
    resumed = re.search(r"resumed from step (\d+) of ", log)
    assert resumed and int(resumed.group(1)) >= step, log[-2000:]
    assert hashlib.sha256((cut / target).read_bytes()).hexdigest() == expected


def test_data_stamp_follows_the_bytes_not_the_mtimes(tmp_path, data_dir):
    """A data folder copied anew (fresh mtimes) keeps verify_data's stamp, so nothing reruns; a flipped
    byte or a missing file changes it."""
    config = {"data": {"sources": ["set3c"], "root": str(tmp_path / "a")}}
    shutil.copytree(data_dir / "Set3C", tmp_path / "a" / "Set3C")
    stamp = data_stamp(config)
    moved = {"data": {"sources": ["set3c"], "root": str(tmp_path / "b")}}
    shutil.copytree(tmp_path / "a", tmp_path / "b", copy_function=shutil.copyfile)  # new mtimes
    for image in (tmp_path / "b" / "Set3C").iterdir():
        os.utime(image, (1e9, 1e9))
    assert data_stamp(moved) == stamp
    image = tmp_path / "b" / "Set3C" / "leaves.png"
    data = bytearray(image.read_bytes())
    data[-100] ^= 0xFF
    image.write_bytes(bytes(data))
    flipped = data_stamp(moved)
    image.unlink()
    assert len({stamp, flipped, data_stamp(moved)}) == 3


@pytest.mark.workflow
def test_changed_data_are_verified_again_before_any_job_reads_them(tmp_path, data_dir):
    """verify_data's params stamp the data files: a flipped byte (a file that still decodes) reruns the
    checksums, which stop the run naming the file."""
    root = tmp_path / "data"
    shutil.copytree(data_dir / "Set3C", root / "Set3C")
    config = _ci()
    config["data"] = {"sources": ["set3c"], "root": str(root)}
    workdir = _workdir(tmp_path / "run", config)
    target = "runs/ci/data/verified.txt"
    assert _snakemake(workdir, "-p", target).returncode == 0
    assert "set3c: ok (3 verified" in (workdir / target).read_text()
    assert _planned(_snakemake(workdir, "-n", "-p", target).stdout) == {}
    image = root / "Set3C" / "leaves.png"
    data = bytearray(image.read_bytes())
    data[-100] ^= 0xFF  # the same size, another SHA-256
    image.write_bytes(bytes(data))
    assert _planned(_snakemake(workdir, "-n", "-p", target).stdout) == {"verify_data": 1}
    failed = _snakemake(workdir, "-p", target)
    assert failed.returncode != 0
    log = (workdir / "runs" / "ci" / "logs" / "verify_data.log").read_text()
    assert "1 source(s) failed verification" in log and not (workdir / target).exists()


def test_every_shipped_configuration_passes_check_config(capsys):
    """config/*.yaml, the cpu scale included: schema, preflight (crops, kernels, models), one line each."""
    paths = sorted((REPO / "config").glob("*.yaml"))
    assert {p.name for p in paths} >= {"config.yaml", "ci.yaml", "cpu.yaml", "paper.yaml", "gpu-slice.yaml"}
    assert main(["check-config", *map(str, paths)]) == 0
    out = capsys.readouterr().out
    assert out.count(": ok (runs/") == len(paths) and "cpu.yaml: ok (runs/cpu, 6 denoisers)" in out
