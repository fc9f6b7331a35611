"""Blur kernels: exact equality with PnP-MMO's blur_k.mat files, closed forms, validation errors."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from lipbench.data import gaussian_kernel, load_kernel, uniform_kernel
from lipbench.plumbing.errors import KernelError

LEVIN_SIZES = [19, 17, 15, 27, 13, 21, 23, 23]


def _blur_mat(data_dir, k: int) -> np.ndarray:
    return scipy.io.loadmat(data_dir / "kernels" / "pnp_mmo_blur_models" / f"blur_{k}.mat")["blur"]


def test_levin1_equals_blur_1_exactly(data_dir):
    k = load_kernel("levin1")
    ref = _blur_mat(data_dir, 1)
    assert k.dtype == torch.float32 and k.shape == (19, 19)
    assert torch.equal(k, torch.from_numpy(ref.astype(np.float32)))
    support = k.numpy() > 0
    assert support.any(axis=1).sum() == 17 and support.any(axis=0).sum() == 9
    assert abs(k.double().sum().item() - 1) < 1e-6


@pytest.mark.parametrize("index", range(1, 9))
def test_every_levin_kernel_is_oriented_as_blur_k(index, data_dir):
    k = load_kernel(f"levin{index}")
    assert k.shape == (LEVIN_SIZES[index - 1],) * 2
    assert torch.equal(k, torch.from_numpy(_blur_mat(data_dir, index).astype(np.float32)))
    assert not torch.equal(k, k.T)  # the transpose would be wrong, and is distinguishable


def test_levin_falls_back_to_the_blur_k_files(data_dir, tmp_path):
    shutil.copytree(data_dir / "kernels" / "pnp_mmo_blur_models", tmp_path / "kernels" / "pnp_mmo_blur_models")
    assert torch.equal(load_kernel("levin4", root=tmp_path), load_kernel("levin4"))
    with pytest.raises(KernelError, match=r"levin3: neither .*Levin09.mat nor .*blur_3.mat.*lipbench fetch"):
        load_kernel("levin3", root=tmp_path / "kernels")


def test_gaussian_1_6_matches_irestnet_kernel(data_dir):
    ref = scipy.io.loadmat(data_dir / "kernels" / "irestnet_testsets" / "gaussian_1_6_std_0008" / "kernel.mat")
    ours = load_kernel("gaussian_1_6")
    assert ours.shape == (25, 25)
    np.testing.assert_allclose(ours.numpy(), ref["gaussian_1_6"], atol=1e-8)
    assert torch.equal(load_kernel("gaussian", size=25, std=1.6), ours)


def test_gaussian_1_0_is_paper_2s_9x9_kernel():
    ours = load_kernel("gaussian_1_0").double()
    r = torch.arange(9.0, dtype=torch.float64) - 4
    expected = torch.exp(-(r[:, None] ** 2 + r[None] ** 2) / 2)  # std 1, 9×9 (Equivariant PnP's Gaussian blur)
    torch.testing.assert_close(ours, expected / expected.sum(), rtol=1e-6, atol=1e-8)


def test_square_7_is_pnp_mmo_square_7(data_dir):
    ref = scipy.io.loadmat(data_dir / "kernels" / "pnp_mmo_blur_models" / "square_7.mat")["blur"]
    np.testing.assert_allclose(load_kernel("square_7").numpy(), ref[9:16, 9:16], atol=1e-8)
    assert np.abs(ref).sum() == pytest.approx(np.abs(ref[9:16, 9:16]).sum())  # nothing outside the 7×7
    assert torch.allclose(uniform_kernel(3), torch.full((3, 3), 1 / 9))


def test_gaussian_closed_form():
    g = gaussian_kernel(5, 1.0).double()
    x = torch.arange(5.0, dtype=torch.float64) - 2
    expected = torch.exp(-(x[:, None] ** 2 + x[None] ** 2) / 2)
    torch.testing.assert_close(g, expected / expected.sum(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((4, 4), 1 / 16), "odd square size"),
        (np.full((3, 5), 1 / 15), "odd square size"),
        (np.full((3,), 1 / 3), "odd square size"),
        (np.array([[0, 0, 0], [0.5, 1.0, -0.5], [0, 0, 0]]), "negative entries"),
        (np.full((3, 3), 0.1), "sums to 0.9"),
        (np.array([[np.nan, 0, 0], [0, 1, 0], [0, 0, 0]]), "NaN or infinite"),
    ],
)
def test_invalid_kernel_files_are_named(array, message, tmp_path):
    path = tmp_path / "bad_kernel.npy"
    np.save(path, array)
    with pytest.raises(KernelError, match=rf"kernel .*bad_kernel.npy .*{message}"):
        load_kernel(path)
    scipy.io.savemat(tmp_path / "bad.mat", {"blur": array})
    with pytest.raises(KernelError, match=rf"bad.mat .*{message}"):
        load_kernel(tmp_path / "bad.mat")


def test_kernel_file_errors(tmp_path):
    scipy.io.savemat(tmp_path / "k.mat", {"psf": np.full((3, 3), 1 / 9)})
    with pytest.raises(KernelError, match=r"k.mat has no variable 'blur' \(it has \['psf'\]\)"):
        load_kernel(tmp_path / "k.mat")
    assert load_kernel(tmp_path / "k.mat", key="psf").shape == (3, 3)
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(KernelError, match="junk.mat is not a readable .mat file"):
        load_kernel(tmp_path / "junk.mat")
    with pytest.raises(KernelError, match="missing.npy does not exist"):
        load_kernel(tmp_path / "missing.npy")
    with pytest.raises(KernelError, match="unknown kernel 'levin9'"):
        load_kernel("levin9")
    with pytest.raises(KernelError, match="odd size"):
        gaussian_kernel(24, 1.6)


def test_corrupt_levin_file_is_named(tmp_path):
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "Levin09.mat").write_bytes(b"\x89HDF\r\n garbage")
    with pytest.raises(KernelError, match=r"Levin09.mat is unreadable .*lipbench fetch"):
        load_kernel("levin2", root=tmp_path)


def test_v73_mat_file_is_read_transposed_back(tmp_path):
    kernel = np.zeros((5, 5))
    kernel[1, 2], kernel[2, 2], kernel[3, 4] = 0.5, 0.25, 0.25
    with h5py.File(tmp_path / "k73.mat", "w") as f:
        f["blur"] = kernel.T  # MATLAB stores column-major: h5py sees the transpose
    assert torch.equal(load_kernel(tmp_path / "k73.mat"), torch.from_numpy(kernel.astype(np.float32)))
    with pytest.raises(KernelError, match=r"k73.mat has no variable 'psf' \(it has \['blur'\]\)"):
        load_kernel(tmp_path / "k73.mat", key="psf")
