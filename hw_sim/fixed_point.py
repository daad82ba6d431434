"""Loihi's CUBA LIF step in torch, exactly as lava-nc 0.10.0's `PyLifModelBitAcc` computes it.

Per step (state units: u and v carry 6 more fractional bits than the file's weights, bias and vThMant):
    u = wrap24(trunc(u * (4096 - i_decay) / 4096) + (a << 6))
    v = clip(trunc(v * (4096 - v_decay) / 4096) + u + (bias << 6), -(2^23 - 1), 2^23 - 1)
    s = v + noise > vth_mant << 6 ;  v[s] = 0            (u untouched, no refractory period)
Lava sums in int32 and wraps u once by 2^24 (not modulo); `CubaParams.wrap` reproduces both, and is only
switched on when the input is large enough for u to reach 2^23 (likewise `saturate` for v's clip).

Values are integers held in float64 tensors: they stay far below 2^53, so sums, products with the decay
factor, division by 4096 (a power of two), trunc and clamp are all exact, and float kernels run several
times faster than int64 division or boolean masking on CPU. Spikes are written as 0.0/1.0 floats.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional, Union

import torch

from hw_sim.netfile import DECAY_UNITY, Neuron

UV_LIMIT = 1 << 23   # u lies in (-UV_LIMIT, UV_LIMIT]; v in [-(UV_LIMIT - 1), UV_LIMIT - 1]
STATE_SHIFT = 6      # synaptic input, bias and threshold are shifted left by 6 into state units
STATE_DTYPE = torch.float64


class CubaParams(NamedTuple):
    """One layer's constants, ready for `cuba_step`."""
    u_factor: float      # (4096 - i_decay) / 4096
    v_factor: float      # (4096 - v_decay) / 4096
    threshold: float     # vth_mant << 6, state units
    bias: Optional[torch.Tensor]  # [*shape] bias << 6 (state units), None when all zero
    wrap: bool           # emulate Lava's int32 sums and 24-bit wrap of u (needed only when |u| can reach 2^23)
    saturate: bool       # clip v (needed only when |v| can reach 2^23 - 1)


@dataclass
class CubaState:
    """One layer's neuron state, advanced in place by `cuba_step` (reusing memory is markedly faster on CPU)."""
    u: torch.Tensor      # [batch, *shape] integers in STATE_DTYPE, state units
    v: torch.Tensor      # [batch, *shape] integers in STATE_DTYPE, state units
    quiet: torch.Tensor  # [batch, *shape] scratch: 1.0 where the last step did not spike

    @classmethod
    def zeros(cls, like: torch.Tensor) -> "CubaState":
        """Zero state shaped and placed like `like` ([batch, *shape])."""
        return cls(*(torch.zeros_like(like, dtype=STATE_DTYPE) for _ in range(3)))


def _horizon(decay_: int, steps: int) -> int:
    """Bound on sum_j ((4096 - d) / 4096)^j over a window: how many inputs a decaying state can pile up."""
    return steps if decay_ == 0 else min(steps, math.ceil(DECAY_UNITY / decay_))


def cuba_params(neuron: Neuron, bias: torch.Tensor, max_abs_input: int, steps: int) -> CubaParams:
    """Constants for a layer whose synaptic input (file units) never exceeds `max_abs_input` in magnitude
    during a window of `steps` steps. bias: [*shape] integers, file units."""
    # The decay truncates toward zero, so |u| <= max|a << 6| * horizon and |v| <= (max|u| + max|bias|) * horizon.
    u_bound = (max_abs_input << STATE_SHIFT) * _horizon(neuron.i_decay, steps)
    wrap = u_bound >= UV_LIMIT
    bias_max = int(bias.abs().max()) << STATE_SHIFT if bias.numel() else 0
    v_bound = (min(u_bound, UV_LIMIT) + bias_max) * _horizon(neuron.v_decay, steps)
    bias6 = bias.to(STATE_DTYPE) * (1 << STATE_SHIFT) if bias_max else None
    return CubaParams((DECAY_UNITY - neuron.i_decay) / DECAY_UNITY, (DECAY_UNITY - neuron.v_decay) / DECAY_UNITY,
                      float(neuron.vth_mant << STATE_SHIFT), bias6, wrap, wrap or v_bound >= UV_LIMIT - 1)


