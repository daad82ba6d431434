"""Map float layers to Loihi CUBA integers with one scale per layer (train/neuron.py gives the exact map).

Units. A spiking layer with weight scale S and input scale Q_in (Q for the first layer, whose input is the
graded spike round(x * Q); 1 for the binary spikes of hidden layers) has the state scale P = S * Q_in:
    w_file = round(W * d_mem * S) in [-256, 254],  vThMant = v_th * P (<= 131071),
    u = 64 P d_mem i,  v = 64 P v,  noise_sigma = round(64 P sigma),  bias = round(P b)
(i, v, sigma and the per-step bias b of v in membrane units; netx adds bias << 6, bias_exp 6, to v).
P is chosen so that vThMant is an integer, hence the threshold itself is exact; rounding lives in the weights
and the bias. The readout (no neuron) has w_file = round(W * S) and v = 64 S T * logits after the T steps.

Choosing S. Upper bounds ("caps") on P: vThMant <= 131071; the bias must fit Lava's int16 bias_mant; u must
never wrap at 24 bits (a wrap flips the sign of the current), which is guaranteed from the weights and the
input range (every input at its maximum, every step: `u_peak`, checked on the integer weights); v should
not saturate at -(2^23 - 1) (saturation only shortens the recovery of a deeply inhibited neuron): the worst
case over all inputs when that is loose enough, else 1.25 times the deepest potential seen in calibration.
The report names the bound of each layer. Below the caps, S is the largest scale at which no weight clips
(S_noclip), or a larger one (up to 4 S_noclip) that clips a few outliers when that lowers the relative error
of the layer's synaptic input on calibration data. For the first layer that search runs for each input scale Q tried (a geometric ladder over
1..255 plus the multiples of the data's own grid, e.g. 16 for the 0..16 digits) unless Q is given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from export.calibrate import LayerTrace
from export.network import LIFGroup, SynapticLayer
from hw_sim.fixed_point import UV_LIMIT
from hw_sim.netfile import BIAS_RANGE, DECAY_UNITY, DENSE_WEIGHT_RANGE, VTH_MANT_SPIKING_MAX
from tgo_errors import UsageError

WEIGHT_MIN, WEIGHT_MAX = DENSE_WEIGHT_RANGE   # netx is exact in this range (hw_sim.netfile)
STATE_MAX = UV_LIMIT - 1          # u wraps and v saturates beyond this (hw_sim.fixed_point)
INPUT_SCALE_MAX = 255            # the graded input spike is 8-bit at most
POTENTIAL_MARGIN = 1.25          # headroom below the deepest calibration potential (v saturates: mild)
CLIP_SEARCH = 4.0                # try weight scales up to this factor beyond the no-clipping scale
SEARCH_POINTS = 17


@dataclass
class LayerQuantization:
    """One quantized layer: integer weights and neuron parameters, plus the per-layer report."""
    layer: SynapticLayer
    weight: np.ndarray           # int64, same layout as layer.weight
    scale: float                 # S
    state_scale: float           # P = S * Q_in (spiking); S * T for the readout (v / 64 = P * logits)
    v_th_mant: Optional[int]     # None for the readout
    noise_sigma: int             # state units; 0 = deterministic
    clipped_fraction: float
    weight_rel_error: float      # ||w_file / (d_mem S) - W|| / ||W|| (readout: w_file / S)
    input_rel_error: float       # the same for the synaptic input on calibration data
    threshold_rel_error: float   # |vThMant / P - v_th| / v_th
    state_bound: str             # what limited P: 'u: ...', 'v: ...', 'threshold', 'bias: int16' or 'weights'
    v_bound: Optional[str] = None    # spiking layers: 'worst case' | 'calibration' (v saturation)
    u_max: Optional[int] = None      # spiking layers: the largest |u| any input can produce (state units)
    bias: Optional[np.ndarray] = None  # int64 per output channel (dense: per neuron), or None
    bias_rel_error: float = 0.0      # ||bias / P - b|| / ||b||

    def report(self) -> dict:
        neuron = self.layer.neuron
        bias = None if self.bias is None else {
            "min": int(self.bias.min()), "max": int(self.bias.max()), "exp": 6, "range": list(BIAS_RANGE),
            "rel_error": self.bias_rel_error}
        return {"name": self.layer.name, "kind": self.layer.kind, "shape": list(self.layer.out_shape),
                "S": self.scale, "state_scale": self.state_scale, "vThMant": self.v_th_mant,
                "iDecay": neuron.i_decay if neuron else 0, "vDecay": neuron.v_decay if neuron else 4096,
                "noise_sigma": self.noise_sigma, "clipped_fraction": self.clipped_fraction,
                "weight_rel_error": self.weight_rel_error, "input_rel_error": self.input_rel_error,
                "threshold_rel_error": self.threshold_rel_error, "state_bound": self.state_bound,
                "u_bound": None if self.u_max is None else "weights x input range", "u_max": self.u_max,
                "v_bound": self.v_bound, "groups": self.layer.groups, "bias": bias,
                "weight_min": int(self.weight.min()), "weight_max": int(self.weight.max())}


@dataclass
class QuantizedNetwork:
    layers: List[LayerQuantization]   # synaptic layers in order, readout last
    input_scale: int                  # Q
    timesteps: int
    input_shape: Tuple[int, ...]
    num_classes: int

    @property
    def input_message_bits(self) -> int:
        return int(self.input_scale).bit_length()


def quantize_weight(w_unit: torch.Tensor, scale: float) -> torch.Tensor:
    """round(w_unit * scale) clipped to [-256, 254] (float tensor holding integers)."""
    return torch.round(w_unit * scale).clamp(WEIGHT_MIN, WEIGHT_MAX)


def _noclip_scale(w_unit: torch.Tensor) -> float:
    """The largest S with round(w_unit * S) inside [-256, 254] for every weight."""
    hi, lo = float(w_unit.max()), float(-w_unit.min())
    bounds = [(WEIGHT_MAX + 0.5) / hi if hi > 0 else math.inf, (-WEIGHT_MIN + 0.5) / lo if lo > 0 else math.inf]
    return min(bounds) * (1 - 1e-9)


def _fan_in(w: torch.Tensor, sign: int) -> float:
    """max over output neurons of the summed positive (sign=+1) or negative (-1) weight magnitude."""
    part = (sign * w).clamp(min=0)
    return float(part.flatten(1).sum(1).max())


def u_peak(weight: torch.Tensor, max_in: int, i_decay: int) -> int:
    """Largest |u| (state units) that integer weights [out, ...] can ever produce from inputs in [0, max_in]:
    64 * (largest summed positive or negative fan-in) * max_in * 4096 / iDecay (the geometric series of the
    current decay; truncation toward zero only shrinks it; iDecay 0 counts as 1)."""
    fan = max(_fan_in(weight, 1), _fan_in(weight, -1))
    return int(math.ceil(64 * fan * max_in * DECAY_UNITY / max(i_decay, 1)))


def _u_cap(layer: SynapticLayer) -> float:
    """Largest P at which u cannot wrap for any input in range (pixels in [0, 1], spikes 0/1), from the float
    weights: 64 P d_mem fan-in(W) / d_syn <= 2^23 - 1 (`_search_scale` checks the integer weights exactly)."""
    neuron = layer.neuron
    fan = max(_fan_in(layer.weight, 1), _fan_in(layer.weight, -1)) * neuron.d_mem
    return STATE_MAX * max(neuron.i_decay, 1) / (DECAY_UNITY * 64 * max(fan, 1e-30))


def _v_cap(layer: SynapticLayer, trace: LayerTrace) -> Tuple[float, str]:
    """Largest P keeping v above -(2^23 - 1): the worst case over all inputs (|i| <= fan-in / d_syn plus the
    bias's b / d_mem) if that is loose enough, else the calibration range with its margin."""
    neuron = layer.neuron
    leak = max(neuron.i_decay, 1) / DECAY_UNITY
    deepest_bias = 0.0 if layer.bias is None else max(float(-layer.bias.min()), 0.0) / neuron.d_mem
    worst = STATE_MAX / (64 * max(_fan_in(layer.weight, -1) / leak + deepest_bias, 1e-30))
    seen = STATE_MAX / (64 * POTENTIAL_MARGIN * max(-trace.min_potential, 1e-30))
    return (worst, "worst case") if worst >= seen else (seen, "calibration")


def _spiking_cap(layer: SynapticLayer, trace: LayerTrace) -> Tuple[float, str, str]:
    """Largest state scale P of a spiking layer, what sets it (u, v, bias or threshold) and the v bound used."""
    v_cap, v_bound = _v_cap(layer, trace)
    caps = [(_u_cap(layer), "u: weights x input range"), (v_cap, f"v: {v_bound}"),
            (VTH_MANT_SPIKING_MAX / layer.neuron.v_th, "threshold")]
    if layer.bias is not None and float(layer.bias.abs().max()) > 0:
        caps.append((BIAS_RANGE[1] / float(layer.bias.abs().max()), "bias: int16"))
    cap, why = min(caps)
    return cap, why, v_bound


def _rel_error(layer: SynapticLayer, w_unit: torch.Tensor, scale: float, inputs: torch.Tensor,
               reference: torch.Tensor) -> float:
    approx = layer.apply(inputs, quantize_weight(w_unit, scale)) / scale
    return float((approx - reference).norm() / reference.norm().clamp(min=1e-30))


def _search_scale(layer: SynapticLayer, w_unit: torch.Tensor, cap: Tuple[float, str], inputs: torch.Tensor,
                  reference: torch.Tensor, max_in: Optional[int] = None) -> Tuple[float, float, str]:
    """(S, input error, what limited S): the S <= cap[0] from S_noclip up to 4 S_noclip (or from cap / 2 when
    the cap is below S_noclip) with the smallest synaptic-input error on calibration `inputs` (against the
    float `reference`). With `max_in` (spiking layers: the largest integer input), only scales whose integer
    weights keep u inside 24 bits for every input (`u_peak`) are candidates."""
    limit, why = cap
    noclip = _noclip_scale(w_unit)
    top = min(limit, CLIP_SEARCH * noclip)
    candidates = [float(s) for s in np.geomspace(min(noclip, top / 2), top, SEARCH_POINTS)]
    if max_in is not None:
        i_decay = layer.neuron.i_decay
        candidates = [s for s in candidates if u_peak(quantize_weight(w_unit, s), max_in, i_decay) <= STATE_MAX]
        if not candidates:
            raise UsageError(f"{layer.name}: no weight scale keeps the current u inside 24 bits for every input")
    error, scale = min((_rel_error(layer, w_unit, s, inputs, reference), s) for s in candidates)
    return scale, error, why if scale >= limit * (1 - 1e-6) else "weights"


def _finish(layer: SynapticLayer, w_unit: torch.Tensor, scale: float, q_in: int, timesteps: int,
            input_error: float, bound: str, v_bound: Optional[str] = None) -> LayerQuantization:
    """Integer weights, bias and neuron parameters at weight scale `scale` (threshold made exact)."""
    neuron: Optional[LIFGroup] = layer.neuron
    v_th_mant, th_error, noise = None, 0.0, 0
    if neuron is not None:
        v_th_mant = math.floor(neuron.v_th * scale * q_in)
        if v_th_mant < 1:
            raise UsageError(f"{layer.name}: weights overflow: at the largest usable scale S={scale:.3g} "
                             f"(limited by {bound}) the threshold v_th={neuron.v_th} rounds to vThMant 0")
        state_scale = v_th_mant / neuron.v_th
        scale = state_scale / q_in
        th_error = abs(v_th_mant / state_scale - neuron.v_th) / neuron.v_th
        noise = int(round(neuron.sigma * 64 * state_scale))
    else:
        state_scale = scale * timesteps
    weight = quantize_weight(w_unit, scale)
    if not bool(weight.any()):
        raise UsageError(f"{layer.name}: every weight rounds to 0 at the largest usable scale S={scale:.3g} "
                         f"(limited by {bound}): the weights are too small for this threshold/state range")
    raw = torch.round(w_unit * scale)
    clipped = float(((raw < WEIGHT_MIN) | (raw > WEIGHT_MAX)).float().mean())
    w_error = float((weight / scale - w_unit).norm() / w_unit.norm().clamp(min=1e-30))
    result = LayerQuantization(layer, weight.to(torch.int64).numpy(), scale, state_scale, v_th_mant, noise,
                               clipped, w_error, input_error, th_error, bound, v_bound)
    if neuron is not None:
        result.u_max = u_peak(weight, q_in, neuron.i_decay)
    if layer.bias is not None:
        bias = torch.round(layer.bias.double() * state_scale)
        if float(bias.min()) < BIAS_RANGE[0] or float(bias.max()) > BIAS_RANGE[1]:
            raise UsageError(f"{layer.name}: bias spans [{bias.min():.0f}, {bias.max():.0f}], outside Lava's "
                             f"int16 bias_mant {list(BIAS_RANGE)}")
        result.bias = bias.to(torch.int64).numpy()
        result.bias_rel_error = float((bias / state_scale - layer.bias).norm() / layer.bias.norm().clamp(min=1e-30))
    return result


def _input_scale_candidates(x: torch.Tensor) -> List[int]:
    """Q values to try: a geometric ladder over 1..255 plus the multiples of the data's own grid (digits: 16)."""
    ladder = {int(q) for q in np.unique(np.round(np.geomspace(1, INPUT_SCALE_MAX, 24)))}
    native = next((q for q in range(1, INPUT_SCALE_MAX + 1) if torch.allclose(x * q, torch.round(x * q), atol=1e-4)),
                  None)
    grid = set(range(native, INPUT_SCALE_MAX + 1, native)) if native else set()
    return sorted(ladder | grid)


def _quantize_first(layer: SynapticLayer, trace: LayerTrace, timesteps: int,
                    input_scale: Optional[int]) -> Tuple[LayerQuantization, int]:
    """The first layer and Q: input x in [0, 1] becomes round(x * Q); the best (Q, S) pair on calibration."""
    w_unit = layer.weight * layer.neuron.d_mem
    x = trace.inputs.clamp(0, 1)
    reference = layer.apply(x, w_unit)
    p_cap, why, v_bound = _spiking_cap(layer, trace)
    results = [(*_search_scale(layer, w_unit, (p_cap / q, why), torch.round(x * q) / q, reference, q), q)
               for q in ([input_scale] if input_scale else _input_scale_candidates(x))]
    scale, error, bound, q = min(results, key=lambda result: result[1])  # ties: the smallest Q
    return _finish(layer, w_unit, scale, q, timesteps, error, bound, v_bound), q


def _quantize_hidden(layer: SynapticLayer, trace: LayerTrace, timesteps: int) -> LayerQuantization:
    w_unit = layer.weight * layer.neuron.d_mem
    cap, why, v_bound = _spiking_cap(layer, trace)
    scale, error, bound = _search_scale(layer, w_unit, (cap, why), trace.inputs, layer.apply(trace.inputs, w_unit), 1)
    return _finish(layer, w_unit, scale, 1, timesteps, error, bound, v_bound)


def _quantize_readout(layer: SynapticLayer, trace: LayerTrace, timesteps: int) -> LayerQuantization:
    """Readout (w_file = round(W S)): v = 64 * sum over T steps of w_file . spikes stays inside 24 bits for
    any spike pattern."""
    w = layer.weight
    n_in = w.shape[1]
    cap = (STATE_MAX / (64 * timesteps) - n_in / 2) / max(_fan_in(w, 1), _fan_in(w, -1), 1e-30)
    if cap <= 0:
        raise UsageError(f"{layer.name}: {n_in} inputs over {timesteps} steps cannot fit the 24-bit readout state")
    scale, error, bound = _search_scale(layer, w, (cap, "worst case"), trace.inputs, layer.apply(trace.inputs, w))
    return _finish(layer, w, scale, 1, timesteps, error, bound)


def quantize(layers: Sequence[SynapticLayer], traces: Sequence[LayerTrace], timesteps: int,
             input_shape: Sequence[int], input_scale: Optional[int] = None) -> QuantizedNetwork:
    """Quantize `layers` (from `describe_network`, readout last) using their calibration `traces`.

    input_scale: Q in 1..255, or None to choose it. Raises UsageError when a layer cannot be represented.
    """
    if input_scale is not None and not 1 <= input_scale <= INPUT_SCALE_MAX:
        raise UsageError(f"--input-scale must be in 1..{INPUT_SCALE_MAX} (8-bit graded input), got {input_scale}")
    first, q = _quantize_first(layers[0], traces[0], timesteps, input_scale)
    hidden = [_quantize_hidden(layer, trace, timesteps) for layer, trace in zip(layers[1:-1], traces[1:-1])]
    readout = _quantize_readout(layers[-1], traces[-1], timesteps)
    return QuantizedNetwork([first, *hidden, readout], q, timesteps, tuple(input_shape),
                            int(layers[-1].out_shape[0]))
