"""`tgo attack CHECKPOINT...`: load checkpoints and their test split, evaluate, check, report."""
from __future__ import annotations

import platform
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torchattacks
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from robust.attacks import AttackSettings, parse_attacks
from robust.checks import run_checks
from robust.engine import SCORING_RULE, Side, run_engine
from robust.evaluate import ModelResult, evaluate_model
from robust.options import MAX_COUNT, MAX_INPUT_LEVELS, AttackOptions, EngineBudget
from robust.report import rich_table, write_report
from robust.seeded import FloatModel
from robust.sharding import Plan, block_seed, sharded
from robust.surrogates import parse_surrogates
from tgo_errors import UsageError
from tgo_files import check_output_dir
from tgo_provenance import provenance
from train.checkpoint import CHECKPOINT_NAME, Checkpoint, file_sha256, load_checkpoint, resolve_checkpoint_path
from train.data import Dataset, load_dataset
from train.trainer import resolve_device


def parse_eps(text: str) -> List[float]:
    """'0.05,0.1' -> sorted distinct floats, each in [0, 1] (L-inf, input units)."""
    values = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            value = float(part)
        except ValueError:
            raise UsageError(f"--eps: '{part}' is not a number") from None
        if not 0.0 <= value <= 1.0:
            raise UsageError(f"--eps: {part} is outside [0, 1] (L-inf eps is in input units, images are in [0, 1])")
        values.append(value)
    if not values:
        raise UsageError("--eps: give at least one value, e.g. --eps 0.05,0.1")
    return sorted(set(values))


def check_count(flag: str, value: int, low: int = 1, high: int = MAX_COUNT) -> None:
    """UsageError unless low <= value <= high."""
    if not low <= value <= high:
        raise UsageError(f"{flag} must be in {low}..{high:,}, got {value}")


def _check_counts(options: AttackOptions) -> None:
    for flag, value in (("--eot-k", options.eot_k), ("--repeats", options.repeats), ("--restarts", options.restarts),
                        ("--apgd-steps", options.apgd_steps), ("--square-queries", options.square_queries),
                        ("--batch-size", options.batch_size), ("--n", 1 if options.n is None else options.n),
                        ("--steps", options.steps), ("--search-queries", options.search_queries),
                        ("--block", options.block)):
        check_count(flag, value)
    check_count("--input-levels", options.input_levels, high=MAX_INPUT_LEVELS)


def check_budget(budget: EngineBudget) -> None:
    """UsageError unless every count of the engine's budget is in 1..MAX_COUNT (eot_k from 0: 0 means probe)."""
    for flag, value, low in (("--steps", budget.steps, 1), ("--restarts", budget.restarts, 1),
                             ("--eot-k", budget.eot_k, 0), ("--search-queries", budget.search_queries, 1)):
        check_count(flag, value, low)


def _labels(paths: Sequence[Path]) -> List[str]:
    """Short unique names: the run folder for .../run/checkpoint.pt, else the file stem."""
    labels: List[str] = []
    for path in paths:
        path = resolve_checkpoint_path(path)
        base = path.parent.name if path.name == CHECKPOINT_NAME else path.stem
        label, k = base, 2
        while label in labels:
            label, k = f"{base}#{k}", k + 1
        labels.append(label)
    return labels


def load_inputs(paths: Sequence[Path], options: AttackOptions) -> Tuple[List[Checkpoint], Dataset]:
    """The checkpoints and the dataset they are evaluated on (the first checkpoint's, unless --dataset)."""
    if not paths:
        raise UsageError("give at least one checkpoint (a checkpoint.pt or its run folder)")
    ckpts = [load_checkpoint(p) for p in paths]
    data_cfg = replace(ckpts[0].config.data)
    if options.dataset is not None:
        data_cfg.dataset = options.dataset
    if options.data_dir is not None:
        data_cfg.data_dir = options.data_dir
    if options.dataset is None:
        for path, ckpt in zip(paths[1:], ckpts[1:]):
            theirs, ours = ckpt.config.data, ckpts[0].config.data
            if (theirs.dataset, theirs.test_fraction, theirs.split_seed) != (ours.dataset, ours.test_fraction,
                                                                               ours.split_seed):
                raise UsageError(f"'{path}' was trained on another data split than '{paths[0]}' "
                                 f"({theirs.dataset} vs {ours.dataset}): evaluate them separately or pass --dataset")
    data = load_dataset(data_cfg)
    for path, ckpt in zip(paths, ckpts):
        ckpt.check_data(data, path)
    if options.n is not None and options.n > len(data.test_x):
        raise UsageError(f"--n {options.n} is larger than the test split of {data.name} ({len(data.test_x)} images)")
    return ckpts, data


def _model_info(path: Path, ckpt: Checkpoint) -> Dict[str, Any]:
    cfg = ckpt.config
    return {"checkpoint": str(path), "sha256": file_sha256(resolve_checkpoint_path(path)),
            "method": cfg.tgo.method, "adversarial_training": {"kind": cfg.adv.kind, "eps": cfg.adv.eps},
            "sigma": cfg.neuron.sigma, "noise_at_inference": cfg.neuron.noise_at_inference,
            "surrogate": f"{cfg.neuron.surrogate}:{cfg.neuron.alpha:g}", "epochs": ckpt.epoch,
            "training_test_accuracy": ckpt.metrics.get("test_accuracy")}


