"""Loihi's fixed-point number formats in torch: state units, and the wraps Lava applies (lava-nc 0.10.0).

Values are integers held in float64 tensors: they stay far below 2^53, so sums, products with a decay
factor, division by powers of two, trunc and clamp are all exact, and float kernels run several times
faster than int64 division or boolean masking on CPU. The neuron steps built on them live in `hw_sim.neurons`.
"""
from __future__ import annotations

import torch

UV_LIMIT = 1 << 23   # u lies in (-UV_LIMIT, UV_LIMIT]; v in [-(UV_LIMIT - 1), UV_LIMIT - 1]
STATE_SHIFT = 6      # synaptic input, bias and threshold are shifted left by 6 into state units
STATE_DTYPE = torch.float64


def wrap_int32_(x: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """Two's-complement wraparound of integer values to int32's range, in place: x - floor((x + 2^31) / 2^32) *
    2^32 (exact in float64). scratch: like x, overwritten. Returns x."""
    return x.add_(torch.add(x, 2.0 ** 31, out=scratch).mul_(2.0 ** -32).floor_(), alpha=-(2.0 ** 32))


def wrap_u_(x: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """Lava's current wrap in place: subtract 2^24 above 2^23, then add 2^24 at or below -2^23 (once, not
    modulo). For integers, x > 2^23 exactly where clamp(x - 2^23, 0, 1) is 1. scratch: like x. Returns x."""
    x.add_(torch.sub(x, UV_LIMIT, out=scratch).clamp_(0.0, 1.0), alpha=-(2.0 ** 24))
    return x.add_(torch.neg(x, out=scratch).sub_(UV_LIMIT - 1).clamp_(0.0, 1.0), alpha=2.0 ** 24)


def wrap_int32(x: torch.Tensor) -> torch.Tensor:
    """`wrap_int32_` on a copy."""
    return wrap_int32_(x.clone(), torch.empty_like(x))


def wrap_u(x: torch.Tensor) -> torch.Tensor:
    """`wrap_u_` on a copy."""
    return wrap_u_(x.clone(), torch.empty_like(x))


def wrap_signed24(x: torch.Tensor) -> torch.Tensor:
    """Modulo-2^24 wrap into [-2^23, 2^23): Lava's conv output clamp (`signed_clamp(x, 24)`)."""
    return torch.remainder(x + UV_LIMIT, 2.0 ** 24) - UV_LIMIT
