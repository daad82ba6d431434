"""Run a .net file in Lava's fixed-point simulator (the reference), many samples back to back in one run.

netx (`lava.lib.dl.netx.hdf5.Network`) builds the network from the file, the reference reader; a file whose
layers carry noise keys (which plain netx ignores) is built by `hw_sim.lava.load_network` instead, with our
`StochasticLIF` in the noisy layers. Neurons restart from zero state every `steps` Lava steps, each layer at
its window offset (`NetFile.offsets`), so layer k's window of sample n starts at Lava step `n * steps + offsets[k]`.
Every neuron runs in a recording subclass of its model (`hw_sim.lava_record`), selected per neuron instance
through `exception_proc_model_map`, so no sink or monitor process slows the run.

Imports Lava: import this module only where Lava is installed.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from lava.lib.dl import netx
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import RunConfig
from lava.proc import io

from hw_sim.lava.loader import load_network
from hw_sim.lava_record import (RECORD_KEY, RECORD_STEPS_KEY, RecordingDelta, RecordingLifReset, RecordingRfIz,
                                RecordingSigma, RecordingSigmaDelta, RecordingStochasticLif, allocate, read_record,
                                record_params)
from hw_sim.netfile import Layer, NetFile, Neuron, ResonatorNeuron
from hw_sim.simulator import Run

FIXED_PT = "fixed_pt"


class FixedPtRunConfig(RunConfig):
    """Selects each process's `fixed_pt` model (or its only model), like lava-dl's own netx tests.

    `Loihi2SimCfg(select_tag='fixed_pt')` cannot run netx networks ("No subcompiler exists for ...
    PyInputModel"). Lava's compiler consults `exception_proc_model_map` per process instance first.
    """

    def __init__(self, exception_proc_model_map: Dict[AbstractProcess, type]) -> None:
        super().__init__(custom_sync_domains=None)
        self.exception_proc_model_map = exception_proc_model_map

    def select(self, process: AbstractProcess, proc_models: List[PyLoihiProcessModel]) -> PyLoihiProcessModel:
        tagged = [model for model in proc_models if FIXED_PT in model.tags]
        if tagged or len(proc_models) == 1:
            return (tagged or proc_models)[0]
        raise AssertionError(f"no {FIXED_PT} model for {type(process).__name__}")


def run_lava(net: NetFile, spikes: torch.Tensor, steps: Optional[int] = None, record: bool = False,
             progress: Optional[Callable[[int], None]] = None, chunk: int = 16) -> Run:
    """Run every sample through Lava, one window of `steps` Lava steps per sample, states reset in between.

    spikes: [N, S, *net.input_shape] integer input per step (as for `simulator.simulate`).
    record: also return u and v of every layer.
    progress: called with the number of samples finished after every `chunk` samples.
    Networks whose state Lava cannot reset between samples (sigma-delta neurons, recurrence, delays that
    differ between synapses) run one sample per Lava run.
    Returns a CPU `Run` indexed like the simulator's.
    """
    count, in_steps = spikes.shape[:2]
    steps = steps or net.window(in_steps)
    if count == 0:
        raise ValueError("no samples to run")
    if count > 1 and not _resettable(net):
        runs = [run_lava(net, spikes[i:i + 1], steps, record) for i in range(count)]
        if progress is not None:
            progress(count)
        return _concatenate(runs)
    if in_steps + net.input_lag > steps:
        raise ValueError(f"{in_steps} input steps do not fit a window of {steps} steps")
    offsets = net.offsets
    total = count * steps + offsets[-1]
    network = _network(net, steps)

    data = np.zeros((total,) + net.input_shape, dtype=np.int32)
    data[:count * steps].reshape((count, steps) + net.input_shape)[:, :in_steps] = spikes.cpu().numpy()
    target = network.inp if net.input_lag else network.in_layer.neuron.a_in
    # Lava wants [*Lava shape, time], Lava shape = file shape reversed; a flat port takes torch's flatten order
    source = io.source.RingBuffer(data=data.reshape(total, -1).T if len(target.shape) == 1 else data.T)
    source.s_out.connect(target)

    with tempfile.TemporaryDirectory(prefix="tgo_lava_") as folder:
        specs = []
        for k, (block, layer) in enumerate(zip(network.layers, net.layers)):
            names = ("s", "u", "v") if record else ("s", "v") if k == len(net.layers) - 1 else ("s",)
            specs.append(record_params(Path(folder), k, names, graded=layer.neuron.message_bits > 0))
            allocate(specs[-1], total, layer.size)
            _configure(block.neuron, layer, offsets[k] + 1, specs[-1], total)
        config = FixedPtRunConfig({block.neuron: _recording_model(layer)
                                   for block, layer in zip(network.layers, net.layers)})
        try:
            done = 0
            while done < count:
                batch = min(chunk, count - done)
                tail = offsets[-1] if done + batch == count else 0
                network.run(condition=RunSteps(num_steps=batch * steps + tail), run_cfg=config)
                done += batch
                if progress is not None:
                    progress(done)
        finally:
            network.stop()

        def windows(k: int, name: str, dtype: torch.dtype) -> torch.Tensor:
            """Layer k's recording cut into sample windows: [count, steps, *shape]."""
            series = read_record(specs[k][name], total, net.layers[k].shape)
            block = series[offsets[k]:offsets[k] + count * steps].reshape((count, steps) + net.layers[k].shape)
            return torch.from_numpy(block.copy()).to(dtype)

        layers = range(len(net.layers))
        run = Run([windows(k, "s", torch.bool if net.layers[k].neuron.message_bits == 0 else torch.int64)
                   for k in layers], windows(len(net.layers) - 1, "v", torch.int64))
        if record:
            run.u = [windows(k, "u", torch.int64) for k in layers]
            run.v = [windows(k, "v", torch.int64) for k in layers]
    return run


def _network(net: NetFile, steps: int) -> netx.hdf5.Network:
    """The reference process graph: netx's own reader for deterministic files (independent of hw_sim's reader);
    `hw_sim.lava.load_network` where layers carry noise keys, which plain netx ignores."""
    if any(layer.neuron.noise is not None for layer in net.layers):
        return load_network(net, reset_interval=steps)
    network = netx.hdf5.Network(net_config=str(net.path), input_message_bits=net.input_message_bits,
                                reset_interval=steps, num_layers=net.layers[-1].index + 1)
    built = [tuple(block.out.shape[::-1]) for block in network.layers]  # Lava orders (W, H, C)
    if built != [layer.shape for layer in net.layers]:
        raise RuntimeError(f"netx built layers of shapes {built}, hw_sim read {[l.shape for l in net.layers]}")
    return network


def _resettable(net: NetFile) -> bool:
    """Whether LIFReset windows separate the samples: CUBA layers only, no recurrence, one delay per layer
    (netx resets no sigma-delta or RF neuron)."""
    return all(isinstance(layer.neuron, Neuron) and layer.recurrent is None and layer.spread is None
               for layer in net.layers)


def _concatenate(runs: List[Run]) -> Run:
    """One Run from runs of consecutive samples."""
    def cat(parts: List[Optional[List[torch.Tensor]]]) -> Optional[List[torch.Tensor]]:
        return None if parts[0] is None else [torch.cat(layer) for layer in zip(*parts)]
    return Run(cat([r.spikes for r in runs]), torch.cat([r.readout_v for r in runs]),
               cat([r.u for r in runs]), cat([r.v for r in runs]))


def _recording_model(layer: Layer) -> type:
    """The recording Lava model for the neuron process netx built for `layer`."""
    if isinstance(layer.neuron, ResonatorNeuron):
        return RecordingRfIz
    if not isinstance(layer.neuron, Neuron):
        return {"delta": RecordingDelta, "sigma_delta": RecordingSigmaDelta, "sigma": RecordingSigma}[layer.neuron.kind]
    return RecordingLifReset if layer.neuron.noise is None else RecordingStochasticLif


def _configure(neuron: AbstractProcess, layer: Layer, reset_offset: int, record: Dict[str, Tuple[str, str]],
               total: int) -> None:
    """Set a LIFReset's reset phase and give a neuron process its recording files (read by `hw_sim.lava_record`)."""
    params = neuron.proc_params
    if isinstance(layer.neuron, Neuron):
        params.overwrite("reset_offset", reset_offset)
    params.overwrite(RECORD_KEY, record)
    params.overwrite(RECORD_STEPS_KEY, total)
