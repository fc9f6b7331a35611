"""A certified LeakyReLU checkpoint as a certified spline model that computes the same function, so
that training it further with learned activations starts from the published model.

    PYTHONPATH=benchmarks/results/cpu-scale python benchmarks/results/cpu-scale/spline_init.py SRC DST
    # then: INIT=DST ACTIVATION=spline bash benchmarks/results/cpu-scale/certified_scale.sh ...

The spline activations (:mod:`certified_spline`, default knots and range) start as the source's
LeakyReLU; every other weight is copied. The new checkpoint's ``model_config`` is
``certified_spline:build`` with the source's depth and width (what ``lipbench train --init`` checks
against ``--model`` and ``--model-kwargs``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from certified_spline import build

from lipbench.models import CertifiedDenoiser, read_checkpoint, save_checkpoint

NAME = "certified_spline:build"


def as_spline(payload: dict) -> dict:
    """``payload`` (a certified LeakyReLU checkpoint) with spline activations equal to its LeakyReLU."""
    config = dict(payload["model_config"])
    if config.get("name") != "certified" or config.get("activation") != "leaky_relu":
        raise SystemExit(f"not a certified LeakyReLU checkpoint (model_config {config}): nothing to convert")
    kwargs = {k: v for k, v in config.items() if k not in ("name", "activation")}
    model = build(**kwargs)
    missing, unexpected = model.load_state_dict(payload["model"], strict=False)
    if unexpected or any(not key.endswith("activation.slopes") for key in missing):
        raise SystemExit(f"weights do not map onto the spline model (missing {missing}, unexpected {unexpected})")
    source = CertifiedDenoiser(**{k: v for k, v in config.items() if k != "name"})
    source.load_state_dict(payload["model"])
    x = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gap = (model.eval()(x) - source.eval()(x)).abs().max().item()
    if gap > 1e-5:
        raise SystemExit(f"the spline model differs from its source by {gap:.2e}: not the same function")
    keep = {k: payload[k] for k in ("label", "lipbench_version", "torch_version") if k in payload}
    return keep | {"model": model.state_dict(), "model_config": {"name": NAME, **kwargs}}


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__)
    source, target = (Path(a) for a in argv)
    save_checkpoint(as_spline(read_checkpoint(source)), target)
    print(f"{target}: {source} with spline activations (its LeakyReLU at the start)")


if __name__ == "__main__":
    main(sys.argv[1:])
