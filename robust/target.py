"""What is attacked: adapters and probes for a model x [batch, C, H, W] in [0, 1] -> logits [batch, classes]."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from robust.attacks.base import seed_everything

Classifier = Callable[[torch.Tensor], torch.Tensor]


class CallableModel(nn.Module):
    """A plain callable as an `nn.Module`, for the score-based Square (no gradients flow through it)."""

    def __init__(self, fn: Classifier, device: str | torch.device = "cpu"):
        super().__init__()
        self.fn = fn
        # torchattacks reads the device from the first parameter; an empty one carries it
        self.device_marker = nn.Parameter(torch.empty(0, device=device), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def as_module(model: nn.Module | Classifier) -> nn.Module:
    """`model` itself if it is an nn.Module, else its `CallableModel` wrapper."""
    return model if isinstance(model, nn.Module) else CallableModel(model)


def differentiable(model: nn.Module) -> bool:
    """Whether gradient attacks can run on `model` (plain callables cannot)."""
    return not isinstance(model, CallableModel)


@torch.no_grad()
def is_stochastic(model: nn.Module, x: torch.Tensor, tries: int = 5) -> bool:
    """AutoAttack's randomness check: do `tries` forwards of the same inputs x give different logits?"""
    first = model(x)
    return any(not torch.equal(first, model(x)) for _ in range(tries - 1))


@torch.no_grad()
def score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int, seed: int,
          batch_size: int = 500) -> torch.Tensor:
    """Fraction of `repeats` forwards (noise seeded by `seed`) that classify each sample correctly, [N] float64.

    x: [N, C, H, W] on the model's device, y: [N]. For a deterministic model use repeats = 1 (0 or 1).
    """
    seed_everything(model, seed)
    hits = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        for _ in range(repeats):
            hits[start:start + batch_size] += (model(xb).argmax(1) == yb).double()
    return hits / repeats


def zero_gradient_fraction(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of samples whose cross-entropy input gradient is exactly zero (one forward each)."""
    zero = 0
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(model(xb), y[start:start + batch_size], reduction="sum")
        (grad,) = torch.autograd.grad(loss, xb)
        zero += int((grad.flatten(1).abs().amax(1) == 0).sum())
    return zero / len(x)
