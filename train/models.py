"""Spiking networks built from `NoisyLIF`, behind one registry (`build_model`).

Every network runs layer by layer over the whole sequence: tensors are [T, batch, ...]. The readout is a
bias-free linear layer on the mean spike count of the last hidden layer (= the mean over time of a
non-spiking integrator), which is what the exported Loihi network reads out as the integrator's `v`.
`mlp`, `convnet`, `pooled` and `vgg11` map onto Loihi (dense/conv + CUBA): pooling is a sum pooling (a fixed
depthwise strided conv) feeding its own BN-LIF layer, and batch norm lives in the LIF (`NoisyLIF(channels=..)`:
a per-channel current scale folded into the weights at export, and a bias of v), so export changes nothing
but the number format. `wrn16` (the paper's residual net) is training-only: netx has no residual sum.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Dict, Iterator, List, NamedTuple, Sequence, Tuple

import torch
from torch import nn

from tgo_errors import UsageError
from train.config import ModelConfig, NeuronConfig
from train.neuron import NoisyLIF


class SNNOutput(NamedTuple):
    logits: torch.Tensor            # [batch, classes]
    potentials: List[torch.Tensor]  # per spiking layer: pre-spike potentials [T, batch, ...]
    spikes: List[torch.Tensor]      # per spiking layer: spikes [T, batch, ...]


class TimeDistributed(nn.Module):
    """Apply a stateless module to every step: [T, batch, ...] -> [T, batch, ...]."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module(x.flatten(0, 1))
        return y.unflatten(0, x.shape[:2])


