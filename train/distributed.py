"""Training on several processes with PyTorch's own engine: `torchrun ... -m tgo_cli train ...`.

Under torchrun (WORLD_SIZE > 1 in the environment) every rank joins one process group (nccl on CUDA, gloo on
CPU), wraps the model in DistributedDataParallel and trains on its DistributedSampler shard of each epoch's
permutation (seeded by the epoch seed, identical on every rank). `batch_size` stays the global batch: each
rank takes batch_size / world samples per step and DDP averages the gradients, so N processes take as many
optimizer steps of the same size as one process (on other batches: the sampler's permutation is its own).
Per-rank randomness (threshold
noise, attack starts) comes from `rank_seed(epoch seed, rank)`; rank 0 alone writes checkpoints and metrics,
so a resumed run on the same world size continues exactly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

from tgo_errors import UsageError
from train.models import SNNOutput, SpikingNetwork


@dataclass(frozen=True)
class Context:
    """This process's place in the group."""
    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """True on rank 0, and when not launched by torchrun (read from the environment: usable before `setup`)."""
    return int(os.environ.get("RANK", "0")) == 0


def main_only(log: Callable[[str], None]) -> Callable[[str], None]:
    """`log` on rank 0, a no-op on the other ranks."""
    return log if is_main_process() else (lambda *_: None)


def setup(device_name: str, batch_size: int) -> Optional[Context]:
    """Join torchrun's process group for training (None when not launched by torchrun); `batch_size` (the
    global batch) must divide by the number of ranks."""
    if launched() and batch_size % int(os.environ["WORLD_SIZE"]):
        raise UsageError(f"--batch-size {batch_size} must be divisible by the {os.environ['WORLD_SIZE']} processes "
                         f"(it is the global batch)")
    return join(device_name)


def join(device_name: str) -> Optional[Context]:
    """Join torchrun's process group (None when not launched by torchrun). On CUDA each rank takes GPU
    LOCAL_RANK (nccl), else the CPU (gloo)."""
    if not launched():
        return None
    cuda = device_name in ("cuda", "auto") and torch.cuda.is_available()
    if device_name == "cuda" and not cuda:
        raise UsageError("--device cuda: no CUDA device is available here (use --device cpu or auto)")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), device)


def teardown(ctx: Optional[Context]) -> None:
    """Leave the process group (after every rank is done)."""
    if ctx is not None and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """The seed of `rank` for an epoch seed: rank 0 keeps it (one process trains as before), others differ."""
    return (seed + rank * 0x9E3779B97F4A7C15) % (2 ** 63)


def shard(x: torch.Tensor, y: torch.Tensor, seed: int, epoch: int, ctx: Context) -> Tuple[torch.Tensor, torch.Tensor]:
    """This rank's samples of the epoch, in DistributedSampler's order (shuffled by `seed`; the last few
    samples repeat so that every rank gets as many)."""
    sampler = DistributedSampler(range(len(x)), num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    index = torch.tensor(list(sampler), dtype=torch.int64)
    return x[index], y[index]


def runner(model: SpikingNetwork, ctx: Optional[Context]) -> Callable[[torch.Tensor], SNNOutput]:
    """x -> SNNOutput: `model.run`, or through DistributedDataParallel (gradients averaged over ranks)."""
    if ctx is None:
        return model.run
    ddp = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    return lambda x: ddp(x, full=True)


def sum_over_ranks(values: Dict[str, float], ctx: Optional[Context]) -> Dict[str, float]:
    """Element-wise sum of a dict of floats over all ranks (unchanged without a group)."""
    if ctx is None:
        return values
    keys = sorted(values)
    total = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(total)
    return dict(zip(keys, total.tolist()))
