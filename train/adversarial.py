"""Adversarial examples for adversarial training (torchattacks FGSM / PGD on the model in training mode)."""
from __future__ import annotations

import torchattacks

from train.config import AdvTrainConfig
from train.models import SpikingNetwork


def make_attack(model: SpikingNetwork, cfg: AdvTrainConfig) -> torchattacks.Attack:
    """The torchattacks attack for `cfg`, kept in training mode so the noisy neurons stay as trained."""
    if cfg.kind == "fgsm":
        attack = torchattacks.FGSM(model, eps=cfg.eps)
    else:
        step = cfg.step_size if cfg.step_size is not None else 2.5 * cfg.eps / cfg.steps
        attack = torchattacks.PGD(model, eps=cfg.eps, alpha=step, steps=cfg.steps, random_start=True)
    attack.set_model_training_mode(model_training=True)
    return attack

