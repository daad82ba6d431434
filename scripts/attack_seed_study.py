"""Seed study for the README: does TGO+AT beat vanilla in worst-case robust accuracy by more than the seed spread?

For each seed: train vanilla, TGO, TGO+AT and (as a control) vanilla+AT on digits with `train.trainer.train`
(seed = training seed; a finished run is reused), then run `tgo attack` on the four checkpoints with the
same seed (default attacks and surrogates). Writes OUT/seed<S>/<model>/ (runs), OUT/seed<S>/attack/ (reports)
and OUT/summary.json + OUT/summary.md: per model and eps the worst-case accuracy per seed, mean, sample std
and range, and the verdict at the main eps (margin of means > the larger of the two seed ranges).
Usage: python scripts/attack_seed_study.py [--out runs/attack-seeds] [--seeds 0,1,2] [--eps 0.05,0.1,0.2]
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Dict, List

from robust.command import run_attack
from robust.options import AttackOptions
from tgo_files import write_json_atomic, write_text_atomic
from train.checkpoint import CHECKPOINT_NAME, load_checkpoint
from train.config import ExperimentConfig, apply_method
from train.trainer import train

MODELS = {  # name: (method, adversarial training kind)
    "vanilla": ("vanilla", "none"),
    "tgo": ("tgo", "none"),
    "tgo_at": ("tgo", "pgd"),
    "vanilla_at": ("vanilla", "pgd"),
}


def train_model(out: Path, method: str, adv: str, adv_eps: float, seed: int, epochs: int) -> Path:
    """Train one digits MLP into `out` unless a finished checkpoint is there; returns the run folder."""
    ckpt = out / CHECKPOINT_NAME
    if ckpt.is_file() and load_checkpoint(ckpt).epoch >= epochs:
        return out
    cfg = ExperimentConfig()
    cfg.tgo.method = method
    cfg.adv.kind, cfg.adv.eps = adv, adv_eps
    cfg.optim.epochs, cfg.optim.seed, cfg.optim.device = epochs, seed, "cpu"
    train(apply_method(cfg), out, resume=ckpt.is_file(), show_progress=False, log=lambda *_: None)
    return out


def summarize(table: Dict[str, Dict[float, List[float]]], main_eps: float, seeds: List[int]) -> Dict:
    stats = {name: {eps: {"per_seed": values, "mean": statistics.mean(values),
                          "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                          "range": max(values) - min(values)}
                    for eps, values in by_eps.items()} for name, by_eps in table.items()}
    at, van = stats["tgo_at"][main_eps], stats["vanilla"][main_eps]
    margin = at["mean"] - van["mean"]
    spread = max(at["range"], van["range"])
    return {"seeds": seeds, "main_eps": main_eps, "models": stats,
            "verdict": {"tgo_at_minus_vanilla": margin, "seed_spread": spread, "holds": margin > spread,
                        "paired_differences": [a - v for a, v in zip(at["per_seed"], van["per_seed"])]}}


def markdown(summary: Dict) -> str:
    eps_values = sorted(next(iter(summary["models"].values())))
    lines = ["# Seed study: worst-case robust accuracy (%) on digits", "",
             f"seeds {summary['seeds']}; mean ± sample std [min, max] over seeds", "",
             "| model | " + " | ".join(f"eps {e:g}" for e in eps_values) + " |", "|---|" + "---|" * len(eps_values)]
    for name, by_eps in summary["models"].items():
        cells = [f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f} [{100 * min(s['per_seed']):.1f}, "
                 f"{100 * max(s['per_seed']):.1f}]" for s in (by_eps[e] for e in eps_values)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    v = summary["verdict"]
    lines += ["", f"At eps {summary['main_eps']:g}: TGO+AT - vanilla = {100 * v['tgo_at_minus_vanilla']:.1f} points "
              f"(per seed {', '.join(f'{100 * d:.1f}' for d in v['paired_differences'])}); seed spread (largest "
              f"range of the two) {100 * v['seed_spread']:.1f} points: {'holds' if v['holds'] else 'DOES NOT hold'}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/attack-seeds"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--eps", default="0.05,0.1,0.2")
    parser.add_argument("--main-eps", type=float, default=0.1)
    parser.add_argument("--adv-eps", type=float, default=0.1, help="adversarial training budget (PGD, 5 steps)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--n", type=int, default=None)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    table: Dict[str, Dict[float, List[float]]] = {name: {} for name in MODELS}
    for seed in seeds:
        runs = [train_model(args.out / f"seed{seed}" / name, method, adv, args.adv_eps, seed, args.epochs)
                for name, (method, adv) in MODELS.items()]
        report = run_attack(runs, AttackOptions(eps=args.eps, n=args.n, seed=seed,
                                                out=str(args.out / f"seed{seed}" / "attack"), progress=False))
        for name, result in zip(MODELS, report["results"]):
            for res in result.eps_results:
                table[name].setdefault(res.eps, []).append(res.accuracy)
    summary = summarize(table, args.main_eps, seeds)
    write_json_atomic(args.out / "summary.json", summary)
    write_text_atomic(args.out / "summary.md", markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
