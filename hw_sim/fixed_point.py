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


def wrap_int32(x: torch.Tensor) -> torch.Tensor:
    """Two's-complement wraparound of integer values to int32's range."""
    return torch.remainder(x + 2.0 ** 31, 2.0 ** 32) - 2.0 ** 31


def wrap_u(x: torch.Tensor) -> torch.Tensor:
    """Lava's current wrap: subtract 2^24 above 2^23, add 2^24 at or below -2^23 (once, not modulo)."""
    x = torch.where(x > UV_LIMIT, x - 2.0 ** 24, x)
    return torch.where(x <= -UV_LIMIT, x + 2.0 ** 24, x)


def wrap_signed24(x: torch.Tensor) -> torch.Tensor:
    """Modulo-2^24 wrap into [-2^23, 2^23): Lava's conv output clamp (`signed_clamp(x, 24)`)."""
    return torch.remainder(x + UV_LIMIT, 2.0 ** 24) - UV_LIMIT
