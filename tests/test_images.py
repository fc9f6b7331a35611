"""Datasets: order, shapes, grey rules (checked against independently decoded pixels), errors."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2gray

from lipbench.data import BSD10_IDS, BSD68_IDS, DATASETS, data_root, image_ids, load_images, read_image
from lipbench.plumbing.errors import DataError

PROTOCOL_BSD10 = ["101085", "101087", "102061", "103070", "105025", "106024", "108005", "108070", "108082", "109053"]


def test_bsd10_is_the_protocol_list_in_order(data_dir):
    assert list(BSD10_IDS) == PROTOCOL_BSD10
    assert image_ids("bsd10") == PROTOCOL_BSD10
    images = load_images("bsd10")
    assert len(images) == 10
    for x in images:
        assert x.dtype == torch.float32 and x.shape[0] == 1
        assert tuple(x.shape[1:]) in {(481, 321), (321, 481)}
        assert x.min() >= 0.0 and x.max() <= 1.0


def test_bsd10_grey_is_the_mean_of_rgb(data_dir):
    rgb = np.asarray(Image.open(data_dir / "BSDS500" / "val" / "101085.jpg"), dtype=np.float64) / 255
    expected = rgb.mean(axis=2)
    got = load_images("bsd10")[0][0].double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_rgb_loading_matches_pil(data_dir):
    x = load_images("bsd10", grey=False)[3]
    rgb = np.asarray(Image.open(data_dir / "BSDS500" / "val" / "103070.jpg"), dtype=np.float32) / 255
    assert x.shape == (3, 321, 481)
    np.testing.assert_allclose(x.numpy(), rgb.transpose(2, 0, 1), atol=1e-7)


def test_bt709_rule_matches_skimage_rgb2gray(data_dir):
    path = data_dir / "BSDS500" / "val" / "101087.jpg"
    rgb = np.asarray(Image.open(path), dtype=np.float64) / 255
    np.testing.assert_allclose(read_image(path, "bt709")[0].numpy(), rgb2gray(rgb), atol=1e-6)


def test_bt601_rule_reproduces_dncnn_bsd68_pngs(data_dir):
    """DnCNN's grey BSD68 PNGs are round(0.299 R + 0.587 G + 0.114 B) of the BSDS JPEGs (MANIFEST)."""
    ours = load_images("bsd68", grey="bt601")
    theirs = load_images("bsd68-dncnn")
    assert len(ours) == len(theirs) == 68
    for a, b in zip(ours[:10], theirs[:10], strict=True):
        assert a.shape == b.shape
        assert (a - b).abs().max() <= 1 / 255 + 1e-6


def test_bsd68_order_matches_the_id_map(data_dir):
    id_map = data_dir / "bsd68_id_map.csv"
    if not id_map.is_file():
        pytest.skip("bsd68_id_map.csv is part of the CI data staging, not of `lipbench fetch`")
    with open(id_map) as fh:
        rows = [r for r in csv.DictReader(fh) if r["BSD68_file(gray)"]]
    by_file = [r["bsds_id"] for r in sorted(rows, key=lambda r: r["BSD68_file(gray)"])]
    assert list(BSD68_IDS) == by_file == image_ids("bsd68") == image_ids("cbsd68")


def test_cbsd68_falls_back_to_the_identical_bsds_jpegs(data_dir, tmp_path):
    (tmp_path / "BSDS500").mkdir()
    shutil.copytree(data_dir / "BSDS500" / "val", tmp_path / "BSDS500" / "val")
    from_jpeg = load_images("cbsd68", root=tmp_path, grey=False)
    from_png = load_images("cbsd68", grey=False)  # the real root has CBSD68/ PNGs
    assert len(from_jpeg) == len(from_png) == 68
    for a, b in zip(from_jpeg[:5], from_png[:5], strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("name", "count", "channels", "shapes"),
    [
        ("bsd400", 400, 1, {(481, 321), (321, 481)}),
        ("bsds500-val", 100, 1, {(481, 321), (321, 481)}),
        ("train400", 400, 1, {(180, 180)}),
        ("set12", 12, 1, {(256, 256), (512, 512)}),
        ("set3c", 3, 1, {(256, 256)}),
    ],
)
def test_dataset_sizes(name, count, channels, shapes, data_dir):
    files = DATASETS[name].files(data_dir)
    assert len(files) == count and len(set(files)) == count
    for x in (read_image(files[0]), read_image(files[-1])):
        assert x.shape[0] == channels and tuple(x.shape[1:]) in shapes


def test_bsd400_is_train_then_test_in_string_order(data_dir):
    files = DATASETS["bsd400"].files(data_dir)
    assert [f.parent.name for f in files] == ["train"] * 200 + ["test"] * 200
    assert [f.name for f in files[:200]] == sorted(f.name for f in files[:200])


def test_data_root_precedence(monkeypatch, tmp_path, data_dir):
    assert data_root(tmp_path) == tmp_path
    monkeypatch.setenv("LIPBENCH_DATA", str(data_dir))
    assert data_root() == data_dir
    monkeypatch.delenv("LIPBENCH_DATA")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"resources/data .*lipbench fetch"):
        data_root()


def test_errors_are_clear(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'bsd11'.*bsd10"):
        load_images("bsd11")
    with pytest.raises(DataError, match=r"does not exist.*lipbench fetch"):
        load_images("bsd10", root=tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"101085.jpg is missing.*lipbench fetch"):
        load_images("bsd10", root=tmp_path)
    with pytest.raises(DataError, match="greyscale only"):
        load_images("set12", grey=False)
    with pytest.raises(DataError, match="unknown grey rule"):
        load_images("bsd10", grey="luma")


def test_corrupt_image_names_the_file(tmp_path, data_dir):
    val = tmp_path / "BSDS500" / "val"
    val.mkdir(parents=True)
    for i in BSD10_IDS:
        shutil.copy(data_dir / "BSDS500" / "val" / f"{i}.jpg", val)
    bad = val / "105025.jpg"
    bad.write_bytes(bad.read_bytes()[:2000])  # truncated JPEG
    with pytest.raises(DataError, match=r"105025.jpg is corrupt"):
        load_images("bsd10", root=tmp_path)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_each_datasets_smallest_side_is_the_one_the_config_checks_use(name, data_dir):
    """``Dataset.min_side`` (what check-config compares crops with) against the real files' sizes."""
    sides = [min(Image.open(path).size) for path in DATASETS[name].files(data_dir)]
    assert min(sides) == DATASETS[name].min_side
