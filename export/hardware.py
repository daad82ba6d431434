"""Hardware hand-off report of a `.net` file under a chip profile (export/profiles/<name>.json).

Per layer: neurons, synapses (every connection of the layer's connectivity, and those with a nonzero weight),
fan-in axons (presynaptic neurons with a nonzero synapse into the layer), fan-out axons (per neuron: one axon
to each core of the next layer), weight bits, delay, and the cores of a greedy partition: the fewest equal
cores that respect the profile's neurons, synaptic memory (nonzero synapses x weight bits) and output axons
per core. Intel's compiler is closed and may partition differently: the core counts are estimates.

With activity (hw_sim runs of real samples), the report adds per inference: synaptic operations (each input
event or spike times the nonzero synapses of its source neuron), neuron updates (every neuron every step) and
spikes, and an energy and latency estimate from the profile's per-operation figures.
Every figure comes from the profile file with its source; nothing here is a hardware constant.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from hw_sim.netfile import Conv, Layer, NetFile
from hw_sim.simulator import Run
from tgo_errors import UsageError

PROFILE_DIR = Path(__file__).with_name("profiles")
DEFAULT_PROFILE = "loihi2"


@dataclass(frozen=True)
class Profile:
    """A chip profile: figures[name] = {'value': number or None (unknown: not checked), 'estimate', 'source'}."""
    name: str
    chip: str
    figures: Dict[str, Dict[str, object]]

    def value(self, key: str) -> Optional[float]:
        return self.figures[key]["value"]


def profile_names() -> List[str]:
    return sorted(path.stem for path in PROFILE_DIR.glob("*.json"))


def load_profile(name: str) -> Profile:
    """The profile export/profiles/<name>.json; UsageError for an unknown name."""
    path = PROFILE_DIR / f"{name}.json"
    if name not in profile_names():
        raise UsageError(f"--profile {name!r}: unknown chip profile (known: {', '.join(profile_names())})")
    raw = json.loads(path.read_text())
    return Profile(raw["name"], raw["chip"], raw["figures"])


@dataclass
class LayerResources:
    """One layer's resources; `cores_limited_by` names the per-core figure that set its core count."""
    layer: int                 # /layer/<i>
    kind: str                  # dense | conv | input
    neurons: int
    synapses: int              # connections of the connectivity (zero weights included)
    synapses_nonzero: int
    fan_in_axons: int
    fan_out_axons: int
    weight_bits: int           # unsigned width, or two's complement width with negative weights
    delay: int
    cores: int
    cores_limited_by: str


def _source_counts(layer: Layer, in_shape: Sequence[int], mask: np.ndarray) -> np.ndarray:
    """Per presynaptic neuron (flat, C order), how many synapses of `mask` (weight layout) leave it: the
    gradient of the summed synaptic output with respect to its input."""
    x = torch.zeros((1, *in_shape), dtype=torch.float64, requires_grad=True)
    w = torch.from_numpy(mask.astype(np.float64))
    if isinstance(layer.synapse, Conv):
        conv = layer.synapse
        out = F.conv2d(x, w, stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups)
    else:
        out = F.linear(x.flatten(1), w)
    out.sum().backward()
    return x.grad.reshape(-1).round().to(torch.int64).numpy()


def _weight_bits(weight: np.ndarray) -> int:
    """Width of the weights: unsigned when none is negative, else two's complement ([-256, 254]: 9 bits)."""
    low, high = int(weight.min()), int(weight.max())
    return high.bit_length() if low >= 0 else max((-low - 1).bit_length(), high.bit_length()) + 1


def _ceil(a: float, b: Optional[float]) -> int:
    return 1 if b is None else max(1, math.ceil(a / b))


def fanout(net: NetFile) -> List[Optional[np.ndarray]]:
    """Per layer, nonzero synapses leaving each presynaptic neuron (flat), None for a layer without synapse."""
    shapes = [net.input_shape] + [layer.shape for layer in net.layers[:-1]]
    return [None if layer.synapse is None else _source_counts(layer, shape, layer.synapse.weight != 0)
            for layer, shape in zip(net.layers, shapes)]


def resources(net: NetFile, profile: Profile) -> List[LayerResources]:
    """Every layer's resources and cores, last layer first in the partition (fan-out needs the next layer's cores)."""
    shapes = [net.input_shape] + [layer.shape for layer in net.layers[:-1]]
    rows: List[LayerResources] = []
    next_cores = 0
    for layer, in_shape, nonzero in reversed(list(zip(net.layers, shapes, fanout(net)))):
        if layer.synapse is None:
            total, count, fan_in, bits = 0, 0, 0, 0
        else:
            weight = layer.synapse.weight
            total = int(_source_counts(layer, in_shape, np.ones_like(weight)).sum())
            count, fan_in, bits = int(nonzero.sum()), int((nonzero > 0).sum()), _weight_bits(weight)
        limits = {"neurons": _ceil(layer.size, profile.value("neurons_per_core")),
                  "synaptic memory": _ceil(count * bits, profile.value("synapse_bits_per_core")),
                  "fan-out axons": _ceil(layer.size * next_cores, profile.value("fan_out_axons_per_core"))}
        limited_by = max(limits, key=limits.get)
        rows.append(LayerResources(layer.index, "input" if layer.synapse is None else type(layer.synapse).__name__
                                   .lower(), layer.size, total, count, fan_in, next_cores, bits, layer.delay,
                                   limits[limited_by], limited_by))
        next_cores = limits[limited_by]
    return rows[::-1]


