"""Where float and fixed point part ways: per-layer spike rates and distances to threshold, on clean inputs.

Spiking layer k of the float model is synaptic layer k of the .net (the .net's last layer is the readout).
Fixed-point values are taken over each layer's T local steps that follow the input (local steps
input_lag .. input_lag + T - 1) and converted to membrane units by v / (vThMant << 6) * v_th.
"""
from __future__ import annotations

from typing import Dict, List

import torch

from hw_sim.netfile import NetFile
from hw_sim.simulator import Run, encode_inputs, pre_spike_potentials, simulate
from train.diagnostics import EVAL_NOISE_SEED
from train.models import SpikingNetwork

HISTOGRAM_RANGE = (-2.0, 2.0)   # V - V_th in membrane units (threshold 1 by default)
HISTOGRAM_BINS = 80


@torch.no_grad()
def _float_run(model: SpikingNetwork, x: torch.Tensor):
    was_training = model.training
    model.eval()
    model.reseed_noise(EVAL_NOISE_SEED)
    try:
        return model.run(x)
    finally:
        model.train(was_training)


def _steps(net: NetFile) -> slice:
    return slice(net.input_lag, net.input_lag + net.tgo.timesteps)


def _layer_name(net: NetFile, k: int) -> str:
    layer = net.layers[k]
    return f"{type(layer.synapse).__name__.lower()} {'x'.join(map(str, layer.shape))}"


def layer_rates(model: SpikingNetwork, net: NetFile, x: torch.Tensor) -> List[Dict[str, object]]:
    """Per spiking layer: mean spikes per neuron per step, float vs fixed point (hw_sim, file's noise)."""
    out = _float_run(model, x)
    run = simulate(net, encode_inputs(net, x))
    rows = []
    for k, spikes in enumerate(out.spikes):
        fixed = float(run.spikes[k][:, _steps(net)].double().mean())
        rows.append({"layer": net.layers[k].index, "name": _layer_name(net, k), "float_rate": float(spikes.mean()),
                     "fixed_rate": fixed, "rate_change": fixed - float(spikes.mean())})
    return rows


def fixed_potentials(net: NetFile, run: Run, v_th: float) -> List[torch.Tensor]:
    """Pre-spike potentials of every spiking layer in membrane units, [N, T, *shape] float64 (recorded run)."""
    potentials = []
    for k, layer in enumerate(net.layers[:-1]):
        v = pre_spike_potentials(layer, run.u[k], run.v[k], run.spikes[k])[:, _steps(net)]
        potentials.append(v.double() / (layer.neuron.vth_mant << 6) * v_th)
    return potentials


def potential_histograms(model: SpikingNetwork, net: NetFile, x: torch.Tensor, v_th: float,
                         delta: float) -> Dict[str, object]:
    """Histograms of V - V_th over all spiking layers, float and fixed point, and the near-threshold fractions
    (|V - V_th| < delta): the paper's Figure 4 for one model."""
    float_v = torch.cat([p.flatten().double() for p in _float_run(model, x).potentials])
    fixed_v = torch.cat([p.flatten() for p in fixed_potentials(net, simulate(net, encode_inputs(net, x),
                                                                               record=True), v_th)])
    low, high = HISTOGRAM_RANGE
    result: Dict[str, object] = {"range": [low, high], "bins": HISTOGRAM_BINS, "delta": delta}
    for name, values in (("float", float_v), ("fixed", fixed_v)):
        distance = values - v_th
        result[name] = {"counts": torch.histc(distance, HISTOGRAM_BINS, low, high).long().tolist(),
                        "near_threshold_fraction": float((distance.abs() < delta).double().mean())}
    return result
