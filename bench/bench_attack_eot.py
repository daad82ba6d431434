"""Time EOT-PGD-20 (K noise draws per step) on 500 digits images through the full `tgo attack` evaluation.

Budget from the issue: under 10 minutes on the CPU for 500 images with K=8. The digits test split has 450
images, so the 500 are the test split plus the first 50 training images (attack time does not depend on
which images; PGD has no early stop). The model is the default digits TGO MLP (noisy, so EOT really runs
K draws); its weights are untrained because cost does not depend on them.
Usage: python bench/bench_attack_eot.py [--k 8] [--n 500] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import time

import torch

from robust.attacks import AttackSettings, parse_attacks
from robust.evaluate import evaluate_model
from robust.surrogates import SurrogateSpec
from train.config import ExperimentConfig, apply_method
from train.data import load_dataset
from train.models import build_model

BUDGET_S = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (timings depend on it)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = apply_method(ExperimentConfig())
    data = load_dataset(cfg.data)
    x = torch.cat([data.test_x, data.train_x])[:args.n].to(args.device)
    y = torch.cat([data.test_y, data.train_y])[:args.n].to(args.device)
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.neuron, data.input_shape, data.num_classes).to(args.device)
    started = time.perf_counter()
    result = evaluate_model(model, x, y, parse_attacks("eot-pgd20"), [0.1], [SurrogateSpec(None, None)],
                            AttackSettings(eot_k=args.k), seed=0, repeats=20)
    total = time.perf_counter() - started
    run = result.eps_results[0].runs[0]
    print(f"EOT-PGD-20 K={run.eot_k} on {args.n} digits images ({args.device}, {torch.get_num_threads()} threads): "
          f"attack + 20 scoring forwards {run.seconds:.1f} s; whole evaluation incl. the 2K probe {total:.1f} s "
          f"(budget {BUDGET_S:.0f} s)")
    if run.seconds > BUDGET_S:
        raise SystemExit(f"over budget: {run.seconds:.1f} s > {BUDGET_S:.0f} s")


if __name__ == "__main__":
    main()
