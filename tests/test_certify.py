"""A denoiser from elsewhere (``module:factory`` + weights verified by SHA-256) as a checkpoint, and
``lipbench certify``'s report, against independent computations; every bad input is one error."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from lipbench.cli import main
from lipbench.lipschitz import upper_bound
from lipbench.models import DnCNN, load_model
from lipbench.steps.certify import equivariance_gap

PLUGINS = Path(__file__).resolve().parent / "plugins"


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGINS))
    sys.modules.pop("toy_denoiser", None)


def _weights(tmp_path: Path, state: dict, name: str = "w.pt") -> tuple[str, str]:
    path = tmp_path / name
    torch.save(state, path)
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


def test_pretrained_weights_become_a_checkpoint_that_computes_the_same_denoiser(plugins, tmp_path):
    import toy_denoiser

    torch.manual_seed(0)
    net = toy_denoiser.make(width=3)
    path, digest = _weights(tmp_path, net.state_dict())
    out = tmp_path / "model.pt"
    argv = ["pretrained", "--model", "toy_denoiser:make", "--model-kwargs", "width=3", "--weights", path]
    assert main([*argv, "--sha256", digest, "--label", "mine", "--train-sigma", "0.02", "--out", str(out)]) == 0
    payload = torch.load(out, weights_only=True)
    assert payload["label"] == "mine" and payload["train_config"]["sigma"] == 0.02
    assert payload["pretrained"] == {"weights": path, "sha256": digest}
    x = torch.rand(2, 1, 17, 19)
    torch.testing.assert_close(load_model(out)(x), net.eval()(x), rtol=0, atol=0)


def test_every_bad_pretrained_denoiser_is_one_error_and_writes_nothing(plugins, tmp_path, capsys):
    import toy_denoiser

    good, digest = _weights(tmp_path, toy_denoiser.make(width=3).state_dict())
    wide, wide_digest = _weights(tmp_path, toy_denoiser.make(width=5).state_dict(), "wide.pt")
    state = toy_denoiser.make(width=3).state_dict()
    state["inner.bias"][0] = float("nan")
    nan, nan_digest = _weights(tmp_path, state, "nan.pt")
    model = ["--model", "toy_denoiser:make", "--model-kwargs", "width=3"]
    cases = [
        ([*model, "--weights", good, "--sha256", "0" * 64], "not the 0000"),
        ([*model, "--weights", good], "give their SHA-256"),
        ([*model, "--weights", wide, "--sha256", wide_digest], "do not fit model 'toy_denoiser:make'"),
        ([*model, "--weights", nan, "--sha256", nan_digest], "non-finite values (inner.bias)"),
        (["--model", "toy_denoiser:not_a_module"], "not a torch.nn.Module"),
        (["--model", "torch.nn:Flatten"], "an image of its input's shape"),
        ([*model, "--weights", str(tmp_path / "gone.pt"), "--sha256", digest], "do not exist"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert main(["pretrained", *extra, "--out", str(tmp_path / "out" / "model.pt")]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def _d4(x: torch.Tensor) -> list[tuple]:
    """The 8 maps of D4 and their inverses, written with torch.rot90 and flip (not lipbench's groups)."""
    out = []
    for k in range(4):
        out.append((lambda v, k=k: torch.rot90(v, k, (-2, -1)), lambda v, k=k: torch.rot90(v, -k, (-2, -1))))
        out.append(
            (lambda v, k=k: torch.rot90(v.flip(-1), k, (-2, -1)), lambda v, k=k: torch.rot90(v, -k, (-2, -1)).flip(-1))
        )
    return out


def test_the_report_writes_no_infinite_or_nan_number():
    from lipbench.steps.certify import _finite

    assert [_finite(v) for v in (float("inf"), float("nan"), 1.5, "tv", 3)] == [None, None, 1.5, "tv", 3]


def test_the_equivariance_gap_is_zero_for_an_equivariant_denoiser_and_matches_an_explicit_d4():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 12, 12)
    pointwise = DnCNN(depth=2, width=4).eval()
    with torch.no_grad():  # 1×1 kernels: J acts pixel by pixel, so J ∘ T_g = T_g ∘ J
        centre = torch.zeros(3, 3)
        centre[1, 1] = 1
        for conv in (pointwise.body[0], pointwise.body[2]):
            conv.weight.mul_(centre)
    assert equivariance_gap(pointwise, x)[["gap_mean", "gap_worst_g"]].abs().max().max() < 1e-5  # float32
    model = DnCNN(depth=3, width=4).eval()
    got = equivariance_gap(model, x)
    with torch.no_grad():
        out = model(x)
        parts = [inv(model(g(x))) for g, inv in _d4(x)]
        residual = (out - x).flatten(1).norm(dim=1)
        mean = torch.stack(parts).mean(0)
        expected_mean = (mean - out).flatten(1).norm(dim=1) / residual
        expected_worst = torch.stack([(p - out).flatten(1).norm(dim=1) for p in parts]).amax(0) / residual
    torch.testing.assert_close(torch.tensor(got.gap_mean.values), expected_mean, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(torch.tensor(got.gap_worst_g.values), expected_worst, rtol=1e-5, atol=1e-7)
    assert (got.gap_mean > 0.01).all()


def test_certify_reports_the_interval_the_gap_and_pnp_against_tv(tmp_path, random_checkpoint):
    out = tmp_path / "cert"
    argv = ["certify", "--checkpoint", random_checkpoint, "--out", str(out), "--crop", "32", "--points", "y",
            "iterates", "search", "--iters", "20", "--iterates", "0", "3", "--search-steps", "3",
            "--search-starts", "2", "--search-random", "1", "--tv-weights", "1e-5", "1e-3", "1e-1", "--tv-images",
            "2", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text(), parse_constant=pytest.fail)  # strict JSON: no NaN, inf
    lip = pd.read_csv(out / "lipschitz.csv", dtype={"image": str})
    assert report["worst_found"] == pytest.approx(lip[lip.operator == "J"].lip2_Q.max())
    bound = upper_bound(load_model(random_checkpoint), (32, 32))
    assert report["upper"] == pytest.approx(bound.lip2_Q) and report["upper_how"] == bound.how
    intervals = pd.read_csv(out / "intervals.csv")
    assert intervals.point.tolist() == ["y", "pnp k=0", "pnp k=3", "pnp k=20", "search"]
    pnp = pd.read_csv(out / "pnp.csv").set_index("method")
    assert list(pnp.index) == ["pnp", "equivariant-mean", "tv"] and pnp.runs.eq(10).all()
    assert 1e-5 < pnp.loc["tv", "tv_weight"] < 1e-1  # tuned: inside the grid
    # the same PnP run through `lipbench pnp` itself
    same = ["pnp", "--checkpoint", random_checkpoint, "--crop", "32", "--iters", "20", "--out", str(tmp_path / "p")]
    assert main(same) == 0
    final = pd.read_csv(tmp_path / "p" / "final.csv")
    assert pnp.loc["pnp", "psnr"] == pytest.approx(final.psnr.mean(), abs=1e-6)
    text = (out / "report.md").read_text()
    assert "# Certificate: dncnn" in text and ("NOT firmly nonexpansive" in text) == (report["worst_found"] > 1)
    assert (out / "report.html").read_text().startswith("<h2>Certificate: dncnn</h2>")
    assert main(["certify", "--out", str(tmp_path / "none")]) == 2  # no denoiser given
    assert not (tmp_path / "none").exists()


def test_the_workflow_wraps_configured_weights_and_checks_them_before_any_job(plugins, tmp_path):
    import os
    import shlex
    import subprocess

    import toy_denoiser
    import yaml

    from lipbench.plumbing.errors import LipbenchError
    from lipbench.workflow.config import validated
    from lipbench.workflow.preflight import preflight
    from lipbench.workflow.rules import certified_denoisers, denoisers, pretrained, pretrained_args

    repo = Path(__file__).resolve().parents[1]
    path, digest = _weights(tmp_path, toy_denoiser.make(width=3).state_dict())
    config = yaml.safe_load((repo / "config" / "ci.yaml").read_text())
    config["denoisers"]["mine"] = {
        "model": {"name": "toy_denoiser:make", "width": 3}, "weights": {"path": path, "sha256": digest}, "sigma": 0.02
    }  # fmt: skip
    run = validated(config)
    preflight(run)
    assert pretrained(run) == ["mine"] and "mine" in denoisers(run) and certified_denoisers(run) == denoisers(run)
    argv = shlex.split(pretrained_args(run, "mine"))
    assert argv[argv.index("--sha256") + 1] == digest and argv[argv.index("--train-sigma") + 1] == "0.02"
    assert main(["pretrained", *argv, "--out", str(tmp_path / "m" / "model.pt")]) == 0
    assert torch.load(tmp_path / "m" / "model.pt", weights_only=True)["label"] == "mine"
    bad = {**run, "denoisers": {"mine": {**run["denoisers"]["mine"], "weights": {"path": path, "sha256": "f" * 64}}}}
    with pytest.raises(LipbenchError, match=r"^config denoisers.mine.weights: weights .* have SHA-256"):
        preflight(bad)
    with pytest.raises(LipbenchError, match="config certify.denoisers"):
        certified_denoisers({**run, "certify": {"denoisers": ["nobody"]}})
    # Snakemake: the pretrained rule wraps it, nothing trains it
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(tmp_path)]
    proc = subprocess.run(
        [*cmd, "--configfile", str(tmp_path / "c.yaml"), "-n", f"runs/{config['name']}/models/mine/model.pt"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(PLUGINS)}, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "rule pretrained:" in proc.stdout and "rule train_extra:" not in proc.stdout
