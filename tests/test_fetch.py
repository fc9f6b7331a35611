"""``lipbench fetch`` end to end against a local HTTP server on 127.0.0.1 (no internet)."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from lipbench.cli import main
from lipbench.data import SOURCES, load_images, load_kernel, verify
from lipbench.data.fetch import checksums, fetch, safe_target
from lipbench.plumbing.errors import ChecksumError, FetchError

PREFIX = "BSR/BSDS500/data/images/"


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single-range support; logs every request on the server."""

    def log_message(self, *args):  # keep test output clean
        pass

    def send_head(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        header = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not header or not path.is_file():
            return super().send_head()
        start = int(header.removeprefix("bytes=").split("-")[0])
        data = path.read_bytes()
        self.send_response(206)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        return io.BytesIO(data[start:])


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(served)))
    httpd.requests = []
    # serve_forever checks for shutdown() every poll_interval: its default 0.5 s made each teardown wait
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield httpd, served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="session")
def bsr_tarball(tmp_path_factory, data_dir) -> Path:
    """A BSR_bsds500.tgz laid out like Berkeley's, built from the staged BSDS500 files."""
    path = tmp_path_factory.mktemp("bsr") / "BSR_bsds500.tgz"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        _add(tar, "BSR/README.txt", b"Berkeley Segmentation Resources\n")
        for split in ("train", "val", "test"):
            _add(tar, f"{PREFIX}{split}/Thumbs.db", b"\0" * 64)
            for jpg in sorted((data_dir / "BSDS500" / split).glob("*.jpg")):
                _add(tar, f"{PREFIX}{split}/{jpg.name}", jpg.read_bytes())
        _add(tar, "BSR/BSDS500/data/groundTruth/val/101085.mat", b"segmentation")
    return path


def _serve_defaults(served: Path, tarball: Path, data_dir: Path) -> None:
    shutil.copy(tarball, served / "BSR_bsds500.tgz")
    shutil.copy(data_dir / "kernels" / "Levin09.mat", served / "Levin09.mat")


def _urls(base: str) -> dict[str, str]:
    return {"bsds500": f"{base}/BSR_bsds500.tgz", "levin": f"{base}/Levin09.mat"}


def _no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.endswith((".tmp", ".part"))]


def test_shipped_digests_match_the_real_files(data_dir):
    shipped = checksums()
    assert len(shipped) == 1069
    assert sum(len(s.files()) for s in SOURCES.values()) == len(shipped)  # every digest belongs to a source
    assert len(SOURCES["bsds500"].files()) == 500
    present = [p for p in shipped if (data_dir / p).is_file()]
    assert len(present) >= 501  # at least the default sources
    assert all(hashlib.sha256((data_dir / p).read_bytes()).hexdigest() == shipped[p] for p in present)


def test_round_trip_installs_and_verifies_every_file(server, bsr_tarball, data_dir, tmp_path):
    httpd, served, base = server
    _serve_defaults(served, bsr_tarball, data_dir)
    root = tmp_path / "data"
    reports = fetch(root, urls=_urls(base), progress=False)
    assert [len(r.installed) for r in reports] == [500, 1]
    assert all(r.ok for r in verify(root))
    for rel in ("BSDS500/val/101085.jpg", "BSDS500/test/100007.jpg", "kernels/Levin09.mat"):
        assert (root / rel).read_bytes() == (data_dir / rel).read_bytes()
    assert not (root / "BSDS500" / "val" / "Thumbs.db").exists()  # only known files are installed
    assert not (root / "BSR").exists() and not (root / ".downloads").exists()
    assert _no_temp_files(root)
    # what was installed is usable as a data root
    assert torch.equal(load_images("bsd10", root)[0], load_images("bsd10")[0])
    assert torch.equal(load_kernel("levin1", root), load_kernel("levin1"))

    # resumable: everything present and verified -> no request at all
    httpd.requests.clear()
    reports = fetch(root, urls=_urls(base), progress=False)
    assert httpd.requests == []
    assert [len(r.present) for r in reports] == [500, 1] and not any(r.installed for r in reports)

    # a deleted file and a corrupted one are fetched again, and only those are rewritten
    (root / "BSDS500" / "train" / "2092.jpg").unlink()
    (root / "kernels" / "Levin09.mat").write_bytes(b"broken")
    reports = fetch(root, urls=_urls(base), progress=False)
    assert reports[0].installed == ["BSDS500/train/2092.jpg"] and reports[1].installed == ["kernels/Levin09.mat"]
    assert all(r.ok for r in verify(root))


def test_corrupt_served_file_is_rejected_and_not_left_in_place(server, data_dir, tmp_path):
    _, served, base = server
    data = bytearray((data_dir / "kernels" / "Levin09.mat").read_bytes())
    data[5000] ^= 0xFF
    (served / "Levin09.mat").write_bytes(bytes(data))
    root = tmp_path / "data"
    with pytest.raises(ChecksumError, match=r"digest mismatch for kernels/Levin09.mat .*was not installed"):
        fetch(root, ["levin"], urls=_urls(base), progress=False)
    assert not (root / "kernels" / "Levin09.mat").exists()
    assert _no_temp_files(root)


