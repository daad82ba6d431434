"""The deployed (fixed-point) model as an attack target: its differentiable twin, its logit scale and noise seeds.

Noise model. A `.net` fixes the threshold noise by its seed: g(seed, layer, neuron, step). Like the float
model, whose noise is drawn afresh at every forward, the deployed stochastic neuron is evaluated with a
fresh seed per inference (drawn from a generator that `reseed_noise` seeds), so attacks need EOT and
scores average over draws, exactly as on the float side. `fresh_noise=False` keeps the file's own seed: a
deterministic network, and an attacker who knows that seed.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from hw_sim.netfile import NetFile, with_noise_seed
from robust.twin import QuantizedTwin
from train.config import NeuronConfig


def logit_scale(net_path: Path, net: NetFile) -> float:
    """State units per float logit of the readout, from the export report beside the .net (`export.json`).

    Without it, 64 * T (raw weighted spike counts) keeps cross-entropy in a usable range.
    """
    report = Path(net_path).with_name("export.json")
    if report.is_file():
        layers = json.loads(report.read_text()).get("quantization", {}).get("layers", [])
        if layers and layers[-1].get("state_scale"):
            return 64.0 * float(layers[-1]["state_scale"])
    return 64.0 * net.tgo.timesteps


def is_stochastic_net(net: NetFile) -> bool:
    return any(layer.neuron.noise is not None and layer.neuron.noise.sigma for layer in net.layers)


class NoiseSeeds:
    """Draws a fresh uint32 noise seed per forward from a seeded generator (when the network is noisy)."""

    def __init__(self, net: NetFile, fresh: bool):
        self.net, self.fresh = net, fresh and is_stochastic_net(net)
        self.generator = torch.Generator().manual_seed(0)

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def next_net(self) -> NetFile:
        if not self.fresh:
            return self.net
        return with_noise_seed(self.net, int(torch.randint(0, 2 ** 32, (1,), generator=self.generator)))


class DeployedTwin(QuantizedTwin):
    """The differentiable twin, with a fresh noise seed per forward drawn from a seeded generator (`NoiseSeeds`)."""

    def __init__(self, net: NetFile, neuron: NeuronConfig, scale: float, fresh_noise: bool = True):
        super().__init__(net, neuron.surrogate, neuron.alpha, logit_scale=scale)
        self.seeds = NoiseSeeds(net, fresh_noise)

    def reseed_noise(self, seed: int) -> None:
        self.seeds.reseed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.seeds.fresh:
            self.set_noise(self.seeds.next_net())
        return super().forward(x)
