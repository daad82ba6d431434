"""Models whose every noisy forward is named by a noise seed, so that seed sets can be kept apart.

A `SeededModel` maps (x [rows, ...] in [0, 1], seed) -> logits [rows, classes]. The same seed gives the same
noise; `stochastic` False means seeds do not matter (one forward scores an input). Three kinds:
  - `FloatModel`: the float network, its noise generator reseeded per forward;
  - `HwSimModel`: bit-exact hw_sim with the .net's noise seed replaced (`tgo-hash32-gauss-v1`);
  - `Pcg64Model`: the same integer network with threshold noise from numpy's PCG64 instead:
    round_half_away_from_zero(sigma * N(0, 1)) per (layer, neuron, step), the same integer sigma, computed
    by the differentiable twin (whose forward equals hw_sim's for given noise).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from hw_sim.netfile import NetFile, with_noise_seed
from hw_sim.simulator import encode_inputs, logits, simulate
from robust.attacks.losses import margin
from robust.deployed import is_stochastic_net
from robust.target import is_stochastic
from robust.twin import QuantizedTwin


class SeededModel:
    stochastic: bool = True

    def logits(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        raise NotImplementedError


class FloatModel(SeededModel):
    """A float `nn.Module` with `reseed_noise` (tgo's SpikingNetwork), in eval mode."""

    def __init__(self, model: nn.Module, probe: torch.Tensor):
        self.model = model
        self.stochastic = is_stochastic(model, probe)

    @torch.no_grad()
    def logits(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        self.model.reseed_noise(seed)
        return self.model(x).double()


class HwSimModel(SeededModel):
    """hw_sim on `net`; logits are readout state / `scale` (float-logit units)."""

    def __init__(self, net: NetFile, scale: float):
        self.net, self.scale, self.stochastic = net, scale, is_stochastic_net(net)

    def logits(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        net = with_noise_seed(self.net, seed) if self.stochastic else self.net
        run = simulate(net, encode_inputs(net, x.detach().cpu()))
        return logits(net, run).double().to(x.device) / self.scale


def pcg64_noise(net: NetFile, steps: int, seed: int) -> List[Optional[torch.Tensor]]:
    """Per layer [steps, *shape] int64 noise round_half_away(sigma * N(0, 1)) from PCG64(seed), or None."""
    rng = np.random.Generator(np.random.PCG64(seed))
    noises: List[Optional[torch.Tensor]] = []
    for layer in net.layers:
        noise = layer.neuron.noise
        if noise is None or not noise.sigma:
            noises.append(None)
            continue
        scaled = noise.sigma * rng.standard_normal((steps, *layer.shape))
        noises.append(torch.from_numpy(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)).long())
    return noises


class Pcg64Model(SeededModel):
    """The integer network with PCG64 threshold noise (see the module doc)."""

    def __init__(self, net: NetFile, scale: float):
        self.twin = QuantizedTwin(net, logit_scale=scale)
        self.net, self.stochastic = net, is_stochastic_net(net)

    @torch.no_grad()
    def logits(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        self.twin.set_noise_values(pcg64_noise(self.net, self.twin.steps, seed))
        return self.twin(x)


def score(model: SeededModel, x: torch.Tensor, y: torch.Tensor, seeds: Sequence[int],
          max_rows: int = 8192) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per row: the fraction of forwards (one per seed; one in all for a deterministic model) that are
    correct, and the mean margin z_y - max_{j != y} z_j. x [rows, ...], y [rows] -> two [rows] float64."""
    seeds = list(seeds) if model.stochastic else list(seeds)[:1]
    hits = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    margins = torch.zeros_like(hits)
    for start in range(0, len(x), max_rows):
        xb, yb = x[start:start + max_rows], y[start:start + max_rows]
        for seed in seeds:
            z = model.logits(xb, seed)
            hits[start:start + max_rows] += (z.argmax(1) == yb).double()
            margins[start:start + max_rows] += margin(z, yb)
    return hits / len(seeds), margins / len(seeds)
