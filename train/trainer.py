"""The training loop: CE + lambda(epoch) * sum_l C_l, optional adversarial batches, resumable checkpoints.

Every epoch reseeds torch's generator, the neuron noise and the shuffling from (seed, epoch), so a run
resumed from the checkpoint of epoch k continues exactly as the uninterrupted run would have.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tgo_errors import UsageError
from train import distributed
from train.adversarial import make_attack
from train.checkpoint import CHECKPOINT_NAME, Checkpoint, load_checkpoint, save_checkpoint
from train.config import ExperimentConfig
from train.data import Dataset, batches, load_dataset
from train.diagnostics import evaluate
from train.models import SNNOutput, SpikingNetwork, build_model
from train.neuron import set_synaptic_precision
from train.tgo_loss import tgo_lambda, total_constraint


def resolve_device(name: str) -> torch.device:
    """'cpu' | 'cuda' | 'auto' -> a torch.device; asking for CUDA where there is none is a UsageError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here (use --device cpu or auto)")
    return torch.device(name)


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2 ** 63)


def _prepare_out_dir(out_dir: Path, resume: bool) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output folder '{out_dir}' is a file")
    ckpt = out_dir / CHECKPOINT_NAME
    if resume and not ckpt.is_file():
        raise UsageError(f"--resume: no checkpoint to resume at '{ckpt}'")
    if not resume and ckpt.exists():
        raise UsageError(f"'{out_dir}' already holds a checkpoint: pass --resume to continue it, "
                         f"or choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    return ckpt


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
    for x, y in batches(train_x, train_y, batch_size, shuffle):
        x, y = x.to(device), y.to(device)
        if attack is not None:
            x = attack(x, y).detach()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = run(x)
            ce = F.cross_entropy(out.logits.float(), y)
            constraint = total_constraint(model.guarded(out.potentials), v_th, delta) if lam > 0 else torch.zeros((), device=device)
            loss = ce + lam * constraint
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for key, value in (("loss", loss), ("ce", ce), ("constraint", constraint)):
            sums[key] += float(value) * len(x)
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
    """Train (or resume) into `out_dir`: checkpoint.pt, config.json, metrics.jsonl. Returns final metrics."""
    out_dir = Path(out_dir)
    ckpt_path = _prepare_out_dir(out_dir, resume)
    start = load_checkpoint(ckpt_path) if resume else None
    if start is not None:
        cfg = start.config
    cfg.validate()
    ctx = distributed.setup(cfg.optim.device, cfg.optim.batch_size)
    device = ctx.device if ctx is not None else resolve_device(cfg.optim.device)
    set_synaptic_precision(cfg.optim.amp)
    data = load_dataset(cfg.data)
    torch.manual_seed(cfg.optim.seed)  # initial weights
    model = build_model(cfg.model, cfg.neuron, data.input_shape, data.num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.optim.epochs)
    first_epoch, metrics = 0, {}
    if start is not None:
        model.load_state_dict(start.model_state)
        optimizer.load_state_dict(start.optimizer_state)
        scheduler.load_state_dict(start.scheduler_state)
        first_epoch, metrics = start.epoch, start.metrics
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
            test = evaluate(model, data.test_x, data.test_y, cfg.tgo.delta)
            row = {"epoch": epoch + 1, **row, "test_accuracy": test["accuracy"],
                   "near_threshold_fraction": test["near_threshold_fraction"],
                   "seconds": time.perf_counter() - started}
            metrics = {"test_accuracy": test["accuracy"], "near_threshold_fraction": test["near_threshold_fraction"],
                       "epochs": epoch + 1, "delta": cfg.tgo.delta}
            if main:
                with open(out_dir / "metrics.jsonl", "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                save_checkpoint(ckpt_path, Checkpoint(cfg, data.input_shape, data.num_classes, epoch + 1,
                                                      model.state_dict(), optimizer.state_dict(),
                                                      scheduler.state_dict(), metrics))
            log(f"epoch {epoch + 1:3d}/{cfg.optim.epochs}  loss {row['train_loss']:.4f}  "
                f"lambda {row['lambda']:.3f}  train acc {row['train_accuracy']:.3f}  "
                f"test acc {test['accuracy']:.3f}  near-threshold {test['near_threshold_fraction']:.3f}")
    distributed.teardown(ctx)
    return metrics
