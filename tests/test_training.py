"""``lipbench train``: bit-identical resume, the λ > 0 fine-tune lowers ‖∂Q‖², clear failures."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch
from checkpoints import TINY_TRAIN as TINY
from checkpoints import weights as _weights

import lipbench.steps.train as training
from lipbench.cli import main
from lipbench.data import PatchSampler, load_images
from lipbench.lipschitz import Reflected, spectral_norm
from lipbench.models import load_model, read_checkpoint
from lipbench.steps.train import TrainingError, run_identity, train, why_not_resume


def test_initial_weights_come_from_the_seed_not_the_global_rng(tmp_path):
    one = dataclasses.replace(TINY, steps=1, lam=0.0)
    torch.manual_seed(1)
    a = _weights(train(one, tmp_path / "a", progress=False))
    torch.manual_seed(2)
    state = torch.random.get_rng_state()
    b = _weights(train(one, tmp_path / "b", progress=False))
    assert torch.equal(state, torch.random.get_rng_state())
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = _weights(train(dataclasses.replace(one, seed=1), tmp_path / "c", progress=False))
    assert not torch.equal(a["body.0.weight"], c["body.0.weight"])


def test_interrupt_and_resume_is_bit_identical(tmp_path, tiny_run):
    full = tiny_run / "model.pt"  # train(TINY) uninterrupted
    partial = train(TINY, tmp_path / "cut", stop_after=8, progress=False)
    assert partial.name == "checkpoint.pt" and not (tmp_path / "cut" / "model.pt").exists()
    assert read_checkpoint(partial)["step"] == 8
    resumed = train(TINY, tmp_path / "cut", resume=True, progress=False)
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log_full = pd.read_csv(tiny_run / "log.csv")
    log_cut = pd.read_csv(tmp_path / "cut" / "log.csv")
    assert list(log_cut.step) == list(range(1, 13))
    pd.testing.assert_frame_equal(log_full.drop(columns="seconds"), log_cut.drop(columns="seconds"))
    assert log_full.lr.iloc[0] == 1e-3 and log_full.lr.iloc[-1] == pytest.approx(1e-5)  # StepLR every 5 steps
    final = read_checkpoint(full)
    assert final["train_config"] == TINY.to_dict() and final["lipbench_version"] and final["step"] == 12


def test_resume_refuses_a_changed_configuration(tmp_path):
    train(TINY, tmp_path, stop_after=4, progress=False)
    with pytest.raises(TrainingError, match="different lam"):
        train(dataclasses.replace(TINY, lam=0.5), tmp_path, resume=True, progress=False)


def test_auto_resume_continues_its_own_run_and_restarts_anything_else_saying_why(tmp_path, tiny_run, capsys):
    """``--resume auto`` (the workflow's): the same run continues to the uninterrupted weights; a
    checkpoint of other settings, code, torch or --init weights, or an unreadable one, is dropped."""
    full = _weights(tiny_run / "model.pt")
    train(TINY, tmp_path / "cut", stop_after=8, progress=False)
    resumed = train(TINY, tmp_path / "cut", resume="auto", progress=False)
    assert f"resumed from step 8 of {tmp_path / 'cut' / 'checkpoint.pt'}" in capsys.readouterr().out
    assert all(torch.equal(full[k], v) for k, v in _weights(resumed).items())

    ckpt = tmp_path / "other" / "checkpoint.pt"
    train(dataclasses.replace(TINY, lr=5e-4), tmp_path / "other", stop_after=4, progress=False)
    fresh = train(TINY, tmp_path / "other", resume="auto", progress=False)
    out = capsys.readouterr().out
    assert f"starting from step 0, not from {ckpt}: it was trained with different lr (saved [0.0005])" in out
    assert all(torch.equal(full[k], v) for k, v in _weights(fresh).items())
    assert list(pd.read_csv(tmp_path / "other" / "log.csv").step) == list(range(1, 13))

    train(TINY, tmp_path / "other", stop_after=4, progress=False)
    payload = torch.load(ckpt, weights_only=True)
    for key, value, said in [
        ("code_hash", "0123456789abcdef", "other training code (0123456789abcdef, now "),
        ("torch_version", "1.0", "other torch version (1.0, now "),
        ("init_sha256", "ab" * 32, f"other --init weights ({'ab' * 32}, now None)"),
        ("step", 99, "it is at step 99, past --steps 12"),
    ]:
        torch.save({**payload, key: value}, ckpt)
        assert said in why_not_resume({**payload, key: value}, TINY, run_identity(TINY))
        with pytest.raises(TrainingError, match="cannot resume from"):
            train(TINY, tmp_path / "other", resume=True, stop_after=5, progress=False)
        train(TINY, tmp_path / "other", resume="auto", stop_after=5, progress=False)
        assert said in capsys.readouterr().out
    ckpt.write_bytes(b"not a checkpoint")
    train(TINY, tmp_path / "other", resume="auto", stop_after=5, progress=False)
    assert f"starting from step 0, not from {ckpt}: it is unreadable" in capsys.readouterr().out
    assert torch.load(ckpt, weights_only=True)["step"] == 5


@pytest.mark.parametrize(("factor", "message"), [(float("nan"), "non-finite loss nan"), (1e20, "diverged loss")])
def test_non_finite_or_diverged_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, factor, message):
    real = training._data_loss
    calls = {"n": 0}

    def poisoned(kind, out, target):
        calls["n"] += 1
        loss = real(kind, out, target)
        return loss * factor if calls["n"] == 6 else loss

    monkeypatch.setattr(training, "_data_loss", poisoned)
    (tmp_path / "model.pt").write_bytes(b"an earlier run's model")  # removed: it is not this run's
    with pytest.raises(TrainingError, match=rf"{message} .* at step 6; model.pt is not written and the last good"):
        train(TINY, tmp_path, progress=False)
    payload = read_checkpoint(tmp_path / "checkpoint.pt")
    assert payload["step"] == 4 and all(torch.isfinite(t).all() for t in payload["model"].values())
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.slow
def test_penalised_fine_tune_lowers_the_jacobian_norm_on_held_out_patches(tmp_path):
    common = ["--model-kwargs", "depth=5", "width=16", "--dataset", "train400", "--max-images", "40"]
    common += ["--patch-size", "24", "--batch-size", "8", "--lr", "1e-3", "--quiet", "--checkpoint-every", "50"]
    assert main(["train", "--out", str(tmp_path / "base"), "--steps", "50", *common]) == 0
    base = tmp_path / "base" / "model.pt"
    args = ["--steps", "20", "--lam", "5e-2", "--power-iters", "10", "--init", str(base), *common]
    assert main(["train", "--out", str(tmp_path / "lam"), *args]) == 0

    held_out = load_images("train400")[350:370]  # never seen in training (first 40 images)
    x = PatchSampler(held_out, 24, 16, generator=torch.Generator().manual_seed(1)).sample()
    y = x + 0.009 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    worst = {}
    for name in ("base", "lam"):
        model = load_model(tmp_path / name / "model.pt")
        res = spectral_norm(Reflected(model), y, max_iter=300, tol=1e-5, solver="lanczos")
        assert res.converged.all()
        worst[name] = res.sigma.square().max().item()
    # measured: 1.049 → 1.005; the same 20 steps with --lam 0 end at 1.040, so the penalty makes the drop
    assert worst["lam"] < worst["base"] - 0.01


def test_bad_settings_are_one_clear_error(tmp_path, capsys, smallest_model):
    with pytest.raises(SystemExit, match="2"):  # argparse refuses unknown choices
        main(["train", "--out", str(tmp_path), "--loss", "l3"])
    assert main(["train", "--out", str(tmp_path), "--lr", "0", "--quiet"]) == 2
    assert "--lr must be > 0, got 0.0" in capsys.readouterr().err
    # a trained depth=2 width=4 model, fine-tuned as another architecture
    init = ["--init", str(smallest_model), "--model-kwargs", "depth=5", "width=8", "--dataset", "train400"]
    init.append("--quiet")
    assert main(["train", "--out", str(tmp_path / "ft"), *init]) == 2
    assert "use the same architecture arguments" in capsys.readouterr().err
    absent = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda:0"  # never present
    assert main(["train", "--out", str(tmp_path / "x"), "--device", absent, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device" in err and absent in err
    with pytest.MonkeyPatch.context() as mp:  # the out-of-range index refusal, on any machine
        mp.setattr(torch.cuda, "is_available", lambda: True)
        mp.setattr(torch.cuda, "device_count", lambda: 1)
        assert main(["train", "--out", str(tmp_path / "x"), "--device", "cuda:3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cuda:3: this machine has 1 CUDA device(s) (cuda:0..cuda:0)" in err
    assert not (tmp_path / "x").exists()  # refused before anything was written


@pytest.mark.slow
def test_the_probe_logs_the_converged_norm_and_leaves_the_run_unchanged(tmp_path, tiny_run):
    log = pd.read_csv(tiny_run / "log.csv")  # train(TINY): probed (probe_size 16) at every checkpoint
    probed = log.dropna(subset=["probe_sigma2_max"])
    assert probed.step.tolist() == [4, 8, 12]  # at every checkpoint
    assert (probed.probe_sigma2_mean <= probed.probe_sigma2_max).all()
    assert (log.refine_steps[log.step > 0] > 0).all()  # λ > 0: the worst samples were refined every step
    # the last probe against an independent estimate: power iteration to 1e-7 at the same points
    model = load_model(tiny_run / "model.pt").train()
    points = training.probe_set(TINY, load_images(TINY.dataset)[: TINY.max_images])
    with torch.no_grad():
        x_tilde = points.tau * model(points.x + TINY.sigma * points.noise) + (1 - points.tau) * points.x
    reference = spectral_norm(Reflected(model), x_tilde, max_iter=5000, tol=1e-7).sigma.double().square()
    assert probed.probe_sigma2_max.iloc[-1] == pytest.approx(reference.max().item(), rel=3e-4)
    assert probed.probe_sigma2_mean.iloc[-1] == pytest.approx(reference.mean().item(), rel=3e-4)
    # the probe draws from its own generator: without it the weights are bit-identical
    unprobed = train(dataclasses.replace(TINY, probe_size=0), tmp_path / "unprobed", progress=False)
    a, b = _weights(tiny_run / "model.pt"), _weights(unprobed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert pd.read_csv(tmp_path / "unprobed" / "log.csv").probe_sigma2_max.isna().all()


def test_the_probe_measures_a_batchnorm_net_in_eval_mode(tmp_path):
    config = dataclasses.replace(TINY, lam=0.0, steps=4, model_kwargs={"depth": 4, "width": 8, "batchnorm": True})
    train(config, tmp_path, progress=False)  # training batch-norm would mix the samples' Jacobians
    log = pd.read_csv(tmp_path / "log.csv")
    assert log.probe_sigma2_max.notna().tolist() == [False, False, False, True]
    assert log.probe_sigma2_max.iloc[-1] > 0
