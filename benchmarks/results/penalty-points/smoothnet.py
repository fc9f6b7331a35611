"""DnCNN with a smooth activation, so that its Jacobian is continuous in x (the fourth round of README.md).

Not a lipbench model: the experiment loads it as ``--model smoothnet:dncnn`` with this folder on
``PYTHONPATH`` and ``--model-kwargs depth=6 width=24 smooth=silu`` (or ``elu``). Its Jacobian
products go through autograd (no fast linearization), and it has no upper bound. For SiLU, lipbench's
own ``dncnn`` with ``activation=silu`` is the same network with the same initialisation, with the fast
path and the bound (the README's last section); this file stays to rerun the round's rows, ELU's too.
"""

from __future__ import annotations

from torch import nn

from lipbench.models.dncnn import DnCNN

SMOOTH = {"elu": nn.ELU, "silu": nn.SiLU}


class SmoothDnCNN(DnCNN):
    """lipbench's DnCNN with every LeakyReLU replaced by ``smooth``."""

    fne_upper_bound = None  # the hook's absence: the bound assumes (Leaky)ReLUs

    def __init__(self, smooth: str = "silu", **kwargs) -> None:
        super().__init__(**kwargs)
        for i, module in enumerate(self.body):
            if isinstance(module, nn.LeakyReLU):
                self.body[i] = SMOOTH[smooth]()

    def fast_linearization(self) -> None:
        return None  # its products assume piecewise-linear activations


def dncnn(**kwargs) -> SmoothDnCNN:
    return SmoothDnCNN(**kwargs)