def _adaptive(model, x: torch.Tensor, y: torch.Tensor, eps_values: Sequence[float], options: AttackOptions,
              alpha: float, plan: Plan) -> Dict[str, Any]:
    """The adaptive engine's headline on the float model (the same engine and budget as `tgo verify`)."""
    budget = EngineBudget(steps=options.steps, search_queries=options.search_queries)
    side = Side("float", FloatModel(model.eval(), x[:64]), model, parse_surrogates(options.sweep, alpha), "float")
    result = run_engine([side], Side("float", side.scorer, origin="float"), x, y, eps_values, options.input_levels,
                        budget, options.seed, options.repeats, plan=plan)
    return {"clean": float(result.clean["float"].mean()), "budget": asdict(budget), "eot": result.eot["float"],
            "seeds": asdict(result.seeds), "flags": result.flags(), "scoring_rule": SCORING_RULE,
            "eps": [{"eps": row.eps, "headline": row.accuracy, "minimum": float(row.minimum.mean()),
                     "before_doubling": row.base_headline, "strongest": row.strongest, "per_source": row.per_source,
                     "per_sample": {"headline": row.headline.tolist(), "chosen": row.chosen}}
                    for row in result.eps["float"]]}


def _console() -> Console:
    """Rich's console; when piped to a file, wide enough that the table is not squeezed to 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def run_attack(paths: Sequence[Path], options: AttackOptions,
               console: Optional[Console] = None) -> Optional[Dict[str, Any]]:
    """Evaluate every checkpoint, write attack.json/.md/.png into options.out, print the table.

    Returns {'results', 'flags', 'status', 'paths'}. Under torchrun the samples are sharded by blocks across
    the ranks (`robust.sharding`): every result is that of one process, and rank 0 alone prints and writes
    (the other ranks return None).
    """
    console = console or _console()
    check_output_dir(Path(options.out))
    paths = [Path(p) for p in paths]
    attacks, eps_values = parse_attacks(options.attacks), parse_eps(options.eps)
    _check_counts(options)
    ckpts, data = load_inputs(paths, options)
    surrogates = parse_surrogates(options.surrogates, ckpts[0].config.neuron.alpha)
    n = options.n or len(data.test_x)
    with sharded(options.device, n, options.block) as plan:
        device = plan.device or resolve_device(options.device)
        x, y = data.test_x[:n].to(device), data.test_y[:n].to(device)
        settings = AttackSettings(options.eot_k, options.restarts, options.apgd_steps, options.square_queries)
        record = {**asdict(options), "n": n, "eps": eps_values, "attacks": [a.name for a in attacks],
                  "surrogates": [s.label for s in surrogates], "dataset": data.name,
                  "samples": f"the first {n} images of the test split", "device": str(device),
                  "processes": plan.world, "torch": torch.__version__, "torchattacks": torchattacks.__version__,
                  "python": platform.python_version(), "provenance": provenance(str(device))}
        labels = _labels(paths)
        results, flags, status, adaptive = [], {}, {}, {}
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn())
        with Progress(*columns, console=console, disable=not (options.progress and plan.is_main),
                      transient=True) as progress:
            for label, ckpt in zip(labels, ckpts):
                model = ckpt.build_model(device)
                parts = [evaluate_model(model, x[plan.rows(b)], y[plan.rows(b)], attacks, eps_values, surrogates,
                                        settings, block_seed(options.seed, b), options.repeats, options.batch_size,
                                        label, progress, probe=x[:64]) for b in plan.mine()]
                result = ModelResult.join(plan.gather(parts))
                results.append(result)
                flags[label], status[label] = run_checks(result)
                adaptive[label] = _adaptive(model, x, y, eps_values, options, ckpt.config.neuron.alpha, plan)
        if not plan.is_main:
            return None
        info = {label: {**_model_info(path, ckpt), "adaptive": adaptive[label]}
                for label, path, ckpt in zip(labels, paths, ckpts)}
        written = write_report(Path(options.out), results, flags, status, record, info)
        console.print(rich_table(results, flags))
        for label, model_flags in flags.items():
            for flag in model_flags:
                console.print(f"[red]red flag[/red] {label} eps={flag.eps if flag.eps is not None else 'all'} "
                              f"{flag.check}: {flag.message}")
        for label, summary in adaptive.items():
            for row in summary["eps"]:
                console.print(f"adaptive engine {label} eps={row['eps']:g}: [bold]{100 * row['headline']:.1f}%[/bold] "
                              f"(per-image minimum {100 * row['minimum']:.1f}%, strongest source {row['strongest']})")
            for flag in summary["flags"]:
                console.print(f"[red]red flag[/red] {label} {flag}")
        console.print(f"wrote {written['json']}, {written['md']}, {written['png']}")
        return {"results": results, "flags": flags, "status": status, "paths": written}
