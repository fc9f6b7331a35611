"""The numbers the README's prose quotes from the published results cannot drift from them.

A quoted number carries its source right after it, invisible on GitHub:
``26.30 dB<!-- q: quick pnp dncnn 0.1 -->`` is run ``quick``'s mean final PnP PSNR of ``dncnn`` at
λ = 0.1, to the decimals written. Columns: those of ``lipbench summary`` (``lip2_Q``, ``worst_found``,
``pnp``, ``equivariant-random``, ``denoise_psnr``) and of ``tables/bounds.csv`` (``worst_clamped``,
``upper``); λ as ``lipbench summary`` writes it (``%g``, ``—`` for none). A number taken from
elsewhere names its file instead: ``1.037<!-- from: benchmarks/results/penalty-points/README.md -->``.
In the results sections every number with two or more decimals must carry one or the other.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from lipbench.plumbing.io import read_table
from lipbench.steps.headline import COLUMNS, lam_text, summary_table

REPO = Path(__file__).resolve().parents[1]
NUMBER = r"(\d+(?:\.\d+)?)"
QUOTE = re.compile(NUMBER + r"(?: dB| %)?<!-- q: (\S+) (\S+) (\S+) (\S+) -->")
FROM = re.compile(NUMBER + r"(?: dB| %)?<!-- from: (\S+) -->")
RESULTS_SECTIONS = ("## Results at a glance", "## Run it")  # from the first heading to the second


@cache
def published(run: str) -> pd.DataFrame:
    """Run ``run``'s quotable values, one row per denoiser and λ (as ``lipbench summary`` writes λ)."""
    tables = REPO / "results" / run / "tables"
    summary = summary_table(read_table(tables / "results.csv", ["step", "denoiser", "lam", "metric", "value"]))
    summary = summary.rename(columns={v: k for k, v in COLUMNS.items()}).set_index(["denoiser", "lam"])
    bounds = pd.read_csv(tables / "bounds.csv")
    bounds["lam"] = bounds.lam.map(lam_text)
    return summary.join(bounds.set_index(["denoiser", "lam"])[["worst_clamped", "upper"]])


def quote_value(run: str, column: str, denoiser: str, lam: str) -> float:
    table = published(run)
    if (denoiser, lam) not in table.index or column not in table.columns:
        raise KeyError(f"results/{run} has no {column} for {denoiser} at λ = {lam}")
    return float(table.loc[(denoiser, lam), column])


def decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def problems(readme: str) -> list[str]:
    """What is wrong with ``readme``'s quoted numbers (module docstring); empty when nothing is."""
    found = []
    for number, run, column, denoiser, lam in QUOTE.findall(readme):
        try:
            value = quote_value(run, column, denoiser, lam)
        except KeyError as e:
            found.append(str(e.args[0]))
            continue
        if round(value, decimals(number)) != pytest.approx(float(number), abs=1e-9):
            where = f"{column} of {denoiser} at λ = {lam} in results/{run}"
            found.append(f"{number} quoted for {where}: the table has {value}")
    for number, path in FROM.findall(readme):
        if not (REPO / path).is_file():
            found.append(f"{number} names {path}, which does not exist")
    start, end = readme.index(RESULTS_SECTIONS[0]), readme.index(RESULTS_SECTIONS[1])
    skip = ("|", "<!--", "![")
    prose = "\n".join(line for line in readme[start:end].splitlines() if not line.lstrip().startswith(skip))
    bare = re.findall(r"(?<![\w.])\d+\.\d{2,}", FROM.sub("", QUOTE.sub("", prose)))
    found += [f"{number} has no source (<!-- q: … --> or <!-- from: … -->)" for number in bare]
    return found


def test_the_readmes_numbers_are_the_published_ones():
    readme = (REPO / "README.md").read_text()
    assert len(QUOTE.findall(readme)) >= 10  # the results sections quote the tables
    assert problems(readme) == []


def test_a_drifted_number_a_wrong_key_and_an_unsourced_number_are_caught():
    value = round(quote_value("quick", "pnp", "tv", "—"), 2)
    head, tail = RESULTS_SECTIONS
    good = f"{head}\nTV gives {value:.2f} dB<!-- q: quick pnp tv — -->.\n{tail}\n"
    assert problems(good) == []
    drifted = good.replace(f"{value:.2f}", f"{value + 0.01:.2f}")
    assert len(problems(drifted)) == 1 and "the table has" in problems(drifted)[0]
    assert problems(good.replace("quick pnp tv —", "quick pnp dncnn 7")) == [
        "results/quick has no pnp for dncnn at λ = 7"
    ]
    unsourced = problems(good.replace("<!-- q: quick pnp tv — -->", ""))
    assert unsourced == [f"{value:.2f} has no source (<!-- q: … --> or <!-- from: … -->)"]
    elsewhere = problems(good.replace("<!-- q: quick pnp tv — -->", "<!-- from: nowhere.csv -->"))
    assert len(elsewhere) == 1 and "names nowhere.csv" in elsewhere[0]
