"""Batched bit-exact simulator of a .net file in torch (CPU or CUDA); never imports Lava.

Layers feed forward, so the network runs layer by layer over all steps of the sample window at once:
the synaptic input of every step is one matrix product (or convolution) over [steps * batch] rows, then the
neuron step (`hw_sim.neurons`) loops over the steps; a recurrent (`dense_rec`) layer adds its own previous
step's spikes inside that loop. A CUBA layer without recurrence runs that loop in one fused kernel, bit-exact
with the per-step code: Triton's on CUDA (`hw_sim.neurons.cuba_triton`), numba's on the CPU
(`hw_sim.neurons.cuba_numba`); without the package, or after the kernel failed once, the per-step code runs
(`eager_cuba`, `_kernel_failed`). Within a window layer k reads layer k-1's
output of the same local step (the Lava hop delay is absorbed in the layer's window offset, `NetFile.offsets`;
unequal delays shift within it).

All values are integers. Synaptic sums run in floating point, exact by a bound on every partial sum: the
dtypes are chosen per layer and device (`hw_sim.products`). Neuron states are integers, held in float64 by
the per-step code (`hw_sim.fixed_point`) and in int64 by the fused kernels. A batch too large for the
device's memory runs in chunks (`hw_sim.memory`).
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Iterator, List, NamedTuple, Optional, Tuple, Union

import numpy as np
import torch

from hw_sim import memory, prng, products
from hw_sim.fixed_point import STATE_DTYPE, STATE_SHIFT, UV_LIMIT, wrap_signed24
from hw_sim.netfile import Conv, Dense, Layer, NetFile, Neuron, ResonatorNeuron, SigmaDeltaNeuron
from hw_sim.neurons.cuba import CubaState, cuba_params, cuba_potential, cuba_step
from hw_sim.neurons.ops import EXACT, ExactOps
from hw_sim.neurons.resonator import ResonatorParams, ResonatorState, rf_iz_step
from hw_sim.neurons.sigma_delta import SigmaDeltaState, sigma_delta_params, sigma_delta_step

Device = Union[str, torch.device]
INT32_LIMIT = 1 << 31        # Lava's sigma-delta states are int32
CPU_CHUNK_ELEMENTS = 1 << 18  # neuron states per batch slice on CPU: 2 MiB per float64 tensor
_KERNELS = {"cuda": True, "cpu": True}  # per device type: whether plain CUBA layers run a fused kernel


@dataclass
class Run:
    """What one simulation (hw_sim or Lava) of a batch of samples produced.

    Every array is indexed [sample, local step, *layer shape] (file order); local step j of layer k is Lava
    step `offsets[k] + j` of a run that starts the sample at step 0. The state recorded per neuron type:
    CUBA u and v (state units); sigma-delta sigma (as u) and act (as v), Sigma layers sigma in both;
    RF_IZ real (as u) and imag (as v).
    """
    spikes: List[torch.Tensor]             # per layer: binary spikes bool, sigma-delta graded messages int64
    readout_v: torch.Tensor                # v (or act) of the last layer, int64
    u: Optional[List[torch.Tensor]] = None  # per layer, int64 (only when recorded)
    v: Optional[List[torch.Tensor]] = None  # per layer, int64 (only when recorded)

    def select(self, rows: slice) -> "Run":
        """The same run restricted to some samples."""
        def pick(tensors: Optional[List[torch.Tensor]]) -> Optional[List[torch.Tensor]]:
            return None if tensors is None else [t[rows] for t in tensors]
        return Run(pick(self.spikes), self.readout_v[rows], pick(self.u), pick(self.v))

    @classmethod
    def concat(cls, runs: List["Run"]) -> "Run":
        """The runs of consecutive chunks of a batch as one run."""
        def join(tensors: List[Optional[List[torch.Tensor]]]) -> Optional[List[torch.Tensor]]:
            return None if tensors[0] is None else [torch.cat(layer) for layer in zip(*tensors)]
        return cls(join([r.spikes for r in runs]), torch.cat([r.readout_v for r in runs]),
                   join([r.u for r in runs]), join([r.v for r in runs]))


class _Trace(NamedTuple):
    """One layer over the window, time-major: its output (the next layer's signal), the recorded states (`Run`)."""
    out: torch.Tensor                       # [steps, N, *shape]
    u: Optional[torch.Tensor]               # [steps, N, *shape] when kept
    v: Optional[torch.Tensor]               # [steps, N, *shape] when kept
    spikes: Optional[torch.Tensor] = None   # [N, steps, *shape] bool, where a fused kernel wrote them too


def encode_inputs(net: NetFile, x: torch.Tensor) -> torch.Tensor:
    """Graded input spikes of a tgo file: round(clip(x, 0, 1) * Q) for T steps.

    x: [N, *input_shape] or [N, features] floats in [0, 1] (computed in float64, ties round to even).
    Returns [N, T, *net.input_shape] int32.
    """
    meta = net.tgo
    if meta is None:
        raise ValueError(f"{net.path}: no /tgo group, so no input encoding; pass spikes instead")
    x = x.to(torch.float64).reshape(x.shape[0], *net.input_shape)
    q = torch.round(x.clamp(0.0, 1.0) * meta.input_scale).to(torch.int32)
    return q.unsqueeze(1).expand(-1, meta.timesteps, *net.input_shape).contiguous()


def layer_noise(layer: Layer, steps: int, device: Device = "cpu") -> Optional[torch.Tensor]:
    """Threshold noise of a stochastic layer for local steps 0..steps-1: [steps, *shape] (state units, integers
    in STATE_DTYPE), or None for a deterministic layer."""
    if layer.neuron.noise is None:
        return None
    noise = layer.neuron.noise
    neuron = torch.arange(layer.size, dtype=torch.int64, device=device)[None, :]
    step = torch.arange(steps, dtype=torch.int64, device=device)[:, None]
    values = prng.gauss_noise(noise.seed, layer.index, neuron, step, noise.sigma)
    return values.reshape(steps, *layer.shape).to(STATE_DTYPE)


@contextmanager
def eager_cuba() -> Iterator[None]:
    """Inside: CUBA layers run the eager per-step torch code even where a fused kernel could (checks and
    benchmarks compare the two)."""
    saved = dict(_KERNELS)
    _KERNELS.update(dict.fromkeys(_KERNELS, False))
    try:
        yield
    finally:
        _KERNELS.update(saved)


def _cuba_kernel(device: torch.device) -> Optional[ModuleType]:
    """The fused kernel that runs CUBA layers on `device`: `hw_sim.neurons.cuba_triton` on CUDA with Triton
    installed, `hw_sim.neurons.cuba_numba` on the CPU with numba installed; None inside `eager_cuba()`, after
    the kernel failed once (`_kernel_failed`), or without the package."""
    if not _KERNELS.get(device.type, False):
        return None
    try:
        if device.type == "cuda":
            from hw_sim.neurons import cuba_triton as kernel
        else:
            from hw_sim.neurons import cuba_numba as kernel
    except ImportError:
        return None
    return kernel


def _kernel_failed(kernel: ModuleType, device: torch.device, error: Exception) -> None:
    """After a fused kernel raised (a compile error, an unsupported GPU): warn once and run CUBA layers on this
    device type with the eager step from now on."""
    _KERNELS[device.type] = False
    warnings.warn(f"hw_sim: {kernel.__name__} failed on {device.type} ({type(error).__name__}: {error}); CUBA "
                  f"layers run the eager step instead", RuntimeWarning, stacklevel=3)


def simulate(net: NetFile, spikes: torch.Tensor, steps: Optional[int] = None, record: bool = False,
             device: Optional[Device] = None, memory_limit: Optional[int] = None) -> Run:
    """Run every sample of the batch through the network from zero state.

    spikes: [N, S, *net.input_shape] integer input per step. A first synapse with
        net.input_message_bits == 0 counts any nonzero value as one spike (as Lava does); a netx input layer
        receives the values themselves on its neurons' a_in. Steps S..steps-1 get no input.
    steps: window length per sample (default `net.window(S)`); must exceed S when the first layer has a
        synapse, so that a sample's input cannot leak into the next sample's window in Lava.
    record: also keep every layer's state (CUBA: u and v; sigma-delta: sigma and act, see `Run`).
    memory_limit: bytes the run may use (default: most of the device's available memory); the batch runs in
        chunks that fit (`hw_sim.memory`), and a UsageError says when one sample does not.
    Returns a `Run` whose tensors live on `device` (default: the input's device).
    """
    device = torch.device(device) if device is not None else spikes.device
    count, in_steps = spikes.shape[:2]
    steps = steps or net.window(in_steps)
    if tuple(spikes.shape[2:]) != net.input_shape:
        raise ValueError(f"input shape {tuple(spikes.shape[2:])} does not match the network's {net.input_shape}")
    if in_steps + net.input_lag > steps:
        raise ValueError(f"{in_steps} input steps do not fit a window of {steps} steps")
    # Sigma-delta and RF neurons are never reset: Lava runs every layer from step 0, before its window starts,
    # so such networks run `lead` steps earlier (layer k from local step -offsets[k]; CUBA layers reset at 0).
    lead = net.offsets[-1] if any(not isinstance(layer.neuron, Neuron) for layer in net.layers) else 0
    chunk = memory.batch_chunk(net, count, lead + steps, in_steps, record, device, memory_limit)
    runs = [_simulate(net, spikes[first:first + chunk], steps, lead, record, device)
            for first in range(0, count, chunk)]
    return runs[0] if len(runs) == 1 else Run.concat(runs)


def _simulate(net: NetFile, spikes: torch.Tensor, steps: int, lead: int, record: bool,
              device: torch.device) -> Run:
    """`simulate` on one chunk of the batch, arguments checked; the layers run from `lead` steps early."""
    count, in_steps = spikes.shape[:2]
    x = spikes.to(device)
    max_in = _peak(x)  # before the transpose: much faster on contiguous memory
    x = x.transpose(0, 1)  # time-major [S, N, ...]
    # a dtype that holds every input value exactly, a netx input layer's values also once shifted into state units
    scale = 1 << STATE_SHIFT if net.input_lag == 0 else 1
    exact = torch.float32 if products.representable(max_in, torch.float32, scale) else STATE_DTYPE
    signal = torch.empty((lead + steps, count) + net.input_shape, dtype=exact, device=device)
    first = lead + net.input_lag
    signal[:first].zero_()
    signal[first:first + in_steps] = x
    signal[first + in_steps:].zero_()
    traces: List[_Trace] = []
    for layer, offset in zip(net.layers, net.offsets):
        traces.append(_run_layer(layer, signal, max_in, record or layer is net.layers[-1], lead - offset, lead))
        signal = traces[-1].out
        max_in = 1 if layer.neuron.message_bits == 0 else _peak(signal)

    def batch_first(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return t[lead:].transpose(0, 1).to(dtype)

    outputs = [t.spikes[:, lead:] if t.spikes is not None else
               batch_first(t.out, torch.bool if layer.neuron.message_bits == 0 else torch.int64)
               for t, layer in zip(traces, net.layers)]
    run = Run(outputs, batch_first(traces[-1].v, torch.int64))
    if record:
        run.u = [batch_first(t.u, torch.int64) for t in traces]
        run.v = [batch_first(t.v, torch.int64) for t in traces]
    return run


def _peak(x: torch.Tensor) -> int:
    """max |x| as a Python int (0 for an empty tensor)."""
    if not x.numel():
        return 0
    low, high = x.aminmax()
    return max(-int(low), int(high))


def _run_layer(layer: Layer, signal: torch.Tensor, max_in: int, keep_v: bool, start: int = 0,
               reset: int = 0) -> _Trace:
    """One layer over the window: outputs [steps, N, *shape] (CUBA: 0.0/1.0 float32; sigma-delta: graded
    float64), and the two recorded states (`Run`) when keep_v. The layer runs from step `start` (zero before)
    and a CUBA layer's state is reset to zero at step `reset`."""
    if isinstance(layer.neuron, SigmaDeltaNeuron):
        return _run_sigma_delta(layer, signal, max_in, keep_v, start)
    if isinstance(layer.neuron, ResonatorNeuron):
        return _run_resonator(layer, signal, max_in, keep_v, start)
    steps, count = signal.shape[:2]
    start = max(start, 0)  # all-CUBA networks have no lead: steps before 0 would be reset anyway
    kernel = _cuba_kernel(signal.device) if layer.recurrent is None else None
    # the kernel shifts a netx input layer's values itself, saving a pass over the largest signal
    a_scale = 1 << STATE_SHIFT if kernel is not None and layer.synapse is None and signal.is_contiguous() else 1
    a6, bound = _synaptic_input(layer, signal, max_in, (1 << STATE_SHIFT) // a_scale)
    recurrent = None  # (plan, weights [out, out] transposed, in state units): prepared once for every step
    if layer.recurrent is not None:
        rec_plan, rec_weight_t, rec_bound = _dense_weights(layer.recurrent, 1, 1 << STATE_SHIFT, a6.device)
        recurrent, bound = (rec_plan, rec_weight_t), bound + rec_bound
    bias = torch.as_tensor(layer.bias, device=a6.device)
    params = cuba_params(layer.neuron, bias, bound, steps)
    if recurrent is None and (params.wrap or params.saturate):  # the bound may be loose: use the actual peak
        params = cuba_params(layer.neuron, bias, _peak(a6) * a_scale >> STATE_SHIFT, steps)
    noise = layer_noise(layer, steps, a6.device)
    # exact 0/1, ready for the next matmul; written over the float32 input where that is no longer needed (each
    # step's input is read before its spikes are written, and u is recorded from the input when it is not decayed)
    reuse = a6.dtype == torch.float32 and not (keep_v and params.u_factor == 0.0)
    spikes = a6 if reuse else torch.empty(a6.shape, dtype=torch.float32, device=a6.device)
    spikes[:start].zero_()
    u_all, v_all = (torch.zeros_like(a6), torch.zeros_like(a6)) if keep_v else (None, None)
    if kernel is not None and a6.is_contiguous():  # always so where a_scale > 1
        flags = torch.empty((count, steps) + tuple(layer.shape), dtype=torch.bool, device=a6.device)
        flags[:, :start] = False
        segments = [(first, last) for first, last in ((start, max(start, reset)), (max(start, reset), steps))
                    if last > first]  # zero state at the start of each
        for index, (first, last) in enumerate(segments):
            try:
                kernel.run_cuba(a6[first:last], spikes[first:last], params,
                                None if noise is None else noise[first:last],
                                *((u_all[first:last], v_all[first:last]) if keep_v else (None, None)),
                                flags[:, first:last], a_scale)
            except Exception as error:  # noqa: BLE001 -- the eager step below computes the same
                if index > 0:  # the spikes of the first segment may have overwritten its input
                    raise
                _kernel_failed(kernel, a6.device, error)
                a6.mul_(a_scale)  # into state units
                break
        else:
            return _Trace(spikes, u_all, v_all, flags)
    # On CPU the recurrence runs on slices of the batch small enough to stay in cache.
    chunk = count if a6.device.type != "cpu" else max(1, CPU_CHUNK_ELEMENTS // layer.size)
    for first in range(0, count, chunk):
        rows = slice(first, first + chunk)
        state = CubaState.zeros(a6[0, rows])
        ops = ExactOps(torch.empty_like(state.v))
        for j in range(start, steps):
            if j == reset and reset > start:  # LIFReset at the window's start
                state = CubaState.zeros(a6[0, rows])
            a6_j = a6[j, rows]
            if recurrent is not None and j > start:  # Lava: the layer's own spikes return one step later
                a6_j = products.matmul(spikes[j - 1, rows], recurrent[1], recurrent[0]).to(STATE_DTYPE).add_(a6_j)
            _, state = cuba_step(state, a6_j, params, ops, None if noise is None else noise[j], spikes[j, rows])
            if keep_v:
                u_all[j, rows], v_all[j, rows] = state.u, state.v
    return _Trace(spikes, u_all, v_all)


def _run_sigma_delta(layer: Layer, signal: torch.Tensor, max_in: int, keep_v: bool,
                     start: int) -> _Trace:
    """A sigma-delta layer from step `start` (zero before): graded outputs [steps, N, *shape] float64, sigma
    and act."""
    a = _synaptic_input(layer, signal, max_in, 1)[0].to(STATE_DTYPE)
    params = sigma_delta_params(layer.neuron.kind, layer.neuron.vth_mant, torch.as_tensor(layer.bias, device=a.device))
    state = SigmaDeltaState.zeros(a[0])
    out = torch.zeros_like(a)
    sigma_all, act_all = (torch.zeros_like(a), torch.zeros_like(a)) if keep_v else (None, None)
    bias_max = _peak(params.bias) if params.bias is not None else 0
    for j in range(start, a.shape[0]):
        out[j], state = sigma_delta_step(state, a[j], params)
        if _peak(state.sigma) + _peak(state.residue) + bias_max >= INT32_LIMIT:
            raise ValueError(f"layer {layer.index}: sigma-delta state beyond Lava's int32 at step {j}, where Lava "
                             f"wraps silently; hw_sim does not emulate that")
        if keep_v:
            sigma_all[j], act_all[j] = state.sigma, state.act if params.kind != "sigma" else state.sigma
    return _Trace(out, sigma_all, act_all)


def _run_resonator(layer: Layer, signal: torch.Tensor, max_in: int, keep_v: bool,
                   start: int) -> _Trace:
    """An RF_IZ layer behind complex weights from step `start` (zero before): spikes [steps, N, *shape] 0.0/1.0
    float32, real and imag."""
    a_real = _synaptic_input(layer, signal, max_in, 1)[0].to(STATE_DTYPE)
    imag_layer = replace(layer, synapse=Dense(layer.imag), imag=None)
    a_imag = _synaptic_input(imag_layer, signal, max_in, 1)[0].to(STATE_DTYPE)
    neuron = layer.neuron
    params = ResonatorParams(float(neuron.sin_decay), float(neuron.cos_decay), float(neuron.vth))
    state = ResonatorState.zeros(a_real[0])
    spikes = torch.zeros(a_real.shape, dtype=torch.float32, device=a_real.device)
    real_all, imag_all = (torch.zeros_like(a_real), torch.zeros_like(a_real)) if keep_v else (None, None)
    for j in range(start, a_real.shape[0]):
        z, state = rf_iz_step(state, a_real[j], a_imag[j], params)
        spikes[j] = z
        if keep_v:
            real_all[j], imag_all[j] = state.real, state.imag
    return _Trace(spikes, real_all, imag_all)


def pre_spike_potentials(layer: Layer, u: torch.Tensor, v: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
    """v before the reset, [N, steps, *shape] int64 state units, from a recorded run's u, post-reset v and
    spikes of one CUBA layer: where a neuron spiked its recorded v is 0, before the reset it was
    `neurons.cuba.cuba_potential` of the previous v and this step's u."""
    previous = torch.cat([torch.zeros_like(v[:, :1]), v[:, :-1]], dim=1).to(STATE_DTYPE)
    params = cuba_params(layer.neuron, torch.as_tensor(layer.bias, device=u.device), 1 << 24, 1)
    before = cuba_potential(previous, u.to(STATE_DTYPE), params, EXACT)
    return torch.where(spikes, before.to(torch.int64), v)


def logits(net: NetFile, run: Run) -> torch.Tensor:
    """Readout v at the readout step (tgo files): [N, num_classes] int64, state units."""
    return run.readout_v[:, net.readout_local_step].reshape(run.readout_v.shape[0], -1)


def predict(scores: torch.Tensor) -> torch.Tensor:
    """Argmax over classes, ties to the lowest index: [N, C] -> [N] int64."""
    best = scores.max(dim=1, keepdim=True).values
    index = torch.arange(scores.shape[1], device=scores.device).expand_as(scores)
    return torch.where(scores == best, index, scores.shape[1]).min(dim=1).values


def _synaptic_input(layer: Layer, signal: torch.Tensor, max_in: int, scale: int) -> Tuple[torch.Tensor, int]:
    """Synaptic input of every step times the power of two `scale` (1: file units; 1 << 6: state units),
    [steps, N, *shape] integers (float32 or float64, `hw_sim.products`), and a bound on its magnitude in file
    units.

    signal: [steps, N, *input shape] integers (float), magnitude at most max_in; a netx input layer's signal
        is its synaptic input, scaled in place.
    """
    steps, count = signal.shape[:2]
    synapse = layer.synapse
    if synapse is None:  # netx input layer: the input drives the neurons' a_in directly
        return (signal if scale == 1 else signal.mul_(scale)), max_in
    if layer.binary_input and max_in > 1:  # a binary synapse counts any nonzero value as one spike
        signal, max_in = signal != 0, 1
    rows = signal.reshape(steps * count, *signal.shape[2:])
    if isinstance(synapse, Conv):
        weight = torch.as_tensor(synapse.weight, device=signal.device)
        bound = products.sum_bound(weight, max_in)
        plan = products.plan(int(weight.abs().max()), max_in, bound, signal.device, half_precision=False)
        wraps = bound >= UV_LIMIT  # Lava wraps the conv output to 24 bits: nothing to do for smaller sums
        a = products.conv(rows.to(plan.operand), products.prepare(weight, plan, 1 if wraps else scale), synapse,
                          layer.shape)
        if wraps:
            a = wrap_signed24(a.to(STATE_DTYPE)).mul_(scale)
        return a.reshape(steps, count, *layer.shape), min(bound, UV_LIMIT)
    plan, weight_t, bound = _dense_weights(synapse.weight, max_in, scale, signal.device)
    rows = rows.reshape(steps * count, -1)
    if layer.spread is None:
        return products.matmul(rows, weight_t, plan).reshape(steps, count, *layer.shape), bound
    return _delayed(rows, weight_t, torch.as_tensor(layer.spread, device=signal.device).T, steps, plan), bound


def _dense_weights(weight: np.ndarray, max_in: int, scale: int,
                  device: torch.device) -> Tuple[products.Plan, torch.Tensor, int]:
    """A dense synapse ready for `products.matmul`: its plan, its weights [in, out] times the power of two `scale`
    in the plan's operand dtype, and the bound on its sums (file units) for inputs of magnitude <= max_in.

    weight: [out, in] integers (file units)."""
    weight = torch.as_tensor(weight, device=device)
    bound = products.sum_bound(weight, max_in)
    plan = products.plan(int(weight.abs().max()), max_in, bound, device, scale)
    return plan, products.prepare(weight, plan, scale).T, bound


def _delayed(rows: torch.Tensor, weight_t: torch.Tensor, spread_t: torch.Tensor, steps: int,
             plan: products.Plan) -> torch.Tensor:
    """Dense input with per-synapse delays: a[j, :, o] = sum_i weight[o, i] * x[j - spread[o, i], :, i].

    rows: [steps * N, in]; weight_t (in plan.operand), spread_t: [in, out]. Returns [steps, N, out] in
    plan.accumulate. Axonal delays (constant per output neuron) take one product and a shift per delay value;
    others one masked product per value.
    """
    count = rows.shape[0] // steps
    a = rows.new_zeros((steps, count, weight_t.shape[1]), dtype=plan.accumulate)
    axonal = bool((spread_t == spread_t[:1]).all())
    full = products.matmul(rows, weight_t, plan).reshape(steps, count, -1) if axonal else None
    for extra in (int(e) for e in torch.unique(spread_t) if e < steps):
        if axonal:
            cols = spread_t[0] == extra
            a[extra:, :, cols] = full[:steps - extra, :, cols]
        else:
            part = products.matmul(rows, weight_t * (spread_t == extra), plan).reshape(steps, count, -1)
            a[extra:] += part[:steps - extra]
    return a
