"""Find the first disagreement between two runs of the same network on the same samples (e.g. Lava vs hw_sim)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

from hw_sim.netfile import NetFile
from hw_sim.simulator import Run

QUANTITIES = ("u", "v", "s")  # causal order within a step: u feeds v feeds the spike


@dataclass(frozen=True)
class Mismatch:
    """One disagreeing value: where it is and both values."""
    sample: int     # sample index
    step: int       # Lava step of that sample's run (0 = its first input step): offsets[layer] + local step
    layer: int      # /layer/<i> index in the .net file
    neuron: int     # flat index in C order of the layer's file shape
    quantity: str   # 'u', 'v' (state units) or 's' (spike)
    reference: int
    candidate: int

    def describe(self, reference: str = "Lava", candidate: str = "hw_sim") -> str:
        return (f"sample {self.sample}, layer {self.layer}, neuron {self.neuron}, step {self.step}: "
                f"{self.quantity} = {self.reference} in {reference}, {self.candidate} in {candidate}")


def first_mismatch(net: NetFile, reference: Run, candidate: Run, sample_offset: int = 0) -> Optional[Mismatch]:
    """The earliest difference by (sample, Lava step, layer, u/v/s, neuron), or None when the runs agree.

    Compares spikes of every layer, the last layer's v, and u and v of every layer when both runs hold them.
    Samples are numbered from `sample_offset`.
    """
    pairs: List[Tuple[int, str, torch.Tensor, torch.Tensor]] = []
    last = len(net.layers) - 1
    for k in range(len(net.layers)):
        pairs.append((k, "s", reference.spikes[k], candidate.spikes[k]))
        if reference.u is not None and candidate.u is not None:
            pairs += [(k, "u", reference.u[k], candidate.u[k]), (k, "v", reference.v[k], candidate.v[k])]
    pairs.append((last, "v", reference.readout_v, candidate.readout_v))
    best: Optional[Tuple[Tuple[int, ...], Mismatch]] = None
    for k, name, ref, cand in pairs:
        if ref.shape != cand.shape:
            raise ValueError(f"layer {net.layers[k].index} {name}: shapes {tuple(ref.shape)} and {tuple(cand.shape)}")
        diff = (ref.cpu() != cand.cpu()).reshape(ref.shape[0], ref.shape[1], -1).nonzero()
        if not len(diff):
            continue
        sample, local, neuron = (int(i) for i in diff[0])  # nonzero() lists indices in lexicographic order
        step = net.offsets[k] + local
        key = (sample, step, k, QUANTITIES.index(name), neuron)
        if best is None or key < best[0]:
            flat = (ref.reshape(ref.shape[0], ref.shape[1], -1), cand.reshape(cand.shape[0], cand.shape[1], -1))
            values = [int(t[sample, local, neuron]) for t in flat]
            best = key, Mismatch(sample + sample_offset, step, net.layers[k].index, neuron, name, *values)
    return None if best is None else best[1]
