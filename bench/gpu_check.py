"""GPU check of hw_sim: CUDA equals the CPU bit for bit, and its throughput before and after exact fast products.

Needs only torch, numpy and h5py (no Lava, no training code, no network). Steps:
1. products at the exactness rule's limits equal int64 products; every spike, u and v of every layer and the
   readout v of a batch on the device equal the CPU's, with the products hw_sim picks and with float64 products
   only (the path before hw_sim/products.py), each with the eager neuron step and with the Triton CUBA kernel
   (`hw_sim.neurons.cuba_triton`, CUDA only);
2. sample-steps/s of `simulate` at --batch samples for the same four paths, each beside its products-alone
   roofline, and the runs' spikes and readout compared with the first (float64 products, eager step).
Prints one table; exits 1 on any mismatch. A Triton kernel that fails to import, compile or run is reported (with
its error) and skipped; the eager paths still run, and that alone is no mismatch.

Run: python bench/gpu_check.py PATH/TO/mnist.net [--device cuda] [--batch 65536] [--check-batch 1024]
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, ContextManager, List, Optional, Tuple

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from hw_sim import products  # noqa: E402
from hw_sim.netfile import NetFile, load_net  # noqa: E402
from hw_sim.simulator import Run, eager_cuba, simulate  # noqa: E402
from hw_sim_timing import layer_plans, random_inputs, rates  # noqa: E402

FLOAT64_ONLY = (torch.float64,)
ANY = tuple(products.EXACT_INTEGERS)
Case = Tuple[str, Tuple[torch.dtype, ...], Callable[[], ContextManager[None]]]  # label, products, neuron step


def triton_problem(device: torch.device) -> Optional[str]:
    """Why the Triton CUBA kernel cannot run on `device` (None: it can be tried)."""
    if device.type != "cuda":
        return f"not on {device.type} (CUDA only)"
    try:
        from hw_sim.neurons import cuba_triton  # noqa: F401
    except Exception as err:  # ImportError, or Triton's own errors at import
        return f"import failed: {type(err).__name__}: {err}"
    return None


def paths(triton_ok: bool) -> List[Case]:
    """The product and neuron-step paths compared and timed: the eager step first, the Triton kernel where ok."""
    steps = [("eager step", eager_cuba)] + ([("Triton kernel", contextlib.nullcontext)] if triton_ok else [])
    return [(f"{products_label}, {step_label}", allowed, step) for step_label, step in steps
            for products_label, allowed in (("float64 only", FLOAT64_ONLY), ("hw_sim's choice", ANY))]


def differences(name: str, expected: Run, actual: Run) -> List[str]:
    """One line per tensor of `actual` that differs from `expected` (compared on the CPU)."""
    pairs = [(f"spikes[{i}]", e, a) for i, (e, a) in enumerate(zip(expected.spikes, actual.spikes))]
    pairs.append(("readout v", expected.readout_v, actual.readout_v))
    for key in ("u", "v"):
        pairs += [(f"{key}[{i}]", e, a) for i, (e, a) in
                  enumerate(zip(getattr(expected, key) or [], getattr(actual, key) or []))]
    return [f"MISMATCH {name}: {what} differs in {int((e.cpu() != a.cpu()).sum())} of {e.numel()} values"
            for what, e, a in pairs if not torch.equal(e.cpu(), a.cpu())]


def check_and_time(net: NetFile, device: torch.device, case: Case, reference: Tuple[torch.Tensor, Run],
                   x: torch.Tensor, repeats: int) -> Tuple[List[str], Run]:
    """One path: its mismatches against the CPU run `reference` (input, run recorded), then its timing at the
    batch `x` (printed as a table row); returns the mismatches and the timed run (on the CPU)."""
    label, allowed, step = case
    with products.only(*allowed), step():
        found = differences(f"device {label} vs CPU", reference[1], simulate(net, reference[0], record=True,
                                                                             device=device))
        start = time.perf_counter()
        run = simulate(net, x)  # the Triton kernel compiles in the check above, once per variant
        run = Run([s.cpu() for s in run.spikes], run.readout_v.cpu())  # safe from a later CUDA fault
        first = time.perf_counter() - start
        sim, alone = rates(net, x, repeats)
    print(f"{label:32s} {sim:15,.0f} {alone:15,.0f} {sim / alone:6.0%}  (first run {first:.1f} s)  "
          f"{'bit-equal to the CPU' if not found else 'MISMATCH vs the CPU'}")
    return found, run


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
    problem = triton_problem(device)
    print(f"Triton CUBA kernel: {'available' if problem is None else problem}")
    found = limit_products(device)
    sample = random_inputs(net, args.check_batch, torch.device("cpu"))
    cpu = simulate(net, sample, record=True)
    spiking = [i for i, s in enumerate(cpu.spikes) if bool(s.any())]
    print(f"bit-equality with the CPU on {args.check_batch} samples (every spike, u, v, readout; layers that "
          f"spike: {spiking} of {len(cpu.spikes)}); timing at batch {args.batch}")
    x = random_inputs(net, args.batch, device)
    for layer, plan, _ in layer_plans(net, int(x.abs().max()), device):
        print(f"  layer {layer.index}: {type(layer.synapse).__name__} products in {plan.operand} operands, "
              f"{plan.accumulate} sums")
    print(f"{'products, neuron step':32s} {'sample-steps/s':>15s} {'products alone':>15s} {'share':>6s}")
    results = {}
    for case in paths(problem is None):  # eager paths first: a Triton failure cannot hide their numbers
        try:
            checked, results[case[0]] = check_and_time(net, device, case, (sample, cpu), x, args.repeats)
        except Exception:
            if case[2] is eager_cuba:
                raise
            print(f"{case[0]}: FAILED TO RUN, skipped (not counted as a mismatch):\n{traceback.format_exc()}")
            continue
        found += checked
    (first_label, before), *now = results.items()
    for label, run in now:
        found += differences(f"batch {args.batch}: {label} vs {first_label}", before, run)
    if any(module == "lava" or module.startswith("lava.") for module in sys.modules):
        found.append("MISMATCH of contract: hw_sim's core imported Lava")
    for line in found:
        print(line)
    print("verdict:", "MISMATCH" if found else "all equal")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
