"""Square (Andriushchenko et al. 2020): score-based random search over square patches; no gradients.

torchattacks' search, with one fix: torchattacks returns the clean image for every sample it did not fool,
which on a stochastic model throws away the best point found; here every sample keeps its best point.
Runs on any callable (wrap it with `robust.target.as_module`), e.g. a bit-exact fixed-point simulator.
"""
from __future__ import annotations

import torch
import torchattacks
from torch import nn

from robust.attacks.base import TorchattacksAttack


class _SquareBestPoint(torchattacks.Square):
    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images, labels = images.clone().detach().to(self.device), labels.clone().detach().to(self.device)
        self.init_hyperparam(images)
        return self.attack_single_run(images, labels)[1]


class Square(TorchattacksAttack):
    """L-inf Square on the margin loss, `queries` model calls per sample at most (AutoAttack: 5000)."""
    name = "square"
    needs_gradients = False

    def __init__(self, model: nn.Module, eps: float, queries: int = 5000, restarts: int = 1, seed: int = 0):
        super().__init__(model, eps, restarts, seed)
        if queries < 1:
            raise ValueError(f"Square queries must be >= 1, got {queries}")
        self.queries = queries

    def build(self) -> torchattacks.Attack:
        return _SquareBestPoint(self.model, norm="Linf", eps=self.eps, n_queries=self.queries, n_restarts=1,
                                p_init=0.8, loss="margin", resc_schedule=True, seed=self.seed)
