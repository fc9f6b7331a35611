"""The CPU-scale certified study: stages read as the FNE study reads them, the published model as stage 0,
gaps to TV, the committed table."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from cpu_certified_scale import FOLDER, PUBLISHED, collect, figure, study, tv_denoise_gain
from cpu_fne_steps import tv_psnr
from test_cpu_fne_steps import _stage

TV = {"levin1": 28.0, "gaussian_1_6": 26.0}


def _run(folder, depth, width, steps, init="", lipschitz_at=(), activation=None):
    lines = []
    for s in steps:
        line = {key: value for key, value in _stage(folder / f"s{s}").items() if key in ("stage_train_s", "dir")}
        if s not in lipschitz_at:
            (folder / f"s{s}" / "lipschitz.csv").unlink()
        line |= {"depth": depth, "width": width, "lr": 1e-3, "steps": s, "init": init}
        lines.append(line | ({"activation": activation} if activation else {}))  # None: written before splines
    (folder / "stages.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def test_stage_zero_is_the_published_model_and_gaps_are_to_tv(tmp_path):
    runs = [
        _run(tmp_path / "a", 6, 32, (0, 3000), "results/cpu/models/certified/model.pt", lipschitz_at=(3000,)),
        _run(tmp_path / "b", 12, 32, (1000, 2000), lipschitz_at=(2000,)),
        _run(tmp_path / "c", 6, 32, (1000,), "published-spline.pt", lipschitz_at=(1000,), activation="spline"),
    ]
    collect(runs, "x", tmp_path)
    collect(runs[1:2], "x", tmp_path)  # collected twice: counted once
    table = study(TV, tmp_path)
    assert table[["model", "steps", "source"]].values.tolist() == [
        ["certified 6×32", 3000, "results/cpu"], ["certified 6×32", 6000, "results/cpu, trained further"],
        ["certified 6×32 spline", 4000, "results/cpu, trained further"],
        ["certified 12×32", 1000, "from scratch"], ["certified 12×32", 2000, "from scratch"],
    ]  # fmt: skip
    assert table.activation.tolist() == ["leaky_relu"] * 2 + ["spline"] + ["leaky_relu"] * 2
    assert PUBLISHED == {"depth": 6, "width": 32, "steps": 3000}
    # _stage: levin1 28.5 (mean of 28 and 29), gaussian 26.0, crops 1.004 (not ≤ 1), denoising 43 − 41
    assert table.gap_to_tv.tolist() == pytest.approx([0.25] * 5)
    assert table.denoise_gain.tolist() == pytest.approx([2.0] * 5)
    assert table.crops_max.isna().tolist() == [True, False, False, True, False]  # measured at the last stage only
    assert table.fne_at_crops.tolist() == ["not measured", "no", "no", "not measured", "no"]
    figure(table, 0.95, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_tvs_denoising_gain_is_its_psnr_over_the_noisy_input(tmp_path):
    pd.DataFrame({"denoiser": ["dncnn", "tv"], "psnr": [43.0, 41.9], "psnr_noisy": [40.9, 40.9]}).to_csv(
        tmp_path / "d.csv", index=False
    )
    assert tv_denoise_gain(tmp_path / "d.csv") == pytest.approx(1.0)


def test_the_committed_certified_table_is_up_to_date():
    committed = pd.read_csv(FOLDER / "certified-scale.csv")
    pd.testing.assert_frame_equal(committed, study(tv_psnr()), check_dtype=False)
