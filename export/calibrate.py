"""Run the float model deterministically (threshold noise off) and record what the quantizer needs per layer:
the inputs of each synaptic layer and the range of its Norse current and pre-spike potential.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, List

import torch

from train.data import batches
from train.models import SpikingNetwork


@dataclass
class LayerTrace:
    """One synaptic layer seen on a calibration set of N samples and T steps.

    inputs: what enters the synaptic op: the images [N, C, H, W] for the first layer (direct encoding repeats
    them every step), the previous layer's spikes [T*N, *in_shape] for hidden layers, and the mean spike
    counts [N, in] for the readout. max_current: max |i| of the Norse current after input, min_potential:
    the most negative pre-spike potential (membrane units; both 0 for the readout).
    """
    inputs: torch.Tensor
    max_current: float = 0.0
    min_potential: float = 0.0


@contextlib.contextmanager
def deterministic(model: SpikingNetwork) -> Iterator[SpikingNetwork]:
    """`model` in eval mode with the threshold noise off (restored afterwards)."""
    layers = model.lif_layers()
    saved = [m.noise_at_inference for m in layers]
    was_training = model.training
    model.eval()
    for m in layers:
        m.noise_at_inference = False
    try:
        yield model
    finally:
        for m, flag in zip(layers, saved):
            m.noise_at_inference = flag
        model.train(was_training)


def _current_range(currents: torch.Tensor, syn_decay: float) -> float:
    """max |i| for Norse's i[t] = (1 - d_syn) i[t-1] + x[t]; currents: [T, batch, ...]."""
    i = torch.zeros_like(currents[0])
    peak = 0.0
    for x in currents:
        i = i * (1.0 - syn_decay) + x
        peak = max(peak, float(i.abs().max()))
    return peak


@torch.no_grad()
def calibrate(model: SpikingNetwork, x: torch.Tensor, batch_size: int = 256) -> List[LayerTrace]:
    """Traces of every synaptic layer (readout last) of `model` on images x [N, C, H, W], noise off."""
    lifs = model.lif_layers()
    currents: List[List[float]] = [[] for _ in lifs]
    hooks = [lif.register_forward_hook(lambda m, args, _out, k=k: currents[k].append(
             _current_range(args[0], m.syn_decay))) for k, lif in enumerate(lifs)]
    spikes: List[List[torch.Tensor]] = [[] for _ in lifs]
    lowest = [0.0] * len(lifs)
    try:
        with deterministic(model):
            for xb, _ in batches(x, torch.zeros(len(x)), batch_size):
                out = model.run(xb)
                for k, (z, v) in enumerate(zip(out.spikes, out.potentials)):
                    spikes[k].append(z)
                    lowest[k] = min(lowest[k], float(v.min()))
    finally:
        for hook in hooks:
            hook.remove()
    trains = [torch.cat(z, dim=1) for z in spikes]  # [T, N, ...] per layer
    inputs = [x] + [z.flatten(0, 1) for z in trains[:-1]]
    traces = [LayerTrace(inp, max(currents[k]), lowest[k]) for k, inp in enumerate(inputs)]
    return traces + [LayerTrace(trains[-1].mean(0).flatten(1))]
