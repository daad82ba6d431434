"""Confidence intervals for accuracies."""
from __future__ import annotations

import math
from typing import Tuple

import torch


def wilson_interval(successes: float, total: int, z: float = 1.96) -> Tuple[float, float]:
    """Wilson score interval of a proportion (default 95%): (low, high) in [0, 1].

    `successes` may be fractional (expected accuracy over noisy forwards); total > 0 samples.
    """
    if total <= 0:
        raise ValueError("total must be > 0")
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_bootstrap(differences: torch.Tensor, resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> Tuple[float, float, float]:
    """Mean of per-sample paired differences [N] and its percentile bootstrap interval: (mean, low, high)."""
    d = differences.double().flatten()
    generator = torch.Generator().manual_seed(seed)
    means = d[torch.randint(0, len(d), (resamples, len(d)), generator=generator)].mean(1)
    tail = (1 - level) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return float(d.mean()), low, high