def decay_(x: torch.Tensor, factor: float, scratch: torch.Tensor) -> torch.Tensor:
    """x = trunc(x * factor) in place, factor = (4096 - d) / 4096: Lava's int64 product >> 12 rounded toward
    zero, exact in float64. Returns x; scratch: a tensor like x, overwritten.

    On the CPU trunc(y) is computed as y - frac(y) (both exact for |y| < 2^52): torch 2.3's CPU `trunc` is not
    vectorized and runs about ten times slower than `frac` and `sub`."""
    if factor == 1.0:
        return x
    x.mul_(factor)
    return x.sub_(torch.frac(x, out=scratch)) if x.device.type == "cpu" else x.trunc_()


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


def _add_(x: torch.Tensor, y: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """x += y in place. A CPU sum of mixed dtypes allocates a converted copy of y on every call; converting into
    `scratch` (like x) avoids that."""
    return x.add_(y if y.dtype == x.dtype or x.device.type != "cpu" else scratch.copy_(y))


def cuba_step(state: CubaState, a6: torch.Tensor, p: CubaParams, spikes: torch.Tensor,
              noise: Optional[torch.Tensor] = None) -> None:
    """Advance `state` by one Lava step in place and write the step's spikes (0.0/1.0) into `spikes`.

    a6: [batch, *shape] synaptic input shifted left by 6 (state units), integers in float32 (exact below 2^24
        before the shift) or STATE_DTYPE; not modified.
    spikes: [batch, *shape] float tensor to fill. noise: [*shape] threshold noise (state units) or None.
    Every CPU operation runs in place on existing memory (state.quiet is the scratch): fresh allocations of
    this size cost page faults on every step.
    """
    scratch = state.quiet
    if p.u_factor == 0.0 and not p.wrap:
        state.u = a6  # full current decay: u is this step's input (u is never modified in place then)
    elif p.u_factor == 0.0:
        state.u.copy_(a6)
    else:
        _add_(decay_(state.u, p.u_factor, scratch), a6, scratch)
    if p.wrap:
        wrap_u_(wrap_int32_(state.u, scratch), scratch)
    v = state.v
    if p.v_factor == 0.0:
        v.copy_(state.u)
    else:
        _add_(decay_(v, p.v_factor, scratch), state.u, scratch)
    if p.bias is not None:
        v.add_(p.bias)
    if p.wrap:
        wrap_int32_(v, scratch)
    if p.saturate:
        v.clamp_(-(UV_LIMIT - 1), UV_LIMIT - 1)
    fire_(v, p.threshold if noise is None else noise.neg().add_(p.threshold), spikes, scratch)


def fire_(v: torch.Tensor, threshold: Union[float, torch.Tensor], spikes: torch.Tensor,
          scratch: torch.Tensor) -> None:
    """spikes = 1.0 where v > threshold else 0.0, then v = 0 where it fired; in place, integers in STATE_DTYPE.

    threshold: a number or [*shape] (state units); scratch: like v, overwritten. GPU kernels convert dtypes on
    the fly, so there it takes two passes; on the CPU, comparisons into float outputs and mixed-dtype arithmetic
    take slow paths, so v > threshold is found as clamp(v - threshold, 0, 1) == 1 (integers) in v's dtype.
    """
    if v.device.type == "cpu":
        fired = torch.sub(v, threshold, out=scratch).clamp_(0.0, 1.0)
        spikes.copy_(fired)
    else:
        fired = torch.gt(v, threshold, out=spikes)
    v.addcmul_(v, fired, value=-1.0)
