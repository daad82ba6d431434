"""The training loop: CE + lambda(epoch) * sum_l C_l, optional adversarial batches, resumable checkpoints.

Every epoch reseeds torch's generator, the neuron noise and the shuffling from (seed, epoch), so a run
resumed from the checkpoint of epoch k continues exactly as the uninterrupted run would have.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tgo_errors import UsageError
from tgo_files import append_json_line, check_output_dir, write_text_atomic
from tgo_provenance import provenance
from train import distributed
from train.adversarial import make_attack
from train.budget import check_memory
from train.checkpoint import CHECKPOINT_NAME, Checkpoint, load_checkpoint, save_checkpoint
from train.config import ExperimentConfig
from train.data import Dataset, batches, load_dataset
from train.diagnostics import evaluate
from train.models import SNNOutput, SpikingNetwork, build_model
from train.neuron import set_synaptic_precision
from train.tgo_loss import tgo_lambda, total_constraint


def resolve_device(name: str) -> torch.device:
    """'cpu' | 'cuda' | 'cuda:N' | 'auto' -> a torch.device; anything else, or CUDA where there is none, is a
    UsageError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise UsageError(f"unknown device '{name}' (choose cpu, cuda, cuda:N or auto)")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA device is available here (use --device cpu or auto)")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(name)


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2 ** 63)


class Diverged(UsageError):
    """The loss or the weights became NaN or infinite."""


LOCK_NAME = ".train.lock"
METRICS_NAME = "metrics.jsonl"


@contextlib.contextmanager
def run_folder(out_dir: Path, resume: bool) -> Iterator[Path]:
    """Create (if needed) and lock `out_dir` for one training; yields the checkpoint path.

    A second training into the same folder gets a UsageError while the first runs (fcntl lock on
    `out_dir/.train.lock`). A failed start that wrote no checkpoint leaves no folder it created behind.
    """
    check_output_dir(out_dir)
    created = next((p for p in reversed([out_dir, *out_dir.parents]) if not p.exists()), None)
    ckpt = out_dir / CHECKPOINT_NAME
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with open(out_dir / LOCK_NAME, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UsageError(f"another training is writing into '{out_dir}' (it holds {lock.name}): "
                                 f"wait for it to finish or choose another --out") from None
            if resume and not ckpt.is_file():
                raise UsageError(f"--resume: no checkpoint to resume at '{ckpt}'")
            if not resume and ckpt.exists():
                raise UsageError(f"'{out_dir}' already holds a checkpoint: pass --resume to continue it, "
                                 f"or choose another --out")
            yield ckpt
    except BaseException:
        if created is not None and not ckpt.exists():
            shutil.rmtree(created, ignore_errors=True)
        raise


def resumed_config(cfg: ExperimentConfig, start: Checkpoint) -> ExperimentConfig:
    """`cfg` if it continues `start`'s run: equal to its config except a longer `optim.epochs` (and the data
    folder's location); otherwise a UsageError listing every setting that differs."""
    saved = start.config
    if cfg.optim.threads == 0:
        cfg.optim.threads = saved.optim.threads
    if cfg.optim.epochs < saved.optim.epochs:
        raise UsageError(f"--resume: --epochs {cfg.optim.epochs} is shorter than the checkpoint's "
                         f"{saved.optim.epochs} (a resumed run may only grow longer)")
    same = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, epochs=saved.optim.epochs),
                               data=dataclasses.replace(cfg.data, data_dir=saved.data.data_dir))
    differences = saved.differences(same)
    if differences:
        raise UsageError("--resume continues the checkpoint's run, but these settings differ from it: "
                         + "; ".join(differences) + " (only a longer --epochs may change)")
    return cfg


