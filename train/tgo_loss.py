"""The TGO membrane-potential constraint (paper Eq. 12-13) and its cosine-ramped weight."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from train.config import TGOConfig


class _GuardedBand(torch.autograd.Function):
    """mean(max(0, delta - |V - v_th|)) in few passes over the potentials (it runs on every training step)."""

    @staticmethod
    def forward(ctx, potentials: torch.Tensor, v_th: float, delta: float) -> torch.Tensor:
        distance = potentials - v_th
        ctx.save_for_backward(distance)
        ctx.delta = delta
        return distance.abs().sub_(delta).clamp_(max=0.0).sum().neg() / potentials.numel()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (distance,) = ctx.saved_tensors
        inside = distance.abs() < ctx.delta
        return -torch.sign(distance).mul_(inside).mul_(grad / distance.numel()), None, None


def membrane_constraint(potentials: torch.Tensor, v_th: float, delta: float) -> torch.Tensor:
    """C_l = mean over steps, batch and neurons of max(0, delta - |V - v_th|). potentials: [T, batch, ...]."""
    return _GuardedBand.apply(potentials, v_th, delta)


def total_constraint(potentials: Sequence[torch.Tensor], v_th: float, delta: float) -> torch.Tensor:
    """sum_l C_l over the spiking layers."""
    return torch.stack([membrane_constraint(p, v_th, delta) for p in potentials]).sum()


def tgo_lambda(epoch: int, epochs: int, cfg: TGOConfig) -> float:
    """Cosine ramp from 0 (epoch 0) to lambda_max (end of the ramp, default the last epoch), then flat."""
    ramp = cfg.ramp_epochs or epochs
    progress = 1.0 if ramp <= 1 else min(1.0, epoch / (ramp - 1))
    return cfg.lambda_max * 0.5 * (1.0 - math.cos(math.pi * progress))


def near_threshold_count(potentials: torch.Tensor, v_th: float, delta: float) -> int:
    """Number of (step, sample, neuron) entries with |V - v_th| < delta: the threshold-neighbouring neurons."""
    return int(((potentials - v_th).abs() < delta).sum())
