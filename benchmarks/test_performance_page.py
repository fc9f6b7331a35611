"""The performance page is generated from the saved JSON and shows every ratio with its goal."""

from __future__ import annotations

from pathlib import Path

from performance_page import main, render

RESULTS = sorted((Path(__file__).parent / "results").glob("*.json"))


def test_page_from_the_saved_runs(tmp_path):
    assert RESULTS, "benchmarks/results/ holds no saved run"
    page = render(RESULTS)
    for needle in ("test_linearization", "autograd", "test_penalty_step_10_power_iterations",
                   "test_penalty_step_peak_memory", "test_pnp_iterations[standard]", "≤ 1.05", "baseline"):  # fmt: skip
        assert needle in page
    assert main([*map(str, RESULTS), "--out", str(tmp_path / "perf.md")]) == 0
    assert (tmp_path / "perf.md").read_text() == page


def test_committed_page_is_up_to_date():
    committed = Path(__file__).parents[1] / "docs" / "performance.md"
    assert committed.read_text() == render(RESULTS), "regenerate: python benchmarks/performance_page.py ..."


def test_fast_path_beats_the_generic_path_and_double_backward_in_every_saved_run():
    import json

    for path in RESULTS:
        medians = {b["name"]: b["stats"]["median"] for b in json.loads(path.read_text())["benchmarks"]}
        for shape in ("8x40x40", "1x256x256"):
            fast = medians[f"test_linearization[{shape}-fast-1.0]"]
            assert fast < medians[f"test_linearization[{shape}-autograd-1.4]"]
            assert fast < medians[f"test_double_backward_reference[{shape}]"]
