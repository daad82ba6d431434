"""An optional fused CUDA kernel for the CUBA step: `torch.compile` of `cuba.cuba_step` with `ops.ExactOps`.

Eager CUDA runs the step as about ten kernels that each stream the float64 state through memory; compiled, the
same code (one implementation) becomes one or two Triton kernels. It stays bit-exact: every intermediate is an
integer product or sum exact in float64 (the decay's product is truncated before anything is added to it, and
the reset's v * fired is exactly v or 0), so fusing, reordering or contracting into FMAs cannot change a value.
Opt-in (inside `enabled()`), and then only on CUDA where this torch has `torch.compile` and Triton is
installed (feature-detected); elsewhere the eager step runs. Not yet on by default: on the CPU (torch 2.3.1,
Inductor's C++ backend) the compiled step was measured NOT bit-exact on lava-dl's mnist.net (its last layer's u
lost its accumulation) and slower, and no GPU run has checked it yet; `bench/gpu_check.py` compares it with the
eager step and the CPU bit for bit before it may be switched on.
"""
from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from hw_sim.neurons.cuba import cuba_step

_state = {"enabled": False, "compiled": None}


def available(device: torch.device) -> bool:
    """Whether a fused step runs on `device`: inside `enabled()`, on CUDA, `torch.compile` and Triton present."""
    return bool(_state["enabled"]) and supported(device)


def cuba_step_for(device: torch.device) -> Callable:
    """`cuba_step`, compiled (lazily, once per process) when `available(device)`, else itself."""
    if not available(device):
        return cuba_step
    if _state["compiled"] is None:
        _state["compiled"] = torch.compile(cuba_step, dynamic=False)
    return _state["compiled"]


def supported(device: torch.device) -> bool:
    """Whether `enabled()` would fuse the step on `device`."""
    return device.type == "cuda" and hasattr(torch, "compile") and importlib.util.find_spec("triton") is not None


@contextmanager
def enabled() -> Iterator[None]:
    """Inside: the fused step where `supported` (checks and benchmarks compare it with the eager one)."""
    saved, _state["enabled"] = _state["enabled"], True
    try:
        yield
    finally:
        _state["enabled"] = saved
