"""The CPU-scale study's table: gaps to TV computed by hand, and the committed table up to date."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from cpu_scaling import FOLDER, read, study


def test_the_gap_is_the_mean_over_kernels_minus_tvs(tmp_path):
    rows = [
        {"run": "tv", "sy": 0.01, "pnp_levin1": 28.0, "pnp_gaussian_1_6": 26.0},
        {"run": "tv", "sy": 0.02, "pnp_levin1": 1.0, "pnp_gaussian_1_6": 1.0},  # another noise: ignored
        {"run": "d10w32", "depth": 10, "width": 32, "steps": 500, "train_s": 9.6, "den_psnr": 42.0,
         "den_noisy": 41.0, "pnp_levin1": 29.0, "pnp_gaussian_1_6": 26.5},
        {"run": "d10w32s02", "depth": 10, "width": 32, "sigma": 0.02, "steps": 500, "train_s": 1, "den_psnr": 1,
         "den_noisy": 1, "pnp_levin1": 1, "pnp_gaussian_1_6": 1},  # another training noise: left out
        {"run": "ft", "lam": 0.01, "pnp_levin1": 1, "pnp_gaussian_1_6": 1},  # a fine-tune: left out
        {"run": "long runs", "method": "standard", "peak": 1.0},  # another measurement, no depth: left out
    ]  # fmt: skip
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs, tv = read(tmp_path)
    table = study(runs, tv)
    assert tv == {"pnp_levin1": 28.0, "pnp_gaussian_1_6": 26.0} and len(table) == 1
    row = table.iloc[0]
    assert row.gap_to_tv == pytest.approx(0.75) and row.denoise_gain == pytest.approx(1.0)
    assert (row.model, row.train_s) == ("dncnn", 10)


def test_the_committed_scaling_table_is_up_to_date():
    committed = pd.read_csv(FOLDER / "scaling.csv")
    pd.testing.assert_frame_equal(committed, study(*read()), check_dtype=False)
