"""The GPU options' device-independent logic, on the CPU: TF32 scoping, bf16 autocast, channels_last,
torch.compile of the PnP denoiser and the training loop's deferred host synchronisation."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch
from checkpoints import tiny_config, trained

import lipbench.steps.lipschitz as evaluate
import lipbench.steps.pnp as restore
import lipbench.steps.train as training
from lipbench.cli import main
from lipbench.lipschitz import Reflected, spectral_norm
from lipbench.models import DnCNN, load_model
from lipbench.plumbing.device import compile_denoiser
from lipbench.plumbing.errors import LipbenchError
from lipbench.plumbing.precision import autocast, tf32, tf32_enabled, to_channels_last
from lipbench.steps.pnp import PnPSettings, run_pnp
from lipbench.steps.train import train

TINY = tiny_config(steps=6, checkpoint_every=3, lr_step=None)  # 6 steps with the penalty, constant LR


@pytest.fixture(scope="module")
def tiny_log(tmp_path_factory, data_dir) -> pd.DataFrame:
    """The log of ``train(TINY)``: float32, channels_last (the default), no autocast."""
    return pd.read_csv(trained(tmp_path_factory.mktemp("tiny"), TINY, root=data_dir).parent / "log.csv")


def test_tf32_scope_sets_and_restores_both_backends():
    before = (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
    with tf32(True):
        assert tf32_enabled()
        with tf32(False):
            assert not tf32_enabled()
            assert torch.backends.cudnn.conv.fp32_precision == "ieee"
        assert tf32_enabled()
    assert (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == before


def test_reported_numbers_are_computed_without_tf32_unless_asked(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(restore, "_run_pnp", lambda *a: seen.setdefault("pnp", tf32_enabled()))
    monkeypatch.setattr(evaluate, "_evaluate_lipschitz", lambda *a: seen.setdefault("lip", tf32_enabled()))
    with tf32(True):  # even when the caller allowed it
        run_pnp(PnPSettings(checkpoint="unused"), device="cpu", model=torch.nn.Identity())
        evaluate.evaluate_lipschitz(evaluate.LipschitzSettings(checkpoint="unused"), device="cpu")
    assert seen == {"pnp": False, "lip": False}
    seen.clear()
    run_pnp(PnPSettings(checkpoint="unused", tf32=True), device="cpu", model=torch.nn.Identity())
    assert seen == {"pnp": True}


def test_training_runs_its_step_with_tf32_by_default(monkeypatch, tmp_path):
    flags = []
    real = training._data_loss
    monkeypatch.setattr(training, "_data_loss", lambda *a: flags.append(tf32_enabled()) or real(*a))
    train(dataclasses.replace(TINY, steps=2, lam=0.0), tmp_path / "a", progress=False)
    train(dataclasses.replace(TINY, steps=2, lam=0.0, tf32=False), tmp_path / "b", progress=False)
    assert flags == [True, True, False, False]


def test_bf16_autocast_training_tracks_float32(tmp_path, tiny_log):
    full = tiny_log
    half = pd.read_csv(
        train(dataclasses.replace(TINY, amp="bf16"), tmp_path / "bf16", progress=False).parent / "log.csv"
    )
    # bfloat16 keeps 8 mantissa bits: the same run, to about 1% per quantity
    pd.testing.assert_series_equal(half.loss, full.loss, rtol=3e-2)
    pd.testing.assert_series_equal(half.sigma2_max, full.sigma2_max, rtol=3e-2)
    assert not half.loss.equals(full.loss)  # autocast really ran in bf16
    with pytest.raises(LipbenchError, match="amp must be one of"):
        dataclasses.replace(TINY, amp="fp16")
    with pytest.raises(LipbenchError, match="amp must be one of"):
        autocast("fp8", torch.device("cpu"))


def test_channels_last_changes_the_layout_not_the_values(tmp_path, tiny_log):
    torch.manual_seed(0)
    model = DnCNN(depth=5, width=8).eval()
    x = torch.rand(3, 1, 17, 13, generator=torch.Generator().manual_seed(1))
    nhwc = to_channels_last(DnCNN(depth=5, width=8).eval(), True)
    nhwc.load_state_dict(model.state_dict())
    assert nhwc.body[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(nhwc(x), model(x), rtol=1e-5, atol=1e-6)
    a = spectral_norm(Reflected(model), x, max_iter=40, tol=0, generator=torch.Generator().manual_seed(2))
    b = spectral_norm(Reflected(nhwc), x, max_iter=40, tol=0, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a.sigma, b.sigma, rtol=1e-5, atol=0)
    assert TINY.channels_last  # the training default (measured faster on the CPU and on an H100)
    log = tiny_log
    nchw = dataclasses.replace(TINY, channels_last=False)
    ref = pd.read_csv(train(nchw, tmp_path / "ref", progress=False).parent / "log.csv")
    pd.testing.assert_series_equal(log.loss, ref.loss, rtol=1e-4)


def test_compiled_denoiser_gives_the_same_restoration(random_checkpoint):
    model = load_model(random_checkpoint)
    common = {"checkpoint": random_checkpoint, "kernels": ("levin1",), "iters": 5, "crop": 32}
    for eq in ("none", "mean"):
        plain = run_pnp(PnPSettings(**common, equivariance=eq, group="rotations"), device="cpu")
        traced = run_pnp(PnPSettings(**common, equivariance=eq, group="rotations", compile="eager"), device="cpu")
        pd.testing.assert_frame_equal(plain["records"], traced["records"], rtol=1e-6)
    with pytest.raises(LipbenchError, match="compile must be one of"):
        PnPSettings(**common, compile="fast")
    with pytest.raises(LipbenchError, match="compile mode must be one of"):
        compile_denoiser(model, "fast")
    assert compile_denoiser(model, "none") is model


def test_cli_gpu_flags_reach_the_settings(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(training, "train", lambda config, *a, **k: seen.setdefault("train", config) and tmp_path)
    monkeypatch.setattr(restore, "run_pnp", lambda settings, **k: seen.setdefault("pnp", settings) and 1 / 0)
    assert main(["train", "--out", str(tmp_path), "--no-tf32", "--amp", "bf16", "--no-channels-last"]) == 0
    assert (seen["train"].tf32, seen["train"].amp, seen["train"].channels_last) == (False, "bf16", False)
    with pytest.raises(ZeroDivisionError):
        main(["pnp", "--checkpoint", "x", "--out", str(tmp_path), "--tf32", "--compile", "reduce-overhead",
              "--channels-last"])  # fmt: skip
    assert (seen["pnp"].tf32, seen["pnp"].compile, seen["pnp"].channels_last) == (True, "reduce-overhead", True)


def test_non_finite_penalty_is_reported_at_its_step(tmp_path, monkeypatch):
    real = training.fne_penalty
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        out = real(*args, **kwargs)
        return dataclasses.replace(out, value=out.value * float("inf")) if calls["n"] == 5 else out

    monkeypatch.setattr(training, "fne_penalty", poisoned)
    with pytest.raises(training.TrainingError, match=r"non-finite loss .* \(penalty inf\) at step 5"):
        train(TINY, tmp_path, progress=False)
    assert training.read_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3


def test_a_training_step_reads_back_only_the_stopping_tests(device, monkeypatch):
    """No host read in a plain step; with the penalty, one per Lanczos step (its convergence test
    runs on the host) and, for the power-iteration screen, one ``any()`` per iteration from the third."""
    from conftest import ScalarReads

    import lipbench.lipschitz.lanczos as lanczos_module
    from lipbench.data import PatchSampler, load_images

    real, host = lanczos_module.to_host, {"n": 0}

    def counted(t):
        host["n"] += 1
        return real(t)

    monkeypatch.setattr(lanczos_module, "to_host", counted)
    counts = {}
    cases = {
        "plain": {"lam": 0.0},
        "power screen": {"lam": 1e-3, "power_tol": 0.0, "penalty_solver": "power", "refine": 0},
        "lanczos screen": {"lam": 1e-3, "power_tol": 0.0, "refine": 0},
        "lanczos screen + refine": {"lam": 1e-3, "power_tol": 0.0, "refine": 2, "refine_iters": 7, "refine_tol": 1e-9},
    }
    for name, changes in cases.items():
        config = dataclasses.replace(TINY, power_iters=4, **changes)
        state = training.initial_state(config, device)
        sampler = PatchSampler(load_images("train400")[:4], 24, 4, generator=state.generator)
        training.train_step(state, config, sampler, device)  # creates Adam's state
        counters = tuple(s["step"] for s in state.optimizer.state.values())  # CPU tensors: no synchronisation
        host["n"] = 0
        with ScalarReads(ignore=counters) as mode:
            row = training.train_step(state, config, sampler, device)
        counts[name] = (mode.count, host["n"])
        assert isinstance(row["loss"], torch.Tensor)  # converted when the log is written, not per step
    assert counts["plain"] == (0, 0)
    assert counts["power screen"] == (2, 0)  # `any()` at iterations 3 and 4
    assert counts["lanczos screen"] == (0, 4)  # one read per step
    assert counts["lanczos screen + refine"] == (0, 4 + 7)  # and per refinement step (tolerance out of reach)
