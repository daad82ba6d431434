"""Expectation over Transformation (Athalye et al. 2018) for stochastic models, as a model wrapper.

`NoiseAveraged(model, k)` returns log((1/k) sum_j softmax(f(x; eta_j))), the log of the predicted class
distribution averaged over k independent noise draws (one batched forward of k copies). Its gradient is
the average over the k draws of each draw's gradient of log p, weighted by that draw's p:
grad log E[p] = E[p grad log p] / E[p]. Every attack run on the wrapper (PGD's steps, APGD's step-size
control, Square's accept test) therefore sees the expected prediction rather than one noisy draw. This is
what `eot-<attack>` means. (torchattacks' EOTPGD averages CE gradients instead and cannot serve APGD's and
Square's loss-based decisions.) The output is normalized log-probabilities, which CE, DLR and the margin
treat exactly like logits.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class NoiseAveraged(nn.Module):
    """x [batch, ...] -> log E_k[softmax(model(x))] [batch, classes] over `k` noise draws per sample."""

    def __init__(self, model: nn.Module, k: int):
        super().__init__()
        if k < 1:
            raise ValueError(f"EOT samples k must be >= 1, got {k}")
        self.model, self.k = model, k
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x.repeat(self.k, *[1] * (x.dim() - 1)))
        log_p = logits.log_softmax(-1).view(self.k, x.shape[0], -1)
        return torch.logsumexp(log_p, 0) - math.log(self.k)

    def reseed_noise(self, seed: int) -> None:
        """Pass `reseed_noise` on to the wrapped model, where it has one."""
        reseed = getattr(self.model, "reseed_noise", None)
        if callable(reseed):
            reseed(seed)
