"""Per-sample attack losses on logits (or log-probabilities): cross-entropy, margin (Carlini-Wagner) and DLR.

Every loss is one an attacker maximizes; all are [batch] tensors so one batch can mix losses row by row.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ce", "margin", "dlr")


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """z_y - max_{j != y} z_j per sample, [batch]: negative means misclassified."""
    true = logits.gather(1, labels[:, None])[:, 0]
    others = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
    return true - others


def dlr(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Croce & Hein's difference of logits ratio, -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3), [batch]."""
    top = logits.sort(1, descending=True).values
    return -margin(logits, labels) / (top[:, 0] - top[:, 2] + 1e-12)


def row_losses(logits: torch.Tensor, labels: torch.Tensor, loss_ids: torch.Tensor) -> torch.Tensor:
    """The loss `LOSSES[loss_ids[i]]` of row i, [batch] (loss_ids: [batch] int64)."""
    every = torch.stack([F.cross_entropy(logits, labels, reduction="none"), -margin(logits, labels),
                         dlr(logits, labels)], 1)
    return every.gather(1, loss_ids[:, None])[:, 0]
