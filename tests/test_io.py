"""Atomic writes: whole files or none, with the mode a plain ``open`` gives (the umask's)."""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess

import pytest

from lipbench.plumbing.io import OutputError, atomic_path, atomic_write, staged_folder


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


def _full_disk_after(monkeypatch: pytest.MonkeyPatch, files: int) -> None:
    """``os.fsync`` (every atomic write calls it) fails with ENOSPC from the ``files + 1``-th file on."""
    calls = []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) > files:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_full_disk_names_the_output_not_its_temporary(tmp_path, monkeypatch):
    _full_disk_after(monkeypatch, 0)
    with pytest.raises(OutputError) as caught, atomic_write(tmp_path / "t.csv", "w") as fh:
        fh.write("x")
    reason = "No space left on device; free space or make its folder writable, then rerun"
    assert str(caught.value) == f"cannot write {tmp_path / 't.csv'}: {reason}"
    assert list(tmp_path.iterdir()) == []


def test_a_staged_folder_moves_every_file_into_place_and_keeps_the_rest(tmp_path):
    out = tmp_path / "tables"
    out.mkdir()
    (out / "grid.csv").write_text("another step's")
    (out / "psnr.csv").write_text("the previous run's")
    with staged_folder(out) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".tables.staging-") and not any(staging.iterdir())
        for name in ("psnr.csv", "sub/a.png"):
            with atomic_write(staging / name, "w") as fh:
                fh.write(name)
        assert (out / "psnr.csv").read_text() == "the previous run's"  # nothing moves before the block ends
    files = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert files == {"grid.csv": "another step's", "psnr.csv": "psnr.csv", "sub/a.png": "sub/a.png"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tables"]


def test_a_staged_folder_on_a_full_disk_writes_nothing_and_names_the_output(tmp_path, monkeypatch):
    out = tmp_path / "tables"
    _full_disk_after(monkeypatch, 7)  # aggregate's case: 7 of 16 files written, then the disk is full
    with pytest.raises(OutputError) as caught, staged_folder(out) as staging:
        for n in range(16):
            with atomic_write(staging / f"t{n}.csv", "w") as fh:
                fh.write("x")
    assert str(caught.value).startswith(f"cannot write {out / 't7.csv'}: No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_staged_folder_removes_only_what_a_dead_process_of_this_machine_left(tmp_path):
    dead = _a_finished_pid()
    host = socket.gethostname()
    left = {f".out.staging-{host}.{dead}.abc", f".out.staging-{host}.{os.getpid()}.abd", ".out.staging-elsewhere.1.x"}
    for name in left:
        (tmp_path / name).mkdir()
    with staged_folder(tmp_path / "out") as staging:
        (staging / "a.csv").write_text("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted((left - {f".out.staging-{host}.{dead}.abc"}) | {"out"})


def _a_finished_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_read_only_folder_names_the_output_not_its_temporary(tmp_path, monkeypatch):
    """(As root a chmod does not stop a write: the refusal is simulated where the temporary file is made.)"""

    def refused(*args, dir, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), f"{dir}/.lipschitz.csv.abc123.tmp")

    monkeypatch.setattr("tempfile.mkstemp", refused)
    with pytest.raises(OutputError) as caught, atomic_write(tmp_path / "lipschitz.csv", "w"):
        pass
    assert str(caught.value).startswith(f"cannot write {tmp_path / 'lipschitz.csv'}: Permission denied;")
    assert ".tmp" not in str(caught.value)
