"""Class scores, accuracy and spike statistics of runs, accumulated over batches."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from hw_sim.netfile import Layer, NetFile
from hw_sim.simulator import Run, logits, predict


def scores(net: NetFile, run: Run) -> torch.Tensor:
    """Per-class scores [N, classes]: readout v at the readout step for tgo files, else output spike counts."""
    if net.tgo is not None:
        return logits(net, run)
    return run.spikes[-1].reshape(run.spikes[-1].shape[0], run.spikes[-1].shape[1], -1).sum(dim=1)


def layer_type(layer: Layer) -> str:
    """'dense', 'dense_rec', 'conv', or 'input' for a netx input layer with neurons."""
    if layer.synapse is None:
        return "input"
    return "dense_rec" if layer.recurrent is not None else type(layer.synapse).__name__.lower()


@dataclass
class Tally:
    """Running totals of one backend over batches of samples."""
    spikes: List[int] = field(default_factory=list)        # per layer: spikes over all samples and steps
    neuron_steps: List[int] = field(default_factory=list)  # per layer: neurons * steps * samples
    predictions: List[int] = field(default_factory=list)   # per sample: predicted class (ties -> lowest)

    def add(self, net: NetFile, run: Run) -> None:
        counts = [int((s != 0).sum()) for s in run.spikes]  # spikes, or graded messages sent
        sizes = [s.numel() for s in run.spikes]
        self.spikes = [a + b for a, b in zip(self.spikes, counts)] if self.spikes else counts
        self.neuron_steps = [a + b for a, b in zip(self.neuron_steps, sizes)] if self.neuron_steps else sizes
        self.predictions += predict(scores(net, run)).tolist()

    def summary(self, net: NetFile, labels: Optional[torch.Tensor]) -> Dict:
        """JSON-ready: accuracy (None without labels), spikes per neuron per step of each layer, predictions."""
        correct = None
        if labels is not None:
            correct = int((torch.tensor(self.predictions) == labels[:len(self.predictions)].cpu()).sum())
        return {
            "accuracy": None if correct is None else correct / len(self.predictions),
            "correct": correct,
            "layers": [{"layer": layer.index, "type": layer_type(layer), "neurons": layer.size, "spikes": count,
                        "spikes_per_neuron_per_step": count / total}
                       for layer, count, total in zip(net.layers, self.spikes, self.neuron_steps)],
            "predictions": self.predictions,
        }
