"""An attack check independent of the adaptive engine (for judging the engine's strength).

Built on torchattacks (through the classic suite's `APGDBestPoint`), not on `robust.engine` or its APGD: per
surrogate of a sweep, APGD-CE and APGD-DLR (`Budget.restarts` restarts each) and APGD-T (targeted DLR against
the `Budget.targets` most likely wrong classes), all on the noise-averaged float model (`Budget.k` draws per
gradient), plus Square on it; every example also rounded onto
the chip's input grid. Each example is scored on the float model and on hw_sim. Two figures per model, eps
and side, as an outside attacker reports them:
  - per-sample worst: each image's lowest score over all examples on the `score` seeds (biased low: a
    minimum over noisy scores, lower the more examples there are);
  - one chosen example: each image's example with the lowest score on the `choose` seeds, scored on the
    disjoint `score` seeds (the engine's headline rule, with an independent attack).
Usage (after `tgo demo`): .venv/bin/python scripts/strong_attack_check.py [runs/demo] [n]
Any other pair: `--pair CHECKPOINT_DIR NET` (repeatable), e.g. the mnist5k conv net with `--budget reduced`
(a float forward and backward of a conv net costs ~10x the demo MLP's). `--device cuda` runs the float model
and its attacks on the GPU (hw_sim scores on the CPU, with `--threads` torch threads). `--json FILE` also
writes every image's scores (per model, eps and side), to compare image by image with verify.json.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import torch
import torchattacks

from hw_sim.netfile import load_net
from robust.attacks.apgd import APGDBestPoint
from robust.attacks.eot import NoiseAveraged
from robust.attacks.grid import rounded
from robust.deployed import logit_scale
from robust.evaluate import derive_seed
from robust.seeded import FloatModel, HwSimModel, SeededModel, score
from robust.surrogates import parse_surrogates
from tgo_errors import UsageError
from tgo_files import write_json_atomic
from train.checkpoint import load_checkpoint
from train.data import load_dataset
from train.trainer import resolve_device

CHOOSE_SEEDS, SCORE_SEEDS = 40, 20


@dataclass(frozen=True)
class Budget:
    """Surrogates swept; K noise draws per gradient; APGD steps; restarts per loss; APGD-T targets; Square queries."""
    sweep: str
    k: int
    steps: int
    restarts: int
    targets: int
    square_queries: int


BUDGETS = {"full": Budget("own,superspike:10,superspike:30,arctan:10,ste", 8, 100, 2, 3, 1000),
           "reduced": Budget("own,superspike:10,superspike:30,arctan:10", 4, 50, 1, 2, 1000)}


def apgd_t(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int,
           budget: Budget) -> Dict[str, torch.Tensor]:
    """torchattacks' APGD-T per target rank (2 = most likely wrong class), keeping each row's best point."""
    atk = torchattacks.APGDT(model, eps=eps, steps=budget.steps, n_restarts=1, seed=seed,
                             n_classes=int(model(x[:1]).shape[1]))
    atk.set_model_training_mode(model_training=False)
    out = {}
    for rank in range(2, budget.targets + 2):
        atk.target_class = rank
        x_best, still_correct, _, x_fooled = atk.attack_single_run(x.clone(), y.clone())
        out[f"apgd-t{rank - 1}"] = torch.where(still_correct.view(-1, *[1] * (x.dim() - 1)), x_best, x_fooled).detach()
    return out


def examples(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
             q: int, budget: Budget) -> Dict[str, torch.Tensor]:
    """Every attack's examples at `eps` (name -> [N, ...]), each also rounded onto the input grid."""
    averaged = NoiseAveraged(model, budget.k)
    out: Dict[str, torch.Tensor] = {}
    for surrogate in parse_surrogates(budget.sweep, alpha):
        with surrogate.applied(model):
            for loss in ("ce", "dlr"):
                for restart in range(budget.restarts):
                    seed = derive_seed(7, "independent", surrogate.label, loss, restart)
                    torch.manual_seed(seed)
                    atk = APGDBestPoint(averaged, eps=eps, steps=budget.steps, n_restarts=1, seed=seed, loss=loss,
                                        rho=0.75)
                    atk.set_model_training_mode(model_training=False)
                    out[f"apgd-{loss}#{restart}@{surrogate.label}"] = atk(x, y).detach()
            for name, adv in apgd_t(averaged, x, y, eps, derive_seed(7, "apgd-t", surrogate.label), budget).items():
                out[f"{name}@{surrogate.label}"] = adv
    torch.manual_seed(derive_seed(7, "square"))
    square = torchattacks.Square(averaged, eps=eps, n_queries=budget.square_queries, seed=1)
    square.set_model_training_mode(model_training=False)
    out["square"] = square(x, y).detach()
    out.update({f"{name}/grid": rounded(adv, x, eps, q) for name, adv in list(out.items())})
    return out


