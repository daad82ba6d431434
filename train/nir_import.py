"""`tgo import`: a NIR graph (e.g. from Norse's `to_nir`, or tgo's own model.nir) -> a tgo run folder
(checkpoint.pt + config.json, as `train.checkpoint` writes them) that `tgo export`, `attack` and `verify` accept.

Supported: a chain Input -> [Flatten] -> (Affine|Linear|Conv2d -> CubaLIF|LIF)+ -> [Flatten] -> Affine|Linear
-> Output, bias-free, every neuron layer with the same decays and threshold (tgo's one `NeuronConfig`), shaped
like tgo's `mlp` (any widths) or `convnet` (3x3 convs, padding 1, stride 1 then 2). The last Affine/Linear is
the readout: tgo reads it out on the mean spike count, which equals the mean over steps of its output.

Neuron semantics, per node, with dt from the graph's metadata (else the `dt` argument):
- NIR's Euler convention (as Norse's `from_nir` and NIR's Lava example read graphs): one step integrates
  I += dt/tau_syn (w_in x - I), v += dt/tau_mem (v_leak - v + r I); that is tgo's neuron with
  d_syn = dt/tau_syn, d_mem = dt/tau_mem and weights W * (dt/tau_syn) * w_in * r (LIF: no I, weights W * r).
- Norse 1.1.0's `to_nir` writes tau = dt/tau_inv instead of 1/tau_inv (fixed on Norse master, #413): a tau
  below dt (a decay above 1 per step) is read as that bug, tau_inv = dt/tau, and the node as the Norse cell
  it came from (LIFCell: i += x, tgo's neuron exactly, weights W; LIFBoxCell: weights W).
A LIF node has no synaptic current: tgo's neuron with d_syn = 1. Decays round to Loihi's 1/4096 steps.
Never imports Lava.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import nir
import numpy as np
import torch

from tgo_errors import UsageError, unreadable_path
from train.budget import check_memory
from train.checkpoint import CHECKPOINT_NAME, Checkpoint, save_checkpoint
from train.config import ExperimentConfig, apply_method
from train.data import Dataset, load_dataset
from train.models import SpikingNetwork, build_model

SYNAPSES = (nir.Affine, nir.Linear, nir.Conv2d)
NEURONS = (nir.CubaLIF, nir.LIF)
SUPPORTED = (nir.Input, nir.Output, nir.Flatten) + SYNAPSES + NEURONS


@dataclass(frozen=True)
class NeuronParams:
    """One neuron node in tgo's terms: decays per step (fractions), threshold, and the factor on its weights."""
    d_syn: float
    d_mem: float
    v_th: float
    weight_factor: float


def _array(value) -> np.ndarray:
    return np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float64)


def _uniform(name: str, key: str, value) -> float:
    values = _array(value).reshape(-1)
    if values.size == 0 or not np.allclose(values, values[0]):
        raise UsageError(f"node {name!r}: {key} differs between neurons; tgo's neurons share one value per network")
    return float(values[0])


def chain(graph: nir.NIRGraph) -> List[Tuple[str, nir.NIRNode]]:
    """The graph's nodes from its Input to its Output; UsageError for branches and unsupported nodes."""
    unsupported = [f"{name!r} ({type(node).__name__})" for name, node in graph.nodes.items()
                   if not isinstance(node, SUPPORTED)]
    if unsupported:
        raise UsageError(f"unsupported NIR nodes: {', '.join(unsupported)} (tgo imports Input, Output, Flatten, "
                         f"Affine, Linear, Conv2d, CubaLIF, LIF)")
    successors: Dict[str, List[str]] = {}
    for source, target in graph.edges:
        successors.setdefault(source, []).append(target)
    starts = [name for name, node in graph.nodes.items() if isinstance(node, nir.Input)]
    if len(starts) != 1:
        raise UsageError(f"the graph needs exactly one Input node, found {len(starts)}")
    order = [starts[0]]
    while not isinstance(graph.nodes[order[-1]], nir.Output):
        nxt = successors.get(order[-1], [])
        if len(nxt) != 1 or nxt[0] in order:
            raise UsageError(f"node {order[-1]!r}: tgo imports a chain of layers, found successors {nxt}")
        order.append(nxt[0])
    if len(order) != len(graph.nodes):
        raise UsageError(f"nodes off the Input -> Output chain: {sorted(set(graph.nodes) - set(order))}")
    return [(name, graph.nodes[name]) for name in order]


def neuron_params(name: str, node: nir.NIRNode, dt: float) -> NeuronParams:
    """tgo's view of a CubaLIF/LIF node (module docstring)."""
    for key in ("v_leak", "v_reset"):
        if getattr(node, key, None) is not None and not np.allclose(_array(getattr(node, key)), 0):
            raise UsageError(f"node {name!r}: {key} must be 0 (Loihi resets v to 0 and has no leak potential)")
    v_th = _uniform(name, "v_threshold", node.v_threshold)
    r = _uniform(name, "r", node.r)
    if isinstance(node, nir.LIF):
        tau = _uniform(name, "tau", node.tau)
        return NeuronParams(1.0, dt * dt / tau if tau < dt else dt / tau, v_th, r)
    tau_syn, tau_mem = _uniform(name, "tau_syn", node.tau_syn), _uniform(name, "tau_mem", node.tau_mem)
    w_in = _uniform(name, "w_in", node.w_in)
    if tau_syn < dt or tau_mem < dt:  # Norse 1.1.0's to_nir: tau = dt / tau_inv
        return NeuronParams(dt * dt / tau_syn, dt * dt / tau_mem, v_th, w_in * r)
    return NeuronParams(dt / tau_syn, dt / tau_mem, v_th, dt / tau_syn * w_in * r)


