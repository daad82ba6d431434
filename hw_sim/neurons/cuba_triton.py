"""A CUBA layer's whole recurrence in one Triton kernel: each program keeps u and v of a block of neurons in
registers (int64) and loops over the steps, reading the synaptic input and writing the spikes once per step.

Same arithmetic as `cuba.cuba_step` with `ops.ExactOps` (Lava's `PyLifModelBitAcc`), in integers:
    u = wrap24(wrap_int32(trunc(u * (4096 - i_decay) / 4096) + a6))       (wraps only with `CubaParams.wrap`)
    v = clip(wrap_int32(trunc(v * (4096 - v_decay) / 4096) + u + bias6))   (clip only with `saturate`)
    s = v + noise > vth << 6 ;  v[s] = 0
The eager step costs about ten float64 kernels per step, each streaming the state through memory; this costs
one read of the input and one write of the spikes (plus u and v when recorded). Requires Triton (imported
here); runs on CUDA, or on CPU tensors under Triton's interpreter (TRITON_INTERPRET=1 before this import).
Uses only Triton builtins common to 2.3 and 3.x (no jit library functions such as tl.zeros or
tl.minimum, which the interpreter cannot run once Triton was imported without it).
"""
from typing import Optional

import torch
import triton
import triton.language as tl

from hw_sim.netfile import DECAY_UNITY
from hw_sim.neurons.cuba import CubaParams

BLOCK = 1024  # neurons (of the flattened [batch * layer size] rows) per program


@triton.jit
def _cuba_kernel(a_ptr, spikes_ptr, u_ptr, v_ptr, bias_ptr, noise_ptr, flags_ptr, steps, rows, size, flags_stride,
                 a_scale, u_keep, v_keep, threshold,
                 WRAP: tl.constexpr, SATURATE: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_NOISE: tl.constexpr,
                 RECORD: tl.constexpr, FLAGS: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    # Steps 0..steps-1 from zero state for neurons [pid * BLOCK_SIZE, ...) of `rows`; arrays [steps, rows]
    # (noise [steps, size]; flags [N, steps, size] with N's stride flags_stride); u_keep, v_keep: 4096 - decay;
    # threshold: vth << 6.
    offs = (tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)).to(tl.int64)
    mask = offs < rows
    neuron = offs % size
    u = offs * 0  # int64 zeros (tl.zeros is a jit function in Triton 2.3, which its interpreter cannot run late)
    v = offs * 0
    bias = offs * 0
    if HAS_BIAS:
        bias = tl.load(bias_ptr + neuron, mask=mask, other=0).to(tl.int64)
    index = offs
    noise_index = neuron
    flags_index = (offs // size) * flags_stride + neuron
    for _ in range(steps):
        a = tl.load(a_ptr + index, mask=mask, other=0).to(tl.int64) * a_scale
        product = u * u_keep  # trunc(product / 4096): Lava's int64 product >> 12 toward zero
        shifted = tl.where(product < 0, -product, product) >> 12
        u = tl.where(product < 0, -shifted, shifted) + a
        if WRAP:
            u = u.to(tl.int32).to(tl.int64)
            u = tl.where(u > 8388608, u - 16777216, u)
            u = tl.where(u <= -8388608, u + 16777216, u)
        product = v * v_keep
        shifted = tl.where(product < 0, -product, product) >> 12
        v = tl.where(product < 0, -shifted, shifted) + u + bias
        if WRAP:
            v = v.to(tl.int32).to(tl.int64)
        if SATURATE:
            v = tl.where(v > 8388607, 8388607, tl.where(v < -8388607, -8388607, v))
        level = offs * 0 + threshold
        if HAS_NOISE:
            level = level - tl.load(noise_ptr + noise_index, mask=mask, other=0).to(tl.int64)
        fired = v > level
        v = tl.where(fired, 0, v)
        tl.store(spikes_ptr + index, fired.to(tl.float32), mask=mask)
        if RECORD:
            tl.store(u_ptr + index, u.to(u_ptr.dtype.element_ty), mask=mask)
            tl.store(v_ptr + index, v.to(v_ptr.dtype.element_ty), mask=mask)
        if FLAGS:
            tl.store(flags_ptr + flags_index, fired.to(tl.uint8), mask=mask)
        index += rows
        flags_index += size
        noise_index += size


def run_cuba(a6: torch.Tensor, spikes: torch.Tensor, params: CubaParams, noise: Optional[torch.Tensor],
             u_all: Optional[torch.Tensor] = None, v_all: Optional[torch.Tensor] = None,
             flags: Optional[torch.Tensor] = None, a_scale: int = 1) -> None:
    """A CUBA layer over all steps of `a6` from zero state, in place.

    a6: [steps, N, *shape] synaptic input << 6 (state units) divided by a_scale (1, or 64 for file units),
        float32 or float64 integers, contiguous.
    spikes: like a6, float32, contiguous (may be a6 itself: each value is read before it is overwritten);
        receives the spikes as 0.0/1.0. noise: [steps, *shape] threshold noise in state units, or None.
    u_all, v_all: like a6, contiguous, receive u and v (after the reset) when given (both or neither).
    flags: [N, steps, *shape] bool, each sample's steps contiguous (a step slice of a larger tensor will do),
        receives the spikes batch-first when given (`simulator.Run`'s layout, without a transposing copy).
    """
    if a6.numel() == 0:
        return
    steps, count = a6.shape[:2]
    size = a6[0, 0].numel()
    rows = count * size
    record = u_all is not None
    u_keep, v_keep = (round(f * DECAY_UNITY) for f in (params.u_factor, params.v_factor))
    _cuba_kernel[(triton.cdiv(rows, BLOCK),)](
        a6, spikes, u_all if record else spikes, v_all if record else spikes,
        a6 if params.bias is None else params.bias.contiguous(), a6 if noise is None else noise.contiguous(),
        spikes if flags is None else flags.view(torch.uint8), steps, rows, size, 0 if flags is None else flags.stride(0),
        a_scale, u_keep, v_keep, int(params.threshold),
        WRAP=params.wrap, SATURATE=params.saturate, HAS_BIAS=params.bias is not None,
        HAS_NOISE=noise is not None, RECORD=record, FLAGS=flags is not None, BLOCK_SIZE=BLOCK)
