"""The cpu-scale study's certified spline model (results/cpu-scale/certified_spline.py): spline values
against numpy's interpolation of independently integrated slopes, the LeakyReLU initialisation, the
[0, 1] projection, the 1-Lipschitz SLL blocks and models built with it (exact SVD of their dense
Jacobians), and the published LeakyReLU model turned into a spline INIT unchanged."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks" / "results" / "cpu-scale"), str(ROOT / "tests")]

from certified_spline import MonotoneSpline, build  # noqa: E402
from spline_init import NAME, as_spline  # noqa: E402
from test_certified import TOL, randomised, sigma_max  # noqa: E402

from lipbench.models import load_model, read_checkpoint, save_checkpoint  # noqa: E402
from lipbench.models.certified import SLLBlock  # noqa: E402


def reference(slopes: np.ndarray, knots: int, range_: float, x: np.ndarray) -> np.ndarray:
    """σ(x) for one channel from its slopes, clipped to [0, 1] and integrated from 0 by hand."""
    s = np.clip(slopes, 0, 1)
    t = np.linspace(-range_, range_, knots)
    mid = knots // 2
    v = np.zeros(knots)
    for k in range(mid + 1, knots):  # rightwards from σ(0) = 0 over segment k (t_{k−1} … t_k)
        v[k] = v[k - 1] + s[k] * (t[k] - t[k - 1])
    for k in range(mid - 1, -1, -1):  # leftwards over segment k + 1 (t_k … t_{k+1})
        v[k] = v[k + 1] - s[k + 1] * (t[k + 1] - t[k])
    y = np.interp(x, t, v)
    y = np.where(x < t[0], v[0] + s[0] * (x - t[0]), y)
    return np.where(x > t[-1], v[-1] + s[-1] * (x - t[-1]), y)


def test_values_match_numpy_interpolation_with_clipped_slopes():
    g = torch.Generator().manual_seed(0)
    spline = MonotoneSpline(3, knots=9, range_=1.0).double()
    with torch.no_grad():
        spline.slopes.copy_(torch.rand(3, 10, generator=g, dtype=torch.float64) * 1.6 - 0.3)  # some outside [0, 1]
    x = torch.randn(2, 3, 5, 7, generator=g, dtype=torch.float64) * 1.5
    out = spline(x)
    for c in range(3):
        want = reference(spline.slopes[c].detach().numpy(), 9, 1.0, x[:, c].numpy())
        np.testing.assert_allclose(out[:, c].detach().numpy(), want, rtol=0, atol=1e-12)
    assert spline(torch.zeros(1, 3, 1, 1, dtype=torch.float64)).abs().max() == 0  # σ(0) = 0


def test_initialised_as_leaky_relu_and_a_nontrivial_slope_changes_it():
    spline = MonotoneSpline(4, knots=7, range_=0.3, negative_slope=0.05).double()
    x = torch.linspace(-1, 1, 401, dtype=torch.float64).view(1, 1, 1, -1).expand(2, 4, 3, -1)
    slope = torch.tensor(0.05).item()  # the float32 parameter's value, made double
    torch.testing.assert_close(spline(x), torch.nn.functional.leaky_relu(x, slope), rtol=0, atol=1e-15)
    with torch.no_grad():
        spline.slopes[1, 5] = 0.0  # channel 1 flat on [0.1, 0.2): a clip of the positive side there
    y = spline(x)
    torch.testing.assert_close(y[:, 0], x[:, 0].clamp(min=0) + slope * x[:, 0].clamp(max=0), rtol=0, atol=1e-15)
    want = reference(spline.slopes[1].detach().numpy(), 7, 0.3, x[0, 1, 0].numpy())
    torch.testing.assert_close(y[0, 1, 0], torch.tensor(want))
    assert y[0, 1, 0, -1].item() == pytest.approx(0.9, abs=1e-12)  # 1 − 0.1 lost on the flat segment


def test_the_projection_passes_gradients_straight_through():
    spline = MonotoneSpline(1, knots=3, range_=1.0).double()
    with torch.no_grad():
        spline.slopes.fill_(1.5)  # all above 1: used as 1, yet the gradient reaches them
    x = torch.tensor([[[[2.0]]]], dtype=torch.float64)  # right outer segment: σ(2) = 1 + 1·(2 − 1)
    out = spline(x)
    assert out.item() == pytest.approx(2.0)
    out.sum().backward()
    torch.testing.assert_close(spline.slopes.grad, torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float64))


def test_random_splines_are_firmly_nonexpansive_scalar_maps():
    """δ(u − v) ≥ δ² for δ = σ(u) − σ(v): the inequality the SLL block's proof needs of σ."""
    g = torch.Generator().manual_seed(1)
    spline = MonotoneSpline(5, knots=11, range_=0.5).double()
    with torch.no_grad():
        spline.slopes.copy_(torch.randn(5, 12, generator=g, dtype=torch.float64))
    u, v = torch.randn(2, 64, 5, 4, 4, generator=g, dtype=torch.float64) * 0.4
    delta = spline(u) - spline(v)
    assert (delta * (u - v) >= delta.square() - 1e-15).all()
    assert (delta.abs() > 0).float().mean() > 0.5  # not a constant map


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sll_blocks_and_certified_models_with_splines_are_1_lipschitz(seed):
    block = randomised(SLLBlock(3, MonotoneSpline(3, knots=9, range_=2.0)).double(), seed)
    model = randomised(build(width=4, depth=4, knots=9, range_=2.0), seed)
    model = model.double().eval()
    for _ in range(3):
        assert sigma_max(block, torch.randn(1, 3, 6, 6, dtype=torch.float64)) <= 1 + TOL
        x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
        assert sigma_max(model.reflected, x) <= 1 + TOL
    # the splines act inside their knots there, not only on their outer, straight segments
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    pre = torch.nn.functional.conv2d(x, block.weight, block.bias, padding=1)
    assert (pre.abs() < block.activation.range).float().mean() > 0.25


