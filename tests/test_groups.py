"""Group actions are exact orthogonal maps; J_G is exactly equivariant."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from lipbench.models import DnCNN
from lipbench.plumbing.errors import LipbenchError
from lipbench.restoration.groups import D4, Element, Flips, Product, Rotations, Shifts, build_group, equivariant

GROUPS = [D4(), Rotations(), Flips(), Shifts(-3, 2), Product(D4(), Shifts(-1, 1))]


def _image(shape=(2, 3, 7, 5), seed=0, dtype=torch.float64):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
def test_elements_are_exactly_invertible_and_orthogonal(group, device):
    x, y = _image(seed=1).to(device), _image(seed=2).to(device)
    for g in group.elements():
        gx = g.apply(x)
        assert torch.equal(g.inverse_apply(gx), x)
        assert sorted(gx.flatten().tolist()) == sorted(x.flatten().tolist())  # a permutation of pixels
        assert (gx * g.apply(y)).sum().item() == pytest.approx((x * y).sum().item(), rel=1e-13)


def test_actions_match_numpy_and_keep_every_pixel_of_non_square_images():
    x = _image((1, 1, 7, 5))
    a = x[0, 0].numpy()
    assert Element(1).apply(x).shape == (1, 1, 5, 7)  # transposed, not cropped
    np.testing.assert_array_equal(Element(1).apply(x)[0, 0].numpy(), np.rot90(a, 1))
    np.testing.assert_array_equal(Element(0, True).apply(x)[0, 0].numpy(), a[:, ::-1])
    np.testing.assert_array_equal(Element(2, True).apply(x)[0, 0].numpy(), a[::-1, :])  # up-down flip
    np.testing.assert_array_equal(Element(shift=(2, -1)).apply(x)[0, 0].numpy(), np.roll(a, (2, -1), axis=(0, 1)))


@pytest.mark.parametrize("group", [D4(), Rotations(), Flips()], ids=lambda g: g.name)
def test_closure(group):
    x = _image((1, 1, 7, 5))
    images = {tuple(g.apply(x).flatten().tolist()) + tuple(g.apply(x).shape) for g in group.elements()}
    assert len(images) == len(group)  # distinct maps
    for g, h in itertools.product(group.elements(), repeat=2):
        composed = g.apply(h.apply(x))
        assert tuple(composed.flatten().tolist()) + tuple(composed.shape) in images


def test_sampling_is_reproducible_and_covers_the_group():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for group in GROUPS:
        a = [group.sample(g1) for _ in range(200)]
        assert a == [group.sample(g2) for _ in range(200)]
        assert all(e in group.elements() for e in a)
    draws = {D4().sample(g1) for _ in range(400)}
    assert len(draws) == 8
    shifts = [Shifts().sample(g1).shift for _ in range(2000)]
    assert min(min(s) for s in shifts) == -64 and max(max(s) for s in shifts) == 63


def test_build_group():
    assert len(build_group("d4")) == 8 and len(build_group("flips")) == 4
    assert len(build_group("shifts")) == 128**2
    assert len(build_group("rotations+shifts", (-1, 1))) == 36
    for bad in ("d8", "shifts+d4", "d4+rotations"):
        with pytest.raises(LipbenchError, match="group"):
            build_group(bad)


def _random_net() -> nn.Module:
    torch.manual_seed(0)  # test weights only
    net = DnCNN(depth=4, width=8, negative_slope=0.2)
    for p in net.parameters():
        nn.init.normal_(p, std=0.3)
    return net.double().eval()


def test_group_mean_is_exactly_equivariant_on_non_square_images(device):
    net = _random_net().to(device)
    jg = equivariant(net, D4(), "mean")
    x = _image((2, 1, 9, 6)).to(device)
    out = jg(x)
    for g in D4().elements():
        torch.testing.assert_close(jg(g.apply(x)), g.apply(out), rtol=0, atol=1e-6)
    assert (net(x) - out).abs().max() > 1e-3  # J itself is not equivariant
    assert (net(Element(1).apply(x)) - Element(1).apply(net(x))).abs().max() > 1e-3


def test_random_mode_draws_a_new_element_per_call_reproducibly():
    net = _random_net()
    x = _image((1, 1, 9, 6))
    runs = []
    for _ in range(2):
        je = equivariant(net, D4(), "random", torch.Generator().manual_seed(11))
        outs, drawn = [], []
        for _ in range(12):
            outs.append(je(x))
            drawn.append(je.last)
        runs.append((outs, drawn))
    assert runs[0][1] == runs[1][1] and all(torch.equal(a, b) for a, b in zip(runs[0][0], runs[1][0], strict=True))
    assert len(set(runs[0][1])) > 3
    for out, g in zip(*runs[0], strict=True):
        assert torch.equal(out, g.inverse_apply(net(g.apply(x))))
    with pytest.raises(LipbenchError, match="explicit CPU torch.Generator"):
        equivariant(net, D4(), "random")