class SpikingNetwork(nn.Module):
    """x: [batch, C, H, W] in [0, 1] -> logits [batch, classes]; `run` also returns potentials and spikes."""

    def __init__(self, body: nn.Sequential, readout: nn.Linear, timesteps: int, encoding: str):
        super().__init__()
        self.body, self.readout = body, readout
        self.timesteps, self.encoding = timesteps, encoding
        self.generator: torch.Generator | None = None

    def lif_layers(self) -> List[NoisyLIF]:
        return [m for m in self.modules() if isinstance(m, NoisyLIF)]

    def guarded(self, potentials: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """The potentials (one per LIF layer, as `run` returns them) of the layers the TGO constraint covers."""
        return [v for v, m in zip(potentials, self.lif_layers()) if m.guarded]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Direct: the analog image every step. Rate: Bernoulli(x) spikes each step. -> [T, batch, ...]"""
        seq = x.unsqueeze(0).expand(self.timesteps, *x.shape)
        if self.encoding == "rate":
            return torch.bernoulli(seq, generator=self.generator)
        return seq

    def run(self, x: torch.Tensor) -> SNNOutput:
        last_spikes = self.body(self.encode(x))
        logits = self.readout(last_spikes.mean(0).flatten(1))
        layers = self.lif_layers()
        return SNNOutput(logits, [m.potentials for m in layers], [m.spikes for m in layers])

    def forward(self, x: torch.Tensor, full: bool = False) -> torch.Tensor | SNNOutput:
        """Logits [batch, classes]; with `full`, the whole `run` output (how DistributedDataParallel calls it)."""
        return self.run(x) if full else self.run(x).logits

    def reseed_noise(self, seed: int) -> None:
        """Give every stochastic part (neuron noise, rate encoder) one generator seeded with `seed`."""
        device = next(self.parameters()).device
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        for layer in self.lif_layers():
            layer.generator = self.generator

    @contextlib.contextmanager
    def surrogate(self, name: str, alpha: float) -> Iterator[None]:
        """Temporarily backpropagate through another surrogate (an attacker's choice)."""
        layers = self.lif_layers()
        saved = [(m.surrogate, m.alpha) for m in layers]
        for m in layers:
            m.surrogate, m.alpha = name, alpha
        try:
            yield
        finally:
            for m, (n, a) in zip(layers, saved):
                m.surrogate, m.alpha = n, a


def _dense(features: int, widths: Sequence[int], neuron: NeuronConfig) -> Tuple[List[nn.Module], int]:
    layers: List[nn.Module] = []
    for width in widths:
        layers += [TimeDistributed(nn.Linear(features, width, bias=False)), NoisyLIF(neuron)]
        features = width
    return layers, features


def build_mlp(cfg: ModelConfig, neuron: NeuronConfig, input_shape: Sequence[int], classes: int):
    """Flatten -> [Linear -> LIF] per hidden width -> readout."""
    features = math.prod(input_shape)
    layers, features = _dense(features, cfg.hidden, neuron)
    return nn.Sequential(TimeDistributed(nn.Flatten()), *layers), nn.Linear(features, classes, bias=False)


def build_convnet(cfg: ModelConfig, neuron: NeuronConfig, input_shape: Sequence[int], classes: int):
    """[Conv3x3 (stride 1 first, then 2) -> LIF] per channel count -> flatten -> readout. Loihi-mappable."""
    channels, height, width = input_shape
    layers: List[nn.Module] = []
    for k, out in enumerate(cfg.hidden):
        stride = 1 if k == 0 else 2
        layers += [TimeDistributed(nn.Conv2d(channels, out, 3, stride=stride, padding=1, bias=False)),
                   NoisyLIF(neuron)]
        channels, height, width = out, (height - 1) // stride + 1, (width - 1) // stride + 1
    layers.append(TimeDistributed(nn.Flatten()))
    return nn.Sequential(*layers), nn.Linear(channels * height * width, classes, bias=False)


def _conv_bn_lif(cin: int, cout: int, neuron: NeuronConfig, stride: int = 1) -> List[nn.Module]:
    """Conv3x3 -> LIF with batch norm inside the neuron (exportable: folded into weights and bias)."""
    return [TimeDistributed(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)),
            NoisyLIF(neuron, channels=cout)]


def sum_pool(channels: int, kernel: int = 2) -> nn.Conv2d:
    """Sum pooling as netx can load it: a depthwise conv (groups = channels, stride = kernel) with fixed,
    untrained weights 1. Its LIF's batch norm (`_pool_lif`) scales each channel: a trained per-channel gain
    that export folds into the depthwise weights, so a pooled map neither saturates nor falls silent."""
    pool = nn.Conv2d(channels, channels, kernel, stride=kernel, groups=channels, bias=False)
    nn.init.ones_(pool.weight)
    pool.weight.requires_grad_(False)
    return pool


def _pool_lif(channels: int, neuron: NeuronConfig) -> List[nn.Module]:
    """2x2 sum pooling -> BN-LIF, outside the TGO constraint (`NoisyLIF.guarded`: its synapses are fixed)."""
    return [TimeDistributed(sum_pool(channels)), NoisyLIF(neuron, channels=channels, guarded=False)]


def build_pooled(cfg: ModelConfig, neuron: NeuronConfig, input_shape: Sequence[int], classes: int):
    """Per channel count in `hidden`: Conv3x3 -> BN-LIF -> 2x2 sum pool -> LIF; then flatten -> readout.
    28x28 MNIST with hidden 16,32: 28 -> 14 -> 7; 8x8 digits: 8 -> 4 -> 2. Loihi-mappable."""
    channels, height, width = input_shape
    if min(height, width) < 2 ** len(cfg.hidden):
        raise UsageError(f"pooled: {len(cfg.hidden)} 2x2 poolings need inputs of at least "
                         f"{2 ** len(cfg.hidden)}x{2 ** len(cfg.hidden)}, got {tuple(input_shape)}")
    layers: List[nn.Module] = []
    for out in cfg.hidden:
        layers += _conv_bn_lif(channels, out, neuron) + _pool_lif(out, neuron)
        channels, height, width = out, height // 2, width // 2
    layers.append(TimeDistributed(nn.Flatten()))
    return nn.Sequential(*layers), nn.Linear(channels * height * width, classes, bias=False)


VGG11_PLAN = (1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M")  # channels in units of the base width (64)


def build_vgg11(cfg: ModelConfig, neuron: NeuronConfig, input_shape: Sequence[int], classes: int):
    """VGG-11 (64-M-128-M-256-256-M-512-512-M-512-512-M at width 64) with 2x2 sum pooling; needs 32x32 inputs.
    `cfg.width` is the base width (the paper's net: 64; e.g. 4 gives a narrow net for tests)."""
    if min(input_shape[1:]) < 32:
        raise UsageError(f"vgg11 needs inputs of at least 32x32, got {tuple(input_shape)}: use pooled or convnet")
    layers: List[nn.Module] = []
    channels = input_shape[0]
    for item in VGG11_PLAN:
        if item == "M":
            layers += _pool_lif(channels, neuron)
        else:
            layers += _conv_bn_lif(channels, int(item) * cfg.width, neuron)
            channels = int(item) * cfg.width
    height, width = (n // 32 for n in input_shape[1:])
    layers.append(TimeDistributed(nn.Flatten()))
    return nn.Sequential(*layers), nn.Linear(channels * height * width, classes, bias=False)


class ResidualBlock(nn.Module):
    """Wide-ResNet basic block on sequences: LIF(BN(conv(LIF(BN(conv x)))) + shortcut x)."""

    def __init__(self, cin: int, cout: int, stride: int, neuron: NeuronConfig):
        super().__init__()
        self.branch = nn.Sequential(*_conv_bn_lif(cin, cout, neuron, stride),
                                    TimeDistributed(nn.Conv2d(cout, cout, 3, padding=1, bias=False)),
                                    TimeDistributed(nn.BatchNorm2d(cout)))
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else
                         TimeDistributed(nn.Conv2d(cin, cout, 1, stride=stride, bias=False)))
        self.out = NoisyLIF(neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.branch(x) + self.shortcut(x))


def build_wrn16(cfg: ModelConfig, neuron: NeuronConfig, input_shape: Sequence[int], classes: int):
    """WRN-16-4: a 16-channel stem, then 3 groups of 2 residual blocks (64, 128, 256 channels)."""
    if min(input_shape[1:]) < 16:
        raise UsageError(f"wrn16 needs inputs of at least 16x16, got {tuple(input_shape)}: use pooled or convnet")
    layers: List[nn.Module] = _conv_bn_lif(input_shape[0], 16, neuron)
    channels = 16
    for width, stride in ((64, 1), (128, 2), (256, 2)):
        layers += [ResidualBlock(channels, width, stride, neuron), ResidualBlock(width, width, 1, neuron)]
        channels = width
    layers += [TimeDistributed(nn.AdaptiveAvgPool2d(1)), TimeDistributed(nn.Flatten())]
    return nn.Sequential(*layers), nn.Linear(channels, classes, bias=False)


Builder = Callable[[ModelConfig, NeuronConfig, Sequence[int], int], Tuple[nn.Sequential, nn.Linear]]
MODELS: Dict[str, Builder] = {"mlp": build_mlp, "convnet": build_convnet, "pooled": build_pooled,
                              "vgg11": build_vgg11, "wrn16": build_wrn16}


def build_model(cfg: ModelConfig, neuron: NeuronConfig, input_shape: Sequence[int], classes: int
                ) -> SpikingNetwork:
    """The registered architecture `cfg.arch` for inputs [C, H, W] and `classes` outputs."""
    if cfg.arch not in MODELS:
        raise UsageError(f"unknown architecture '{cfg.arch}' (choose from {', '.join(MODELS)})")
    body, readout = MODELS[cfg.arch](cfg, neuron, input_shape, classes)
    return SpikingNetwork(body, readout, cfg.timesteps, cfg.encoding)
