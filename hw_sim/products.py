"""Exact synaptic products: integer weights times integer signals, in the cheapest float dtype a bound proves exact.

A float format holds every integer of magnitude up to 2^(mantissa bits + 1) exactly (`EXACT_INTEGERS`), and
any such integer times a power of two below the format's overflow. A product of integer matrices is exact when
both operands are representable and every partial sum is: whatever order the kernel sums in, each partial sum
of row r is at most sum_k |w[r, k]| * max|x| in magnitude, so a bound below the accumulator's limit suffices.

Per layer and device (`plan`): on CUDA, float16 operands with float32 accumulation and output on the tensor
cores (`torch.mm(..., out_dtype=torch.float32)`, torch >= 2.8; reduced-precision reductions off); on CPU float32
(its BLAS is about twice as fast as float64; half-precision CPU products are slower still); float64 where the
bound needs it. bfloat16 is never cheaper than float16 for integers (same tensor-core rate, 256 instead of 2048
exact), and int8 `torch._int_mm` fits only weights in [-128, 127] and measured slower than float16 on an H200
(7.6 vs 3.4 ms for mnist.net's products at batch 65,536, ../shared/notes/gpu-measurements.md), so neither is used.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F

from hw_sim.netfile import Conv
from tgo_errors import UsageError

EXACT_INTEGERS = {torch.float16: 1 << 11, torch.bfloat16: 1 << 8, torch.float32: 1 << 24, torch.float64: 1 << 53}
SUM_LIMIT = 1 << 47  # largest synaptic sum hw_sim accepts: float64 state keeps room for the << 6 of state units


@dataclass(frozen=True)
class Plan:
    """How one layer's product runs: operands cast to `operand`, sums and result in `accumulate`."""
    operand: torch.dtype
    accumulate: torch.dtype


def representable(max_abs: int, dtype: torch.dtype, scale: int = 1) -> bool:
    """Whether every integer of magnitude <= max_abs, times the power of two `scale`, is exact in `dtype`."""
    return max_abs <= EXACT_INTEGERS[dtype] and max_abs * scale <= torch.finfo(dtype).max


def sum_bound(weight: torch.Tensor, max_in: int) -> int:
    """Bound on every partial sum of `weight` applied to a signal of magnitude <= max_in (file units).

    weight: [out, ...] integers (dense [out, in] or conv [out, in/groups, kH, kW]).
    """
    return int(weight.abs().reshape(weight.shape[0], -1).sum(dim=1).max()) * max_in


def plan(weight_max: int, max_in: int, bound: int, device: torch.device, scale: int = 1,
         half_precision: bool = True) -> Plan:
    """The cheapest exact plan for a layer on `device`.

    weight_max, max_in: largest |weight| and |input| (file units); bound: `sum_bound`; scale: power of two the
    weights are multiplied by first (state units); half_precision: whether the caller can run float16 operands
    (dense products can, `matmul`). Raises UsageError when no float dtype is exact.
    """
    candidates = []
    if bound < EXACT_INTEGERS[torch.float32]:
        if (half_precision and device.type == "cuda" and fp32_output_supported(device)
                and representable(weight_max, torch.float16, scale) and representable(max_in, torch.float16)):
            candidates.append(Plan(torch.float16, torch.float32))
        if device.type == "cpu" and float32_is_full_precision():  # on CUDA float32 is no faster than float64
            candidates.append(Plan(torch.float32, torch.float32))
    if bound < SUM_LIMIT:
        candidates.append(Plan(torch.float64, torch.float64))
    for candidate in candidates:
        if _ALLOWED is None or candidate.operand in _ALLOWED:
            return candidate
    raise UsageError(f"synaptic sums up to {bound} cannot be computed exactly (limit {SUM_LIMIT})")


_ALLOWED: Optional[Tuple[torch.dtype, ...]] = None


@contextmanager
def only(*operands: torch.dtype) -> Iterator[None]:
    """Benchmarks and checks: inside, `plan` picks only plans with these operand dtypes (e.g. float64, the
    pre-tensor-core path)."""
    global _ALLOWED
    saved, _ALLOWED = _ALLOWED, operands
    try:
        yield
    finally:
        _ALLOWED = saved


