"""The chip's input grid: a pixel x enters the deployed network as the level round(x * Q) (ties to even).

Within an L-inf ball of radius eps around x (and inside [0, 1]) the chip can be shown the levels
lo..hi = round(max(x - eps, 0) * Q)..round(min(x + eps, 1) * Q). `to_point` turns levels back into an input
inside the ball that rounds to exactly those levels, so one candidate serves the float model and the chip.
`rounded` and `corners` project any candidate onto the grid; `search` is a gradient-free random search
with greedy coordinate moves over the levels, scored by an oracle (e.g. hw_sim's expected margin).
"""
from __future__ import annotations

from typing import Callable, Tuple

import torch

Oracle = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (inputs [rows, ...], labels [rows]) -> [rows]


def bounds(x: torch.Tensor, eps: float, q: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Lowest and highest level the chip can see per pixel: two int64 tensors shaped like x."""
    lo = torch.round((x.double() - eps).clamp(0.0, 1.0) * q).long()
    hi = torch.round((x.double() + eps).clamp(0.0, 1.0) * q).long()
    return lo, hi


def to_point(levels: torch.Tensor, x: torch.Tensor, eps: float, q: int) -> torch.Tensor:
    """Levels (int64, shaped like x, within `bounds`) -> an input in the eps-ball of x that rounds to them."""
    point = (levels.double() / q).to(x.dtype)
    return torch.min(torch.max(point, x - eps), x + eps).clamp(0.0, 1.0)


def rounded(adv: torch.Tensor, x: torch.Tensor, eps: float, q: int) -> torch.Tensor:
    """`adv` as the chip sees it (its levels), as an input in the ball: same shape as x."""
    lo, hi = bounds(x, eps, q)
    return to_point(torch.round(adv.double() * q).long().clamp(lo, hi), x, eps, q)


def corners(adv: torch.Tensor, x: torch.Tensor, eps: float, q: int) -> torch.Tensor:
    """`adv`'s direction pushed to the ball's corners on the grid: hi where adv > x, lo where adv < x."""
    lo, hi = bounds(x, eps, q)
    level = torch.round(x.double() * q).long()
    levels = torch.where(adv > x, hi, torch.where(adv < x, lo, level))
    return to_point(levels, x, eps, q)


def search(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, eps: float, q: int, start: torch.Tensor, queries: int,
           proposals: int, generator: torch.Generator) -> torch.Tensor:
    """Random search plus greedy coordinate moves over levels, from `start` (inputs shaped like x [N, ...], labels y [N]).

    The oracle returns a value to lower per row, e.g. the expected margin over a fixed set of noise seeds.

    Each round proposes `proposals` moves per image, evaluated in one batch: half reset a random block of
    pixels (a fraction shrinking from 30% to one pixel) to random ball corners, half move one pixel to
    another level within its range. An image takes its best proposal when it lowers the oracle's value.
    `queries` oracle evaluations per image in all. Returns the best inputs found, [N, ...].
    """
    n, shape = len(x), x.shape[1:]
    lo, hi = (b.flatten(1) for b in bounds(x, eps, q))
    span = (hi - lo + 1)
    levels = torch.round(start.double() * q).long().flatten(1).clamp(lo, hi)
    point = lambda lv: to_point(lv.view(-1, *shape), x.repeat_interleave(len(lv) // n, 0), eps, q)
    value = oracle(point(levels), y)
    y_rows = y.repeat_interleave(proposals)
    rounds = max(1, queries // proposals)
    d = levels.shape[1]
    for r in range(rounds):
        cand = levels.repeat_interleave(proposals, 0)                      # [n * P, d]
        rlo, rhi, rspan = (t.repeat_interleave(proposals, 0) for t in (lo, hi, span))
        block = torch.arange(len(cand)) % proposals < proposals // 2
        fraction = 0.3 * (1 - r / rounds) + 1.0 / d
        pick = torch.rand(cand.shape, generator=generator) < fraction
        corner = torch.where(torch.rand(cand.shape, generator=generator) < 0.5, rlo, rhi)
        single = torch.zeros_like(pick)
        single[torch.arange(len(cand)), torch.randint(0, d, (len(cand),), generator=generator)] = True
        level = rlo + (torch.rand(cand.shape, generator=generator) * rspan).long().clamp(max=rspan - 1)
        cand = torch.where(block[:, None] & pick, corner, cand)
        cand = torch.where(~block[:, None] & single, level, cand)
        values = oracle(point(cand), y_rows).view(n, proposals)
        best_value, best_index = values.min(1)
        better = best_value < value
        chosen = cand.view(n, proposals, d)[torch.arange(n), best_index]
        levels = torch.where(better[:, None], chosen, levels)
        value = torch.where(better, best_value, value)
    return to_point(levels.view(n, *shape), x, eps, q)
