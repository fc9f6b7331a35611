"""Packaging: environment.yml and pyproject.toml cannot drift; CI runs the README's test command."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from lipbench import __version__

REPO = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch"}
NOT_PACKAGES = {"python", "pip"}


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_environment_yml_and_pyproject_list_the_same_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_side = [*project["dependencies"], *(d for extra in project["optional-dependencies"].values() for d in extra)]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge", "bioconda"]
    conda_side = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "python=3.11" in conda_side
    assert {"pip": ["-e ."]} in env["dependencies"]
    conda = {CONDA_TO_PIP.get(n, n): s for n, s in map(_split, conda_side) if n not in NOT_PACKAGES}
    pip = dict(map(_split, pip_side))
    assert conda == pip


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert match, "README.md must mark its test command with <!-- test-command -->"
    command = [line for line in match.group(1).splitlines() if line.strip()][-1].strip()
    ci = (REPO / ".ci" / "run").read_text()
    assert command.removeprefix("LIPBENCH_DATA=../shared/data ") in ci.splitlines()


@pytest.mark.slow
def test_console_script_is_installed():
    script = Path(sys.executable).with_name("lipbench")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == f"lipbench {__version__}"


def _closure(name: str, seen: set[str] | None = None) -> set[str]:
    """The distributions ``pip install <name>`` installs: its requirements without extras, transitively
    (markers evaluated for this interpreter)."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    seen = set() if seen is None else seen
    key = name.lower().replace("_", "-")
    if key in seen:
        return seen
    seen.add(key)
    try:
        requirements = requires(name) or []
    except PackageNotFoundError:
        return seen
    for text in requirements:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            _closure(req.name, seen)
    return seen


def test_the_install_command_brings_everything_the_main_job_and_its_report_need():
    """`pip install -e .` alone (no extras) installs what `snakemake --cores all` and `snakemake
    --report` import: the report renders code with pygments, which snakemake does not require."""
    installed = _closure("lipbench")
    assert {"torch", "snakemake", "pandas", "seaborn", "scikit-image", "pygments", "jinja2", "pyyaml"} <= installed
    assert "pytest" not in installed  # the test extra stays apart


def test_the_readme_runs_the_main_job_from_a_fresh_clone():
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- run-command -->\s*```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert match, "README.md must mark its run command with <!-- run-command -->"
    command = " ".join(match.group(1).split())
    assert "pip install -e ." in command and command.endswith("snakemake --cores all")
    assert '[ -n "$LIPBENCH_DATA" ] || lipbench fetch' in command  # offline: the data pointed to


def test_the_readme_tables_are_the_published_summaries_and_claims():
    """Every `lipbench summary` block of the README (the cpu scale's and quick's headline tables, the cpu
    scale's claims) is what the command prints for the committed table it names."""
    from lipbench.steps.claims import claims, claims_markdown
    from lipbench.steps.headline import summary_markdown

    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"<!-- summary: lipbench summary (\S+)( --claims)? -->\n(.*?)<!-- /summary -->", readme, re.S)
    assert {(path, flag) for path, flag, _ in blocks} == {
        ("results/cpu/tables/results.csv", ""),
        ("results/cpu/tables/results.csv", " --claims"),
        ("results/quick/tables/results.csv", ""),
    }
    for path, flag, text in blocks:
        assert text == (claims_markdown(claims(REPO / path)) if flag else summary_markdown(REPO / path)), path


def test_the_readmes_bounds_table_is_the_published_one():
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- bounds: (\S+) -->\n(.*?)<!-- /bounds -->", readme, re.S)
    assert match and match.group(1) == "results/quick/tables/bounds.md"
    assert match.group(2) == (REPO / match.group(1)).read_text()


def test_license_and_citation_match_the_project():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "GPL-3.0-or-later"
    license_text = (REPO / "LICENSE").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in license_text and "Version 3, 29 June 2007" in license_text
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["license"] == project["license"] and citation["version"] == project["version"]
    titles = {ref["title"] for ref in citation["references"]}
    assert {"Learning maximally monotone operators for image recovery",
            "Equivariant plug-and-play image reconstruction"} <= titles  # fmt: skip
