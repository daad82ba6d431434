"""APGD (Croce & Hein 2020) with the CE or the DLR loss, torchattacks' implementation with two fixes.

1. Steps are explicit (default 100, as AutoAttack), never torchattacks' default of 10.
2. torchattacks returns the clean image for every sample it did not fool; on a stochastic model that
   throws away the best point found. Here a sample keeps its first misclassified iterate if there was
   one, else its highest-loss iterate (`attack_single_run`'s x_best).
"""
from __future__ import annotations

import torch
import torchattacks
from torch import nn

from robust.attacks.base import TorchattacksAttack

LOSSES = ("ce", "dlr")


class APGDBestPoint(torchattacks.APGD):
    """torchattacks' APGD returning each sample's first misclassified iterate, else its highest-loss one."""
    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images, labels = images.clone().detach().to(self.device), labels.clone().detach().to(self.device)
        x_best, still_correct, _, x_fooled = self.attack_single_run(images, labels)
        return torch.where(still_correct.view(-1, *[1] * (images.dim() - 1)), x_best, x_fooled)


class APGD(TorchattacksAttack):
    """APGD, L-inf, step-size schedule rho = 0.75; `loss` is 'ce' or 'dlr' (DLR needs >= 3 classes)."""
    name = "apgd"

    def __init__(self, model: nn.Module, eps: float, loss: str, steps: int = 100, restarts: int = 1,
                 seed: int = 0):
        super().__init__(model, eps, restarts, seed)
        if loss not in LOSSES:
            raise ValueError(f"APGD loss must be one of {LOSSES}, got '{loss}'")
        if steps < 1:
            raise ValueError(f"APGD steps must be >= 1, got {steps}")
        self.loss, self.steps = loss, steps

    def build(self) -> torchattacks.Attack:
        return APGDBestPoint(self.model, norm="Linf", eps=self.eps, steps=self.steps, n_restarts=1,
                              seed=self.seed, loss=self.loss, eot_iter=1, rho=0.75)
