"""The code hash of a rule (its ``params: code=...``): :func:`lipbench.plumbing.codehash.code_hash_of`
the step module its ``lipbench`` command runs."""

from __future__ import annotations

from lipbench.plumbing.codehash import code_hash_of
from lipbench.plumbing.errors import LipbenchError


def command_code_hash(command: str) -> str:
    """:func:`code_hash_of` the step ``lipbench <command>`` runs (``train``, ``tune-tv``): a rule's
    ``params: code=...`` entry."""
    from lipbench.cli import STEPS, step_module

    if command not in STEPS:
        raise LipbenchError(f"code hash: lipbench has no command {command!r} (one of {', '.join(STEPS)})")
    return code_hash_of(step_module(command))
