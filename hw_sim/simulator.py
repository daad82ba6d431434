"""Batched bit-exact simulator of a .net file in torch (CPU or CUDA); never imports Lava.

Layers are feed-forward, so the network runs layer by layer over all steps of the sample window at once:
the synaptic input of every step is one matrix product (or convolution) over [steps * batch] rows, then the
neuron recurrence loops over the steps. Within a window layer k reads layer k-1's spikes of the same local
step (the Lava hop delay is absorbed in the layer's window offset, `NetFile.offsets`).

All values are integers. Synaptic sums run in floating point, which is exact whenever every partial sum
stays below 2^24 (float32) or 2^53 (float64): the dtype is chosen per layer from a bound on the sum. Neuron
states are integers held in float64 (`hw_sim.fixed_point`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import torch

from hw_sim import memory, prng, products
from hw_sim.fixed_point import (STATE_DTYPE, STATE_SHIFT, UV_LIMIT, CubaState, cuba_params, cuba_step,
                                 wrap_signed24)
from hw_sim.netfile import DECAY_UNITY, Conv, Dense, Layer, NetFile

Device = Union[str, torch.device]
CPU_CHUNK_ELEMENTS = 1 << 18  # neuron states per batch slice on CPU: 2 MiB per float64 tensor


@dataclass
class Run:
    """What one simulation (hw_sim or Lava) of a batch of samples produced.

    Every array is indexed [sample, local step, *layer shape] (file order); local step j of layer k is Lava
    step `offsets[k] + j` of a run that starts the sample at step 0.
    """
    spikes: List[torch.Tensor]             # per layer, bool
    readout_v: torch.Tensor                # v of the last layer, int64, state units
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


def simulate(net: NetFile, spikes: torch.Tensor, steps: Optional[int] = None, record: bool = False,
             device: Optional[Device] = None, memory_limit: Optional[int] = None) -> Run:
    """Run every sample of the batch through the network from zero state.

    spikes: [N, S, *net.input_shape] integer input per step. A first synapse with
        net.input_message_bits == 0 counts any nonzero value as one spike (as Lava does); a netx input layer
        receives the values themselves on its neurons' a_in. Steps S..steps-1 get no input.
    steps: window length per sample (default `net.window(S)`); must exceed S when the first layer has a
        synapse, so that a sample's input cannot leak into the next sample's window in Lava.
    record: also keep u and v of every layer.
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
    chunk = memory.batch_chunk(net, count, steps, in_steps, record, device, memory_limit)
    runs = [_simulate(net, spikes[first:first + chunk], steps, record, device) for first in range(0, count, chunk)]
    return runs[0] if len(runs) == 1 else Run.concat(runs)


