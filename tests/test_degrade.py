"""``lipbench degrade``: reproducible observations and their quality, clear errors, atomic output."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from lipbench.cli import main
from lipbench.data import centre_crop, load_images, load_kernel
from lipbench.restoration.physics import observation_seed


def test_degrade_bsd10_crops(tmp_path, capsys):
    out = tmp_path / "obs"
    args = ["degrade", "--dataset", "bsd10", "--kernels", "levin1", "gaussian_1_6", "--crop", "64"]
    assert main([*args, "--sigma", "0.01", "--out", str(out), "--save-images", "1"]) == 0
    assert "levin1" in capsys.readouterr().out
    table = pd.read_csv(out / "observations.csv", dtype={"image": str})
    assert len(table) == 20 and set(table.kernel) == {"levin1", "gaussian_1_6"}
    assert table.seed.nunique() == 20
    assert sorted(p.name for p in (out / "images").iterdir()) == ["101085_gaussian_1_6.png", "101085_levin1.png"]

    # recompute one row independently: scipy blur + the documented seed
    x = centre_crop(load_images("bsd10")[2], 64)[0].double().numpy()
    k = load_kernel("levin1").double().numpy()
    g = torch.Generator().manual_seed(observation_seed("102061", "levin1", 0.01))
    noise = torch.randn(1, 1, 64, 64, generator=g)[0, 0].double().numpy()
    y = scipy.ndimage.correlate(x, k, mode="wrap") + 0.01 * noise
    row = table[(table.image == "102061") & (table.kernel == "levin1")].iloc[0]
    expected = peak_signal_noise_ratio(x[6:-6, 6:-6], y[6:-6, 6:-6], data_range=1)
    assert row.psnr == pytest.approx(expected, abs=1e-3)

    png = np.asarray(Image.open(out / "images" / "101085_levin1.png"))
    assert png.shape == (64, 64) and png.dtype == np.uint8

    again = tmp_path / "again"
    assert main([*args, "--sigma", "0.01", "--out", str(again), "--save-images", "0"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(again / "observations.csv"), pd.read_csv(out / "observations.csv"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "bsd11"], "argument --dataset: invalid choice: 'bsd11'"),
        (["--kernels", "levin0"], "unknown kernel 'levin0'"),
        (["--crop", "5000"], "--crop 5000 must lie between"),
        (["--sigma", "-1"], "--sigma must be a finite number >= 0"),
        (["--root", "/nonexistent/data"], "data root /nonexistent/data .* does not exist: run `lipbench fetch`"),
    ],
)
def test_bad_arguments_give_one_clear_error_and_write_nothing(tmp_path, extra, message, run_cli):
    out = tmp_path / "obs"
    proc = run_cli("degrade", "--out", out, "--crop", "32", *extra)
    assert proc.code == 2
    assert "Traceback" not in proc.err
    assert len(proc.err.strip().splitlines()) == 1
    assert re.search(message, proc.err)
    assert not out.exists()