_FP32_OUTPUT: Dict[str, bool] = {}


def fp32_output_supported(device: torch.device) -> bool:
    """Whether this torch computes float16 x float16 -> float32 products on `device` (`out_dtype`)."""
    if device.type not in _FP32_OUTPUT:
        one = torch.ones((8, 8), dtype=torch.float16, device=device)
        try:
            _FP32_OUTPUT[device.type] = torch.mm(one, one, out_dtype=torch.float32).dtype == torch.float32
        except (TypeError, RuntimeError, NotImplementedError):
            _FP32_OUTPUT[device.type] = False
    return _FP32_OUTPUT[device.type]


@contextmanager
def exact_matmul() -> Iterator[None]:
    """Inside: half-precision products reduce in float32 (no reduced-precision reductions or float16
    accumulation). Restores the caller's settings on exit. TF32 needs no switch: hw_sim multiplies float32
    operands only on the CPU, and only where `float32_is_full_precision`."""
    cuda = torch.backends.cuda.matmul
    flags = [name for name in ("allow_fp16_reduced_precision_reduction", "allow_bf16_reduced_precision_reduction",
                               "allow_fp16_accumulation") if hasattr(cuda, name)]
    saved = {name: getattr(cuda, name) for name in flags}
    try:
        for name in flags:
            setattr(cuda, name, False)
        yield
    finally:
        for name, value in saved.items():
            setattr(cuda, name, value)


def float32_is_full_precision() -> bool:
    """Whether CPU float32 products run in full float32 (not bf16 passes, `torch.set_float32_matmul_precision`)."""
    try:
        return torch.get_float32_matmul_precision() == "highest"
    except RuntimeError:  # torch >= 2.9 refuses the legacy getter once its per-backend setting was used
        return torch.backends.mkldnn.matmul.fp32_precision in ("ieee", "none")


def prepare(weight: torch.Tensor, p: Plan, scale: int = 1) -> torch.Tensor:
    """Weights times `scale` in the plan's operand dtype (exact when `plan` chose it: the integers and their
    products with the power of two `scale` are representable)."""
    return weight.to(p.operand, copy=True).mul_(scale) if scale != 1 else weight.to(p.operand)


def matmul(x: torch.Tensor, weight_t: torch.Tensor, p: Plan) -> torch.Tensor:
    """x @ weight_t exactly: x [rows, in] integers, weight_t [in, out] in p.operand. Returns [rows, out] in
    p.accumulate."""
    x = x.to(p.operand)
    with exact_matmul():
        if p.operand == p.accumulate:
            return x @ weight_t
        if x.device.type == "cpu" and not fp32_output_supported(x.device):  # emulation: exact upcast, same sums
            return x.to(p.accumulate) @ weight_t.to(p.accumulate)
        return torch.mm(x, weight_t, out_dtype=p.accumulate)


def conv(x: torch.Tensor, weight: torch.Tensor, synapse: Conv, shape: Tuple[int, ...]) -> torch.Tensor:
    """Grouped cross-correlation as unfold + matmul (a plain BLAS sum: exact on integers, unlike Winograd).

    x: [rows, C, H, W] integers and weight [out, in/groups, kH, kW], both in one float dtype (a `plan` made with
    half_precision=False); shape: the output (C', H', W'), as validated by the reader. Returns [rows, *shape],
    contiguous.
    """
    g = synapse.groups
    cols = F.unfold(x, weight.shape[2:], dilation=synapse.dilation, padding=synapse.padding, stride=synapse.stride)
    cols = cols.reshape(x.shape[0], g, -1, cols.shape[-1])            # [rows, g, in/g * kH * kW, H' * W']
    kernels = weight.reshape(g, weight.shape[0] // g, -1)             # [g, out/g, in/g * kH * kW]
    with exact_matmul():  # one batched product per group, contiguous (einsum's is neither, and twice as slow)
        return torch.matmul(kernels, cols).reshape(x.shape[0], *shape)
