"""Atomic writes: whole files or none, with the mode a plain ``open`` gives (the umask's)."""

from __future__ import annotations

import os
import stat

import pytest

from lipbench.plumbing.io import atomic_path, atomic_write


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_mode_of_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "a.txt", "w") as fh:
            fh.write("x")
        with atomic_path(tmp_path / "b.csv") as tmp:
            tmp.write_text("y")
        with open(tmp_path / "c.txt", "w") as fh:  # the reference: what open() gives
            fh.write("z")
    finally:
        os.umask(old)
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("a.txt", "b.csv", "c.txt")}
    assert modes == dict.fromkeys(modes, mode)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as fh:
        fh.write("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]
