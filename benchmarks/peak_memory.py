"""Peak extra memory of a call, above what was allocated before it.

CUDA: ``torch.cuda.max_memory_allocated``. CPU: glibc's ``mallinfo2`` in-use bytes (small blocks
plus mmapped ones), sampled after every aten operation through a ``TorchDispatchMode`` (forward
and backward alike). Unlike the resident set size, this ignores freed memory that the allocator
keeps, so repeated measurements agree to the byte.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc_mallinfo2() -> Callable[[], _MallInfo2] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return fn


_MALLINFO2 = _libc_mallinfo2()
CPU_SUPPORTED = _MALLINFO2 is not None


def _in_use() -> int:
    info = _MALLINFO2()
    return info.uordblks + info.hblkhd


class _PeakTracker(TorchDispatchMode):
    def reset(self) -> None:
        self.base = self.peak = _in_use()

    def __enter__(self):
        mode = super().__enter__()
        self.reset()
        return mode

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.peak = max(self.peak, _in_use())
        return out


def peak_extra_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Run ``fn`` twice; return the second run's peak memory above the memory in use when it started.

    The first run is a warm-up: lazily created state (optimizer moments, and on the CPU the
    dispatcher's first-use allocations of about 20 MiB) would otherwise count as the call's.
    """
    if device.type == "cuda":
        fn()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    if not CPU_SUPPORTED:
        raise RuntimeError("CPU peak memory needs glibc's mallinfo2")
    with _PeakTracker() as tracker:
        fn()  # warm-up inside the mode: its first-use allocations are the mode's, not fn's
        tracker.reset()
        fn()
    return tracker.peak - tracker.base
