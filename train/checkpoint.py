"""Checkpoints: one `.pt` file of tensors and plain values (loaded with weights_only=True: data, never code)
plus `config.json` beside it. Written atomically, so an interrupted save leaves the previous one intact."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from tgo_errors import UsageError
from tgo_files import atomic_path, write_text_atomic
from train.config import ExperimentConfig
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

    def build_model(self, device: str | torch.device = "cpu") -> SpikingNetwork:
        model = build_model(self.config.model, self.config.neuron, self.input_shape, self.num_classes)
        try:
            model.load_state_dict(self.model_state)
        except RuntimeError as err:
            raise UsageError(f"checkpoint weights do not fit its own config ({str(err).splitlines()[0]})") from None
        return model.to(device)


def save_checkpoint(path: Path, ckpt: Checkpoint) -> None:
    """Write `path` (.pt) and `config.json` beside it, each atomically."""
    payload = {
        "format": FORMAT, "version": VERSION, "config": ckpt.config.to_json(),
        "input_shape": list(ckpt.input_shape), "num_classes": ckpt.num_classes, "epoch": ckpt.epoch,
        "model": ckpt.model_state, "optimizer": ckpt.optimizer_state, "scheduler": ckpt.scheduler_state,
        "metrics": json.dumps(ckpt.metrics),
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
    """Read and check a tgo checkpoint; anything else (corrupt, foreign, code-bearing) is a UsageError."""
    path = resolve_checkpoint_path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt/unsafe files
        raise UsageError(f"'{path}' is not a readable tgo checkpoint ({type(err).__name__})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise UsageError(f"'{path}' is not a tgo checkpoint (no '{FORMAT}' marker)")
    if raw.get("version") != VERSION:
        raise UsageError(f"'{path}' has checkpoint version {raw.get('version')}, this tgo reads {VERSION}")
    try:
        config = ExperimentConfig.from_dict(json.loads(raw["config"]))
        return Checkpoint(config, tuple(raw["input_shape"]), int(raw["num_classes"]), int(raw["epoch"]),
                          raw["model"], raw["optimizer"], raw["scheduler"], json.loads(raw["metrics"]))
    except (KeyError, TypeError, ValueError) as err:
        raise UsageError(f"'{path}' is an incomplete tgo checkpoint ({err})") from None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, to tie derived artifacts to their source checkpoint."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
