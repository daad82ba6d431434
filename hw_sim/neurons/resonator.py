"""Resonate-and-fire Izhikevich neuron (netx neuron type RF_IZ) exactly as lava-nc 0.10.0's `PyRF_IZModelFixed`.

netx builds it behind complex weights (`ComplexDense`), with state_exp 6 and decay_bits 12. Per step, with
trunc12(x) = sign(x) * (|x| >> 12) and clip24 to [-(2^23 - 1), 2^23 - 1]:
    real' = clip24(trunc12(cos * real) - trunc12(sin * imag) + (a_real << 6))
    imag' = clip24(trunc12(sin * real) + trunc12(cos * imag) + (a_imag << 6))
    s = imag' >= vth ;  real = real' where not s else 0 ;  imag = vth - 1 where s else imag'
Values are integers held in float64 (every product stays below 2^36).
"""
from __future__ import annotations

from typing import NamedTuple, Tuple

import torch

from hw_sim.fixed_point import STATE_DTYPE, STATE_SHIFT, UV_LIMIT

DECAY_BITS = 12  # netx's decay_bits for RF neurons


class ResonatorParams(NamedTuple):
    """One layer's constants, as Lava's RF process stores them."""
    sin_decay: float  # integer, out of 2^12
    cos_decay: float  # integer, out of 2^12
    vth: float        # integer threshold in state units (vThMant << 6)


class ResonatorState(NamedTuple):
    """One layer's state, each [batch, *shape] integers in STATE_DTYPE."""
    real: torch.Tensor
    imag: torch.Tensor

    @classmethod
    def zeros(cls, like: torch.Tensor) -> "ResonatorState":
        return cls(*(torch.zeros_like(like, dtype=STATE_DTYPE) for _ in range(2)))


def _trunc12(x: torch.Tensor) -> torch.Tensor:
    return torch.trunc(x / (1 << DECAY_BITS))


def rf_iz_step(state: ResonatorState, a_real: torch.Tensor, a_imag: torch.Tensor,
               p: ResonatorParams) -> Tuple[torch.Tensor, ResonatorState]:
    """One Lava step: (spikes as 0/1, next state). a_real, a_imag: [batch, *shape] synaptic inputs (file units)."""
    limit = UV_LIMIT - 1
    real = (_trunc12(p.cos_decay * state.real) - _trunc12(p.sin_decay * state.imag)
            + a_real * (1 << STATE_SHIFT)).clamp(-limit, limit)
    imag = (_trunc12(p.sin_decay * state.real) + _trunc12(p.cos_decay * state.imag)
            + a_imag * (1 << STATE_SHIFT)).clamp(-limit, limit)
    spikes = (imag >= p.vth).to(STATE_DTYPE)
    return spikes, ResonatorState(real * (1.0 - spikes), spikes * (p.vth - 1) + (1.0 - spikes) * imag)
