"""How many samples `simulate` runs at once: its memory, estimated from the declared shapes before allocating.

Per sample and window step, `simulate` holds the input signal, every layer's spikes (and u, v where kept), the
current layer's synaptic input and product operands (for a conv layer also its unfolded columns and the 24-bit
wrap's temporaries), and the `Run` it returns. The estimate counts the working tensors at 8 bytes per value (the
widest dtype hw_sim uses) and the `Run` at its own dtypes, so it bounds the real use from above; the batch is cut
into chunks that fit.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch

from hw_sim.netfile import Conv, NetFile
from tgo_errors import UsageError

VALUE_BYTES = 8          # float64 / int64, the widest value hw_sim stores
HEADROOM = 0.8           # share of the available memory hw_sim plans to use
GIB = float(1 << 30)


def sample_bytes(net: NetFile, steps: int, input_steps: int, record: bool) -> int:
    """Upper bound on the working memory of one sample in a window of `steps` steps, bytes (the `Run` excluded)."""
    fan_in = [int(np.prod(net.input_shape))] + [layer.size for layer in net.layers[:-1]]
    values = input_steps * fan_in[0] + steps * fan_in[0]                 # input copy, signal
    last = net.layers[-1]
    kept = sum(layer.size * (2 if record or layer is last else 0) for layer in net.layers)
    values += steps * (sum(layer.size for layer in net.layers) + kept)  # spikes, u and v of every layer
    transient = 0
    for layer, inputs in zip(net.layers, fan_in):
        layer_values = inputs + 2 * layer.size                           # operand copy, product, input << 6
        if isinstance(layer.synapse, Conv):
            kernel = int(np.prod(layer.synapse.weight.shape[1:])) * layer.synapse.groups
            columns = kernel * int(np.prod(layer.shape[1:]))
            layer_values += 2 * columns + 4 * layer.size                 # unfold (+ reshape), wrap temporaries
        transient = max(transient, layer_values)
    return VALUE_BYTES * (values + steps * transient)


def run_bytes(net: NetFile, steps: int, record: bool) -> int:
    """Memory of one sample's `Run`, bytes: bool spikes, int64 readout v, and int64 u, v when recorded."""
    neurons = sum(layer.size for layer in net.layers)
    return steps * (neurons + VALUE_BYTES * (net.layers[-1].size + (2 * neurons if record else 0)))


def available_bytes(device: torch.device) -> int:
    """Memory `simulate` may use on `device`, bytes: free GPU memory plus torch's cached blocks, or the
    machine's available RAM (MemAvailable)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def batch_chunk(net: NetFile, count: int, steps: int, input_steps: int, record: bool, device: torch.device,
                limit: Optional[int] = None) -> int:
    """Samples per chunk so that the chunk's work and all `count` results fit in memory.

    limit: bytes hw_sim may use (default: HEADROOM times `available_bytes(device)`). Chunked results are counted
    twice (the chunks' results, then their concatenation). Raises UsageError when not even one sample fits.
    """
    budget = int(HEADROOM * available_bytes(device)) if limit is None else limit
    work = sample_bytes(net, steps, input_steps, record)
    results = count * run_bytes(net, steps, record)
    if count * work + results <= budget:
        return count
    if work + 2 * results > budget:
        if work > budget:
            raise UsageError(f"{net.path}: one sample needs about {work / GIB:.2f} GiB for {steps} steps, more "
                             f"than the {budget / GIB:.2f} GiB available on {device}")
        raise UsageError(f"{net.path}: the results of {count} samples need {2 * results / GIB:.2f} GiB, more "
                         f"than the {budget / GIB:.2f} GiB available on {device}; simulate fewer samples at once")
    return (budget - 2 * results) // work
