"""Time one training step of vanilla vs full TGO (same net, batch and T) in one run and print the ratio.

TGO adds the membrane constraint (a hinge over the recorded potentials) and the threshold noise.
Usage: python bench/bench_train_step.py [--device cpu|cuda] [--repeats 50]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from train.config import ExperimentConfig, apply_method
from train.models import build_model
from train.neuron import set_synaptic_precision
from train.tgo_loss import total_constraint


class Stepper:
    """One model + optimizer of `method`, able to time a single training step."""

    def __init__(self, method: str, arch: str, hidden, shape, device: str, timesteps: int = 8, width: int = 64,
                 amp: bool = False):
        cfg = ExperimentConfig()
        cfg.tgo.method, cfg.model.arch, cfg.model.hidden = method, arch, hidden
        cfg.model.timesteps, cfg.model.width = timesteps, width
        self.cfg, self.amp = apply_method(cfg), amp
        set_synaptic_precision("bf16" if amp else "off")
        torch.manual_seed(0)
        self.model = build_model(cfg.model, cfg.neuron, shape, 10).to(device).train()
        self.model.reseed_noise(0)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.device = device

    def seconds(self, x: torch.Tensor, y: torch.Tensor) -> float:
        cfg, sync = self.cfg, (torch.cuda.synchronize if self.device == "cuda" else lambda: None)
        sync()
        start = time.perf_counter()
        with torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.model.run(x)
            loss = F.cross_entropy(out.logits.float(), y)
            if cfg.tgo.lambda_max > 0:
                guarded = self.model.guarded(out.potentials)
                loss = loss + cfg.tgo.lambda_max * total_constraint(guarded, cfg.neuron.v_th, cfg.tgo.delta)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        sync()
        return time.perf_counter() - start


def compare(arch: str, hidden, shape, batch: int, device: str, repeats: int, warmup: int = 5, **options):
    """Median step time of vanilla and TGO, measured alternately so that machine noise hits both alike.
    options: Stepper's timesteps, width, amp."""
    vanilla, tgo = (Stepper(m, arch, hidden, shape, device, **options) for m in ("vanilla", "tgo"))
    x, y = torch.rand(batch, *shape, device=device), torch.randint(0, 10, (batch,), device=device)
    times = {"vanilla": [], "tgo": []}
    for i in range(repeats + warmup):
        for name, stepper in (("vanilla", vanilla), ("tgo", tgo)):
            t = stepper.seconds(x, y)
            if i >= warmup:
                times[name].append(t)
    return statistics.median(times["vanilla"]), statistics.median(times["tgo"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (timings depend on it)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [("digits MLP 64-128-10", "mlp", [128], (1, 8, 8), 64),
             ("MNIST MLP 784-512-512-10", "mlp", [512, 512], (1, 28, 28), 128),
             ("digits convnet 16-32", "convnet", [16, 32], (1, 8, 8), 64)]
    print(f"device {args.device}, T=8, median of {args.repeats} steps")
    print(f"{'network':28s} {'batch':>5s} {'vanilla ms':>11s} {'TGO ms':>9s} {'TGO/vanilla':>12s}")
    for name, arch, hidden, shape, batch in cases:
        vanilla, tgo = compare(arch, hidden, shape, batch, args.device, args.repeats)
        print(f"{name:28s} {batch:5d} {vanilla * 1e3:11.2f} {tgo * 1e3:9.2f} {tgo / vanilla:12.2f}x")


if __name__ == "__main__":
    main()
