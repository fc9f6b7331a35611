"""A user's own denoiser plugged in by name (``module:factory``): built, trained, checkpointed,
named in the tables, and every way it can be wrong is one clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lipbench.cli import main
from lipbench.models import build, denoiser_label, load_model, read_checkpoint
from lipbench.plumbing.errors import LipbenchError
from lipbench.workflow.config import check_models, validated
from lipbench.workflow.rules import extra_args

PLUGINS = Path(__file__).resolve().parent / "plugins"
REPO = Path(__file__).resolve().parents[1]
TRAIN = ["--dataset", "train400", "--max-images", "4", "--patch-size", "16", "--batch-size", "2", "--steps", "2"]
TRAIN += ["--probe-size", "0", "--device", "cpu", "--quiet"]


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGINS))
    sys.modules.pop("toy_denoiser", None)


def test_a_module_factory_name_builds_the_users_denoiser(plugins):
    model = build("toy_denoiser:make", width=3)
    assert type(model).__name__ == "Toy" and model.inner.out_channels == 3
    x = torch.rand(1, 1, 8, 8)
    torch.nn.init.zeros_(model.outer.weight), torch.nn.init.zeros_(model.outer.bias)
    assert torch.equal(model(x), x)  # the user's forward runs, not a stand-in


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_such_module:make", "cannot import module 'no_such_module'.*PYTHONPATH"),
        ("toy_denoiser:missing", "has no callable 'missing'"),
        ("toy_denoiser:NOT_CALLABLE", "has no callable 'NOT_CALLABLE'"),
        ("toy_denoiser:not_a_module", "returned a str, not a torch.nn.Module"),
        ("toy denoiser", "unknown model 'toy denoiser'.*module:factory"),
    ],
)
def test_every_wrong_plugin_is_one_error_naming_it(plugins, name, message):
    with pytest.raises(LipbenchError, match=message):
        build(name)


def test_train_a_plugin_and_read_it_back_under_its_label(plugins, tmp_path, capsys):
    args = ["--model", "toy_denoiser:make", "--model-kwargs", '{"width": 3}', "--label", "mine", *TRAIN]
    assert main(["train", "--out", str(tmp_path / "mine"), *args]) == 0
    payload = read_checkpoint(tmp_path / "mine" / "model.pt")
    assert payload["model_config"] == {"name": "toy_denoiser:make", "width": 3}
    assert denoiser_label(payload) == "mine"
    assert type(load_model(tmp_path / "mine" / "model.pt")).__name__ == "Toy"
    # a factory that does not import: exit 2, one line, nothing written
    bad = ["--model", "toy_denoisr:make", *TRAIN]
    assert main(["train", "--out", str(tmp_path / "bad"), *bad]) == 2
    err = capsys.readouterr().err
    assert "cannot import module 'toy_denoisr'" in err and "Traceback" not in err
    assert not (tmp_path / "bad" / "model.pt").exists()
    assert main(["train", "--out", str(tmp_path / "x"), "--model-kwargs", "[3]", *TRAIN]) == 2
    assert "--model-kwargs '[3]' is not a JSON object" in capsys.readouterr().err


@pytest.mark.slow  # a Snakemake dry run in a subprocess
def test_the_workflow_trains_a_configured_plugin_and_refuses_a_broken_one(plugins, tmp_path):
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    config["denoisers"] = {"mine": {"model": {"name": "toy_denoiser:make", "width": 3}, "steps": 5}}
    args = extra_args(validated(config), "mine")  # as the Snakefile does
    assert "--model toy_denoiser:make --model-kwargs width=3" in args
    assert "--steps 5" in args and "--label mine" in args and "--lam" not in args  # lam: train's default
    check_models(config)
    config["denoisers"]["mine"]["model"]["name"] = "toy_denoiser:gone"
    with pytest.raises(LipbenchError, match="config denoisers.mine.model.name: model 'toy_denoiser:gone'"):
        check_models(config)
    # through Snakemake: the error before any job, naming the config key
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "ci.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path)]
    proc = subprocess.run(
        [*cmd, "--configfile", str(tmp_path / "config" / "ci.yaml"), "-n"], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(PLUGINS)}, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "config denoisers.mine.model.name" in proc.stdout + proc.stderr
    assert not (tmp_path / "runs").exists()