def test_corrupt_archive_member_is_named_and_not_installed(server, data_dir, tmp_path):
    _, served, base = server
    with tarfile.open(served / "BSR_bsds500.tgz", "w:gz") as tar:
        good = (data_dir / "BSDS500" / "val" / "101085.jpg").read_bytes()
        bad = bytearray((data_dir / "BSDS500" / "val" / "101087.jpg").read_bytes())
        bad[len(bad) // 2] ^= 0x01
        _add(tar, f"{PREFIX}val/101085.jpg", good)
        _add(tar, f"{PREFIX}val/101087.jpg", bytes(bad))
    root = tmp_path / "data"
    with pytest.raises(ChecksumError, match=r"BSDS500/val/101087.jpg; they were not installed"):
        fetch(root, ["bsds500"], urls=_urls(base), progress=False)
    assert not (root / "BSDS500" / "val" / "101087.jpg").exists()
    assert (root / "BSDS500" / "val" / "101085.jpg").read_bytes() == good  # verified files are kept
    assert _no_temp_files(root) and not list((root / ".downloads").glob("*"))


@pytest.mark.parametrize("evil", [f"{PREFIX}val/../../../../../../evil.jpg", f"{PREFIX}../../../../../../../evil.jpg"])
def test_path_traversal_is_refused(server, tmp_path, evil):
    _, served, base = server
    with tarfile.open(served / "BSR_bsds500.tgz", "w:gz") as tar:
        _add(tar, evil, b"gotcha")
    root = tmp_path / "deep" / "er" / "data"
    with pytest.raises(FetchError, match="leaves the data root"):
        fetch(root, ["bsds500"], urls=_urls(base), progress=False)
    assert not list(tmp_path.rglob("evil.jpg"))


def test_safe_target_guard(tmp_path):
    assert safe_target(tmp_path, "BSDS500/val/1.jpg") == (tmp_path / "BSDS500/val/1.jpg").resolve()
    for bad in ("/etc/passwd", "../x", "a/../../x", ".."):
        with pytest.raises(FetchError, match="leaves the data root"):
            safe_target(tmp_path, bad)


def test_link_member_is_refused(server, tmp_path):
    _, served, base = server
    with tarfile.open(served / "BSR_bsds500.tgz", "w:gz") as tar:
        info = tarfile.TarInfo(f"{PREFIX}val/101085.jpg")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(FetchError, match="not a regular file"):
        fetch(tmp_path / "data", ["bsds500"], urls=_urls(base), progress=False)
    assert not (tmp_path / "data" / "BSDS500" / "val" / "101085.jpg").exists()


def test_interrupted_archive_download_resumes_with_a_range_request(server, bsr_tarball, data_dir, tmp_path):
    httpd, served, base = server
    _serve_defaults(served, bsr_tarball, data_dir)
    root = tmp_path / "data"
    (root / ".downloads").mkdir(parents=True)
    half = bsr_tarball.stat().st_size // 2
    (root / ".downloads" / "BSR_bsds500.tgz.part").write_bytes(bsr_tarball.read_bytes()[:half])
    fetch(root, ["bsds500"], urls=_urls(base), progress=False)
    assert httpd.requests == [("/BSR_bsds500.tgz", f"bytes={half}-")]
    assert verify(root, ["bsds500"])[0].ok


def test_per_file_source_from_a_mirror(server, data_dir, tmp_path):
    httpd, served, base = server
    shutil.copytree(data_dir / "Set12", served / "set12-mirror")
    root = tmp_path / "data"
    (report,) = fetch(root, ["set12"], urls={"set12": f"{base}/set12-mirror/"}, progress=False)
    assert len(report.installed) == 12 and len(httpd.requests) == 12
    assert hashlib.sha256((root / "Set12" / "05.png").read_bytes()).hexdigest() == checksums()["Set12/05.png"]


def test_unreachable_source_is_a_clear_error(tmp_path):
    with pytest.raises(FetchError, match=r"could not download http://127.0.0.1:9/Levin09.mat .*--source-url"):
        fetch(tmp_path, ["levin"], urls={"levin": "http://127.0.0.1:9/Levin09.mat"}, progress=False)
    assert not (tmp_path / "kernels" / "Levin09.mat").exists()
    with pytest.raises(FetchError, match="unknown data source"):
        fetch(tmp_path, ["imagenet"])
    with pytest.raises(FetchError, match="--source-url given for unknown source"):
        fetch(tmp_path, ["levin"], urls={"levn": "http://x"})


def test_cli_round_trip_and_errors(server, data_dir, tmp_path, capsys):
    _, served, base = server
    shutil.copy(data_dir / "kernels" / "Levin09.mat", served / "Levin09.mat")
    root = tmp_path / "data"
    args = ["fetch", "--root", str(root), "--only", "levin", "--source-url", f"levin={base}/Levin09.mat"]
    assert main(args) == 0
    assert "levin: 1 installed" in capsys.readouterr().out
    assert main(["verify", "--root", str(root), "--only", "levin"]) == 0
    (root / "kernels" / "Levin09.mat").write_bytes(b"x")
    assert main(["verify", "--root", str(root), "--only", "levin"]) == 2
    captured = capsys.readouterr()
    assert "corrupt: kernels/Levin09.mat" in captured.out and "lipbench fetch --root" in captured.err
    assert main(["fetch", "--root", str(root), "--source-url", "levin"]) == 2
    assert "is not NAME=URL" in capsys.readouterr().err


def test_cli_digest_mismatch_exits_nonzero_without_traceback(server, data_dir, tmp_path):
    _, served, base = server
    (served / "Levin09.mat").write_bytes(b"not the kernels")
    root = tmp_path / "data"
    cmd = [sys.executable, "-m", "lipbench.cli", "fetch", "--root", str(root), "--only", "levin"]
    proc = subprocess.run([*cmd, "--source-url", f"levin={base}/Levin09.mat"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("lipbench fetch: error: digest mismatch for kernels/Levin09.mat")
    assert not (root / "kernels" / "Levin09.mat").exists()
