"""Test-set measurements of a spiking model: accuracy and the threshold-neighbouring fraction."""
from __future__ import annotations

from typing import Dict

import torch

from train.data import batches
from train.models import SpikingNetwork
from train.tgo_loss import near_threshold_count

EVAL_NOISE_SEED = 12345  # evaluation noise is seeded, so the same checkpoint always scores the same


@torch.no_grad()
def evaluate(model: SpikingNetwork, x: torch.Tensor, y: torch.Tensor, delta: float,
             batch_size: int = 256) -> Dict[str, float]:
    """Clean accuracy and the fraction of (step, sample, neuron) potentials within `delta` of threshold.

    Runs in eval mode (noise as `noise_at_inference` says) with a fixed noise seed. x: [N, C, H, W].
    """
    was_training = model.training
    model.eval()
    model.reseed_noise(EVAL_NOISE_SEED)
    device = next(model.parameters()).device
    correct, near, total = 0, 0, 0
    v_th = model.lif_layers()[0].v_th
    for xb, yb in batches(x, y, batch_size):
        out = model.run(xb.to(device))
        correct += int((out.logits.argmax(1).cpu() == yb).sum())
        near += sum(near_threshold_count(p, v_th, delta) for p in out.potentials)
        total += sum(p.numel() for p in out.potentials)
    model.train(was_training)
    return {"accuracy": correct / len(x), "near_threshold_fraction": near / total}
