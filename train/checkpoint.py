"""Checkpoints: one `.pt` file of tensors and plain values (loaded with weights_only=True: data, never code)
plus `config.json` beside it. Written atomically, so an interrupted save leaves the previous one intact."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from tgo_errors import UsageError
from tgo_files import atomic_path, strict_json, write_text_atomic
from tgo_provenance import provenance
from train.budget import check_memory
from train.config import ExperimentConfig
from train.data import Dataset
from train.models import SpikingNetwork, build_model

FORMAT = "tgo-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class Checkpoint:
    config: ExperimentConfig
    input_shape: Tuple[int, ...]
    num_classes: int
    epoch: int                       # epochs completed
    model_state: Dict[str, torch.Tensor]
    optimizer_state: Optional[Dict[str, Any]]
    scheduler_state: Optional[Dict[str, Any]]
    metrics: Dict[str, Any]
    provenance: Dict[str, Any] = dataclasses.field(default_factory=dict)  # tgo_provenance at the last save

    def build_model(self, device: str | torch.device = "cpu") -> SpikingNetwork:
        model = build_model(self.config.model, self.config.neuron, self.input_shape, self.num_classes)
        try:
            model.load_state_dict(self.model_state)
        except RuntimeError as err:
            raise UsageError(f"checkpoint weights do not fit its own config ({str(err).splitlines()[0]})") from None
        return model.to(device)

    def check_data(self, data: Dataset, name: str | Path) -> None:
        """UsageError unless `data` has the input shape [C, H, W] and class count of this checkpoint's model
        (`name`: how the user gave the checkpoint)."""
        if tuple(self.input_shape) != tuple(data.input_shape) or self.num_classes != data.num_classes:
            raise UsageError(f"'{name}' expects inputs {tuple(self.input_shape)} with {self.num_classes} classes, "
                             f"but {data.name} has {tuple(data.input_shape)} with {data.num_classes} classes")

    def restore_training(self, model: SpikingNetwork, optimizer: torch.optim.Optimizer,
                         scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
        """Load the model, optimizer and scheduler states for --resume; a state that does not fit is a UsageError."""
        if self.optimizer_state is None or self.scheduler_state is None:
            raise UsageError("the checkpoint holds no optimizer or scheduler state: it cannot be resumed")
        try:
            model.load_state_dict(self.model_state)
            optimizer.load_state_dict(self.optimizer_state)
            scheduler.load_state_dict(self.scheduler_state)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
            raise UsageError(f"the checkpoint's training state does not fit its model "
                             f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
        _check_optimizer(optimizer)
        if scheduler.last_epoch != self.epoch or type(getattr(scheduler, "T_max", 0)) is not int:
            raise UsageError(f"the checkpoint's scheduler state (step {scheduler.last_epoch!r}) does not match "
                             f"its epoch {self.epoch}")


def _check_optimizer(optimizer: torch.optim.Optimizer) -> None:
    """Every restored hyper-parameter a finite number, every moment a finite tensor shaped like its parameter."""
    for group in optimizer.param_groups:
        for key in ("lr", "weight_decay", "eps"):
            value = group.get(key, 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise UsageError(f"the checkpoint's optimizer {key} is {value!r}, not a finite number >= 0")
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if not isinstance(value, torch.Tensor) or (value.dim() and value.shape != param.shape) \
                    or not torch.isfinite(value).all():
                raise UsageError(f"the checkpoint's optimizer state '{key}' does not fit its parameter")


def save_checkpoint(path: Path, ckpt: Checkpoint) -> None:
    """Write `path` (.pt) and `config.json` beside it, each atomically."""
    payload = {
        "format": FORMAT, "version": VERSION, "config": ckpt.config.to_json(),
        "input_shape": list(ckpt.input_shape), "num_classes": ckpt.num_classes, "epoch": ckpt.epoch,
        "model": ckpt.model_state, "optimizer": ckpt.optimizer_state, "scheduler": ckpt.scheduler_state,
        "metrics": strict_json(ckpt.metrics), "provenance": strict_json(ckpt.provenance or provenance()),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    write_text_atomic(Path(path).with_name("config.json"), ckpt.config.to_json() + "\n")


def resolve_checkpoint_path(path: Path) -> Path:
    """Accept a checkpoint file or the run folder holding `checkpoint.pt`."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise UsageError(f"no checkpoint at '{path}'")
    return path


def load_checkpoint(path: Path) -> Checkpoint:
    """Read and check a tgo checkpoint; anything else (corrupt, foreign, code-bearing, inconsistent, non-finite)
    is a UsageError. Every command that reads a checkpoint comes through here."""
    path = resolve_checkpoint_path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt/unsafe files
        raise UsageError(f"'{path}' is not a readable tgo checkpoint ({type(err).__name__})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise UsageError(f"'{path}' is not a tgo checkpoint (no '{FORMAT}' marker)")
    if raw.get("version") != VERSION:
        raise UsageError(f"'{path}' has checkpoint version {raw.get('version')!r}, this tgo reads {VERSION}")
    try:
        ckpt = _from_payload(raw)
    except UsageError as err:
        raise UsageError(f"'{path}' is a damaged tgo checkpoint: {err}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise UsageError(f"'{path}' is an incomplete tgo checkpoint ({type(err).__name__}: {err})") from None
    return ckpt


def _json_dict(text: Any, name: str) -> Dict[str, Any]:
    if not isinstance(text, str):
        raise UsageError(f"'{name}' is not JSON text")
    value = json.loads(text)
    if not isinstance(value, dict):
        raise UsageError(f"'{name}' is not a JSON object")
    return value


def _state(value: Any, name: str, optional: bool) -> Optional[Dict[str, Any]]:
    if value is None and optional:
        return None
    if not isinstance(value, dict):
        raise UsageError(f"'{name}' must be a state dict, got {type(value).__name__}")
    return value


def _from_payload(raw: Dict[str, Any]) -> Checkpoint:
    """Check every field of a loaded payload as a whole; UsageError (or KeyError/TypeError) naming the bad one."""
    config = ExperimentConfig.from_dict(_json_dict(raw["config"], "config")).validate()
    shape, classes, epoch = raw["input_shape"], raw["num_classes"], raw["epoch"]
    if not (isinstance(shape, (list, tuple)) and 1 <= len(shape) <= 3
            and all(type(d) is int and 1 <= d <= 1 << 16 for d in shape)):
        raise UsageError(f"input_shape must be 1 to 3 positive sizes, got {shape!r}")
    if type(classes) is not int or not 2 <= classes <= 1 << 16:
        raise UsageError(f"num_classes must be an integer >= 2, got {classes!r}")
    if type(epoch) is not int or not 0 <= epoch <= config.optim.epochs:
        raise UsageError(f"epoch must be an integer in [0, {config.optim.epochs}] (its config's epochs), "
                         f"got {epoch!r}")
    model_state = _state(raw["model"], "model", optional=False)
    for key, value in model_state.items():
        if not isinstance(value, torch.Tensor):
            raise UsageError(f"model entry '{key}' is not a tensor")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise UsageError(f"model entry '{key}' is not finite (NaN or inf): the run diverged")
    check_memory(config, shape, classes, 1, torch.device("cpu"))
    return Checkpoint(config, tuple(shape), classes, epoch, model_state,
                      _state(raw["optimizer"], "optimizer", optional=True),
                      _state(raw["scheduler"], "scheduler", optional=True),
                      _json_dict(raw["metrics"], "metrics"),
                      _json_dict(raw.get("provenance", "{}"), "provenance"))


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, to tie derived artifacts to their source checkpoint."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
