"""Throughput of hw_sim's batched simulator against Lava's fixed-point simulator, on the same .net files.

Networks: lava-dl's shipped mnist.net (784-512-512-10, random graded spikes into its input layer for 16 steps)
and a tgo-format MLP written here (64-128-10, T=8, graded input). Throughput is sample-steps per second:
samples * window steps / seconds, in wall-clock time and in CPU time (Lava: its worker processes included).
CPU time does not depend on what else runs on the machine. Lava's figures exclude compilation and start-up
(wall: between its first and last progress reports; CPU: a full run minus a one-sample run); hw_sim's are the
best of a few repeats at the given batch size. The samples Lava ran are also compared with hw_sim, spike for spike.

Run: .venv/bin/python bench/bench_hw_sim.py [--batch 256] [--lava-samples 12] [--threads 1]
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Tuple

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hw_sim.lava_runner import run_lava  # noqa: E402
from hw_sim.netfile import NetFile, load_net  # noqa: E402
from hw_sim.simulator import encode_inputs, simulate  # noqa: E402
from tests.hw_sim_nets import LAVA_DL_NETS, random_images, tgo_mlp  # noqa: E402


def inputs(net: NetFile, count: int) -> torch.Tensor:
    """Input spikes [count, S, *input_shape]: encoded random images for tgo files, else random graded spikes."""
    if net.tgo is not None:
        return encode_inputs(net, torch.from_numpy(random_images(count, net.tgo.input_shape)))
    g = torch.Generator().manual_seed(0)
    values = torch.randint(0, 300, (count, 16) + net.input_shape, generator=g, dtype=torch.int32)
    return values * (torch.rand(values.shape, generator=g) < 0.3)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished child processes (Lava's workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def hw_sim_rates(net: NetFile, x: torch.Tensor, repeats: int = 3) -> Tuple[float, float]:
    """(wall, CPU) sample-steps per second of `simulate` on the whole batch."""
    work = x.shape[0] * net.window(x.shape[1])
    simulate(net, x)  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        simulate(net, x)
        wall.append(time.perf_counter() - start)
        cpu.append(cpu_seconds() - start_cpu)
    return work / min(wall), work / min(cpu)


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
    return work / (stamps[x.shape[0]] - stamps[1]), work / (full_cpu - one_sample_cpu), agree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256, help="hw_sim batch size")
    parser.add_argument("--lava-samples", type=int, default=12, help="samples run through Lava")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for hw_sim (Lava's worker processes share the same cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        nets = [("lava-dl mnist.net", LAVA_DL_NETS / "mnist.net"),
                ("tgo MLP 64-128-10 T=8", tgo_mlp(Path(folder) / "mlp.net", sizes=(64, 128, 10),
                                                  input_shape=(1, 8, 8), timesteps=8))]
        print(f"hw_sim: batch {args.batch}, {args.threads} torch thread(s), device cpu; Lava: "
              f"{args.lava_samples} samples, fixed_pt")
        print(f"{'network':24s} {'steps':>5s} | {'sample-steps/s, wall: hw_sim':>28s} {'Lava':>6s} {'ratio':>6s} | "
              f"{'CPU: hw_sim':>11s} {'Lava':>6s} {'ratio':>6s} | spikes equal")
        for name, path in nets:
            net = load_net(path)
            x = inputs(net, args.batch)
            sim_wall, sim_cpu = hw_sim_rates(net, x)
            lava_wall, lava_cpu, agree = lava_rates(net, x[:args.lava_samples])
            print(f"{name:24s} {net.window(x.shape[1]):5d} | {sim_wall:28,.0f} {lava_wall:6,.0f} "
                  f"{sim_wall / lava_wall:5.0f}x | {sim_cpu:11,.0f} {lava_cpu:6,.0f} {sim_cpu / lava_cpu:5.0f}x | "
                  f"{'yes' if agree else 'NO'}")


if __name__ == "__main__":
    main()
