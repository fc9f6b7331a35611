"""The performance page is generated from the saved measurements and shows every ratio with its goal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from performance_page import GOALS, RESULTS, load_results, main, render

REPO = Path(__file__).resolve().parents[1]


def test_page_from_the_saved_runs(tmp_path):
    runs, _, _ = load_results(RESULTS)
    assert runs, "benchmarks/results/ holds no saved run"
    page = render()
    for quantity, goal, _, _ in GOALS:
        assert quantity in page and (goal is None or f"≤ {goal}" in page)
    for needle in ("quick configuration end to end", "## `config/paper.yaml` on one H100: estimate", "## Scaling",
                   "test_pnp_iterations[standard]", "baseline", "NVIDIA H100"):  # fmt: skip
        assert needle in page
    assert main(["--out", str(tmp_path / "perf.md")]) == 0
    assert (tmp_path / "perf.md").read_text() == page


def test_committed_page_is_up_to_date():
    committed = REPO / "docs" / "performance.md"
    assert committed.read_text() == render(), "regenerate: python benchmarks/performance_page.py"


def test_fast_path_beats_the_generic_path_and_double_backward_in_every_saved_run():
    runs, _, _ = load_results(RESULTS)
    checked = 0
    for _, data in runs:
        medians = {b["name"]: b["stats"]["median"] for b in data["benchmarks"]}
        for shape in ("8x40x40", "1x256x256"):
            fast = medians.get(f"test_linearization[{shape}-fast-1.0]")
            if fast is None:
                continue
            assert fast < medians[f"test_linearization[{shape}-autograd-1.4]"]
            assert fast < medians[f"test_double_backward_reference[{shape}]"]
            checked += 1
    assert checked >= 4  # the CPU run and the H100 run, two shapes each


def test_paper_estimate_counts_the_configured_work():
    import yaml
    from paper_estimate import forward_units

    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    units = forward_units(paper, lipschitz_iterations=100)
    lams, jobs = len(paper["train"]["lambdas"]), 10 * len(paper["pnp"]["kernels"])
    assert units["PnP"] == lams * paper["pnp"]["iters"] * jobs * (1 + 1 + 8)  # standard, random, mean
    assert units["denoise BSD68"] == lams * 68
    # a training step's patches in BSD10-image units: 100 × 40² pixels = 1.036 images
    assert units["train base"] == pytest.approx(paper["train"]["base_steps"] * 3 * 100 * 1600 / (481 * 321))


def test_gpu_measure_smoke_run_writes_every_section(tmp_path):
    """benchmarks/gpu.sh's measurement script at toy sizes on the CPU, so it cannot rot."""
    from gpu_measure import main as measure

    assert measure(["--smoke", "--device", "cpu", "--out", str(tmp_path), "--skip", "training_options"]) == 0
    data = json.loads((tmp_path / "gpu-measure.json").read_text())
    assert {"throughput", "pnp_options", "pinned", "precision_effects", "slice"} <= data.keys()
    assert all("error" not in v for v in data.values() if isinstance(v, dict))
    estimate = data["slice"]["extrapolation"]
    assert estimate["total_s"] > 0 and estimate["dominant"] in estimate["stages_s"]
