"""Calibration of the λ grid: labels, verdicts and the crossing against hand-built tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lipbench.plumbing.errors import LipbenchError
from lipbench.steps.grid import assess, grid_table, summary


def _lipschitz(worst: dict[float, float], points: tuple[str, ...] = ("noisy", "tilde")) -> pd.DataFrame:
    """Rows of `lipbench lipschitz`: per λ and point, two images × two elements of J whose largest
    ‖∂Q‖² is ``worst[λ]``, and a J_G row above it that the calibration must ignore."""
    rows = []
    for lam, top in worst.items():
        for point in points:
            for image, element, value in (("a", "r0", top), ("a", "r1", top - 0.2), ("b", "r0", top - 0.1)):
                rows.append({"lam": lam, "point": point, "operator": "J", "image": image, "element": element,
                             "lip2_Q": value})  # fmt: skip
            rows.append({"lam": lam, "point": point, "operator": "J_G", "image": "a", "element": "mean",
                         "lip2_Q": top + 5})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_calibrated_grid_and_its_crossing():
    table = grid_table(_lipschitz({0.0: 2.0, 1e-5: 1.98, 1e-3: 1.4, 1e-1: 0.97}))
    noisy = table[(table.point == "noisy") & (table.scope == "crops")].set_index("lam")
    assert noisy.lip2_Q_max.tolist() == [2.0, 1.98, 1.4, 0.97]  # max over images and elements of J only
    assert noisy.reduction.tolist() == pytest.approx([0.0, 0.01, 0.3, 0.515])
    assert noisy.effect.tolist() == ["no effect", "no effect", "partial", "target met"]
    verdict = assess(table)
    assert verdict.calibrated and not verdict.saturated and verdict.suggestions == []
    # max ‖∂Q‖² meets 1 between λ = 1e-3 and 1e-1: linear interpolation in log λ (numpy as reference)
    expected = np.exp(np.interp(1.0, [0.97, 1.4], np.log([1e-1, 1e-3])))
    assert verdict.crossing == pytest.approx(expected, rel=1e-12)
    assert "is calibrated" in verdict.message() and f"{expected:.3g}" in verdict.message()


def test_missing_ends_get_a_suggestion_each():
    low = assess(grid_table(_lipschitz({0.0: 2.0, 1e-3: 1.5, 1e-2: 1.2})))
    assert not low.low_end and not low.high_end and not low.saturated and low.crossing is None
    assert "add λ = 1e-05" in low.message() and "add λ = 0.1" in low.message()
    assert "NOT calibrated" in low.message()


def test_a_saturated_penalty_is_not_cured_by_a_larger_lambda():
    verdict = assess(grid_table(_lipschitz({0.0: 2.0, 1e-6: 2.0, 1e-2: 1.07, 1e-1: 1.06})))
    assert verdict.low_end and verdict.saturated and not verdict.calibrated
    assert "will not help" in verdict.message() and "power_iters" in verdict.message()
    assert "add λ = 1" not in verdict.message()


def test_a_smallest_lambda_that_raises_the_norm_has_no_effect():
    # an unconstrained net's max moves by tens of % with training alone: only a reduction counts
    table = grid_table(_lipschitz({0.0: 2.0, 1e-7: 2.6, 1e-6: 1.92, 1.0: 0.99}))
    noisy = table[(table.point == "noisy") & (table.scope == "crops")]
    assert noisy.effect.tolist() == ["no effect", "no effect", "no effect", "target met"]
    assert assess(table).calibrated
    assert not assess(grid_table(_lipschitz({0.0: 2.0, 1e-6: 1.88, 1.0: 0.99}))).low_end  # 6 % reduction


def test_the_worst_point_decides_the_high_end():
    noisy = _lipschitz({0.0: 2.0, 1e-6: 2.0, 1.0: 0.9}, ("noisy",))
    lip = pd.concat([noisy, _lipschitz({0.0: 2.5, 1e-6: 2.5, 1.0: 1.2}, ("tilde",))])
    verdict = assess(grid_table(lip))
    assert verdict.low_end and not verdict.high_end


def test_the_verdict_is_decided_on_the_crops_and_reports_the_stricter_d4_max():
    lip = _lipschitz({0.0: 2.0, 1e-6: 2.0, 1.0: 0.98})
    lip.loc[lip.element == "r1", "lip2_Q"] = lip.loc[lip.element == "r1", "lip2_Q"] + 0.25  # a rotation is worse
    table = grid_table(lip)
    assert set(table.scope) == {"crops", "D4"}
    crops, d4 = (table[(table.scope == s) & (table.point == "noisy")].set_index("lam") for s in ("crops", "D4"))
    assert crops.lip2_Q_max.tolist() == [2.0, 2.0, 0.98]  # element r0 only
    assert d4.lip2_Q_max.tolist() == pytest.approx([2.05, 2.05, 1.03])  # every element
    assert d4.effect.tolist() == ["no effect", "no effect", "partial"]
    verdict = assess(table)
    assert verdict.calibrated and not assess(table, scope="D4").high_end
    text = summary(table, verdict)
    assert text.startswith("Scope crops") and "the λ grid is calibrated" in text and "Scope D4, every" in text
    assert "at the largest λ = 1 is 1.03: it does not meet the target 1" in text


def test_a_table_without_untransformed_rows_is_refused():
    lip = _lipschitz({0.0: 2.0, 1.0: 0.9})
    with pytest.raises(LipbenchError, match="element r0"):
        grid_table(lip[lip.element != "r0"])


@pytest.mark.parametrize("worst", [{1e-3: 1.0}, {0.0: 2.0}])
def test_the_grid_needs_zero_and_a_positive_lambda(worst):
    with pytest.raises(LipbenchError, match="λ = 0 and at least one λ > 0"):
        grid_table(_lipschitz(worst))


@pytest.mark.parametrize(("worst", "strict_rc"), [({0.0: 2.0, 1e-5: 1.99, 1.0: 0.95}, 0), ({0.0: 2.0, 1e-3: 1.5}, 1)])
def test_cli_writes_the_grid_and_strict_fails_an_uncalibrated_one(tmp_path, worst, strict_rc, run_cli):
    path = tmp_path / "lip.csv"
    _lipschitz(worst).to_csv(path, index=False)
    cmd = ["grid", "--lipschitz", path, "--out", tmp_path / "out"]
    assert run_cli(*cmd).code == 0
    assert run_cli(*cmd, "--strict").code == strict_rc
    written = pd.read_csv(tmp_path / "out" / "grid.csv")
    assert len(written) == 2 * 2 * len(worst)  # scopes × points × λ
    verdict = (tmp_path / "out" / "grid.md").read_text().splitlines()[-1]
    head = "the λ grid is calibrated" if strict_rc == 0 else "the λ grid is NOT calibrated"
    assert verdict.startswith(f"Scope crops, the test images as they are (paper 1's protocol): {head}")
    assert "\\ensuremath{\\lambda}" in (tmp_path / "out" / "grid.tex").read_text()
