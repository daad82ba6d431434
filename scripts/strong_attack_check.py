"""An attack check independent of the adaptive engine, on the demo models (for judging the engine's strength).

Built on torchattacks (through the classic suite's `APGDBestPoint`), not on `robust.engine` or its APGD: per surrogate of a sweep, APGD-CE and APGD-DLR
(`RESTARTS` restarts each) and APGD-T (targeted DLR against the `TARGETS` most likely wrong classes), all on
the noise-averaged float model (`K` draws per gradient), plus Square on it; every example also rounded onto
the chip's input grid. Each example is scored on the float model and on hw_sim. Two figures per model, eps
and side, as an outside attacker reports them:
  - per-sample worst: each image's lowest score over all examples on the `score` seeds (biased low: a
    minimum over noisy scores, lower the more examples there are);
  - one chosen example: each image's example with the lowest score on the `choose` seeds, scored on the
    disjoint `score` seeds (the engine's headline rule, with an independent attack).
Usage (after `tgo demo`): .venv/bin/python scripts/strong_attack_check.py [runs/demo] [n]
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict

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
from train.checkpoint import load_checkpoint
from train.data import load_dataset

SWEEP = "own,superspike:10,superspike:30,arctan:10,ste"
K, STEPS, RESTARTS, TARGETS, SQUARE_QUERIES = 8, 100, 2, 3, 1000
CHOOSE_SEEDS, SCORE_SEEDS = 40, 20


def apgd_t(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int) -> Dict[str, torch.Tensor]:
    """torchattacks' APGD-T per target rank (2 = most likely wrong class), keeping each row's best point."""
    atk = torchattacks.APGDT(model, eps=eps, steps=STEPS, n_restarts=1, seed=seed, n_classes=int(model(x[:1]).shape[1]))
    atk.set_model_training_mode(model_training=False)
    out = {}
    for rank in range(2, TARGETS + 2):
        atk.target_class = rank
        x_best, still_correct, _, x_fooled = atk.attack_single_run(x.clone(), y.clone())
        out[f"apgd-t{rank - 1}"] = torch.where(still_correct.view(-1, *[1] * (x.dim() - 1)), x_best, x_fooled).detach()
    return out


def examples(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
             q: int) -> Dict[str, torch.Tensor]:
    """Every attack's examples at `eps` (name -> [N, ...]), each also rounded onto the input grid."""
    averaged = NoiseAveraged(model, K)
    out: Dict[str, torch.Tensor] = {}
    for surrogate in parse_surrogates(SWEEP, alpha):
        with surrogate.applied(model):
            for loss in ("ce", "dlr"):
                for restart in range(RESTARTS):
                    seed = derive_seed(7, "independent", surrogate.label, loss, restart)
                    torch.manual_seed(seed)
                    atk = APGDBestPoint(averaged, eps=eps, steps=STEPS, n_restarts=1, seed=seed, loss=loss, rho=0.75)
                    atk.set_model_training_mode(model_training=False)
                    out[f"apgd-{loss}#{restart}@{surrogate.label}"] = atk(x, y).detach()
            for name, adv in apgd_t(averaged, x, y, eps, derive_seed(7, "apgd-t", surrogate.label)).items():
                out[f"{name}@{surrogate.label}"] = adv
    torch.manual_seed(derive_seed(7, "square"))
    square = torchattacks.Square(averaged, eps=eps, n_queries=SQUARE_QUERIES, seed=1)
    square.set_model_training_mode(model_training=False)
    out["square"] = square(x, y).detach()
    out.update({f"{name}/grid": rounded(adv, x, eps, q) for name, adv in list(out.items())})
    return out


def figures(side: SeededModel, candidates: torch.Tensor, y: torch.Tensor) -> Dict[str, float]:
    """candidates [C, N, ...] -> per-sample worst and one-chosen-example accuracy (see the module doc)."""
    c, n = candidates.shape[:2]
    flat, ys = candidates.flatten(0, 1), y.repeat(c)
    choose = score(side, flat, ys, [derive_seed(7, "choose", i) for i in range(CHOOSE_SEEDS)])[0].view(c, n)
    scores = score(side, flat, ys, [derive_seed(7, "score", i) for i in range(SCORE_SEEDS)])[0].view(c, n)
    chosen = scores[choose.argmin(0), torch.arange(n)]
    return {"worst": float(scores.min(0).values.mean()), "chosen": float(chosen.mean())}


def check(root: Path, name: str, n: int) -> None:
    ckpt = load_checkpoint(root / name)
    data = load_dataset(ckpt.config.data)
    x, y = data.test_x[:n], data.test_y[:n]
    net_path = root / f"{name}-export" / "model.net"
    net = load_net(net_path)
    model = ckpt.build_model("cpu").eval()
    sides = {"float": FloatModel(model, x[:64]), "fixed": HwSimModel(net, logit_scale(net_path, net))}
    for eps in (0.0625, 0.125):
        found = examples(model, x, y, eps, ckpt.config.neuron.alpha, net.tgo.input_scale)
        candidates = torch.stack([x] + list(found.values()))
        cells = {side: figures(scorer, candidates, y) for side, scorer in sides.items()}
        print(f"{name} eps {eps:g} ({len(candidates)} examples per image): per-sample worst float "
              f"{100 * cells['float']['worst']:.1f}% / fixed {100 * cells['fixed']['worst']:.1f}%; one chosen example "
              f"float {100 * cells['float']['chosen']:.1f}% / fixed {100 * cells['fixed']['chosen']:.1f}%", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/demo")
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 150
    for model_name in ("vanilla", "tgo+at"):
        check(root, model_name, count)
