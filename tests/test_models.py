"""DnCNN's structure, the model registry and checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lipbench.models import (
    MODELS,
    CheckpointError,
    DnCNN,
    build,
    load_model,
    read_checkpoint,
    register,
    save_checkpoint,
)
from lipbench.plumbing.errors import LipbenchError


def test_dncnn_matches_the_papers_architecture():
    model = DnCNN()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    acts = [m for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(convs) == 20 and len(acts) == 19
    assert convs[0].in_channels == 1 and convs[-1].out_channels == 1
    assert all(c.kernel_size == (3, 3) and c.bias is not None for c in convs)
    assert all(c.out_channels == 64 for c in convs[:-1])
    assert all(a.negative_slope == 0.01 for a in acts)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert isinstance(model.body[-1], nn.Conv2d)  # no activation after the last conv


def test_residual_and_clamp():
    model = DnCNN(depth=3, width=4, clamp=True)
    nn.init.zeros_(model.body[-1].weight)
    nn.init.zeros_(model.body[-1].bias)
    x = torch.tensor([-0.5, 0.25, 1.5]).view(1, 1, 1, 3)
    assert torch.equal(model.train()(x), x)  # R = 0: J = Id, never clamped in training
    assert torch.equal(model.eval()(x), x.clamp(0, 1))
    plain = DnCNN(depth=3, width=4, residual=False)
    nn.init.zeros_(plain.body[-1].weight)
    nn.init.zeros_(plain.body[-1].bias)
    assert torch.equal(plain(x), torch.zeros_like(x))


def test_registry_builds_user_models_by_name():
    @register("tiny-test-net")
    class Tiny(nn.Module):
        def __init__(self, width: int = 2) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)
            self.width = width

        def forward(self, x):
            return x + self.conv(x)

    try:
        assert isinstance(build("tiny-test-net", width=3), Tiny)
        with pytest.raises(LipbenchError, match="already registered"):
            register("tiny-test-net")(DnCNN)
        with pytest.raises(LipbenchError, match="does not accept these arguments"):
            build("tiny-test-net", depth=3)
    finally:
        del MODELS["tiny-test-net"]
    with pytest.raises(LipbenchError, match="unknown model 'unet'.*dncnn"):
        build("unet")


def test_checkpoint_round_trip_and_errors(tmp_path):
    model = DnCNN(depth=3, width=4)
    path = tmp_path / "m.pt"
    save_checkpoint({"model": model.state_dict(), "model_config": {"name": "dncnn", "depth": 3, "width": 4}}, path)
    loaded = load_model(path)
    assert not loaded.training
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    )
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="junk.pt is unreadable"):
        read_checkpoint(tmp_path / "junk.pt")
    save_checkpoint({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a lipbench checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    save_checkpoint({"model": model.state_dict(), "model_config": {"name": "dncnn", "depth": 4, "width": 4}}, path)
    with pytest.raises(CheckpointError, match="does not fit its own model_config"):
        load_model(path)


def test_checkpoints_refuse_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"model": {}, "model_config": {"name": "dncnn"}, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt is unreadable"):
        read_checkpoint(tmp_path / "evil.pt")
