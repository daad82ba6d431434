"""APGD (Croce & Hein 2020) with a loss per row, and the surrogate sweep that feeds the adaptive engine.

`apgd` runs many independent attacks in one batch: row i attacks image i with loss `LOSSES[loss_ids[i]]`
from its own random start, with APGD's step-size schedule (step 2 eps, halved at the checkpoints
p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06) when fewer than rho = 0.75 of the
steps since the last checkpoint raised the loss, or when neither the step nor the best loss changed;
a halving restarts from the best point) and momentum 0.75. It returns each row's highest-loss point.
`sweep` runs it once per surrogate with `restarts` random starts per image, the restarts cycling through
the losses, on the noise-averaged model (`eot.NoiseAveraged`) when the model is stochastic.
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence

import torch
from torch import nn

from robust.attacks.base import project, seed_everything
from robust.attacks.eot import NoiseAveraged
from robust.attacks.losses import LOSSES, row_losses
from robust.surrogates import SurrogateSpec

RHO, MOMENTUM = 0.75, 0.75


def checkpoints(steps: int) -> List[int]:
    """APGD's iterations at which the step size may halve (ceil(p_j * steps), p_j as in the module doc)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(q * steps - 1e-9) for q in p[1:] if q < 1})


def _loss_and_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_ids: torch.Tensor):
    x = x.clone().requires_grad_(True)
    loss = row_losses(model(x), y, loss_ids)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad.detach()


def apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, loss_ids: torch.Tensor, steps: int,
         generator: torch.Generator) -> torch.Tensor:
    """APGD, L-inf: x [rows, ...] in [0, 1], y [rows], loss_ids [rows] -> the best point of each row, same shape.

    Each row starts uniformly in its eps-ball (from `generator`); `steps` >= 1 gradient evaluations per row.
    """
    view = (-1,) + (1,) * (x.dim() - 1)
    start = x + eps * (2 * torch.rand(x.shape, generator=generator, dtype=x.dtype) - 1).to(x.device)
    cur = project(start, x, eps)
    loss, grad = _loss_and_grad(model, cur, y, loss_ids)
    best, best_loss = cur.clone(), loss.clone()
    step = torch.full((len(x),), 2.0 * eps, dtype=x.dtype, device=x.device)
    prev = cur.clone()
    marks = checkpoints(steps)
    last_mark, successes = 0, torch.zeros(len(x), device=x.device)
    best_at_mark, step_at_mark = best_loss.clone(), step.clone()
    for k in range(1, steps):
        z = project(cur + step.view(view) * grad.sign(), x, eps)
        momentum = MOMENTUM if k > 1 else 1.0
        nxt = project(cur + momentum * (z - cur) + (1 - momentum) * (cur - prev), x, eps)
        new_loss, new_grad = _loss_and_grad(model, nxt, y, loss_ids)
        successes += (new_loss > loss).float()
        improved = new_loss > best_loss
        best = torch.where(improved.view(view), nxt, best)
        best_loss = torch.where(improved, new_loss, best_loss)
        prev, cur, loss, grad = cur, nxt, new_loss, new_grad
        if k in marks:
            stalled = successes < RHO * (k - last_mark)
            frozen = (step == step_at_mark) & (best_loss == best_at_mark)
            halve = stalled | frozen
            step = torch.where(halve, step / 2, step)
            cur = torch.where(halve.view(view), best, cur)
            if halve.any():
                loss_b, grad_b = _loss_and_grad(model, best, y, loss_ids)
                loss = torch.where(halve, loss_b, loss)
                grad = torch.where(halve.view(view), grad_b, grad)
            last_mark, successes = k, torch.zeros_like(successes)
            best_at_mark, step_at_mark = best_loss.clone(), step.clone()
    return best.detach()


def sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, surrogates: Sequence[SurrogateSpec],
          restarts: int, steps: int, eot_k: int, seed: int, max_rows: int = 4096) -> Dict[str, torch.Tensor]:
    """APGD per surrogate with `restarts` starts per image (losses cycling ce, margin, dlr).

    x [N, ...], y [N] -> {'apgd-<loss>@<surrogate>#<restart>': [N, ...] adversarial images}. `eot_k` > 1
    attacks the average over that many noise draws; rows are batched up to `max_rows` forwards at once.
    """
    target = NoiseAveraged(model, eot_k) if eot_k > 1 else model
    n = len(x)
    loss_ids = torch.arange(restarts, device=x.device).repeat_interleave(n) % len(LOSSES)
    rows_x, rows_y = x.repeat(restarts, *[1] * (x.dim() - 1)), y.repeat(restarts)
    chunk = max(1, max_rows // eot_k)
    out: Dict[str, torch.Tensor] = {}
    for index, surrogate in enumerate(surrogates):
        generator = torch.Generator().manual_seed(seed + index)
        seed_everything(target, seed + index)
        with surrogate.applied(model):
            adv = torch.cat([apgd(target, rows_x[i:i + chunk], rows_y[i:i + chunk], eps, loss_ids[i:i + chunk],
                                  steps, generator) for i in range(0, len(rows_x), chunk)])
        for r in range(restarts):
            out[f"apgd-{LOSSES[r % len(LOSSES)]}@{surrogate.label}#{r}"] = adv[r * n:(r + 1) * n]
    return out
