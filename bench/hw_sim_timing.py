"""Timing helpers shared by bench_hw_sim.py and gpu_check.py: input batches, hw_sim's throughput and the roofline
of its synaptic products alone. Imports hw_sim's core only (no Lava), so it runs on a GPU machine."""
from __future__ import annotations

import time
from typing import Callable, List, Tuple

import numpy as np
import torch

from hw_sim import products
from hw_sim.netfile import Dense, NetFile
from hw_sim.simulator import encode_inputs, simulate

INPUT_STEPS = 16  # input steps of a netx file without tgo metadata


def random_inputs(net: NetFile, count: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """Input spikes [count, S, *input_shape] on `device`: encoded random images for tgo files, else graded
    spikes in [0, 300) at 30% density for INPUT_STEPS steps."""
    g = torch.Generator(device=device).manual_seed(seed)
    if net.tgo is not None:
        return encode_inputs(net, torch.rand((count,) + net.tgo.input_shape, generator=g, device=device))
    shape = (count, INPUT_STEPS) + net.input_shape
    values = torch.randint(0, 300, shape, generator=g, dtype=torch.int32, device=device)
    return values * (torch.rand(shape, generator=g, device=device) < 0.3)


def seconds(fn: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of one call, GPU work included."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def products_alone(net: NetFile, x: torch.Tensor) -> Callable[[], List[torch.Tensor]]:
    """The roofline of `simulate(net, x)`: every layer's synaptic product on a random 0/1 signal (the first
    layer: the input's magnitude) of the run's shapes, in the dtypes hw_sim picks for them."""
    device, count, steps = x.device, x.shape[0], net.window(x.shape[1])
    g = torch.Generator(device=device).manual_seed(1)
    shape, max_in, work = net.input_shape, int(x.abs().max()), []
    for layer in net.layers:
        if layer.synapse is not None:
            weight = torch.as_tensor(layer.synapse.weight, device=device)
            bound = products.sum_bound(weight, max_in)
            dense = isinstance(layer.synapse, Dense)
            plan = products.plan(int(weight.abs().max()), max_in, bound, device, half_precision=dense)
            rows = (steps * count, int(np.prod(shape))) if dense else (steps * count,) + shape
            signal = torch.randint(0, max_in + 1, rows, generator=g, device=device).to(plan.operand)
            work.append((layer, plan, products.prepare(weight, plan), signal))
        shape, max_in = layer.shape, 1

    def run() -> List[torch.Tensor]:
        return [products.matmul(signal, weight.T, plan) if isinstance(layer.synapse, Dense)
                else products.conv(signal, weight, layer.synapse, layer.shape)
                for layer, plan, weight, signal in work]
    return run


def rates(net: NetFile, x: torch.Tensor, repeats: int = 3) -> Tuple[float, float]:
    """(hw_sim, products alone) sample-steps per second on batch x: best of `repeats`, interleaved so that both
    see the same machine load."""
    work = x.shape[0] * net.window(x.shape[1])
    roofline = products_alone(net, x)
    sim, alone = [], []
    for _ in range(repeats + 1):  # the first round warms up
        sim.append(seconds(lambda: simulate(net, x), x.device))
        alone.append(seconds(roofline, x.device))
    return work / min(sim[1:]), work / min(alone[1:])
