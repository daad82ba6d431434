"""FGSM (Goodfellow et al. 2015): one signed-gradient step of size eps on the cross-entropy loss."""
from __future__ import annotations

import torchattacks

from robust.attacks.base import TorchattacksAttack


class FGSM(TorchattacksAttack):
    """x + eps * sign(grad_x CE(f(x), y)), clipped to [0, 1] (torchattacks.FGSM)."""
    name = "fgsm"
    randomized = False

    def build(self) -> torchattacks.Attack:
        return torchattacks.FGSM(self.model, eps=self.eps)
