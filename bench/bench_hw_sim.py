"""Throughput of hw_sim against its roofline (its synaptic products alone) and against Lava, on the same .net files.

Networks: lava-dl's shipped mnist.net (784-512-512-10, random graded spikes into its input layer for 16 steps)
and a tgo-format convnet written with the test helpers (1x28x28 -> conv 8c3s2 -> conv 16c3s2 -> 10, T=8, graded
input). Throughput is sample-steps per second: samples * window steps / seconds.

- hw_sim and the roofline: best of a few interleaved repeats at the given batch size (--clock: wall or CPU).
  CUBA layers run numba's fused loop (`hw_sim.neurons.cuba_numba`), or the eager step where numba is missing;
  the header says which.
  The roofline runs every layer's synaptic product alone, same shapes and dtypes as hw_sim picks
  (`bench/hw_sim_timing.py`). The first Lava ratio compares on that clock (Lava's CPU time for --clock cpu).
- Lava: steady state without compilation and start-up, in wall-clock time (between its first and last progress
  reports) and in CPU time (its worker processes included; a full run minus a one-sample run), which does not
  depend on what else runs on the machine. The samples Lava ran are compared with hw_sim, spike for spike.
- GPU: hw_sim on CUDA at --gpu-batch samples, or "unmeasured" without CUDA.

Run: .venv/bin/python bench/bench_hw_sim.py [--batch 256] [--lava-samples 12] [--threads 2] [--gpu-batch 65536]
     [--repeats 5] [--clock wall|cpu] [--eager]
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Tuple

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from hw_sim.lava_runner import run_lava  # noqa: E402
from hw_sim.netfile import NetFile, load_net  # noqa: E402
from hw_sim.simulator import eager_cuba, simulate  # noqa: E402
from hw_sim_timing import random_inputs, rates  # noqa: E402
from tests.hw_sim_nets import LAVA_DL_NETS, dense, neuron, tgo_group, weights, write_net  # noqa: E402


def tgo_convnet(path: Path) -> Path:
    """A tgo-format MNIST-shaped convnet: (1, 28, 28) -> conv 8@3x3 stride 2 -> conv 16@3x3 stride 2 ->
    flatten -> integrator readout of 10 classes; T = 8, graded 8-bit input."""
    rng = np.random.default_rng(0)

    def conv(out: int, inputs: int, size: int) -> dict:
        return {"type": "conv", "shape": [out, size, size], "weight": weights(rng, (out, inputs, 3, 3), 40),
                "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1], "groups": 1, "neuron": neuron()}
    layers = [{"type": "input", "shape": [1, 28, 28]}, conv(8, 1, 14), conv(16, 8, 7), {"type": "flatten"},
              dense(10, weights(rng, (10, 16 * 7 * 7), 60))]
    return write_net(path, layers, tgo_group(8, (1, 28, 28), 10))


def cpu_seconds() -> float:
    """CPU time of this process and of its finished child processes (Lava's workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def hw_sim_cpu_rate(net: NetFile, x: torch.Tensor) -> float:
    """CPU-time sample-steps per second of one `simulate` of the batch (after a warm-up run)."""
    simulate(net, x)
    start = cpu_seconds()
    simulate(net, x)
    return x.shape[0] * net.window(x.shape[1]) / (cpu_seconds() - start)


def lava_rates(net: NetFile, x: torch.Tensor) -> Tuple[float, float, bool]:
    """(wall, CPU) steady-state sample-steps per second of Lava, and whether its spikes equal hw_sim's."""
    steps = net.window(x.shape[1])
    start_cpu = cpu_seconds()
    run_lava(net, x[:1])
    one_sample_cpu = cpu_seconds() - start_cpu
    stamps = {}
    start_cpu = cpu_seconds()
    lava = run_lava(net, x, chunk=1, progress=lambda done: stamps.setdefault(done, time.perf_counter()))
    full_cpu = cpu_seconds() - start_cpu
    sim = simulate(net, x)
    agree = all(bool((a == b).all()) for a, b in zip(lava.spikes, sim.spikes))
    work = (x.shape[0] - 1) * steps
    extra_cpu = full_cpu - one_sample_cpu   # start-up costs vary: on a loaded machine this can come out <= 0
    return work / (stamps[x.shape[0]] - stamps[1]), work / extra_cpu if extra_cpu > 0 else math.nan, agree


def times(rate: float, lava_rate: float) -> str:
    """hw_sim's rate as a multiple of Lava's, or 'n/a' where Lava's CPU time could not be measured."""
    return "n/a" if math.isnan(lava_rate) else f"{rate / lava_rate:.0f}x"


def gpu_figure(net: NetFile, batch: int, repeats: int) -> str:
    """hw_sim's CUDA sample-steps/s at `batch` and its share of the products-alone roofline, or why not."""
    if not torch.cuda.is_available():
        return "unmeasured (no CUDA)"
    x = random_inputs(net, batch, torch.device("cuda"))
    sim, alone = rates(net, x, repeats)
    return f"{sim:,.0f} ({sim / alone:.0%} of {alone:,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256, help="hw_sim batch size on the CPU")
    parser.add_argument("--lava-samples", type=int, default=12, help="samples run through Lava")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for hw_sim (Lava's worker processes share the same cores)")
    parser.add_argument("--gpu-batch", type=int, default=65536, help="hw_sim batch size on CUDA")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of hw_sim and its roofline (best counts)")
    parser.add_argument("--eager", action="store_true",
                        help="also time hw_sim with the eager CUBA step (`eager_cuba`) against its roofline")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time hw_sim and its roofline in wall-clock or this process's CPU time (steadier on "
                             "a busy machine; with several threads it counts their waiting too)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        nets = [("lava-dl mnist.net", LAVA_DL_NETS / "mnist.net"),
                ("tgo convnet 1x28x28", tgo_convnet(Path(folder) / "conv.net"))]
        loop = "numba loop" if importlib.util.find_spec("numba") else "eager step, numba missing"
        print(f"hw_sim: batch {args.batch}, {args.threads} torch thread(s), CPU ({args.clock} clock, CUBA: {loop}); "
              f"Lava: {args.lava_samples} samples, fixed_pt; GPU: batch {args.gpu_batch:,}. Sample-steps per second.")
        print(f"{'network':20s} {'steps':>5s} | {'hw_sim':>8s} {'products':>9s} {'ratio':>6s} | {'Lava':>6s} "
              f"{'ratio':>6s} {'CPU ratio':>9s} | {'spikes equal':12s} | GPU hw_sim (share of its products)")
        for name, path in nets:
            net = load_net(path)
            x = random_inputs(net, args.batch, torch.device("cpu"))
            clock = time.process_time if args.clock == "cpu" else time.perf_counter
            sim, alone = rates(net, x, args.repeats, clock)
            sim_cpu = hw_sim_cpu_rate(net, x)
            lava_wall, lava_cpu, agree = lava_rates(net, x[:args.lava_samples])
            print(f"{name:20s} {net.window(x.shape[1]):5d} | {sim:8,.0f} {alone:9,.0f} {sim / alone:6.0%} | "
                  f"{lava_wall:6,.0f} {times(sim, lava_wall if args.clock == 'wall' else lava_cpu):>6s} "
                  f"{times(sim_cpu, lava_cpu):>9s} | "
                  f"{'yes' if agree else 'NO':12s} | {gpu_figure(net, args.gpu_batch, args.repeats)}")
            if args.eager:
                with eager_cuba():
                    sim, alone = rates(net, x, args.repeats, clock)
                print(f"{'  eager CUBA step':20s} {'':5s} | {sim:8,.0f} {alone:9,.0f} {sim / alone:6.0%} |")


if __name__ == "__main__":
    main()
