"""Timing helpers shared by bench_hw_sim.py and gpu_check.py: input batches, hw_sim's throughput and the roofline
of its synaptic products alone. Imports hw_sim's core only (no Lava), so it runs on a GPU machine."""
from __future__ import annotations

import time
from typing import Callable, List, Tuple

import numpy as np
import torch

from hw_sim import products
from hw_sim.netfile import Dense, Layer, NetFile
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


def seconds(fn: Callable[[], object], device: torch.device, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds of one call on `clock` (wall clock by default; `time.process_time` for this process's CPU time),
    GPU work included."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - start


def layer_plans(net: NetFile, max_in: int, device: torch.device) -> List[Tuple[Layer, products.Plan, torch.Tensor]]:
    """Every synaptic layer with the product plan hw_sim picks on `device` for an input of magnitude max_in, and
    its weights in the plan's operand dtype."""
    plans = []
    for layer in net.layers:
        if layer.synapse is not None:
            weight = torch.as_tensor(layer.synapse.weight, device=device)
            dense = isinstance(layer.synapse, Dense)
            plan = products.plan(int(weight.abs().max()), max_in, products.sum_bound(weight, max_in), device,
                                 half_precision=dense)
            plans.append((layer, plan, products.prepare(weight, plan)))
        max_in = 1
    return plans


def products_alone(net: NetFile, x: torch.Tensor) -> Callable[[], List[torch.Tensor]]:
    """The roofline of `simulate(net, x)`: every layer's synaptic product on a random 0/1 signal (the first
    layer: the input's magnitude) of the run's shapes, in the dtypes hw_sim picks for them."""
    device, rows, max_in = x.device, x.shape[0] * net.window(x.shape[1]), int(x.abs().max())
    g = torch.Generator(device=device).manual_seed(1)
    shapes = {layer.index: shape for layer, shape in zip(net.layers, (net.input_shape,) + tuple(
        layer.shape for layer in net.layers[:-1]))}
    work = []
    for layer, plan, weight in layer_plans(net, max_in, device):
        shape = shapes[layer.index]
        dense = isinstance(layer.synapse, Dense)
        size = (rows, int(np.prod(shape))) if dense else (rows,) + shape
        high = max_in if layer is net.layers[0] else 1
        signal = torch.randint(0, high + 1, size, generator=g, device=device).to(plan.operand)
        work.append((layer, plan, weight, signal))

    def run() -> List[torch.Tensor]:
        return [products.matmul(signal, weight.T, plan) if isinstance(layer.synapse, Dense)
                else products.conv(signal, weight, layer.synapse, layer.shape)
                for layer, plan, weight, signal in work]
    return run


def rates(net: NetFile, x: torch.Tensor, repeats: int = 3,
          clock: Callable[[], float] = time.perf_counter) -> Tuple[float, float]:
    """(hw_sim, products alone) sample-steps per second on batch x: best of `repeats` on `clock`, interleaved so
    that both see the same machine load."""
    work = x.shape[0] * net.window(x.shape[1])
    roofline = products_alone(net, x)
    sim, alone = [], []
    for _ in range(repeats + 1):  # the first round warms up
        sim.append(seconds(lambda: simulate(net, x), x.device, clock))
        alone.append(seconds(roofline, x.device, clock))
    return work / min(sim[1:]), work / min(alone[1:])
