"""GPU check of hw_sim: CUDA equals the CPU bit for bit, and its throughput before and after exact fast products.

Needs only torch, numpy and h5py (no Lava, no training code, no network). Steps:
1. products at the exactness rule's limits equal int64 products; every spike, u and v of every layer and the
   readout v of a batch on the device equal the CPU's, with the products hw_sim picks and with float64 products
   only (the path before hw_sim/products.py);
   and with the fused (`torch.compile`d) neuron step where it is supported;
2. sample-steps/s of `simulate` at --batch samples with float64 products only and the eager step (before), the
   products hw_sim picks with the eager step, and with the fused step where it is available
   (`hw_sim.neurons.fused`), each beside its products-alone roofline, and the runs' spikes compared.
Prints one table; exits 1 on any mismatch.

Run: python bench/gpu_check.py PATH/TO/mnist.net [--device cuda] [--batch 65536] [--check-batch 1024]
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import List

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from hw_sim import products  # noqa: E402
from hw_sim.netfile import NetFile, load_net  # noqa: E402
from hw_sim.neurons import fused  # noqa: E402
from hw_sim.simulator import Run, simulate  # noqa: E402
from hw_sim_timing import layer_plans, random_inputs, rates  # noqa: E402

FLOAT64_ONLY = (torch.float64,)
ANY = tuple(products.EXACT_INTEGERS)


def differences(name: str, expected: Run, actual: Run) -> List[str]:
    """One line per tensor of `actual` that differs from `expected` (compared on the CPU)."""
    pairs = [(f"spikes[{i}]", e, a) for i, (e, a) in enumerate(zip(expected.spikes, actual.spikes))]
    pairs.append(("readout v", expected.readout_v, actual.readout_v))
    for key in ("u", "v"):
        pairs += [(f"{key}[{i}]", e, a) for i, (e, a) in
                  enumerate(zip(getattr(expected, key) or [], getattr(actual, key) or []))]
    return [f"MISMATCH {name}: {what} differs in {int((e.cpu() != a.cpu()).sum())} of {e.numel()} values"
            for what, e, a in pairs if not torch.equal(e.cpu(), a.cpu())]


def equality(net: NetFile, device: torch.device, count: int) -> List[str]:
    """Mismatches between the CPU and `device` on `count` samples, both product paths."""
    x = random_inputs(net, count, torch.device("cpu"))
    cpu = simulate(net, x, record=True)
    found = differences("device vs CPU", cpu, simulate(net, x, record=True, device=device))
    with products.only(*FLOAT64_ONLY):
        found += differences("device float64 products vs CPU", cpu, simulate(net, x, record=True, device=device))
    if fused.supported(device):
        with fused.enabled():
            found += differences("device fused step vs CPU", cpu, simulate(net, x, record=True, device=device))
    spiking = [i for i, s in enumerate(cpu.spikes) if bool(s.any())]
    print(f"bit-equality on {count} samples: {'OK' if not found else 'FAILED'} "
          f"(layers that spike: {spiking} of {len(cpu.spikes)})")
    return found


def limit_products(device: torch.device) -> List[str]:
    """The exactness rule at its limits on `device`: products hw_sim would run there with float16 operands (the
    largest weights float16 holds after the << 6, partial sums up to 2^24 - 1) against int64 products on the CPU."""
    found = []
    for weight_max, scale in ((products.EXACT_INTEGERS[torch.float16], 1), (1023, 64)):
        bound = products.EXACT_INTEGERS[torch.float32] - 1
        chosen = products.plan(weight_max, 1, bound, device, scale)
        count = bound // weight_max
        weight = torch.full((4, count + 1), weight_max, dtype=torch.int64)
        weight[:, -1] = bound - count * weight_max
        weight[1, ::2] *= -1
        weight[2:] = torch.randint(-weight_max, weight_max + 1, (2, count + 1),
                                   generator=torch.Generator().manual_seed(0))
        rows = 4096 if device.type == "cuda" else 64
        x = (torch.rand((rows, count + 1), generator=torch.Generator().manual_seed(1)) < 0.9).to(torch.int64)
        x[0] = 1
        expected = (x @ weight.T) * scale
        actual = products.matmul(x.to(device), products.prepare(weight.to(device), chosen, scale).T, chosen)
        status = "exact" if torch.equal(actual.cpu().to(torch.int64), expected) else "NOT EXACT"
        print(f"limit products, |w| <= {weight_max} x {scale}, sums up to {bound}: {chosen.operand} -> "
              f"{chosen.accumulate}, {status}")
        if status != "exact":
            found.append(f"MISMATCH limit products {chosen} with |w| <= {weight_max} x {scale}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("net", type=Path, help=".net file, e.g. lava-dl's mnist.net")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=65536, help="samples per timed run")
    parser.add_argument("--check-batch", type=int, default=1024, help="samples compared with the CPU")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    net = load_net(args.net)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {name}, {args.net.name}: layers {[layer.size for layer in net.layers]}")
    print(f"fused step: {'torch.compile' if fused.supported(device) else 'unsupported here (eager only)'}")
    found = limit_products(device) + equality(net, device, args.check_batch)

    x = random_inputs(net, args.batch, device)
    for layer, plan, _ in layer_plans(net, int(x.abs().max()), device):
        print(f"  layer {layer.index}: {type(layer.synapse).__name__} products in {plan.operand} operands, "
              f"{plan.accumulate} sums")
    print(f"{'products':28s} {'sample-steps/s':>15s} {'products alone':>15s} {'share':>6s}")
    results = {}
    cases = [("float64 only, eager step", FLOAT64_ONLY, contextlib.nullcontext),
             ("hw_sim's choice, eager step", ANY, contextlib.nullcontext)]
    if fused.supported(device):
        cases.append(("hw_sim's choice, fused step", ANY, fused.enabled))
    for label, allowed, step in cases:
        with products.only(*allowed), step():
            start = time.perf_counter()
            results[label] = simulate(net, x)  # the fused step compiles here, once per layer
            first = time.perf_counter() - start
            sim, alone = rates(net, x, args.repeats)
        print(f"{label:28s} {sim:15,.0f} {alone:15,.0f} {sim / alone:6.0%}  (first run {first:.1f} s)")
    before, *now = results.values()
    for label, run in zip(list(results)[1:], now):
        found += differences(f"batch {args.batch}: {label} vs float64 only", before, run)
    if any(module == "lava" or module.startswith("lava.") for module in sys.modules):
        found.append("MISMATCH of contract: hw_sim's core imported Lava")
    for line in found:
        print(line)
    print("verdict:", "MISMATCH" if found else "all equal")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