def figures(side: SeededModel, candidates: torch.Tensor, y: torch.Tensor) -> Dict[str, List[float]]:
    """candidates [C, N, ...] -> per image, the worst and the one-chosen-example score (see the module doc)."""
    c, n = candidates.shape[:2]
    flat, ys = candidates.flatten(0, 1), y.repeat(c)
    choose = score(side, flat, ys, [derive_seed(7, "choose", i) for i in range(CHOOSE_SEEDS)])[0].view(c, n)
    scores = score(side, flat, ys, [derive_seed(7, "score", i) for i in range(SCORE_SEEDS)])[0].view(c, n)
    chosen = scores[choose.argmin(0), torch.arange(n)]
    return {"worst": scores.min(0).values.tolist(), "chosen": chosen.tolist()}


def check(checkpoint: Path, net_path: Path, n: int, eps_values: Sequence[float], budget: Budget,
          device: str = "cpu") -> Dict[str, Dict]:
    """Print both figures per eps and side; returns eps -> side -> figure -> per-image scores."""
    ckpt = load_checkpoint(checkpoint)
    data = load_dataset(ckpt.config.data)
    x, y = data.test_x[:n].to(device), data.test_y[:n].to(device)
    net = load_net(net_path)
    model = ckpt.build_model(device).eval()
    sides = {"float": FloatModel(model, x[:64]), "fixed": HwSimModel(net, logit_scale(net_path, net))}
    per_eps = {}
    for eps in eps_values:
        found = examples(model, x, y, eps, ckpt.config.neuron.alpha, net.tgo.input_scale, budget)
        candidates = torch.stack([x] + list(found.values()))
        cells = per_eps[f"{eps:g}"] = {side: figures(scorer, candidates, y) for side, scorer in sides.items()}
        mean = {(side, figure): 100 * sum(v) / len(v) for side, by in cells.items() for figure, v in by.items()}
        print(f"{checkpoint.name} eps {eps:g} ({len(candidates)} examples per image): per-sample worst float "
              f"{mean['float', 'worst']:.1f}% / fixed {mean['fixed', 'worst']:.1f}%; one chosen example "
              f"float {mean['float', 'chosen']:.1f}% / fixed {mean['fixed', 'chosen']:.1f}%", flush=True)
    return per_eps


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path("runs/demo"), help="tgo demo's output folder")
    parser.add_argument("n", nargs="?", type=int, default=150, help="first n test images")
    parser.add_argument("--pair", nargs=2, type=Path, action="append", metavar=("CHECKPOINT_DIR", "NET"),
                        help="a checkpoint and its export (default: the demo's vanilla and tgo+at)")
    parser.add_argument("--eps", default="0.0625,0.125")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="full")
    parser.add_argument("--device", default="cpu", help="the float model's: cpu | cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", type=Path, help="also write every image's scores here")
    args = parser.parse_args()
    try:
        resolve_device(args.device)
    except UsageError as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    pairs = args.pair or [(args.root / name, args.root / f"{name}-export" / "model.net")
                          for name in ("vanilla", "tgo+at")]
    results: Dict[str, Dict] = {}
    for checkpoint_dir, net_file in pairs:
        results[str(checkpoint_dir)] = check(checkpoint_dir, net_file, args.n, [float(e) for e in args.eps.split(",")],
                                             BUDGETS[args.budget], args.device)
    if args.json:
        write_json_atomic(args.json, {"n": args.n, "budget": args.budget, "models": results})
