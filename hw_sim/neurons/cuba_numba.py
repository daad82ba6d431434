"""A CUBA layer's whole recurrence in one compiled loop on the CPU (numba): u and v of a slice of the batch stay
in int64 arrays, and each step reads the synaptic input and writes the spikes once.

The CPU twin of `cuba_triton` (same arguments; the same integer arithmetic as `cuba.cuba_step` with
`ops.ExactOps`, Lava's `PyLifModelBitAcc`):
    u = wrap24(wrap_int32(trunc(u * (4096 - i_decay) / 4096) + a6))
    v = clip(wrap_int32(trunc(v * (4096 - v_decay) / 4096) + u + bias6))
    s = v + noise > vth << 6 ;  v[s] = 0
The wraps and the clip run where `CubaParams.wrap` or `saturate` is on (one compiled variant: with `wrap`
off, the bound of `cuba_params` proves that the wraps do nothing; without either, the clip does nothing too).
The eager step runs about eight torch kernels per step over float64 state, about 1.8 ns per neuron and step
on one core of the README's machine; this loop about 0.6 ns. With several torch threads, as many Python
threads (the caller's and a pool's) split the batch when each gets at least `SPLIT_WORK` neuron-steps (the loop
releases the GIL). Requires numba (imported here); each variant compiles
on first use (cached next to this file).
"""
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable, Dict, Optional

import llvmlite.binding
import numpy as np
import torch
from numba import njit

from hw_sim.netfile import DECAY_UNITY
from hw_sim.neurons.cuba import CubaParams

# The loop reads and writes about eight arrays; LLVM vectorizes it only if it may check all their overlaps at
# run time (its default allows 8 checks). Affects what numba compiles in this process, never a result.
llvmlite.binding.set_option("hw_sim", "-runtime-memory-check-threshold=64")
SPLIT_WORK = 1 << 22   # neuron-steps per thread below which handing a slice to a thread costs more than it saves
_POOL: Dict[int, ThreadPoolExecutor] = {}  # the threads that split the batch with the caller's, by count
os.register_at_fork(after_in_child=_POOL.clear)  # a forked child has none of its parent's threads


@lru_cache(maxsize=None)
def _loop(wrap: bool, record: bool, in_place: bool, u_kept: bool) -> Callable[..., None]:
    """The loop compiled for one combination of switches: the wraps and clip, the recording of u and v,
    spikes written over the input (in_place) or into their own tensor, and whether u keeps any of its previous
    value (u_kept; without, u is this step's input, as for netx's default i_decay = 4096). Fixed at compile time because LLVM
    vectorizes neither a loop with run-time switches nor one whose output overlaps an input it reads through
    another array (its run-time overlap check then takes the scalar path)."""
    @njit(cache=True, nogil=True)
    def loop(a, spikes, flags, u_all, v_all, bias, noise, first, last, a_scale, u_keep, v_keep,
             threshold):  # pragma: no cover (compiled)
        # Samples first..last-1 over all steps from zero state. a, spikes: [steps, N, size]; flags: [N, steps,
        # size] uint8; u_all, v_all: like a when recording; bias: [size] and noise: [steps, size] int64 (state
        # units); u_keep, v_keep: 4096 - decay; threshold: vth << 6.
        steps, size = a.shape[0], a.shape[2]
        u = np.zeros((last - first, size), np.int64)
        v = np.zeros((last - first, size), np.int64)
        for j in range(steps):
            level = threshold - noise[j]
            for n in range(first, last):
                un, vn, an, fn = u[n - first], v[n - first], a[j, n], flags[n, j]
                if in_place:
                    sn = an
                else:
                    sn = spikes[j, n]
                for k in range(size):
                    x = np.int64(an[k]) * a_scale
                    if u_kept:
                        product = un[k] * u_keep  # trunc(product / 4096): Lava's int64 product >> 12 toward 0
                        shifted = np.abs(product) >> 12
                        x += -shifted if product < 0 else shifted
                    if wrap:
                        x = np.int64(np.int32(x))
                        x = x - 16777216 if x > 8388608 else x
                        x = x + 16777216 if x <= -8388608 else x
                    if u_kept:
                        un[k] = x
                    product = vn[k] * v_keep
                    shifted = np.abs(product) >> 12
                    y = (-shifted if product < 0 else shifted) + x + bias[k]
                    if wrap:
                        y = min(max(np.int64(np.int32(y)), -8388607), 8388607)
                    fired = y > level[k]
                    y = 0 if fired else y
                    vn[k] = y
                    sn[k] = np.float32(fired)
                    fn[k] = np.uint8(fired)
                    if record:
                        u_all[j, n, k] = x
                        v_all[j, n, k] = y
    return loop


def run_cuba(a6: torch.Tensor, spikes: torch.Tensor, params: CubaParams, noise: Optional[torch.Tensor],
             u_all: Optional[torch.Tensor] = None, v_all: Optional[torch.Tensor] = None,
             flags: Optional[torch.Tensor] = None, a_scale: int = 1) -> None:
    """A CUBA layer over all steps of `a6` from zero state, in place, on CPU tensors (`cuba_triton.run_cuba`'s
    contract).

    a6: [steps, N, *shape] synaptic input << 6 (state units) divided by a_scale (1, or 64 for file units),
        float32 or float64 integers, contiguous.
    spikes: like a6, float32, contiguous (may be a6 itself: each value is read before it is overwritten);
        receives the spikes as 0.0/1.0. noise: [steps, *shape] threshold noise in state units, or None.
    u_all, v_all: like a6, contiguous, receive u and v (after the reset) when given (both or neither).
    flags: [N, steps, *shape] bool, receives the spikes batch-first when given.
    """
    if a6.numel() == 0:
        return
    steps, count = a6.shape[:2]
    size = a6[0, 0].numel()
    record = u_all is not None

    def view(t: torch.Tensor) -> np.ndarray:
        return t.view(steps, count, size).numpy()
    direct = flags is not None and flags.is_contiguous()  # else a contiguous copy, written back below
    marks = flags.view(torch.uint8) if direct else torch.empty((count, steps) + a6.shape[2:], dtype=torch.uint8)
    states = (view(u_all), view(v_all)) if record else (view(a6)[:0],) * 2
    bias = torch.zeros(size, dtype=torch.int64) if params.bias is None else params.bias.reshape(size).to(torch.int64)
    levels = torch.zeros((steps, size), dtype=torch.int64) if noise is None else noise.reshape(steps, size).to(
        torch.int64)
    u_keep, v_keep = (round(factor * DECAY_UNITY) for factor in (params.u_factor, params.v_factor))
    constants = (a_scale, u_keep, v_keep, int(params.threshold))
    loop = _loop(params.wrap or params.saturate, record, spikes.data_ptr() == a6.data_ptr(), u_keep > 0)
    threads = max(1, min(torch.get_num_threads(), count, a6.numel() // SPLIT_WORK))
    bounds = [count * t // threads for t in range(threads + 1)]
    calls = [(view(a6), view(spikes), marks.view(count, steps, size).numpy(), *states, bias.numpy(),
              levels.numpy(), first, last, *constants) for first, last in zip(bounds[:-1], bounds[1:])]
    if threads > 1 and threads - 1 not in _POOL:
        _POOL[threads - 1] = ThreadPoolExecutor(threads - 1, thread_name_prefix="hw_sim")
    others = [_POOL[threads - 1].submit(loop, *call) for call in calls[1:]]
    loop(*calls[0])  # the first slice in this thread
    for future in others:
        future.result()
    if flags is not None and not direct:
        flags.copy_(marks)
