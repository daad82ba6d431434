"""The one attack interface: `atk(images, labels)` -> adversarial images.

Contract: images [batch, C, H, W] in [0, 1], labels [batch] int64; the result has the images' shape, lies
within `eps` of them in L-inf and inside [0, 1]. Attacks never change the model's train/eval mode (tgo's
neurons keep their noise in eval() when `noise_at_inference` is set) and seed every random choice from
`seed`, so an attack is reproducible.
"""
from __future__ import annotations

import torch
import torchattacks
from torch import nn

from robust.attacks.losses import margin  # noqa: F401  (re-exported: the suite's restart rule)


def seed_everything(model: nn.Module, seed: int) -> None:
    """Seed torch's global generator and, where the model has one (`reseed_noise`), its noise generator."""
    torch.manual_seed(seed)
    reseed = getattr(model, "reseed_noise", None)
    if callable(reseed):
        reseed(seed)


def project(adv: torch.Tensor, images: torch.Tensor, eps: float) -> torch.Tensor:
    """Clip `adv` into the L-inf ball of radius eps around `images` and into [0, 1]."""
    return torch.min(torch.max(adv, images - eps), images + eps).clamp(0.0, 1.0)


class Attack:
    """Base class: subclasses implement `perturb`; `__call__` adds restarts, seeding and the contract.

    With `restarts` > 1 (randomized attacks only), each sample keeps the restart whose result has the
    lowest margin on the attacked model.
    """
    name = "attack"
    randomized = True        # random start or random search: restarts and seeds matter
    needs_gradients = True   # False: a score-based attack that also runs on a plain callable

    def __init__(self, model: nn.Module, eps: float, restarts: int = 1, seed: int = 0):
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"eps must be in [0, 1] (L-inf, input units), got {eps}")
        if restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {restarts}")
        self.model, self.eps, self.restarts, self.seed = model, float(eps), restarts, seed

    def perturb(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One run of the attack from one random start."""
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if images.dim() < 2 or labels.shape != images.shape[:1]:
            raise ValueError(f"expected images [batch, ...] and labels [batch], got {tuple(images.shape)} "
                             f"and {tuple(labels.shape)}")
        images, labels = images.detach(), labels.detach()
        if self.eps == 0:
            return images.clone()
        best, best_margin = None, None
        for restart in range(self.restarts if self.randomized else 1):
            seed_everything(self.model, self.seed + restart)
            adv = project(self.perturb(images, labels).detach(), images, self.eps)
            if self.restarts == 1 or not self.randomized:
                return adv
            with torch.no_grad():
                m = margin(self.model(adv), labels)
            if best is None:
                best, best_margin = adv, m
            else:
                better = m < best_margin
                best = torch.where(better.view(-1, *[1] * (images.dim() - 1)), adv, best)
                best_margin = torch.where(better, m, best_margin)
        return best

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps}, restarts={self.restarts}, seed={self.seed})"


class TorchattacksAttack(Attack):
    """An attack delegated to a torchattacks object (`build`), run without changing the model's mode.

    torchattacks calls `model.eval()` unless told otherwise; we tell it to keep whatever mode the model is in.
    """

    def build(self) -> torchattacks.Attack:
        raise NotImplementedError

    def perturb(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        atk = self.build()
        training = self.model.training
        atk.set_model_training_mode(model_training=training, batchnorm_training=training,
                                    dropout_training=training)
        return atk(images, labels)
