"""Run the float model deterministically (threshold noise off) and record what the quantizer needs per layer:
the inputs of each synaptic layer and its deepest pre-spike potential (the current u is bounded from the
weights instead, `export.quantize`).
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
    counts [N, in] for the readout. min_potential: the most negative pre-spike potential (membrane units; 0
    for the readout).
    """
    inputs: torch.Tensor
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


@torch.no_grad()
def calibrate(model: SpikingNetwork, x: torch.Tensor, batch_size: int = 256) -> List[LayerTrace]:
    """Traces of every synaptic layer (readout last) of `model` on images x [N, C, H, W], noise off."""
    lifs = model.lif_layers()
    spikes: List[List[torch.Tensor]] = [[] for _ in lifs]
    lowest = [0.0] * len(lifs)
    with deterministic(model):
        for xb, _ in batches(x, torch.zeros(len(x)), batch_size):
            out = model.run(xb)
            for k, (z, v) in enumerate(zip(out.spikes, out.potentials)):
                spikes[k].append(z)
                lowest[k] = min(lowest[k], float(v.min()))
    trains = [torch.cat(z, dim=1) for z in spikes]  # [T, N, ...] per layer
    inputs = [x] + [z.flatten(0, 1) for z in trains[:-1]]
    traces = [LayerTrace(inp, lowest[k]) for k, inp in enumerate(inputs)]
    return traces + [LayerTrace(trains[-1].mean(0).flatten(1))]
