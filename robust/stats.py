"""Confidence intervals for accuracies."""
from __future__ import annotations

import math
from typing import Tuple


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