def fit_problems(rows: Sequence[LayerResources], profile: Profile) -> List[str]:
    """What does not fit the chip, naming the layer and by how much (empty: it fits)."""
    problems = []
    for row in rows:
        per_core_fan_in = row.fan_in_axons if row.kind == "dense" else math.ceil(row.fan_in_axons / row.cores)
        for what, need, key in (("input axons per core", per_core_fan_in, "fan_in_axons_per_core"),
                                ("weight bits", row.weight_bits, "weight_bits_max"), ("delay", row.delay, "delay_max")):
            limit = profile.value(key)
            if limit is not None and need > limit:
                problems.append(f"layer {row.layer}: needs {need} {what}, {profile.name} allows {limit:g} "
                                f"({need - limit:g} too many)")
    cores, chip = sum(row.cores for row in rows), profile.value("cores_per_chip")
    if cores > chip:
        biggest = max(rows, key=lambda row: row.cores)
        problems.append(f"the network needs {cores} cores, one {profile.name} chip has {chip:g} ({cores - chip:g} too "
                        f"many; layer {biggest.layer} alone needs {biggest.cores})")
    return problems


def activity(net: NetFile, inputs: torch.Tensor, run: Run) -> List[Dict[str, float]]:
    """Per layer and inference: synaptic operations, neuron updates and spikes, from hw_sim's `run` of
    `inputs` ([N, S, *input_shape], as `simulate` takes them)."""
    count, steps = run.spikes[0].shape[:2]
    events = [(inputs != 0).sum(dim=(0, 1))] + [s.sum(dim=(0, 1)) for s in run.spikes[:-1]]
    rows = []
    for layer, spikes, source, out in zip(net.layers, events, fanout(net), run.spikes):
        synops = 0.0 if source is None else float((spikes.reshape(-1).double().numpy() * source).sum()) / count
        rows.append({"synaptic_ops": synops, "neuron_updates": float(layer.size * steps),
                     "spikes": float(out.sum()) / count})
    return rows


def estimate(rows: Sequence[LayerResources], per_layer: Sequence[Dict[str, float]], steps: int,
             profile: Profile) -> Dict[str, float]:
    """Energy (uJ) and latency (us) per inference: per-op energies summed; per step, the slowest layer's core
    (its work split evenly over its cores) plus one barrier synchronisation."""
    v = profile.value
    energy_pj = sum(a["synaptic_ops"] * v("energy_synaptic_op_pj") + a["neuron_updates"] * v("energy_neuron_update_pj")
                    + a["spikes"] * v("energy_spike_pj") for a in per_layer)
    step_ns = max((a["synaptic_ops"] * v("time_synaptic_op_ns") + a["neuron_updates"] * v("time_neuron_update_ns"))
                  / steps / row.cores for row, a in zip(rows, per_layer)) + v("barrier_sync_ns")
    return {"energy_uj": energy_pj * 1e-6, "latency_us": step_ns * steps * 1e-3, "steps": steps}


def hardware_report(net: NetFile, profile: Profile, measured: Optional[Dict[str, object]] = None) -> Dict[str, object]:
    """JSON-ready report. measured: {'samples': N, 'activity': `activity(...)`, 'steps': steps per sample} or None."""
    rows = resources(net, profile)
    problems = fit_problems(rows, profile)
    report: Dict[str, object] = {
        "model": str(net.path), "profile": profile.name, "chip": profile.chip,
        "layers": [asdict(row) for row in rows], "cores": sum(row.cores for row in rows),
        "fits": not problems, "problems": problems, "figures": profile.figures,
        "partition": "greedy estimate: the fewest equal cores per layer under the per-core limits; "
                     "the vendor compiler may differ"}
    if measured is not None:
        per_layer = measured["activity"]
        for row, values in zip(report["layers"], per_layer):
            row.update(values)
        totals = {key: sum(a[key] for a in per_layer) for key in ("synaptic_ops", "neuron_updates", "spikes")}
        report["per_inference"] = {"samples": measured["samples"], **totals,
                                   **estimate(rows, per_layer, measured["steps"], profile)}
    return report


def measure(net: NetFile, chip: Profile, spikes: torch.Tensor) -> Dict[str, object]:
    """`tgo hardware`: the report of `net` on `chip` with the activity hw_sim measures on `spikes`
    ([N, steps, *net.input_shape] integer input, as `hw_sim.simulator.simulate` takes it)."""
    from hw_sim.simulator import simulate
    run = simulate(net, spikes)
    measured = {"samples": len(spikes), "steps": run.spikes[0].shape[1], "activity": activity(net, spikes, run)}
    return hardware_report(net, chip, measured)
