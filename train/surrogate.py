"""Spike functions: Heaviside forward (strict `x > 0`, as Loihi), surrogate derivative backward.

`x` is the distance to threshold, `v - v_th`, in membrane units. `alpha` sets the sharpness (1/membrane units).
Norse's own surrogates are available by their Norse names; note that Norse 1.1.0's `super` ignores `alpha`
(its backward is `1 / (|x| + 1)^2`), so tgo's `superspike` implements SuperSpike with `alpha` honoured.
An attacker may use a different surrogate than training did: swap it with `set_surrogate` (train.models).
"""
from __future__ import annotations

import math
from typing import Callable, Dict

import torch
from norse.torch.functional.heaviside import heaviside
from norse.torch.functional.threshold import threshold as norse_threshold

Derivative = Callable[[torch.Tensor, float], torch.Tensor]

_DERIVATIVES: Dict[str, Derivative] = {
    # Zenke & Ganguli 2018, section 3.3.2: 1 / (alpha |x| + 1)^2
    "superspike": lambda x, a: (a * x.abs() + 1.0).pow(-2),
    # Fang et al. (SpikingJelly ATan): derivative of arctan(pi/2 alpha x) / pi
    "arctan": lambda x, a: (a / 2) / (1 + (math.pi / 2 * a * x).pow(2)),
    "sigmoid": lambda x, a: a * torch.sigmoid(a * x) * (1 - torch.sigmoid(a * x)),
    # triangle of half-width 1/alpha and unit area
    "triangle": lambda x, a: a * torch.clamp(1.0 - a * x.abs(), min=0.0),
    # straight-through: the identity gradient (BPDA through the step)
    "ste": lambda x, a: torch.ones_like(x),
}
_NORSE_METHODS = ("super", "tanh", "circ", "heavi_erfc")
SURROGATES = tuple(_DERIVATIVES) + _NORSE_METHODS


class _SurrogateSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, name: str, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.name, ctx.alpha = name, alpha
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_output * _DERIVATIVES[ctx.name](x, ctx.alpha), None, None


def spike(x: torch.Tensor, name: str, alpha: float) -> torch.Tensor:
    """Spikes `x > 0` (same shape and dtype as `x`) with the named surrogate gradient."""
    if name in _DERIVATIVES:
        return _SurrogateSpike.apply(x, name, alpha)
    if name in _NORSE_METHODS:
        return norse_threshold(x, name, alpha)
    raise ValueError(f"unknown surrogate '{name}' (choose from {', '.join(SURROGATES)})")


def surrogate_derivative(name: str, x: torch.Tensor, alpha: float) -> torch.Tensor:
    """The backward factor d spike / d x that `spike` uses, for tests and plots."""
    x = x.detach().clone().requires_grad_(True)
    spike(x, name, alpha).sum().backward()
    return x.grad
