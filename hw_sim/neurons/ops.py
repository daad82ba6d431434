"""The tensor operations a neuron step is written in, and their exact integer implementation.

Values are integers held in float64 tensors (`hw_sim.fixed_point`): sums, products with a decay factor
(k / 4096), division by powers of two, trunc, floor and clamp are all exact below 2^53.
"""
from __future__ import annotations

from typing import Optional, Protocol, Tuple

import torch

from hw_sim.fixed_point import STATE_DTYPE, UV_LIMIT, wrap_int32_, wrap_u_
from hw_sim.netfile import DECAY_UNITY


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
    """Lava's integer arithmetic in place, without hidden allocations on the CPU (fresh tensors of a batch's
    size cost page faults on every step): the caller must own every tensor it passes as x/u/v.

    scratch: a float64 tensor shaped like the state, overwritten by every operation (None: a fresh one each
    time). On the CPU, torch 2.3's `trunc` is not vectorized (about twenty times slower than a division with
    rounding_mode="trunc"), mixed-dtype sums convert a copy, and comparisons into float outputs take slow paths,
    so the decay is trunc(x * k / 4096) as a product and a truncating division (both exact), sums convert
    through the scratch, and v > threshold is clamp(v - threshold, 0, 1) == 1 (integers). GPU kernels convert
    dtypes on the fly, so there `fire` takes two passes.
    """

    def __init__(self, scratch: Optional[torch.Tensor] = None) -> None:
        self.scratch = scratch

    def _scratch(self, like: torch.Tensor) -> torch.Tensor:
        return self.scratch if self.scratch is not None else torch.empty_like(like, dtype=STATE_DTYPE)

    def decay(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        if factor == 1.0:
            return x
        if factor == 0.0:
            return x.zero_()
        return x.mul_(factor * DECAY_UNITY).div_(DECAY_UNITY, rounding_mode="trunc")

    def add(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.dtype == x.dtype or x.device.type != "cpu" or y.shape != x.shape:
            return x.add_(y)
        return x.add_(self._scratch(x).copy_(y))

    def wrap_current(self, u: torch.Tensor) -> torch.Tensor:
        scratch = self._scratch(u)
        return wrap_u_(wrap_int32_(u, scratch), scratch)

    def wrap_int32(self, x: torch.Tensor) -> torch.Tensor:
        return wrap_int32_(x, self._scratch(x))

    def saturate(self, v: torch.Tensor) -> torch.Tensor:
        return v.clamp_(-(UV_LIMIT - 1), UV_LIMIT - 1)

    def fire(self, v: torch.Tensor, threshold: float, noise: Optional[torch.Tensor],
             out: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        level = threshold if noise is None else noise.neg().add_(threshold)  # v + noise > t  <=>  v > t - noise
        if v.device.type == "cpu":
            fired = torch.sub(v, level, out=self._scratch(v)).clamp_(0.0, 1.0)
            out = fired.clone() if out is None else out.copy_(fired)
        else:
            fired = out = torch.gt(v, level).to(v.dtype) if out is None else torch.gt(v, level, out=out)
        return out, v.addcmul_(v, fired, value=-1.0)


EXACT = ExactOps()  # for callers that pass fresh tensors and need no scratch reuse
