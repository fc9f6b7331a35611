"""The peak-memory probe itself: a known allocation is measured to within allocator slack."""

from __future__ import annotations

import pytest
import torch
from peak_memory import CPU_SUPPORTED, peak_extra_bytes


@pytest.mark.skipif(not CPU_SUPPORTED, reason="CPU peak memory needs glibc's mallinfo2")
def test_known_allocation_is_measured():
    size = 16 * 2**20

    def two_buffers_then_free():
        a = torch.ones(size // 4)  # 16 MiB of float32
        b = a * 2  # another 16 MiB while a is alive
        del a, b

    peak = peak_extra_bytes(two_buffers_then_free, torch.device("cpu"))
    assert 2 * size <= peak < 2 * size + 2**20
    assert peak_extra_bytes(lambda: torch.zeros(10), torch.device("cpu")) < 2**16