def _weight(name: str, node: nir.NIRNode) -> np.ndarray:
    bias = getattr(node, "bias", None)
    if bias is not None and np.any(_array(bias) != 0):
        raise UsageError(f"node {name!r}: has a nonzero bias; tgo's Loihi mapping needs bias-free synapses")
    if isinstance(node, nir.Conv2d) and (int(node.groups) != 1 or np.any(np.asarray(node.dilation) != 1)):
        raise UsageError(f"node {name!r}: only plain convolutions (groups 1, dilation 1) import")
    return _array(node.weight)


def _architecture(layers: Sequence[Tuple[str, nir.NIRNode]]) -> Tuple[str, List[int]]:
    """('mlp' | 'convnet', hidden sizes) for the synaptic nodes before the readout, as tgo's builders make them."""
    convs = [(name, node) for name, node in layers if isinstance(node, nir.Conv2d)]
    if not convs:
        return "mlp", [int(_array(node.weight).shape[0]) for _, node in layers]
    if len(convs) != len(layers):
        raise UsageError("tgo's convnet is convolutions only before the readout; this graph mixes conv and dense layers")
    for k, (name, node) in enumerate(convs):
        stride = tuple(np.broadcast_to(np.asarray(node.stride), (2,)).tolist())
        padding = tuple(np.broadcast_to(np.asarray(node.padding), (2,)).tolist())
        if _array(node.weight).shape[2:] != (3, 3) or padding != (1, 1) or stride != ((1, 1) if k == 0 else (2, 2)):
            raise UsageError(f"node {name!r}: tgo's convnet uses 3x3 kernels, padding 1, stride 1 for the first "
                             f"layer and 2 after; found kernel {_array(node.weight).shape[2:]}, padding {padding}, "
                             f"stride {stride}")
    return "convnet", [int(_array(node.weight).shape[0]) for _, node in convs]


def import_graph(graph: nir.NIRGraph, cfg: ExperimentConfig, data: Dataset, dt: float = 1e-3
                 ) -> Tuple[SpikingNetwork, ExperimentConfig]:
    """The tgo model of `graph` for `data` (cfg.data's data set) and its config (cfg's data, model.timesteps and
    tgo.sigma are kept). dt: seconds per step, used when the graph's metadata has none.
    Raises UsageError naming what does not fit."""
    dt = float(graph.metadata.get("dt", dt)) if graph.metadata else dt
    nodes = [(name, node) for name, node in chain(graph) if not isinstance(node, (nir.Input, nir.Output, nir.Flatten))]
    synapses, neurons = nodes[0::2], nodes[1::2]
    shape_ok = (len(nodes) % 2 == 1 and all(isinstance(n, SYNAPSES) for _, n in synapses)
                and all(isinstance(n, NEURONS) for _, n in neurons) and isinstance(synapses[-1][1], (nir.Affine, nir.Linear)))
    if not shape_ok or not neurons:
        raise UsageError("tgo imports (synapse -> neuron)+ -> readout synapse; found "
                         + " -> ".join(type(node).__name__ for _, node in nodes))
    params = [neuron_params(name, node, dt) for name, node in neurons]
    first = params[0]
    for (name, _), p in zip(neurons, params):
        if (p.d_syn, p.d_mem, p.v_th) != (first.d_syn, first.d_mem, first.v_th):
            raise UsageError(f"node {name!r}: decays/threshold differ from {neurons[0][0]!r}; tgo's neurons share "
                             f"one configuration")
    cfg.neuron.dt, cfg.neuron.v_th = dt, first.v_th
    cfg.neuron.tau_syn_inv, cfg.neuron.tau_mem_inv = first.d_syn / dt, first.d_mem / dt
    cfg.model.arch, cfg.model.hidden = _architecture(synapses[:-1])
    cfg.model.encoding = "direct"
    cfg.tgo.method = "nlif" if cfg.tgo.sigma > 0 else "vanilla"
    cfg = apply_method(cfg).validate()
    model = build_model(cfg.model, cfg.neuron, data.input_shape, data.num_classes)
    modules = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    factors = [p.weight_factor for p in params] + [1.0]
    for module, (name, node), factor in zip(modules, synapses, factors):
        weight = _weight(name, node) * factor
        if tuple(weight.shape) != tuple(module.weight.shape):
            raise UsageError(f"node {name!r}: weight shape {weight.shape}, but the {data.name} data set "
                             f"{tuple(data.input_shape)} with {data.num_classes} classes needs {tuple(module.weight.shape)}")
        module.weight.data = torch.from_numpy(weight).to(module.weight.dtype)
    return model, cfg


def import_nir(path: Path, out: Path, cfg: ExperimentConfig, dt: float = 1e-3) -> Path:
    """Read the NIR file at `path`, import it (`import_graph`) and write `out`/checkpoint.pt + config.json."""
    if not (math.isfinite(dt) and dt > 0):
        raise UsageError(f"dt (seconds per step) must be finite and > 0, got {dt}")
    if not Path(path).is_file():
        raise UsageError(f"{path}: {unreadable_path(path)}")
    try:
        graph = nir.read(str(path), type_check=False)  # Norse writes batched Input types; weights are checked here
    except Exception as err:  # nir/h5py raise many types for foreign files
        raise UsageError(f"{path}: not a readable NIR graph ({type(err).__name__}: {err})") from None
    data = load_dataset(cfg.data)
    model, cfg = import_graph(graph, cfg, data, dt)
    check_memory(cfg, data.input_shape, data.num_classes, 1, torch.device("cpu"))  # as loading it will
    target = Path(out) / CHECKPOINT_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(target, Checkpoint(cfg, tuple(data.input_shape), data.num_classes, 0, model.state_dict(), None,
                                       None, {"imported_from": str(path)}))
    return target
