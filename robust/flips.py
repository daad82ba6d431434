"""Theorem 1, measured: how often the noisy threshold flips a neuron's decision, vs Phi(-|V - V_th| / sigma).

For a neuron at potential V, the deterministic neuron spikes iff V > V_th; the stochastic one iff
V + eta > V_th with eta ~ N(0, sigma^2). They disagree (a flip) with probability Phi(-|V - V_th| / sigma).
Measured on the fixed-point network (hw_sim's recorded potentials and spikes, integer noise of
`hw_sim.prng`), this checks that the deployed neuron behaves as the theorem assumes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch

from hw_sim.netfile import NetFile
from hw_sim.simulator import encode_inputs, pre_spike_potentials, simulate


@dataclass
class FlipCurve:
    bin_edges: List[float]      # |V - V_th| / sigma
    flip_rate: List[float]      # measured flip fraction per bin (nan where empty)
    counts: List[int]           # (step, sample, neuron) entries per bin
    theory: List[float]         # mean of Phi(-|z|) over the entries of each bin


def flip_curve(z: torch.Tensor, flipped: torch.Tensor, max_z: float = 4.0, bins: int = 16) -> FlipCurve:
    """z: (V - V_th) / sigma per (sample, step, neuron); flipped: whether the noisy decision differed from
    the deterministic one (same shape). Returns the flip rate binned by |z| against Phi(-|z|)."""
    edges = torch.linspace(0.0, max_z, bins + 1, dtype=torch.float64)
    index = torch.bucketize(z.flatten().double().abs(), edges, right=True) - 1
    keep = index < bins
    counts = torch.bincount(index[keep], minlength=bins)
    flips = torch.bincount(index[keep], weights=flipped.flatten()[keep].double(), minlength=bins)
    expected = torch.bincount(index[keep], weights=torch.special.ndtr(-z.flatten().double().abs())[keep],
                              minlength=bins)
    empty = torch.full_like(flips, float("nan"))
    per_bin = lambda total: torch.where(counts > 0, total / counts.clamp(min=1), empty).tolist()
    return FlipCurve(edges.tolist(), per_bin(flips), counts.tolist(), per_bin(expected))


def measure_flips(net: NetFile, x: torch.Tensor) -> Optional[FlipCurve]:
    """Flip rates of the stochastic layers of `net` in hw_sim on inputs x [N, ...]; None without noise."""
    noisy = [k for k, layer in enumerate(net.layers) if layer.neuron.noise is not None and layer.neuron.noise.sigma]
    if not noisy:
        return None
    run = simulate(net, encode_inputs(net, x), record=True)
    zs, flips = [], []
    for k in noisy:
        layer = net.layers[k]
        threshold = float(layer.neuron.vth_mant << 6)
        v = pre_spike_potentials(layer, run.u[k], run.v[k], run.spikes[k]).double()
        zs.append(((v - threshold) / layer.neuron.noise.sigma).flatten())
        flips.append((run.spikes[k] != (v > threshold)).flatten())
    return flip_curve(torch.cat(zs), torch.cat(flips))
