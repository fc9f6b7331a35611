"""The documentation's Python examples run as they are written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCKS = [
    (doc.name, n, code)
    for doc in sorted((REPO / "docs").glob("*.md"))
    for n, code in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), re.S))
]


def test_the_docs_have_python_examples():
    assert {name for name, _, _ in BLOCKS} >= {"api.md", "denoisers.md"}


@pytest.mark.slow  # a Python process each: 3-4 s
@pytest.mark.parametrize(("doc", "index", "code"), BLOCKS, ids=[f"{d}[{i}]" for d, i, _ in BLOCKS])
def test_a_python_example_runs(doc, index, code, tmp_path):
    # one thread, as the other tests (conftest.py): two made a 4 s example take 12 s on a busy 2-core machine
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("LIPBENCH_TEST_THREADS", "1")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, f"{doc} example {index}:\n{proc.stderr[-2000:]}"
