"""R+FGSM (Tramer et al. 2018): a random signed step of eps/2, then a gradient-sign step of eps/2."""
from __future__ import annotations

import torchattacks

from robust.attacks.base import TorchattacksAttack


class RFGSM(TorchattacksAttack):
    """The paper's alpha = eps/2 (torchattacks.RFGSM with one step of size alpha inside the eps-ball)."""
    name = "rfgsm"

    def build(self) -> torchattacks.Attack:
        return torchattacks.RFGSM(self.model, eps=self.eps, alpha=self.eps / 2, steps=1)