def stretch_schedule(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.CosineAnnealingLR,
                     done: int, epochs: int) -> None:
    """Continue a run of `done` epochs as a cosine schedule over `epochs` (a longer --epochs on resume)."""
    scheduler.T_max = epochs
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = scheduler.eta_min + (base - scheduler.eta_min) * (1 + math.cos(math.pi * done / epochs)) / 2
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def trim_metrics(path: Path, epochs: int) -> None:
    """Keep the rows of epochs 1..`epochs` (a kill between a row and its checkpoint leaves one row too many)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int) and 1 <= row["epoch"] <= epochs:
            kept.append(line)
    if kept != lines:
        write_text_atomic(path, "".join(line + "\n" for line in kept))


def train_one_epoch(model: SpikingNetwork, data: Dataset, cfg: ExperimentConfig, optimizer: torch.optim.Optimizer,
                    epoch: int, device: torch.device, progress: Optional[Progress],
                    ctx: Optional[distributed.Context] = None,
                    run: Optional[Callable[[torch.Tensor], SNNOutput]] = None) -> Dict[str, float]:
    """One pass over the training split (under torchrun: this rank's shard, `run` the DDP-wrapped model).
    Returns mean loss, CE, constraint and training accuracy over all ranks."""
    seed = epoch_seed(cfg.optim.seed, epoch)
    local_seed = seed if ctx is None else distributed.rank_seed(seed, ctx.rank)
    torch.manual_seed(local_seed)
    model.reseed_noise(local_seed)
    model.train()
    shuffle = torch.Generator().manual_seed(seed)
    train_x, train_y, batch_size = data.train_x, data.train_y, cfg.optim.batch_size
    if ctx is not None:
        (train_x, train_y), batch_size, shuffle = (distributed.shard(train_x, train_y, cfg.optim.seed, epoch, ctx),
                                                   batch_size // ctx.world, None)
    run = run or model.run
    lam = tgo_lambda(epoch, cfg.optim.epochs, cfg.tgo)
    attack = make_attack(model, cfg.adv) if cfg.adv.kind != "none" else None
    use_amp = cfg.optim.amp == "bf16"  # synaptic products only: NoisyLIF leaves autocast for its float32 recurrence
    v_th, delta = cfg.neuron.v_th, cfg.tgo.delta
    sums = {"loss": 0.0, "ce": 0.0, "constraint": 0.0, "correct": 0.0}
    n_batches = (len(train_x) + batch_size - 1) // batch_size
    task = progress.add_task(f"epoch {epoch + 1}/{cfg.optim.epochs}", total=n_batches) if progress else None
    for batch, (x, y) in enumerate(batches(train_x, train_y, batch_size, shuffle)):
        x, y = x.to(device), y.to(device)
        if attack is not None:
            x = attack(x, y).detach()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = run(x)
            ce = F.cross_entropy(out.logits.float(), y)
            constraint = total_constraint(model.guarded(out.potentials), v_th, delta) if lam > 0 else torch.zeros((), device=device)
            loss = ce + lam * constraint
        if not torch.isfinite(loss):
            raise Diverged(f"the loss became {float(loss)} at epoch {epoch + 1}, batch {batch + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for key, value in (("loss", loss), ("ce", ce), ("constraint", constraint)):
            sums[key] += float(value.detach()) * len(x)
        sums["correct"] += float((out.logits.argmax(1) == y).sum())
        if progress:
            progress.update(task, advance=1, description=f"epoch {epoch + 1}/{cfg.optim.epochs} loss {float(loss):.3f}")
    if progress:
        progress.remove_task(task)
    sums = distributed.sum_over_ranks({**sums, "n": float(len(train_x))}, ctx)
    n = sums["n"]
    return {"lambda": lam, "train_loss": sums["loss"] / n, "train_ce": sums["ce"] / n,
            "train_constraint": sums["constraint"] / n, "train_accuracy": sums["correct"] / n}


def train(cfg: ExperimentConfig, out_dir: Path, resume: bool = False, show_progress: bool = True,
          log=print) -> Dict[str, Any]:
    """Train (or resume) into `out_dir`: checkpoint.pt, config.json, metrics.jsonl. Returns final metrics.

    Resuming needs `cfg` equal to the checkpoint's config but for a longer `optim.epochs` (`resumed_config`).
    A loss or weight that turns NaN/inf stops the run with `Diverged`; the checkpoint of the last good epoch stays.
    """
    out_dir = Path(out_dir)
    cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim))  # the resolved threads go to the copy
    cfg.validate()
    ctx = distributed.setup(cfg.optim.device, cfg.optim.batch_size)
    device = ctx.device if ctx is not None else resolve_device(cfg.optim.device)
    set_synaptic_precision(cfg.optim.amp)
    # under torchrun, rank 0 alone locks and writes the folder; the other ranks only read its checkpoint
    main = ctx is None or ctx.is_main
    folder = run_folder(out_dir, resume) if main else contextlib.nullcontext(out_dir / CHECKPOINT_NAME)
    with folder as ckpt_path:
        start = load_checkpoint(ckpt_path) if resume else None
        if start is not None:
            cfg = resumed_config(cfg, start)
        cfg.optim.threads = cfg.optim.threads or torch.get_num_threads()
        torch.set_num_threads(cfg.optim.threads)
        data = load_dataset(cfg.data)
        check_memory(cfg, data.input_shape, data.num_classes, cfg.optim.batch_size, device)
        try:
            return _train(cfg, start, data, device, ckpt_path, show_progress, log, ctx)
        except Diverged as err:
            kept = load_checkpoint(ckpt_path).epoch if ckpt_path.exists() else 0
            raise Diverged(f"training diverged: {err}; "
                           + (f"'{ckpt_path}' keeps the last good epoch {kept}" if kept else "no checkpoint was written")
                           + " (lower --lr or --lambda-max)") from None


def _train(cfg: ExperimentConfig, start: Optional[Checkpoint], data: Dataset, device: torch.device, ckpt_path: Path,
           show_progress: bool, log, ctx: Optional[distributed.Context]) -> Dict[str, Any]:
    out_dir = ckpt_path.parent
    torch.manual_seed(cfg.optim.seed)  # initial weights
    model = build_model(cfg.model, cfg.neuron, data.input_shape, data.num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.optim.epochs)
    first_epoch, metrics = 0, {}
    if start is not None:
        start.restore_training(model, optimizer, scheduler)
        first_epoch, metrics = start.epoch, start.metrics
        trim_metrics(out_dir / METRICS_NAME, first_epoch)
        if cfg.optim.epochs > start.config.optim.epochs:
            stretch_schedule(optimizer, scheduler, first_epoch, cfg.optim.epochs)
        if first_epoch >= cfg.optim.epochs:
            log(f"checkpoint already has all {cfg.optim.epochs} epochs; nothing to resume")
            return metrics
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    started = time.perf_counter()
    main = ctx is None or ctx.is_main  # rank 0 alone writes
    run = distributed.runner(model, ctx)
    with Progress(*columns, disable=not (show_progress and main), transient=True) as progress:
        for epoch in range(first_epoch, cfg.optim.epochs):
            row = train_one_epoch(model, data, cfg, optimizer, epoch, device, progress, ctx, run)
            scheduler.step()
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                raise Diverged(f"the weights became NaN or infinite in epoch {epoch + 1}")
            test = evaluate(model, data.test_x, data.test_y, cfg.tgo.delta)
            row = {"epoch": epoch + 1, **row, "test_accuracy": test["accuracy"],
                   "near_threshold_fraction": test["near_threshold_fraction"],
                   "seconds": time.perf_counter() - started}
            metrics = {"test_accuracy": test["accuracy"], "near_threshold_fraction": test["near_threshold_fraction"],
                       "epochs": epoch + 1, "delta": cfg.tgo.delta}
            if main:
                append_json_line(out_dir / METRICS_NAME, row)
                save_checkpoint(ckpt_path, Checkpoint(cfg, data.input_shape, data.num_classes, epoch + 1,
                                                      model.state_dict(), optimizer.state_dict(),
                                                      scheduler.state_dict(), metrics, provenance(str(device))))
            log(f"epoch {epoch + 1:3d}/{cfg.optim.epochs}  loss {row['train_loss']:.4f}  "
                f"lambda {row['lambda']:.3f}  train acc {row['train_accuracy']:.3f}  "
                f"test acc {test['accuracy']:.3f}  near-threshold {test['near_threshold_fraction']:.3f}")
    distributed.teardown(ctx)
    return metrics
