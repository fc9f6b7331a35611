"""Seeds derived from experiment coordinates, so every run of one cell draws the same numbers."""

from __future__ import annotations

import hashlib

import torch


def derive_seed(*coords: object) -> int:
    """A 63-bit seed from the ``repr`` of the coordinates (e.g. ``("noise", "101085", "levin1", 0.01)``).

    Stable across processes, platforms and Python versions (unlike ``hash``).
    """
    digest = hashlib.sha256(repr(coords).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(*coords: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed` of the coordinates."""
    return torch.Generator().manual_seed(derive_seed(*coords))
