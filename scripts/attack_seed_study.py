"""Seed study for the README: does TGO+AT beat vanilla in robust accuracy by more than the seed spread?

For each seed: train vanilla, TGO, TGO+AT and (as a control) vanilla+AT on digits with `train.trainer.train`
(seed = training seed; a finished run is reused), then run `tgo attack` on the four checkpoints with the
same seed (default attacks, surrogates and engine budget; a finished report on the same checkpoints, eps and
n is reused, so seeds can run as separate processes and be summarized together afterwards). Three figures per
model, eps and seed: the adaptive engine's headline on the float model (one chosen example per image scored
on fresh noise; the README's figure), the engine's per-image minimum and the classic suite's per-sample worst
case (both minima over noisy scores, so biased low and comparable with each other). Writes
OUT/seed<S>/<model>/ (runs), OUT/seed<S>/attack/ (reports) and OUT/summary.json + OUT/summary.md: per figure,
model and eps the accuracy per seed, mean, sample std and range, and the verdict at the main eps (margin of
means > the larger of the two seed ranges).
Usage: python scripts/attack_seed_study.py [--out runs/attack-seeds] [--seeds 0,1,2] [--eps 0.05,0.1,0.2]
    [--device cpu|cuda] [--n N]
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Dict, List

from robust.command import run_attack
from robust.options import AttackOptions
from tgo_errors import UsageError
from tgo_files import write_json_atomic, write_text_atomic
from train.checkpoint import CHECKPOINT_NAME, file_sha256, load_checkpoint
from train.config import DataConfig, ExperimentConfig, apply_method
from train.data import load_dataset
from train.trainer import resolve_device, train

FIGURES = {"engine": "adaptive engine headline (float)",
           "engine_minimum": "adaptive engine, per-image minimum (biased low, like the suite's worst case)",
           "suite": "classic suite, per-sample worst case"}
MODELS = {  # name: (method, adversarial training kind)
    "vanilla": ("vanilla", "none"),
    "tgo": ("tgo", "none"),
    "tgo_at": ("tgo", "pgd"),
    "vanilla_at": ("vanilla", "pgd"),
}


def train_model(out: Path, method: str, adv: str, adv_eps: float, seed: int, epochs: int, device: str) -> Path:
    """Train one digits MLP into `out` unless a finished checkpoint is there; returns the run folder."""
    ckpt = out / CHECKPOINT_NAME
    if ckpt.is_file() and load_checkpoint(ckpt).epoch >= epochs:
        return out
    cfg = ExperimentConfig()
    cfg.tgo.method = method
    cfg.adv.kind, cfg.adv.eps = adv, adv_eps
    cfg.optim.epochs, cfg.optim.seed, cfg.optim.device = epochs, seed, device
    train(apply_method(cfg), out, resume=ckpt.is_file(), show_progress=False, log=lambda *_: None)
    return out


def summarize(table: Dict[str, Dict[float, List[float]]], main_eps: float, seeds: List[int]) -> Dict:
    """One figure's table (model -> eps -> per-seed accuracies) -> statistics and the verdict at `main_eps`."""
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


def markdown(summaries: Dict[str, Dict]) -> str:
    """One table and verdict per figure (`FIGURES`)."""
    lines = ["# Seed study: robust accuracy (%) on digits", ""]
    for figure, summary in summaries.items():
        eps_values = sorted(next(iter(summary["models"].values())))
        lines += [f"## {FIGURES[figure]}", "", f"seeds {summary['seeds']}; mean ± sample std [min, max] over seeds", "",
                  "| model | " + " | ".join(f"eps {e:g}" for e in eps_values) + " |", "|---|" + "---|" * len(eps_values)]
        for name, by_eps in summary["models"].items():
            cells = [f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f} [{100 * min(s['per_seed']):.1f}, "
                     f"{100 * max(s['per_seed']):.1f}]" for s in (by_eps[e] for e in eps_values)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        v = summary["verdict"]
        lines += ["", f"At eps {summary['main_eps']:g}: TGO+AT - vanilla = {100 * v['tgo_at_minus_vanilla']:.1f} "
                  f"points (per seed {', '.join(f'{100 * d:.1f}' for d in v['paired_differences'])}); seed spread "
                  f"(largest range of the two) {100 * v['seed_spread']:.1f} points: "
                  f"{'holds' if v['holds'] else 'DOES NOT hold'}.", ""]
    return "\n".join(lines)


def finished_report(report_json: Path, runs: List[Path], eps: str, n: int) -> bool:
    """Does `report_json` hold an attack on exactly these checkpoints (sha256), eps values and first n images?"""
    if not report_json.is_file():
        return False
    report = json.loads(report_json.read_text())
    return ([m["sha256"] for m in report["models"]] == [file_sha256(run / CHECKPOINT_NAME) for run in runs]
            and report["settings"]["eps"] == [float(e) for e in eps.split(",")] and report["settings"]["n"] == n)


def figures(report_json: Path) -> Dict[str, Dict[str, Dict[float, float]]]:
    """attack.json -> figure (`FIGURES`) -> model label -> eps -> accuracy."""
    models = json.loads(report_json.read_text())["models"]
    return {"engine": {m["name"]: {row["eps"]: row["headline"] for row in m["adaptive"]["eps"]} for m in models},
            "engine_minimum": {m["name"]: {row["eps"]: row["minimum"] for row in m["adaptive"]["eps"]}
                               for m in models},
            "suite": {m["name"]: {row["eps"]: row["worst_case_accuracy"] for row in m["eps"]} for m in models}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/attack-seeds"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--eps", default="0.05,0.1,0.2")
    parser.add_argument("--main-eps", type=float, default=0.1)
    parser.add_argument("--adv-eps", type=float, default=0.1, help="adversarial training budget (PGD, 5 steps)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="training and attacks: cpu | cuda")
    args = parser.parse_args()
    try:
        resolve_device(args.device)
    except UsageError as error:
        parser.error(str(error))
    seeds = [int(s) for s in args.seeds.split(",")]
    n = args.n or len(load_dataset(DataConfig()).test_x)
    tables: Dict[str, Dict[str, Dict[float, List[float]]]] = {f: {name: {} for name in MODELS} for f in FIGURES}
    for seed in seeds:
        runs = [train_model(args.out / f"seed{seed}" / name, method, adv, args.adv_eps, seed, args.epochs, args.device)
                for name, (method, adv) in MODELS.items()]
        report_json = args.out / f"seed{seed}" / "attack" / "attack.json"
        if not finished_report(report_json, runs, args.eps, n):
            run_attack(runs, AttackOptions(eps=args.eps, n=n, seed=seed, device=args.device,
                                           out=str(report_json.parent), progress=False))
        measured = figures(report_json)
        for figure, table in tables.items():
            for name, run in zip(MODELS, runs):
                for eps, accuracy in measured[figure][run.name].items():
                    table[name].setdefault(eps, []).append(accuracy)
    summaries = {figure: summarize(table, args.main_eps, seeds) for figure, table in tables.items()}
    write_json_atomic(args.out / "summary.json", summaries)
    write_text_atomic(args.out / "summary.md", markdown(summaries))
    print(markdown(summaries))


if __name__ == "__main__":
    main()
