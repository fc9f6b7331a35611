"""Peak extra memory of one training step, run in a fresh process: ``python memory_probe.py plain|penalty``.

CPU: the peak resident set during the step (``VmHWM`` after resetting it through
``/proc/self/clear_refs``) minus the resident set before it. CUDA: ``torch.cuda.max_memory_allocated``
above the memory allocated before the step. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from lipbench.data import PatchSampler
from lipbench.training import TrainConfig, initial_state, train_step


def _proc_status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(variant: str, device: str = "cpu", power_iters: int = 10) -> dict:
    dev = torch.device(device)
    config = TrainConfig(
        model_kwargs={"depth": 17, "width": 64}, batch_size=8, patch_size=40,
        lam=1e-3 if variant == "penalty" else 0.0, power_iters=power_iters, power_tol=0.0,
    )  # fmt: skip
    state = initial_state(config, dev)
    images = [torch.rand(1, 96, 96, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    sampler = PatchSampler(images, 40, 8, generator=state.generator)
    train_step(state, config, sampler, dev)  # warm-up: Adam state, allocator pools
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        train_step(state, config, sampler, dev)
        torch.cuda.synchronize()
        extra = torch.cuda.max_memory_allocated() - before
    else:
        before = _proc_status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        train_step(state, config, sampler, dev)
        extra = _proc_status("VmHWM") - before
    return {"variant": variant, "device": str(dev), "extra_bytes": extra}


if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else torch.get_num_threads())
    print(json.dumps(measure(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "cpu")))
