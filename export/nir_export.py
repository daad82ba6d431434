"""NIR export of the float model, built by hand: Norse 1.1.0's `to_nir` maps only Norse's own `*Cell` modules
(not tgo's NoisyLIF) and writes time constants off by a factor dt.

Graph: input (C, H, W) -> [flatten] -> Linear/Conv2d -> CubaLIF -> ... -> [flatten] -> Linear -> output.
Each step of dt the image enters once (direct encoding); logits are the mean over the T steps of `output`
(the readout is linear, so this equals tgo's readout of the mean spike count). No threshold noise.

CubaLIF parameters follow the Euler convention that Norse's `from_nir` and NIR's Lava example use, in which
one step of dt integrates I += dt / tau_syn * (w_in * x - I) and v += dt / tau_mem * (v_leak - v + r * I):
    tau_syn = dt / d_syn, tau_mem = dt / d_mem (seconds, from the 12-bit decays the model runs with),
    w_in = tau_syn / tau_mem, r = tau_mem / dt, v_reset = 0, v_threshold = v_th, and v_leak = b / d_mem for
    a layer whose v gets the per-step bias b (folded batch norm; 0 otherwise), since v_leak adds d_mem v_leak.
Then I = d_mem * i and v equal tgo's (and Norse's) i and v exactly, and weights times w_in * dt / tau_syn are
W * d_mem, i.e. the Loihi weights divided by S. Metadata records dt, T, the readout rule and this convention.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import nir
import numpy as np

from export.network import SynapticLayer
from tgo_errors import UsageError

CONVENTION = ("Euler, per step dt: I += dt/tau_syn*(w_in*x - I); v += dt/tau_mem*(v_leak - v + r*I); "
              "spike v > v_threshold, v -> v_reset; logits = mean over timesteps of output")


def _cuba_lif(layer: SynapticLayer, dt: float) -> nir.CubaLIF:
    neuron = layer.neuron
    full = lambda value: np.full(layer.out_shape, value, dtype=np.float64)
    if neuron.i_decay == 0:
        raise UsageError(f"{layer.name}: a current that never decays (iDecay 0) has no finite NIR tau_syn")
    tau_syn = dt / (neuron.i_decay / 4096)
    tau_mem = dt / neuron.d_mem
    v_leak = full(0.0)
    if layer.bias is not None:
        per_channel = layer.bias.double().numpy() / neuron.d_mem
        v_leak = np.broadcast_to(per_channel.reshape(-1, *([1] * (len(layer.out_shape) - 1))), layer.out_shape).copy()
    return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / dt), v_leak=v_leak,
                       v_threshold=full(neuron.v_th), v_reset=full(0.0), w_in=full(tau_syn / tau_mem))


def _dense_kernel(weight: np.ndarray, groups: int) -> np.ndarray:
    """A grouped conv kernel [out, in/groups, kH, kW] as the equivalent full one [out, in, kH, kW] (zeros
    between groups): NIR 1.0's type inference reads the input channels from the kernel."""
    out, per_group = weight.shape[:2]
    full = np.zeros((out, per_group * groups, *weight.shape[2:]))
    for o in range(out):
        g = o // (out // groups)
        full[o, g * per_group:(g + 1) * per_group] = weight[o]
    return full


def _synapse(layer: SynapticLayer) -> nir.NIRNode:
    weight = layer.weight.numpy().astype(np.float64)
    if layer.kind == "dense":
        return nir.Linear(weight=weight)
    return nir.Conv2d(input_shape=tuple(layer.in_shape[1:]), weight=_dense_kernel(weight, layer.groups),
                      stride=layer.stride, padding=layer.padding, dilation=1, groups=1,
                      bias=np.zeros(weight.shape[0]))


def build_nir(layers: Sequence[SynapticLayer], input_shape: Sequence[int], dt: float, timesteps: int
              ) -> nir.NIRGraph:
    """The NIR graph of `layers` (from `describe_network`, readout last) for inputs of `input_shape`."""
    nodes: Dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.asarray(input_shape)})}
    order: List[str] = ["input"]
    shape: Tuple[int, ...] = tuple(input_shape)
    for k, layer in enumerate(layers):
        if layer.kind == "dense" and len(shape) > 1:
            nodes[f"flatten{k}"] = nir.Flatten(input_type={"input": np.asarray(shape)}, start_dim=-len(shape))
            order.append(f"flatten{k}")
        name = "readout" if layer.neuron is None else f"synapse{k}"
        nodes[name] = _synapse(layer)
        order.append(name)
        if layer.neuron is not None:
            nodes[f"lif{k}"] = _cuba_lif(layer, dt)
            order.append(f"lif{k}")
        shape = layer.out_shape
    nodes["output"] = nir.Output(output_type={"output": np.asarray(shape)})
    order.append("output")
    metadata = {"source": "tgo", "dt": dt, "timesteps": timesteps, "convention": CONVENTION}
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), metadata=metadata)


def write_nir(path: Path, layers: Sequence[SynapticLayer], input_shape: Sequence[int], dt: float,
              timesteps: int) -> None:
    """Write the graph of `build_nir` to `path` (NIR's HDF5 file)."""
    nir.write(str(path), build_nir(layers, input_shape, dt, timesteps))