def _simulate(net: NetFile, spikes: torch.Tensor, steps: int, record: bool, device: torch.device) -> Run:
    """`simulate` on one chunk of the batch, arguments checked."""
    count, in_steps = spikes.shape[:2]
    x = spikes.to(device)
    if net.input_lag and net.input_message_bits == 0:  # a binary synapse counts any nonzero value as a spike
        x = x != 0
    low, high = x.aminmax() if x.numel() else (0, 0)  # before the transpose: much faster on contiguous memory
    max_in = max(-int(low), int(high))
    x = x.transpose(0, 1)  # time-major [S, N, ...]
    # a dtype that holds every input value exactly; a netx input layer adds the values to its float64 state
    exact = STATE_DTYPE if net.input_lag == 0 or max_in >= 2 ** 24 else torch.float32
    signal = torch.zeros((steps, count) + net.input_shape, dtype=exact, device=device)
    signal[net.input_lag:net.input_lag + in_steps] = x
    traces: List[Tuple[torch.Tensor, ...]] = []
    for layer in net.layers:
        traces.append(_run_layer(layer, signal, max_in, record or layer is net.layers[-1]))
        signal, max_in = traces[-1][0], 1

    def batch_first(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return t.transpose(0, 1).to(dtype)

    run = Run([batch_first(s, torch.bool) for s, _, _ in traces], batch_first(traces[-1][2], torch.int64))
    if record:
        run.u = [batch_first(u, torch.int64) for _, u, _ in traces]
        run.v = [batch_first(v, torch.int64) for _, _, v in traces]
    return run


def _run_layer(layer: Layer, signal: torch.Tensor, max_in: int, keep_v: bool) -> Tuple[torch.Tensor, ...]:
    """One layer over the window: spikes [steps, N, *shape] (0.0/1.0, float32), and u, v when keep_v."""
    steps, count = signal.shape[:2]
    a6, bound = _synaptic_input(layer, signal, max_in)
    bias = torch.as_tensor(layer.bias, device=a6.device)
    params = cuba_params(layer.neuron, bias, bound, steps)
    if params.wrap or params.saturate:  # the bound may be loose: decide on the input's actual peak
        low, high = a6.aminmax()
        params = cuba_params(layer.neuron, bias, max(-int(low), int(high)) >> STATE_SHIFT, steps)
    noise = layer_noise(layer, steps, a6.device)
    # exact 0/1, ready for the next matmul; written over the float32 input where that is no longer needed (each
    # step's input is read before its spikes are written, and u is recorded from the input when it is not decayed)
    reuse = a6.dtype == torch.float32 and not (keep_v and params.u_factor == 0.0)
    spikes = a6 if reuse else torch.empty(a6.shape, dtype=torch.float32, device=a6.device)
    u_all, v_all = (torch.empty_like(a6), torch.empty_like(a6)) if keep_v else (None, None)
    # On CPU the recurrence runs on slices of the batch small enough to stay in cache.
    chunk = count if a6.device.type != "cpu" else max(1, CPU_CHUNK_ELEMENTS // layer.size)
    for first in range(0, count, chunk):
        rows = slice(first, first + chunk)
        state = CubaState.zeros(a6[0, rows])
        for j in range(steps):
            cuba_step(state, a6[j, rows], params, spikes[j, rows], None if noise is None else noise[j])
            if keep_v:
                u_all[j, rows], v_all[j, rows] = state.u, state.v
    return spikes, u_all, v_all


def pre_spike_potentials(layer: Layer, u: torch.Tensor, v: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
    """v before the reset, [N, steps, *shape] int64 state units, from a recorded run's u, post-reset v and
    spikes of one layer. Where a neuron spiked its recorded v is 0; before the reset it was Lava's
    clip(trunc(v_prev * (4096 - vDecay) / 4096) + u + (bias << 6)) (exact in float64)."""
    previous = torch.cat([torch.zeros_like(v[:, :1]), v[:, :-1]], dim=1).double()
    decayed = (previous * ((DECAY_UNITY - layer.neuron.v_decay) / DECAY_UNITY)).trunc()
    bias = torch.as_tensor(layer.bias, dtype=torch.float64, device=u.device) * (1 << STATE_SHIFT)
    before = (decayed + u.double() + bias).clamp(-(UV_LIMIT - 1), UV_LIMIT - 1)
    return torch.where(spikes, before.to(torch.int64), v)


def logits(net: NetFile, run: Run) -> torch.Tensor:
    """Readout v at the readout step (tgo files): [N, num_classes] int64, state units."""
    return run.readout_v[:, net.readout_local_step].reshape(run.readout_v.shape[0], -1)


def predict(scores: torch.Tensor) -> torch.Tensor:
    """Argmax over classes, ties to the lowest index: [N, C] -> [N] int64."""
    best = scores.max(dim=1, keepdim=True).values
    index = torch.arange(scores.shape[1], device=scores.device).expand_as(scores)
    return torch.where(scores == best, index, scores.shape[1]).min(dim=1).values


def _synaptic_input(layer: Layer, signal: torch.Tensor, max_in: int) -> Tuple[torch.Tensor, int]:
    """Synaptic input of every step in state units (file units << 6), [steps, N, *shape] integers (float32 or
    float64, `hw_sim.products`), and a bound on its magnitude in file units.

    signal: [steps, N, *input shape] integers (float), magnitude at most max_in; a netx input layer's signal
        is its synaptic input, scaled in place.
    """
    steps, count = signal.shape[:2]
    synapse, scale = layer.synapse, 1 << STATE_SHIFT
    if synapse is None:  # netx input layer: the input drives the neurons' a_in directly
        return signal.mul_(scale), max_in
    weight = torch.as_tensor(synapse.weight, device=signal.device)
    bound = products.sum_bound(weight, max_in)
    rows = signal.reshape(steps * count, *signal.shape[2:])
    if isinstance(synapse, Dense):
        plan = products.plan(int(weight.abs().max()), max_in, bound, signal.device, scale)
        a = products.matmul(rows.reshape(steps * count, -1), products.prepare(weight, plan, scale).T, plan)
    else:
        plan = products.plan(int(weight.abs().max()), max_in, bound, signal.device, half_precision=False)
        wraps = bound >= UV_LIMIT  # Lava wraps the conv output to 24 bits: nothing to do for smaller sums
        a = products.conv(rows.to(plan.operand), products.prepare(weight, plan, 1 if wraps else scale), synapse,
                          layer.shape)
        if wraps:
            a = wrap_signed24(a.to(STATE_DTYPE)).mul_(scale)
    return a.reshape(steps, count, *layer.shape), min(bound, 1 << 23) if isinstance(synapse, Conv) else bound
