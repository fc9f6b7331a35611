"""The CPU-scale FNE study: a stage's maxima and increases read by hand, gaps to TV, the committed table."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from cpu_fne_steps import FOLDER, collect, figure, stage_row, study, tv_psnr


def _stage(folder):
    (folder / "pnp").mkdir(parents=True)
    lip = pd.DataFrame(
        [("noisy", "J", "r0", 1.004), ("noisy", "J", "r1f", 1.009), ("noisy", "J_clamped", "r0", 1.5),
         ("search", "J", "r0", 1.2), ("noisy", "J", "r0", 0.998)],
        columns=["point", "operator", "element", "lip2_Q"],
    )  # fmt: skip
    lip.to_csv(folder / "lipschitz.csv", index=False)
    pd.DataFrame({"kernel": ["levin1", "levin1", "gaussian_1_6"], "psnr": [28.0, 29.0, 26.0]}).to_csv(
        folder / "pnp" / "final.csv", index=False
    )
    # image 1 in iteration order: 4, 3, 2, 2.5 (one increase; two in the file's order); image 2: none
    records = pd.DataFrame(
        {"image": [1, 1, 1, 1, 2, 2], "iteration": [2, 1, 3, 4, 1, 2], "c": [3.0, 4.0, 2.0, 2.5, 1.0, 0.5]}
    ).assign(denoiser="dncnn", lam=0.1, method="pnp", kernel="levin1")
    records.to_csv(folder / "pnp" / "records.csv", index=False)
    pd.DataFrame({"psnr": [42.0, 44.0], "psnr_noisy": [41.0, 41.0]}).to_csv(folder / "denoise.csv", index=False)
    return {"lam": 0.1, "lr": 1e-4, "eps": 0.05, "steps": 300, "stage_train_s": 600, "dir": str(folder)}


def test_a_stage_reads_the_noisy_crops_d4_and_increases(tmp_path):
    row = stage_row(_stage(tmp_path / "s300"))
    assert (row["crops_max"], row["d4_max"]) == (1.004, 1.009)  # J only, noisy only; r0 alone for the crops
    assert row["increases"] == 1 and row["pnp_levin1"] == 28.5 and row["pnp_gaussian_1_6"] == 26.0
    assert (row["den_psnr"], row["den_noisy"]) == (43.0, 41.0)


def test_the_gap_is_the_mean_over_kernels_minus_tvs(tmp_path):
    row = stage_row(_stage(tmp_path / "s300"))
    shrunk = stage_row(_stage(tmp_path / "b") | {"beta": 0.996}) | {"crops_max": 0.99}
    (tmp_path / "fne-steps-x.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(shrunk) + "\n")
    table = study({"levin1": 28.0, "gaussian_1_6": 26.0}, tmp_path)
    assert table.setting.tolist() == ["λ = 0.1, LR 0.0001, ε = 0.05", "λ = 0.1, LR 0.0001, ε = 0.05, β = 0.996"]
    assert table.gap_to_tv.tolist() == pytest.approx([0.25, 0.25]) and table.fne_at_crops.tolist() == [False, True]
    assert table.denoise_gain.iloc[0] == pytest.approx(2.0)


def test_a_width_run_takes_its_base_from_beside_it_and_draws_the_width_axis(tmp_path):
    stages = []
    for width, folder in ((16, tmp_path / "w16"), (48, tmp_path / "w48")):
        (folder / "ft").mkdir(parents=True)
        (folder / "base.jsonl").write_text(
            json.dumps({"width": width, "base_steps": 100, "base_train_s": 1}) + "\n"
            + json.dumps({"width": width, "base_steps": 4000, "base_train_s": 9}) + "\n"  # resumed: the last counts
        )  # fmt: skip
        lines = [_stage(folder / "ft" / f"s{steps}") | {"steps": steps} for steps in (0, 300)]
        (folder / "ft" / "stages.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        stages.append(folder / "ft")
    published = tmp_path / "published"
    published.mkdir()
    (published / "stages.jsonl").write_text(json.dumps(_stage(tmp_path / "p" / "s300")) + "\n")
    collect([*stages, published], "x", tmp_path)
    table = study({"levin1": 28.0, "gaussian_1_6": 26.0}, tmp_path)
    assert table[["width", "base_steps", "steps"]].values.tolist() == [
        [16, 4000, 0], [16, 4000, 300], [48, 4000, 0], [48, 4000, 300], [32, 13000, 300]
    ]  # fmt: skip
    figure(table, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_the_committed_fne_table_is_up_to_date():
    committed = pd.read_csv(FOLDER / "fne-steps.csv")
    pd.testing.assert_frame_equal(committed, study(tv_psnr()), check_dtype=False)
