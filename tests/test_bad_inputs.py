"""Every bad input a user can give a command: exit code 2, one line on stderr naming the argument
or file, and nothing half-written (the output path absent afterwards)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lipbench.cli import main

# checkpoints.SMALLEST_TRAIN as options
TRAIN = ["--model-kwargs", "depth=2", "width=4", "--dataset", "train400", "--max-images", "2", "--patch-size", "16",
         "--batch-size", "2", "--steps", "2", "--probe-size", "0", "--quiet"]  # fmt: skip


@pytest.fixture
def models(smallest_model, nan_model) -> dict[str, Path]:
    """A tiny trained model and a copy of it with one NaN weight."""
    return {"good": smallest_model, "nan": nan_model}


def _cases(good: str, nan: str) -> list[tuple[list[str], str]]:
    pnp = ["pnp", "--checkpoint", good, "--iters", "2", "--crop", "20", "--max-images", "1"]
    lip = ["lipschitz", "--checkpoint", good, "--max-iter", "2", "--dataset", "set12"]
    den = ["denoise", "--checkpoint", good, "--dataset", "set12"]
    # train400's grey PNGs: loading bsd400, tune-tv's default, converts 400 colour JPEGs (3 s) to reach the check
    tv = ["tune-tv", "--dataset", "train400", "--iters", "2", "--crop", "20", "--images", "1"]
    tv += ["--weights", "0.01", "0.1", "1"]
    return [
        (["train", *TRAIN, "--clip", "-1"], "--clip must be >= 0, got -1.0"),
        (["train", *TRAIN, "--lam", "nan"], "--lam must be a finite number >= 0, got nan"),
        (["train", *TRAIN, "--eps", "-5"], "--eps must be >= 0 and < 1, got -5.0"),
        (["train", *TRAIN, "--sigma", "inf"], "--sigma must be a finite number > 0, got inf"),
        (["train", *TRAIN, "--lr", "nan"], "--lr must be a finite number > 0, got nan"),
        (["train", *TRAIN, "--steps", "0"], "--steps must be >= 1, got 0"),
        (["train", *TRAIN, "--loss", "l3"], "argument --loss: invalid choice: 'l3'"),
        (["train", *TRAIN[3:], "--model-kwargs", "[1]"], "--model-kwargs '[1]' is not a JSON object"),
        (["train", *TRAIN, "--init", nan], f"checkpoint {nan} has non-finite weights"),
        (["train", *TRAIN, "--lr", "1e12", "--clip", "0", "--steps", "30"], "model.pt is not written"),
        ([*pnp, "--gamma", "2.5"], "γ‖AᵀA‖ = 2.5 for levin1 on a 20×20 grid"),
        ([*pnp, "--gamma", "nan"], "--gamma must be a finite number > 0, got nan"),
        ([*pnp, "--crop", "0"], "--crop must be >= 13, got 0"),
        ([*pnp, "--iters", "0"], "--iters must be >= 1, got 0"),
        ([*pnp, "--kernels", "nope"], "unknown kernel 'nope'"),
        ([*pnp, "--kernels", "gaussian_1_6"], "kernel gaussian_1_6 is 25×25, larger than the 20×20 image"),
        ([*pnp, "--kernel-sigma", "levin1=inf"], "--kernel-sigma values must be finite"),
        ([*pnp, "--clamp", "maybe"], "argument --clamp: invalid choice"),
        ([*pnp[:2], nan, *pnp[3:]], f"checkpoint {nan} has non-finite weights"),
        ([*pnp[:2], "missing.pt", *pnp[3:]], "checkpoint missing.pt does not exist"),
        ([*lip, "--crop", "0"], "--crop must be >= 1, got 0"),
        ([*lip, "--crop", "-3"], "--crop must be >= 1, got -3"),
        ([*lip, "--crop", "100000"], "--crop 100000 must lie between 1 and the image's smaller side"),
        ([*lip, "--sigma", "inf"], "--sigma must be a finite number > 0, got inf"),
        ([*lip, "--tol", "nan"], "--tol must be a finite number >= 0, got nan"),
        ([*lip, "--points", "pnp"], "--points pnp needs --pnp-final"),
        ([*den, "--crop", "0"], "--crop must be >= 1, got 0"),
        ([*den, "--sigma", "inf"], "--sigma must be a finite number > 0, got inf"),
        ([*den[:2], nan, *den[3:]], f"checkpoint {nan} has non-finite weights"),
        (["degrade", "--sigma", "inf"], "--sigma must be a finite number >= 0, got inf"),
        (["degrade", "--crop", "5"], "--crop 5 must lie between 13"),
        (["degrade", "--crop", "20", "--kernels", "gaussian_1_6"], "kernel gaussian_1_6 is 25×25"),
        ([*tv, "--weights", "-1", "0.1", "1"], "--weights must be > 0, got -1.0"),
        ([*tv, "--prox-iters", "0"], "--prox-iters must be >= 1, got 0"),
        ([*tv, "--gamma", "3"], "γ‖AᵀA‖ = 3"),
        (["grid", "--lipschitz", "t.csv", "--no-effect", "nan"], "--no-effect must be a finite number > 0 and <= 1"),
        (["grid", "--lipschitz", "t.csv", "--target", "inf"], "--target must be a finite number > 0, got inf"),
    ]


CASES = _cases("GOOD", "NAN")


@pytest.mark.parametrize("index", range(len(CASES)), ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES])
def test_a_bad_input_is_one_line_exit_2_and_nothing_written(index, models, tmp_path, capsys):
    argv, expected = _cases(str(models["good"]), str(models["nan"]))[index]
    out = tmp_path / ("out.csv" if argv[0] in ("lipschitz", "denoise") else "out")
    try:
        code = main([*argv, "--out", str(out)])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"lipbench {argv[0]}: error: "), err
    assert expected in err, err
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())


def test_a_failed_pnp_run_leaves_no_earlier_outputs(models, tmp_path, capsys):
    """Snakemake removes a failed rule's declared outputs (final.csv, records.csv); the run itself
    removes the rest of an earlier run's (final.pt, settings.json, images)."""
    out = tmp_path / "pnp"
    argv = ["pnp", "--checkpoint", str(models["good"]), "--iters", "2", "--crop", "20", "--max-images", "1"]
    assert main([*argv, "--out", str(out), "--save-images", "1"]) == 0
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert {"final.pt", "settings.json", "final.csv", "records.csv"} <= set(before) and any(
        "images/" in p for p in before
    )
    (out / "notes.txt").write_text("the user's own file")
    assert main([*argv, "--out", str(out), "--kernels", "nope"]) == 2
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["notes.txt"]
    capsys.readouterr()


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "config file {path} does not exist"),
        ("name: x\n  bad: [\n", "{path}:2:6: YAML syntax error: mapping values are not allowed here"),
        ("- a list\n", "config file {path} holds a list, not a mapping of settings"),
        ({"pnp": {"iters": -1}}, "config file {path}: pnp.iters: -1 is less than the minimum of 1"),
        ({"pnp": {"kernels": ["levin1", "levin9"]}}, "config pnp.kernels: unknown kernel 'levin9'"),
        ({"pnp": {"kernel_sigma": {"gaussian_9": 0.1}}}, "config pnp.kernel_sigma: unknown kernel 'gaussian_9'"),
        ({"train": {"bogus": 1}}, "config file {path}: train: Additional properties are not allowed ('bogus'"),
        # what a job would refuse, hours later (lipbench.workflow.preflight)
        ("name: x\ndevice: cpu\nname: y\n", "{path}:3:1: key 'name' is set twice (first on line 1): keep one"),
        (
            {"pnp": {"long_runs": {"lambdas": [0.5], "methods": ["standard"], "iters": 5}}},
            "config pnp.long_runs.lambdas: [0.5] not in train.lambdas [0.0, 0.01]",
        ),
        ({"pnp": {"crop": 400}}, "config pnp.crop: 400 is larger than the smallest bsd10 image side (321): choose"),
        ({"train": {"patch_size": 200}}, "config train.patch_size: 200 is larger than the smallest train400 image"),
        ({"lipschitz": {"crop": 322}}, "config lipschitz.crop: 322 is larger than the smallest bsd10 image side"),
        ({"denoise": {"crop": 1000}}, "config denoise.crop: 1000 is larger than the smallest bsd68 image side"),
        ({"train": {"dataset": "bsd4000"}}, "config file {path}: train.dataset: 'bsd4000' is not one of ['bsd10'"),
        ({"tv": {"dataset": "bsd10"}}, "config tv.dataset: bsd10's first 2 images include test images of bsd10"),
        ({"tv": {"dataset": "bsd68"}}, "config tv.dataset: bsd68's first 2 images include test images of bsd10"),
        (
            {"denoisers": {"toy": {"model": {"name": "toy_denoiser:broken"}}}},
            "config denoisers.toy.model: model 'toy_denoiser:broken' raised ValueError when built with {{}}: no toy",
        ),
        (
            {"denoisers": {"toy": {"model": {"name": "toy_denoiser:not_a_module", "width": 2}}}},
            "config denoisers.toy.model: model 'toy_denoiser:not_a_module' returned a str, not a torch.nn.Module",
        ),
        ({"model": {"depth": 0}}, "config model: model 'dncnn' raised ValueError when built with"),
        (
            {"denoisers": {"tv": {"model": {"name": "certified"}}}},
            "denoisers.tv: the name tv is the TV baseline's and names starting with lam are the λ grid's",
        ),
        ({"denoisers": {"lam_mine": {"model": {"name": "certified"}}}}, "denoisers.lam_mine: the name tv is the TV"),
    ],
)
def test_check_config_names_the_file_line_or_key(tmp_path, capsys, monkeypatch, text, expected):
    """Raw text, or a change to config/ci.yaml's sections."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))  # toy_denoiser:...
    path = tmp_path / "config.yaml"
    if isinstance(text, dict):
        config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
        for section, values in text.items():
            config.setdefault(section, {}).update(values)
        text = yaml.safe_dump(config)
    if text is not None:
        path.write_text(text)
    assert main(["check-config", str(REPO / "config" / "ci.yaml"), str(path)]) == 2
    out, err = capsys.readouterr()
    assert out.startswith(f"{REPO / 'config' / 'ci.yaml'}: ok (runs/ci, ")
    assert err.count("\n") == 1 and expected.format(path=path) in err, err


def _aggregate_inputs(folder: Path) -> list[str]:
    """``lipbench aggregate``'s arguments over one-image synthetic PnP and Lipschitz tables."""
    coords = {"denoiser": "dncnn", "lam": 0.0, "method": "pnp", "image": "a", "kernel": "levin1"}
    tables = {
        "finals": pd.DataFrame([{**coords, "psnr": 25.0, "psnr_best": 25.5, "ssim": 0.7, "psnr_input": 20.0}]),
        "records": pd.DataFrame([{**coords, "iteration": k, "c": 1e-2 / k, "psnr": 20.0 + k} for k in (1, 2, 3)]),
        "lipschitz": pd.DataFrame(
            [{**coords, "point": "noisy", "operator": "J", "element": "r0", "lip_J": 1.1, "lip2_Q": 1.3}]
        ),
    }
    argv = ["aggregate"]
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False)
        argv += [f"--{name}", str(folder / f"{name}.csv")]
    return argv


def test_a_full_disk_leaves_no_table_and_names_the_output(tmp_path, capsys, monkeypatch):
    """aggregate writes 13 files here: the disk full after 4 of them, none is left, and the error names the 5th."""
    argv = _aggregate_inputs(tmp_path)
    out = tmp_path / "run" / "tables"
    assert main([*argv, "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 13 and "results.csv" in written
    shutil.rmtree(out)
    calls = []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) > 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)
    capsys.readouterr()
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"lipbench aggregate: error: cannot write {out}/"), err
    assert "No space left on device" in err and ".staging-" not in err
    assert list((tmp_path / "run").iterdir()) == []
