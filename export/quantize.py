"""Map float layers to Loihi CUBA integers with one scale per layer (train/neuron.py gives the exact map).

Units. A spiking layer with weight scale S and input scale Q_in (Q for the first layer, whose input is the
graded spike round(x * Q); 1 for the binary spikes of hidden layers) has the state scale P = S * Q_in:
    w_file = round(W * d_mem * S) in [-256, 254],  vThMant = v_th * P (<= 131071),
    u = 64 P d_mem i,  v = 64 P v,  noise_sigma = round(64 P sigma)     (i, v, sigma in membrane units).
P is chosen so that vThMant is an integer, hence the threshold itself is exact; rounding lives in the weights.
The readout (no neuron) has w_file = round(W * S) and v = 64 S T * logits after the T steps.

Choosing S. Upper bounds ("caps") on P: vThMant <= 131071; u must never wrap at 24 bits (a wrap flips the
sign of the current); v should not saturate at -(2^23 - 1) (saturation only shortens the recovery of a deeply
inhibited neuron). Each state bound is the worst case over all inputs (x in [0, 1], binary spikes) when that
is loose enough, else the calibration data's range with headroom: twice the largest |current| for u, 1.25
times the deepest potential for v. Below the caps, S is the largest scale at which no weight clips (S_noclip), or a larger one (up to
4 S_noclip) that clips a few outliers when that lowers the relative error of the layer's synaptic input on
calibration data. For the first layer that search runs for each input scale Q tried (a geometric ladder over
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
from tgo_errors import UsageError

WEIGHT_MIN, WEIGHT_MAX = -256, 254
VTH_MANT_MAX = 131071            # 17-bit threshold mantissa
STATE_MAX = 2 ** 23 - 1          # u wraps and v saturates beyond this
INPUT_SCALE_MAX = 255            # the graded input spike is 8-bit at most
CURRENT_MARGIN = 2.0             # headroom over the calibration |current| (u wraps: catastrophic)
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
    state_bound: str             # 'worst case' | 'calibration' | 'threshold' | 'weights': what limited P

    def report(self) -> dict:
        neuron = self.layer.neuron
        return {"name": self.layer.name, "kind": self.layer.kind, "shape": list(self.layer.out_shape),
                "S": self.scale, "state_scale": self.state_scale, "vThMant": self.v_th_mant,
                "iDecay": neuron.i_decay if neuron else 0, "vDecay": neuron.v_decay if neuron else 4096,
                "noise_sigma": self.noise_sigma, "clipped_fraction": self.clipped_fraction,
                "weight_rel_error": self.weight_rel_error, "input_rel_error": self.input_rel_error,
                "threshold_rel_error": self.threshold_rel_error, "state_bound": self.state_bound,
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


def _state_cap(layer: SynapticLayer, trace: LayerTrace) -> Tuple[float, str]:
    """Largest P keeping u unwrapped and v unsaturated for inputs in [0, 1] (pixels, spikes): the worst case
    over all inputs if that is loose enough, else the calibration range with its margins."""
    neuron = layer.neuron
    leak = max(neuron.i_decay, 1) / 4096                 # |i| <= fan-in / d_syn (geometric series)
    worst_pos, worst_neg = _fan_in(layer.weight, 1) / leak, _fan_in(layer.weight, -1) / leak
    worst = min(STATE_MAX / (64 * neuron.d_mem * max(worst_pos, worst_neg, 1e-30)),
                STATE_MAX / (64 * max(worst_neg, 1e-30)))
    seen = min(STATE_MAX / (64 * neuron.d_mem * CURRENT_MARGIN * max(trace.max_current, 1e-30)),
               STATE_MAX / (64 * POTENTIAL_MARGIN * max(-trace.min_potential, 1e-30)))
    return (worst, "worst case") if worst >= seen else (seen, "calibration")


def _spiking_cap(layer: SynapticLayer, trace: LayerTrace) -> Tuple[float, str]:
    """Largest state scale P of a spiking layer and what sets it: the state range or vThMant <= 131071."""
    state, why = _state_cap(layer, trace)
    threshold = VTH_MANT_MAX / layer.neuron.v_th
    return (threshold, "threshold") if threshold <= state else (state, why)


def _rel_error(layer: SynapticLayer, w_unit: torch.Tensor, scale: float, inputs: torch.Tensor,
               reference: torch.Tensor) -> float:
    approx = layer.apply(inputs, quantize_weight(w_unit, scale)) / scale
    return float((approx - reference).norm() / reference.norm().clamp(min=1e-30))


def _search_scale(layer: SynapticLayer, w_unit: torch.Tensor, cap: Tuple[float, str], inputs: torch.Tensor,
                  reference: torch.Tensor) -> Tuple[float, float, str]:
    """(S, input error, what limited S): the S <= cap[0] from S_noclip up to 4 S_noclip with the smallest
    synaptic-input error on calibration `inputs` (against the float `reference`)."""
    limit, why = cap
    noclip = _noclip_scale(w_unit)
    top = min(limit, CLIP_SEARCH * noclip)
    candidates = np.geomspace(noclip, top, SEARCH_POINTS) if top > noclip else [top]
    error, scale = min((_rel_error(layer, w_unit, float(s), inputs, reference), float(s)) for s in candidates)
    return scale, error, why if scale >= limit * (1 - 1e-6) else "weights"


def _finish(layer: SynapticLayer, w_unit: torch.Tensor, scale: float, q_in: int, timesteps: int,
            input_error: float, bound: str) -> LayerQuantization:
    """Integer weights and neuron parameters at weight scale `scale` (threshold made exact)."""
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
    return LayerQuantization(layer, weight.to(torch.int64).numpy(), scale, state_scale, v_th_mant, noise,
                             clipped, w_error, input_error, th_error, bound)


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
    p_cap, why = _spiking_cap(layer, trace)
    results = [(*_search_scale(layer, w_unit, (p_cap / q, why), torch.round(x * q) / q, reference), q)
               for q in ([input_scale] if input_scale else _input_scale_candidates(x))]
    scale, error, bound, q = min(results, key=lambda result: result[1])  # ties: the smallest Q
    return _finish(layer, w_unit, scale, q, timesteps, error, bound), q


def _quantize_hidden(layer: SynapticLayer, trace: LayerTrace, timesteps: int) -> LayerQuantization:
    w_unit = layer.weight * layer.neuron.d_mem
    scale, error, bound = _search_scale(layer, w_unit, _spiking_cap(layer, trace), trace.inputs,
                                        layer.apply(trace.inputs, w_unit))
    return _finish(layer, w_unit, scale, 1, timesteps, error, bound)


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
