"""The Loihi-mappable structure of a trained `SpikingNetwork`: a chain of synaptic layers (dense or conv,
grouped convs included: sum pooling is a fixed depthwise conv), each feeding one CUBA LIF group, then the
non-spiking readout. A LIF's batch norm (eval statistics) is folded here: its per-channel scale into the
float weights (before the per-layer quantization) and its shift into the layer's bias of v. Anything else is
refused here, naming the layer and the reason, so that later stages only see networks that netx can express.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from tgo_errors import UsageError
from train.models import ResidualBlock, SpikingNetwork, TimeDistributed
from train.neuron import NoisyLIF, batch_norm_affine

DECAY_MAX = {"current": 4096, "membrane": 4095}  # 12-bit fractions of 4096; Lava adds 1 to the current's (du)


@dataclass(frozen=True)
class LIFGroup:
    """One layer's neuron parameters. Decays are integers out of 4096; v_th and sigma in membrane units."""
    i_decay: int
    v_decay: int
    v_th: float
    sigma: float      # threshold-noise std of the deployed neuron; 0 = deterministic

    @property
    def d_mem(self) -> float:
        return self.v_decay / 4096


@dataclass
class SynapticLayer:
    """A dense or conv layer and the LIF group it drives (None: the readout integrator).

    weight: dense (out, in), conv (out, in/groups, kH, kW), float. Shapes exclude the batch: dense (N,), conv
    (C, H, W). bias: per output channel [C] (dense: per neuron), added to v every step (membrane units).
    """
    name: str
    kind: str                     # 'dense' | 'conv'
    weight: torch.Tensor
    in_shape: Tuple[int, ...]
    out_shape: Tuple[int, ...]
    neuron: Optional[LIFGroup]
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int] = (0, 0)
    groups: int = 1
    bias: Optional[torch.Tensor] = None

    def apply(self, x: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The synaptic op on x [N, *in_shape] (float) with `weight` (default: the layer's) -> [N, *out_shape]."""
        w = self.weight if weight is None else weight
        if self.kind == "conv":
            return F.conv2d(x, w.to(x.dtype), stride=self.stride, padding=self.padding, groups=self.groups)
        return F.linear(x.flatten(1), w.to(x.dtype))


def _lif_group(name: str, lif: NoisyLIF) -> LIFGroup:
    decays = {"current": lif.syn_decay * 4096, "membrane": lif.mem_decay * 4096}
    for what, value in decays.items():
        if value != round(value):
            raise UsageError(f"{name}: {what} decay {value}/4096 is not a 12-bit integer fraction")
        if not 0 <= value <= DECAY_MAX[what]:
            raise UsageError(f"{name}: {what} decay {value:.0f}/4096 is outside Loihi's range 0..{DECAY_MAX[what]} "
                             f"(dt * tau_inv must be < 1)")
    if decays["membrane"] == 0:
        raise UsageError(f"{name}: membrane decay 0/4096 makes every weight 0 (w_file = W * dt * tau_mem_inv * S)")
    sigma = lif.sigma if lif.sigma > 0 and lif.noise_at_inference else 0.0
    return LIFGroup(int(decays["current"]), int(decays["membrane"]), float(lif.v_th), float(sigma))


def _synapse(name: str, module: nn.Module, shape: Tuple[int, ...]) -> SynapticLayer:
    if getattr(module, "bias", None) is not None:
        raise UsageError(f"{name}: has a bias; tgo's Loihi mapping puts biases in v (NoisyLIF(channels=...)), "
                         f"never in the synapse")
    weight = module.weight.detach().float().cpu()
    if not torch.isfinite(weight).all():
        raise UsageError(f"{name}: weights are not finite (NaN or inf)")
    if isinstance(module, nn.Linear):
        if len(shape) != 1 or shape[0] != module.in_features:
            raise UsageError(f"{name}: expects {module.in_features} inputs, gets shape {shape}")
        return SynapticLayer(name, "dense", weight, shape, (module.out_features,), None)
    conv_ok = module.dilation == (1, 1) and module.padding_mode == "zeros" and not isinstance(module.padding, str)
    if not conv_ok:
        raise UsageError(f"{name}: only convolutions with dilation 1 and zero padding map to netx")
    if len(shape) != 3 or shape[0] != module.in_channels:
        raise UsageError(f"{name}: expects {module.in_channels} input channels, gets shape {shape}")
    out_hw = [(size + 2 * p - k) // s + 1 for size, p, k, s in
              zip(shape[1:], module.padding, module.kernel_size, module.stride)]
    return SynapticLayer(name, "conv", weight, shape, (module.out_channels, *out_hw), None,
                         tuple(module.stride), tuple(module.padding), module.groups)


def _fold_norm(layer: SynapticLayer, lif: NoisyLIF) -> None:
    """Fold `lif`'s batch norm (running statistics) into `layer`: scale into the weights, shift into the bias."""
    if lif.norm is None:
        return
    if lif.norm.num_features != layer.out_shape[0]:
        raise UsageError(f"{layer.name}: batch norm over {lif.norm.num_features} channels after "
                         f"{layer.out_shape[0]} output channels")
    with torch.no_grad():
        scale, shift = batch_norm_affine(lif.norm, torch.zeros(0), training=False)
    scale, bias = scale.detach().float(), (shift * lif.bias_gain).detach().float()
    if not (torch.isfinite(scale).all() and torch.isfinite(bias).all()):
        raise UsageError(f"{layer.name}: batch norm statistics are not finite")
    layer.weight = layer.weight * scale.view(-1, *([1] * (layer.weight.dim() - 1)))
    layer.bias = bias


def _unsupported(name: str, module: nn.Module) -> UsageError:
    reasons = [((nn.BatchNorm1d, nn.BatchNorm2d), "batch norm outside a neuron has no netx layer (NoisyLIF("
                "channels=...) folds it into weights and bias)"),
               ((nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.MaxPool2d),
                "netx 0.6.0 cannot load pooling (its pool/average readers raise NotImplementedError); "
                "train with train.models.sum_pool, a fixed depthwise conv"),
               ((ResidualBlock,), "a residual sum needs two synapses into one neuron group, but netx 0.6.0 "
                "builds exactly one synapse per layer and has no add layer (residual nets such as wrn16 "
                "do not export)")]
    reason = next((text for kinds, text in reasons if isinstance(module, kinds)), "not a netx layer")
    return UsageError(f"{name} ({type(module).__name__}): not mappable to Loihi: {reason}; only chains of "
                      f"Linear/Conv2d -> NoisyLIF (arch mlp, convnet, pooled or vgg11) export")


def describe_network(model: SpikingNetwork, input_shape: Sequence[int]) -> List[SynapticLayer]:
    """The synaptic layers of `model` in order, each with its LIF group; the readout is last (neuron None).

    Raises UsageError naming the first layer that netx cannot express (pooling other than `sum_pool`, batch
    norm outside a neuron, residual blocks, synapse biases, dilated convolutions, decays outside 0..4095) or a
    rate-encoded model.
    """
    if model.encoding != "direct":
        raise UsageError(f"encoding '{model.encoding}': the .net input is the analog image as graded spikes "
                         f"(docs/NETFORMAT.md); only direct-encoded models export")
    shape: Tuple[int, ...] = tuple(int(s) for s in input_shape)
    layers: List[SynapticLayer] = []
    pending: Optional[SynapticLayer] = None
    for index, wrapper in enumerate(model.body):
        name = f"body.{index}"
        module = wrapper.module if isinstance(wrapper, TimeDistributed) else wrapper
        supported = isinstance(module, NoisyLIF) or (
            isinstance(wrapper, TimeDistributed) and isinstance(module, (nn.Flatten, nn.Linear, nn.Conv2d)))
        if not supported:
            raise _unsupported(name, module)
        if isinstance(module, NoisyLIF):
            if pending is None:
                raise UsageError(f"{name} (NoisyLIF): follows no synaptic layer")
            pending.neuron = _lif_group(name, module)
            _fold_norm(pending, module)
            layers.append(pending)
            shape, pending = pending.out_shape, None
        elif pending is not None:
            raise UsageError(f"{pending.name}: must be followed by a NoisyLIF layer, found {type(module).__name__}")
        elif isinstance(module, nn.Flatten):
            shape = (int(torch.tensor(shape).prod()),)
        else:
            pending = _synapse(f"{name} ({type(module).__name__})", module, shape)
    if pending is not None:
        raise UsageError(f"{pending.name}: must be followed by a NoisyLIF layer")
    if not layers:
        raise UsageError("the network has no Linear/Conv2d -> NoisyLIF layer before the readout")
    flat = (int(torch.tensor(shape).prod()),)
    readout = _synapse("readout (Linear)", model.readout, flat)
    return layers + [readout]