def test_the_published_model_as_a_spline_init_computes_the_same_function(tmp_path):
    published = ROOT / "results" / "cpu" / "models" / "certified" / "model.pt"
    payload = as_spline(read_checkpoint(published))
    assert payload["model_config"] == {"name": NAME, "depth": 6, "width": 32}
    assert sorted(set(payload["model"]) - set(read_checkpoint(published)["model"])) == [
        f"blocks.{i}.activation.slopes" for i in range(4)
    ]
    save_checkpoint(payload, tmp_path / "spline.pt")
    x = torch.rand(2, 1, 20, 20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(load_model(tmp_path / "spline.pt")(x), load_model(published)(x), rtol=0, atol=1e-6)
    with pytest.raises(SystemExit, match="not a certified LeakyReLU"):
        as_spline(payload)  # already a spline model


def test_same_initial_weights_as_the_leaky_relu_model_and_invalid_arguments():
    from lipbench.models import CertifiedDenoiser

    torch.manual_seed(3)
    spline = build(depth=4, width=8)
    torch.manual_seed(3)
    leaky = CertifiedDenoiser(depth=4, width=8, activation="leaky_relu")
    x = torch.rand(2, 1, 10, 10)
    torch.testing.assert_close(spline(x), leaky(x), rtol=0, atol=1e-7)
    assert [m.extra_repr() for m in spline.modules() if isinstance(m, MonotoneSpline)] == [
        "channels=8, knots=41, range=0.2"
    ] * 2
    for kwargs, name in (({"knots": 4}, "knots"), ({"knots": 1}, "knots"), ({"range_": 0.0}, "range")):
        with pytest.raises(ValueError, match=name):
            MonotoneSpline(2, **kwargs)
    with pytest.raises(ValueError, match="channels"):
        MonotoneSpline(2)(torch.zeros(1, 3, 2, 2))
