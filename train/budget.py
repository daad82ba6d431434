"""Memory a run needs, checked before anything is allocated (`--hidden 100000000` or `-T 100000000` is a
clear error, not a crash halfway through an allocation)."""
from __future__ import annotations

import os
from typing import Sequence

import torch

from tgo_errors import UsageError
from train.config import ExperimentConfig
from train.models import build_model

FLOAT_BYTES = 4
STATE_PER_PARAMETER = 4   # weight, gradient, Adam's two moments
TENSORS_PER_NEURON = 8    # per step and sample: input current, i, v, pre-spike v, spike, and their gradients


def neurons_per_sample(cfg: ExperimentConfig, input_shape: Sequence[int], classes: int) -> tuple:
    """(parameters, spiking neurons per sample and step) of the configured network, counted on the meta device."""
    with torch.device("meta"):
        model = build_model(cfg.model, cfg.neuron, input_shape, classes)
        model.timesteps = 1
        out = model.run(torch.zeros(1, *input_shape))
    return sum(p.numel() for p in model.parameters()), sum(v.numel() for v in out.potentials)


def run_bytes(cfg: ExperimentConfig, input_shape: Sequence[int], classes: int, batch: int) -> int:
    """Estimated peak bytes to train `cfg` on batches of `batch` samples [C, H, W] (float32)."""
    params, neurons = neurons_per_sample(cfg, input_shape, classes)
    return FLOAT_BYTES * (STATE_PER_PARAMETER * params + TENSORS_PER_NEURON * batch * cfg.model.timesteps * neurons)


def device_bytes(device: torch.device) -> int:
    """Total memory of `device` in bytes (physical RAM for the CPU)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(cfg: ExperimentConfig, input_shape: Sequence[int], classes: int, batch: int,
                 device: torch.device) -> None:
    """UsageError when the run cannot fit in `device`'s memory, before any of it is allocated."""
    need, have = run_bytes(cfg, input_shape, classes, batch), device_bytes(device)
    if need > have:
        gib = 1 << 30
        raise UsageError(f"this run needs about {need / gib:,.1f} GiB ({cfg.model.arch} {cfg.model.hidden}, "
                         f"T={cfg.model.timesteps}, batch {batch}) but {device} has {have / gib:,.1f} GiB: "
                         f"lower --hidden, --timesteps or --batch-size")
