"""Sigma-delta neurons (netx neuron type SDNN) exactly as lava-nc 0.10.0's fixed-point models compute them.

netx builds `Delta` for an input layer, `Sigma` for a layer whose neuron group has `sigma_output`, and
`SigmaDelta` otherwise, always with ReLU activation, no cumulative error, spike_exp = state_exp = 6
(`SDNN_EXP`). Per step, with E = spike_exp + state_exp and vth = vThMant << E:
    SigmaDelta: sigma += a ; act = relu(sigma + (bias << E))          Delta: act = a << E
                delta = act - act_prev + residue
                s = delta where |delta| >= vth else 0      (cum_error: error += delta, test |error|, error = 0 where s)
                residue = delta - s ; out = s >> state_exp (floor)
    Sigma:      sigma += a ; out = sigma
Values are integers held in float64 (exact far beyond Lava's int32 states).
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch

from hw_sim.fixed_point import STATE_DTYPE

SDNN_EXP = 6  # netx's spike_exp and state_exp


class SigmaDeltaParams(NamedTuple):
    """One layer's constants, ready for `sigma_delta_step`."""
    kind: str                     # 'delta' (netx input layer), 'sigma_delta' or 'sigma'
    threshold: float              # vThMant << (spike_exp + state_exp)
    bias: Optional[torch.Tensor]  # [*shape] bias << (spike_exp + state_exp), None when all zero
    relu: bool                    # activation ReLU (netx) or identity
    cum_error: bool               # test the accumulated error instead of delta (Lava option, off in netx)
    input_shift: int              # Delta shifts its input left by spike_exp + state_exp
    state_exp: int                # output = s >> state_exp


class SigmaDeltaState(NamedTuple):
    """One layer's neuron state, each [batch, *shape] integers in STATE_DTYPE."""
    sigma: torch.Tensor
    act: torch.Tensor
    residue: torch.Tensor
    error: torch.Tensor

    @classmethod
    def zeros(cls, like: torch.Tensor) -> "SigmaDeltaState":
        return cls(*(torch.zeros_like(like, dtype=STATE_DTYPE) for _ in range(4)))


def sigma_delta_params(kind: str, vth_mant: int, bias: torch.Tensor, spike_exp: int = SDNN_EXP,
                       state_exp: int = SDNN_EXP, relu: bool = True, cum_error: bool = False) -> SigmaDeltaParams:
    """Constants of a netx-built sigma-delta layer. bias: [*shape] integers, file units."""
    scale = float(1 << (spike_exp + state_exp))
    bias_scaled = bias.to(STATE_DTYPE) * scale if kind == "sigma_delta" and bool(bias.any()) else None
    return SigmaDeltaParams(kind, vth_mant * scale, bias_scaled, relu, cum_error,
                            spike_exp + state_exp if kind == "delta" else 0, state_exp)


class SigmaDeltaOps:
    """Exact integer operations of the sigma-delta step (out of place)."""

    @staticmethod
    def relu(x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=0)

    @staticmethod
    def gate(delta: torch.Tensor, test: torch.Tensor, threshold: float) -> torch.Tensor:
        """delta where |test| >= threshold, else 0."""
        return torch.where(test.abs() >= threshold, delta, torch.zeros_like(delta))

    @staticmethod
    def shift_floor(x: torch.Tensor, bits: int) -> torch.Tensor:
        """x >> bits (arithmetic shift: floor of the division)."""
        return torch.floor(x / (1 << bits))


SIGMA_DELTA_EXACT = SigmaDeltaOps()


def sigma_delta_step(state: SigmaDeltaState, a: torch.Tensor, p: SigmaDeltaParams,
                     ops: SigmaDeltaOps = SIGMA_DELTA_EXACT) -> Tuple[torch.Tensor, SigmaDeltaState]:
    """One Lava step: (graded output message, next state). a: [batch, *shape] synaptic input (file units)."""
    if p.kind == "sigma":
        sigma = state.sigma + a
        return sigma, state._replace(sigma=sigma)
    if p.kind == "delta":
        sigma, act = state.sigma, a * float(1 << p.input_shift)
    else:
        sigma = state.sigma + a
        act = sigma if p.bias is None else sigma + p.bias
        act = ops.relu(act) if p.relu else act
    delta = act - state.act + state.residue
    error = state.error
    if p.cum_error:
        error = error + delta
        s = ops.gate(delta, error, p.threshold)
        error = torch.where(s != 0, torch.zeros_like(error), error)
    else:
        s = ops.gate(delta, delta, p.threshold)
    return ops.shift_floor(s, p.state_exp), SigmaDeltaState(sigma, act, delta - s, error)
