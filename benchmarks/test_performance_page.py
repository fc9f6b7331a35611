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
    for needle in ("quick configuration end to end", "cpu configuration end to end",
                   "## `config/paper.yaml` on one H100: estimate", "## Scaling",
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
    from paper_estimate import forward_units

    from lipbench.workflow.rules import read_effective

    paper = read_effective(REPO / "config" / "paper.yaml")
    units = forward_units(paper, lipschitz_iterations=100)
    lams, jobs = len(paper["train"]["lambdas"]), 10 * len(paper["pnp"]["kernels"])
    assert units["PnP"] == lams * paper["pnp"]["iters"] * jobs * (1 + 1 + 8)  # standard, random, mean
    assert units["denoise BSD68"] == lams * 68
    # a training step's patches in BSD10-image units: 100 × 40² pixels = 1.036 images
    assert units["train base"] == pytest.approx(paper["train"]["base_steps"] * 3 * 100 * 1600 / (481 * 321))


def test_lanczos_needs_fewer_products_than_power_iteration_for_the_same_sigma():
    """The saved side-by-side run (benchmarks/test_spectral_solvers.py) behind the evaluation's default."""
    from performance_page import solver_products

    runs, _, _ = load_results(RESULTS)
    products = solver_products(runs)
    assert products is not None, "no saved test_spectral_solvers run in benchmarks/results/"
    assert products["ratio"] < 0.5 and products["sigma_rel_diff"] < 1e-3  # the 0.1 % bound


def test_long_runs_count_their_own_kernels():
    from paper_estimate import forward_units

    from lipbench.workflow.rules import read_effective

    paper = read_effective(REPO / "config" / "paper.yaml")
    long = paper["pnp"]["long_runs"]
    units = forward_units(paper, lipschitz_iterations=100)
    assert units["long PnP runs"] == long["iters"] * 10 * len(long["kernels"]) * 2  # standard and random
    nine = forward_units({**paper, "pnp": {**paper["pnp"], "long_runs": {**long, "kernels": None}}}, 100)
    assert nine["long PnP runs"] == units["long PnP runs"] * 9 / 2


def test_plan_schedules_the_longest_ready_job_and_respects_dependencies():
    from paper_estimate import Job, plan

    work = [Job("base", "t", 10), Job("a", "t", 6, "base"), Job("b", "t", 4, "base"), Job("c", "t", 3),
            Job("d", "t", 2, "a")]  # fmt: skip
    one = plan(work, 1)
    assert one.makespan_s == one.busy_s == 25
    two = plan(work, 2)  # base ∥ c; a after base on the first GPU free at 10, b at 10 on the other
    assert two.finish == {"base": 10, "c": 3, "a": 16, "b": 14, "d": 18} and two.makespan_s == 18
    assert plan(work, 8).makespan_s == 18 == plan(work, 8).critical_path_s  # base → a → d
    assert one.lower_bound_s == 25 and two.lower_bound_s == 18
    with pytest.raises(ValueError, match="missing"):
        plan([Job("x", "t", 1, "missing")], 2)


def test_paper_jobs_add_up_to_the_stages_and_parallelise():
    from paper_estimate import from_slice, jobs, plan

    from lipbench.workflow.rules import read_effective

    paper = read_effective(REPO / "config" / "paper.yaml")
    unit = {"base_step_s": 0.01, "penalty_step_s": 0.05, "pnp_standard_iteration_s": 0.6, "pnp_random_iteration_s": 0.6,
            "pnp_mean_iteration_s": 5.0, "lipschitz_image_iteration_s": 0.01, "denoise_bsd68_s": 1.0,
            "pnp_tf32_speedup": 2.0}  # fmt: skip
    work = jobs(paper, unit, 50)
    lams, methods = len(paper["train"]["lambdas"]), len(paper["pnp"]["methods"])
    assert sum(j.stage == "PnP" for j in work) == lams * methods
    assert sum(j.seconds for j in work) == pytest.approx(sum(from_slice(paper, unit, 50).values()))
    # the tables' PnP in TF32 (pnp.tf32), the long runs in float32 on 2 of the 9 kernels
    table = next(j for j in work if j.name == "pnp lam0 standard")
    long = next(j for j in work if j.name == "long lam0 standard")
    assert table.seconds == pytest.approx(paper["pnp"]["iters"] * 0.6 / 2)
    assert long.seconds == pytest.approx(paper["pnp"]["long_runs"]["iters"] * 0.6 * 2 / 9)
    one, seven = plan(work, 1), plan(work, lams + 1)
    assert one.makespan_s == pytest.approx(one.busy_s) and seven.makespan_s < one.makespan_s / 4


def test_gpu_measure_smoke_run_writes_every_section(tmp_path):
    """benchmarks/gpu.sh's measurement script at toy sizes on the CPU, so it cannot rot."""
    from gpu_measure import main as measure

    assert measure(["--smoke", "--device", "cpu", "--out", str(tmp_path), "--skip", "training_options"]) == 0
    data = json.loads((tmp_path / "gpu-measure.json").read_text())
    assert {"throughput", "pnp_options", "pinned", "precision_effects", "slice"} <= data.keys()
    assert all("error" not in v for v in data.values() if isinstance(v, dict))
    estimate = data["slice"]["extrapolation"]
    assert estimate["total_s"] > 0 and estimate["dominant"] in estimate["stages_s"]
