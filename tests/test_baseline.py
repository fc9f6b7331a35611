"""The TV baseline: PGD with the TV prox through the PnP code, against an independent PGD with
scikit-image's TV prox and scipy's circular correlation; the weight's tuning and its guards."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import correlate
from skimage.restoration import denoise_tv_chambolle

from lipbench.cli import main
from lipbench.data import centre_crop, image_ids, load_images, load_kernel
from lipbench.models import TVDenoiser, denoiser_label, load_model, read_checkpoint
from lipbench.plumbing.errors import LipbenchError
from lipbench.restoration.physics import Blur, observe
from lipbench.steps.pnp import PnPSettings, run_pnp
from lipbench.steps.tune_tv import chosen_weight, tune_tv, tuning_settings, write_tv

SETTINGS = PnPSettings(checkpoint="", dataset="train400", kernels=("levin1",), iters=15, crop=24, max_batch=4)


@pytest.mark.slow  # the reference TV prox converged to eps = 1e-12 (at 1e-10 it is 5e-5 off): 5 s
def test_tv_pgd_through_the_pnp_code_matches_an_independent_pgd():
    """x_{k+1} = clip(prox_{wTV}(clip(x_k − γ Aᵀ(A x_k − y)))), written with scipy's circular
    correlation and scikit-image's TV prox (same objective and boundary, converged), from x0 = y."""
    weight, gamma, iters = 0.02, 1.99, 8
    settings = PnPSettings(
        checkpoint="", dataset="bsd10", kernels=("levin1",), iters=iters, crop=20, max_images=1, gamma=gamma
    )
    ours = run_pnp(settings, model=TVDenoiser(weight=weight, iters=300), device="cpu")
    x_true = centre_crop(load_images("bsd10")[0], 20)  # levin1 is 19×19: no wrap-around
    kernel = load_kernel("levin1")
    y = observe(x_true, Blur(kernel), 0.01, image_ids("bsd10")[0], "levin1")[0].double().numpy()
    k = kernel.double().numpy()

    def blur(u: np.ndarray, flipped: bool = False) -> np.ndarray:
        return correlate(u, k[::-1, ::-1] if flipped else k, mode="wrap")

    x = y.copy()
    for _ in range(iters):
        z = np.clip(x - gamma * blur(blur(x) - y, flipped=True), 0, 1)
        x = np.clip(denoise_tv_chambolle(z, weight=weight, eps=1e-12, max_num_iter=20000), 0, 1)
    restored = ours["iterates"][f"{image_ids('bsd10')[0]}/levin1"][0].double().numpy()
    assert np.abs(restored - x).max() < 5e-5  # measured 5e-6; a 10 % weight error moves it by 3.7e-3
    assert ours["final"].denoiser.item() == "TVDenoiser" and np.isnan(ours["final"]["lam"].item())


def test_tuning_picks_the_best_weight_inside_the_grid_and_refines_around_it():
    table = tune_tv(tuning_settings(SETTINGS, 2), [1e-4, 1e-3, 1e-2, 1e-1], prox_iters=20, refine=2, device="cpu")
    grid = table[table.stage == "grid"].reset_index(drop=True)
    best = grid.psnr.idxmax()
    assert 0 < best < len(grid) - 1
    refined = table[table.stage == "refine"].prox_weight
    assert len(refined) == 2 and ((refined > grid.prox_weight[best - 1]) & (refined < grid.prox_weight[best + 1])).all()
    assert chosen_weight(table) == table.prox_weight[table.psnr.idxmax()] and table.chosen.sum() == 1
    # the score is the mean final PSNR of the PnP code itself at that weight
    again = run_pnp(tuning_settings(SETTINGS, 2), model=TVDenoiser(weight=chosen_weight(table), iters=20), device="cpu")
    assert again["final"].psnr.mean() == pytest.approx(table.psnr.max(), abs=1e-9)


def test_a_weight_on_the_grid_edge_and_a_bad_grid_are_errors():
    with pytest.raises(LipbenchError, match=r"the largest of the grid \(1e-06.*extend tv.weights"):
        tune_tv(tuning_settings(SETTINGS, 1), [1e-8, 1e-7, 1e-6], prox_iters=5, device="cpu")
    with pytest.raises(LipbenchError, match="at least|>= 3 distinct values"):
        tune_tv(tuning_settings(SETTINGS, 1), [1e-3, 1e-3, 1e-2], device="cpu")


def test_the_tuned_checkpoint_is_a_denoiser_every_step_reads(tmp_path):
    table = pd.DataFrame(
        {"stage": ["grid"] * 3, "prox_weight": [1e-3, 2e-3, 4e-3], "psnr": [1.0, 3.0, 2.0], "psnr_std": [0.0] * 3,
         "chosen": [False, True, False]}
    )  # fmt: skip
    write_tv(table, tuning_settings(SETTINGS, 2), tmp_path, prox_iters=7, train_sigma=0.009)
    payload = read_checkpoint(tmp_path / "model.pt")
    model = load_model(tmp_path / "model.pt")
    assert isinstance(model, TVDenoiser) and (model.weight, model.iters) == (2e-3, 7)
    assert denoiser_label(payload) == "tv" and payload["train_config"]["sigma"] == 0.009
    assert np.isnan(payload["train_config"]["lam"])
    tuning = pd.read_csv(tmp_path / "tuning.csv")
    assert tuning.tuning_dataset.tolist() == ["train400"] * 3 and tuning.tuning_images.tolist() == [2] * 3
    x = torch.rand(1, 1, 16, 16)
    assert torch.equal(model(x), TVDenoiser(weight=2e-3, iters=7).eval()(x))


def test_tune_tv_refuses_test_images(tmp_path, capsys):
    args = ["tune-tv", "--out", str(tmp_path / "tv"), "--dataset", "bsd68", "--test-dataset", "bsd10"]
    assert main([*args, "--images", "68", "--weights", "1e-3", "1e-2", "1e-1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "are in the test set bsd10: tune TV on other images" in err
    assert not (tmp_path / "tv").exists()
