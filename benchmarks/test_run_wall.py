"""benchmarks/run_wall.py: a run's wall time from its Snakemake logs, against hand-computed values."""

from __future__ import annotations

import json

import pytest
from run_wall import invocation, main

LOG = """Assuming unrestricted shared filesystem usage.
  Command: /venv/bin/snakemake --cores 2 --configfile config/cpu.yaml
Select jobs to execute...
[Thu Dec  3 21:26:53 2026]
localrule finetune:
[Thu Dec  3 21:26:53 2026]
localrule lipschitz:
[Thu Dec  3 21:29:57 2026]
Finished jobid: 20 (Rule: lipschitz)
[Thu Dec  3 23:01:07 2026]
Finished jobid: 2 (Rule: finetune)
"""


def test_an_invocation_lasts_from_its_first_stamp_to_its_last():
    part = invocation(LOG)
    assert part["wall_s"] == (23 - 21) * 3600 + (1 - 26) * 60 + (7 - 53)
    assert part["finished_jobs"] == 2 and part["command"].endswith("--configfile config/cpu.yaml")
    with pytest.raises(ValueError, match="no job ran"):
        invocation("Building DAG of jobs...\nNothing to be done.\n")


def test_the_runs_wall_adds_its_invocations_and_the_jobs_come_from_the_benchmark_files(tmp_path):
    run = tmp_path / "runs" / "cpu"
    (run / "benchmarks" / "train").mkdir(parents=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (run / "benchmarks" / "train" / "lam0.tsv").write_text(header + "3269.28\t0:54:29\t1\t1\t1\t1\t1\t1\t90\t2948.19\n")
    (run / "benchmarks" / "pnp.tsv").write_text(header + "70.5\t0:01:10\t1\t1\t1\t1\t1\t1\t99\t69.5\n")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    logs[0].write_text("[Thu Dec  3 18:59:18 2026]\n[Thu Dec  3 19:54:00 2026]\n")
    logs[1].write_text(LOG)
    main([str(run), *map(str, logs), "--out", str(tmp_path / "wall.json")])
    summary = json.loads((tmp_path / "wall.json").read_text())
    assert summary["wall_s"] == 54 * 60 + 42 + invocation(LOG)["wall_s"]
    assert summary["jobs"] == 2 and summary["job_wall_s"] == pytest.approx(3339.78)
    assert summary["job_cpu_s"] == pytest.approx(3017.69)
    assert {j["job"] for j in summary["per_job"]} == {"train/lam0", "pnp"}
