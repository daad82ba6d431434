"""Loihi's CUBA LIF step (netx neuron types CUBA and LOIHI), exactly as lava-nc 0.10.0's `PyLifModelBitAcc`.

Per step (state units: u and v carry 6 more fractional bits than the file's weights, bias and vThMant):
    u = wrap24(trunc(u * (4096 - i_decay) / 4096) + (a << 6))
    v = clip(trunc(v * (4096 - v_decay) / 4096) + u + (bias << 6), -(2^23 - 1), 2^23 - 1)    (`cuba_potential`)
    s = v + noise > vth_mant << 6 ;  v[s] = 0            (u untouched, no refractory period)
Lava sums in int32 and wraps u once by 2^24 (not modulo); `CubaParams.wrap` reproduces both, and is only
switched on when the input is large enough for u to reach 2^23 (likewise `saturate` for v's clip).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Tuple

import torch

from hw_sim.fixed_point import STATE_DTYPE, STATE_SHIFT, UV_LIMIT
from hw_sim.netfile import DECAY_UNITY, Neuron
from hw_sim.neurons.ops import NeuronOps


class CubaParams(NamedTuple):
    """One layer's constants, ready for `cuba_step`."""
    u_factor: float      # (4096 - i_decay) / 4096
    v_factor: float      # (4096 - v_decay) / 4096
    threshold: float     # vth_mant << 6, state units
    bias: Optional[torch.Tensor]  # [*shape] bias << 6 (state units), None when all zero
    wrap: bool           # emulate Lava's int32 sums and 24-bit wrap of u (needed only when |u| can reach 2^23)
    saturate: bool       # clip v (needed only when |v| can reach 2^23 - 1)


class CubaState(NamedTuple):
    """One layer's neuron state."""
    u: torch.Tensor      # [batch, *shape] integers in STATE_DTYPE, state units
    v: torch.Tensor      # [batch, *shape] integers in STATE_DTYPE, state units, after the reset

    @classmethod
    def zeros(cls, like: torch.Tensor) -> "CubaState":
        """Zero state shaped and placed like `like` ([batch, *shape])."""
        return cls(*(torch.zeros_like(like, dtype=STATE_DTYPE) for _ in range(2)))


def _horizon(decay: int, steps: int) -> int:
    """Bound on sum_j ((4096 - d) / 4096)^j over a window: how many inputs a decaying state can pile up."""
    return steps if decay == 0 else min(steps, math.ceil(DECAY_UNITY / decay))


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


def cuba_potential(v: torch.Tensor, u: torch.Tensor, p: CubaParams, ops: NeuronOps) -> torch.Tensor:
    """v before the spike test and reset: clip(trunc(v * v_factor) + u + (bias << 6)).

    v: the previous step's v after its reset; u: this step's current; both [batch, *shape], state units.
    """
    v = ops.add(ops.decay(v, p.v_factor), u)
    if p.bias is not None:
        v = ops.add(v, p.bias)
    if p.wrap:
        v = ops.wrap_int32(v)
    return ops.saturate(v) if p.saturate else v


def cuba_integrate(state: CubaState, a6: torch.Tensor, p: CubaParams, ops: NeuronOps) -> CubaState:
    """This step's u and v before the spike test and reset. a6: [batch, *shape] synaptic input shifted left
    by 6 (state units); never modified."""
    if p.u_factor == 0.0 and not p.wrap:
        u = a6  # full current decay: u is this step's input (never modified in place then)
    else:  # (with a wrap, u = trunc(u * 0) + a6 puts the input into u's own memory, which the wrap may reuse)
        u = ops.add(ops.decay(state.u, p.u_factor), a6)
    if p.wrap:
        u = ops.wrap_current(u)
    return CubaState(u, cuba_potential(state.v, u, p, ops))


def cuba_step(state: CubaState, a6: torch.Tensor, p: CubaParams, ops: NeuronOps,
              noise: Optional[torch.Tensor] = None,
              out: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, CubaState]:
    """One Lava step: (spikes as 0/1, next state); `cuba_integrate`, then the spike test and reset.

    noise: [*shape] threshold noise (state units) or None. out: optional tensor the spikes are written into.
    """
    before = cuba_integrate(state, a6, p, ops)
    spikes, v = ops.fire(before.v, p.threshold, noise, out)
    return spikes, CubaState(before.u, v)
