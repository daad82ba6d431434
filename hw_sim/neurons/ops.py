"""The tensor operations a neuron step is written in, and their exact integer implementation.

Values are integers held in float64 tensors (`hw_sim.fixed_point`): sums, products with a decay factor
(k / 4096), division by powers of two, trunc, floor and clamp are all exact below 2^53.
"""
from __future__ import annotations

from typing import Optional, Protocol, Tuple

import torch

from hw_sim.fixed_point import UV_LIMIT, wrap_int32, wrap_u


class NeuronOps(Protocol):
    """Operations on [batch, *shape] tensors of integer values; an implementation may reuse its first argument."""

    def decay(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        """trunc(x * factor), factor = (4096 - d) / 4096: Lava's int64 product >> 12 rounded toward zero."""

    def add(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x + y."""

    def wrap_current(self, u: torch.Tensor) -> torch.Tensor:
        """Lava's int32 sum then its once-only 24-bit wrap of u."""

    def wrap_int32(self, x: torch.Tensor) -> torch.Tensor:
        """Two's-complement wrap to int32."""

    def saturate(self, v: torch.Tensor) -> torch.Tensor:
        """clip(v, -(2^23 - 1), 2^23 - 1)."""

    def fire(self, v: torch.Tensor, threshold: float, noise: Optional[torch.Tensor],
             out: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Spikes z = (v + noise > threshold) as 0/1 (written into `out` when given) and v reset to 0 where z."""


class ExactOps:
    """Lava's integer arithmetic, in place where it can be: the caller must own every tensor it passes as x/u/v.

    scratch: a float64 tensor shaped like the state, reused by `fire` (boolean tensors are slow in CPU arithmetic).
    """

    def __init__(self, scratch: Optional[torch.Tensor] = None) -> None:
        self.scratch = scratch

    def decay(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        return x if factor == 1.0 else x.mul_(factor).trunc_()

    def add(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.add_(y)

    def wrap_current(self, u: torch.Tensor) -> torch.Tensor:
        return wrap_u(wrap_int32(u))

    def wrap_int32(self, x: torch.Tensor) -> torch.Tensor:
        return wrap_int32(x)

    def saturate(self, v: torch.Tensor) -> torch.Tensor:
        return v.clamp_(-(UV_LIMIT - 1), UV_LIMIT - 1)

    def fire(self, v: torch.Tensor, threshold: float, noise: Optional[torch.Tensor],
             out: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        quiet = self.scratch if self.scratch is not None else torch.empty_like(v)
        torch.le(v if noise is None else v + noise, threshold, out=quiet)
        out = torch.sub(1.0, quiet) if out is None else torch.sub(1.0, quiet, out=out)
        return out, v.mul_(quiet)


EXACT = ExactOps()  # for callers that pass fresh tensors and need no scratch reuse
