"""PGD (Madry et al. 2018): signed-gradient ascent on CE from a uniform random start in the eps-ball."""
from __future__ import annotations

import torchattacks
from torch import nn

from robust.attacks.base import TorchattacksAttack


class PGD(TorchattacksAttack):
    """`steps` steps of size 2.5 * eps / steps (Madry's rule: the walk can cross the ball), torchattacks.PGD."""
    name = "pgd"

    def __init__(self, model: nn.Module, eps: float, steps: int, restarts: int = 1, seed: int = 0):
        super().__init__(model, eps, restarts, seed)
        if steps < 1:
            raise ValueError(f"PGD steps must be >= 1, got {steps}")
        self.steps = steps

    def build(self) -> torchattacks.Attack:
        return torchattacks.PGD(self.model, eps=self.eps, alpha=2.5 * self.eps / self.steps,
                                steps=self.steps, random_start=True)
