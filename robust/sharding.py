"""`tgo attack` and `tgo verify` on several processes: `torchrun --nproc_per_node N -m tgo_cli verify ...`.

The first N test samples are cut into blocks of `block` consecutive samples; block b is seeded by
`block_seed(seed, b)` (block 0 keeps the run seed) and its per-sample work sees no other block, so a sample's
result depends on its block and never on the number of processes. Under torchrun (WORLD_SIZE > 1) the blocks
are dealt to the ranks in contiguous runs; one process runs them all, in order. `Plan.gather` hands every rank
every block's per-sample results (in block order), so a decision over all samples (the engine's EOT draws, its
strongest sources) is taken from the same numbers on every rank; rank 0 alone checks Lava and writes.

Errors: every collective is `Plan.gather` (one `all_gather_object`). A rank that raises inside `sharded` sends
its error in place of its next gather; the others receive it at theirs and raise `PeerError` with the same
message, so every rank stops with the CLI's one-line error instead of waiting for a peer that is gone.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Sequence, TypeVar

import torch
import torch.distributed as dist

from robust.evaluate import derive_seed
from tgo_errors import UsageError
from train.distributed import join

T = TypeVar("T")


class PeerError(Exception):
    """Another rank failed with this message (no traceback crosses processes)."""


class PeerUsageError(PeerError, UsageError):
    """Another rank stopped on a user mistake: the CLI prints it as one `error:` line, exit 2."""


def block_seed(seed: int, block: int) -> int:
    """The seed of block `block` (0-based): block 0 keeps `seed`, so a run within one block is unchanged."""
    return seed if block == 0 else derive_seed(seed, "block", block)


@dataclass(frozen=True)
class Plan:
    """Which blocks of the first `n` samples this process runs (rank `rank` of `world`)."""
    n: int
    block: int
    rank: int = 0
    world: int = 1
    device: Optional[torch.device] = None     # this rank's device under torchrun (cuda:LOCAL_RANK or cpu)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def count(self) -> int:
        """Blocks in all: ceil(n / block)."""
        return -(-self.n // self.block)

    def rows(self, index: int) -> slice:
        """The samples of block `index`."""
        return slice(index * self.block, min(self.n, (index + 1) * self.block))

    def mine(self) -> List[int]:
        """This rank's blocks: a contiguous run, as many as the others give or take one (maybe none)."""
        return list(range(self.rank * self.count // self.world, (self.rank + 1) * self.count // self.world))

    def gather(self, parts: Sequence[T]) -> List[T]:
        """Every rank's `parts` (one per block of `mine()`; anything torch.save takes), in block order, on every
        rank, tensors on the CPU (one process: `parts` as they are); raises `PeerError` if a rank sent an
        error instead."""
        if self.world == 1:
            return list(parts)
        buffer = io.BytesIO()
        torch.save(list(parts), buffer)
        everyone: List[Any] = [None] * self.world
        dist.all_gather_object(everyone, ("parts", buffer.getvalue()))
        for rank, (kind, payload) in enumerate(everyone):
            if kind != "parts":
                usage, message = payload
                raise (PeerUsageError if usage else PeerError)(f"rank {rank}: {message}")
        return [part for _, payload in everyone for part in torch.load(io.BytesIO(payload), map_location="cpu")]

    def fail(self, err: BaseException) -> None:
        """Send `err` to the other ranks in place of this rank's next gather."""
        message = str(err) if isinstance(err, UsageError) else f"{type(err).__name__}: {err}"
        dist.all_gather_object([None] * self.world, ("error", (isinstance(err, UsageError), message)))


def concat(parts: Sequence[Any]) -> Any:
    """Join per-block results in block order: tensors along dim 0 (on the CPU), lists end to end, dicts key
    by key (every part has the same keys)."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat([p.cpu() for p in parts])
    if isinstance(first, list):
        return [item for p in parts for item in p]
    if isinstance(first, dict):
        return {key: concat([p[key] for p in parts]) for key in first}
    raise TypeError(f"cannot join per-block results of type {type(first).__name__}")


@contextlib.contextmanager
def sharded(device_name: str, n: int, block: int) -> Iterator[Plan]:
    """The plan of this process for `n` samples in blocks of `block`: under torchrun it joins the process
    group, else one process runs every block. Inside, an error on one rank stops all (module doc); on success
    every rank waits at a last gather, so rank 0 can finish alone inside the block. The group is left to the
    process's exit: `destroy_process_group` after the last gather hung rank 0 in about half of the torchrun
    runs of `tgo verify` here (torch 2.3.1, gloo; pytorch issue 75097), and nothing runs after it."""
    if block < 1:
        raise UsageError(f"--block must be >= 1, got {block}")
    ctx = join(device_name)
    plan = Plan(n, block) if ctx is None else Plan(n, block, ctx.rank, ctx.world, ctx.device)
    try:
        yield plan
        plan.gather([])
    except PeerError:
        raise
    except BaseException as err:
        if plan.world > 1:
            plan.fail(err)
        raise
