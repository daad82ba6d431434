"""Run a .net file in Lava's fixed-point simulator (the reference), many samples back to back in one run.

`hw_sim.lava.load_network` builds the network (netx's blocks, our `StochasticLIF` for noisy layers)
with neurons that restart from zero state every `steps` Lava steps, each layer at its window offset
(`NetFile.offsets`), so layer k's window of sample n starts at Lava step `n * steps + offsets[k]`.
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
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import RunConfig
from lava.proc import io

from hw_sim.lava.loader import load_network
from hw_sim.lava_neuron.process import StochasticLIF
from hw_sim.lava_record import (RECORD_KEY, RECORD_STEPS_KEY, RecordingLifReset, RecordingStochasticLif, allocate,
                                read_record, record_params)
from hw_sim.netfile import NetFile
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
    Returns a CPU `Run` indexed like the simulator's.
    """
    count, in_steps = spikes.shape[:2]
    steps = steps or net.window(in_steps)
    if count == 0:
        raise ValueError("no samples to run")
    if in_steps + net.input_lag > steps:
        raise ValueError(f"{in_steps} input steps do not fit a window of {steps} steps")
    offsets = net.offsets
    total = count * steps + offsets[-1]
    network = load_network(net, reset_interval=steps)

    data = np.zeros((total,) + net.input_shape, dtype=np.int32)
    data[:count * steps].reshape((count, steps) + net.input_shape)[:, :in_steps] = spikes.cpu().numpy()
    source = io.source.RingBuffer(data=data.T)  # Lava wants [*Lava shape, time], Lava shape = file shape reversed
    source.s_out.connect(network.inp if net.input_lag else network.in_layer.neuron.a_in)

    with tempfile.TemporaryDirectory(prefix="tgo_lava_") as folder:
        specs = []
        for k, (block, layer) in enumerate(zip(network.layers, net.layers)):
            names = ("s", "u", "v") if record else ("s", "v") if k == len(net.layers) - 1 else ("s",)
            specs.append(record_params(Path(folder), k, names))
            allocate(specs[-1], total, layer.size)
            _record(block.neuron, specs[-1], total)
        config = FixedPtRunConfig({block.neuron: RecordingStochasticLif if isinstance(block.neuron, StochasticLIF)
                                   else RecordingLifReset for block in network.layers})
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
        run = Run([windows(k, "s", torch.bool) for k in layers], windows(len(net.layers) - 1, "v", torch.int64))
        if record:
            run.u = [windows(k, "u", torch.int64) for k in layers]
            run.v = [windows(k, "v", torch.int64) for k in layers]
    return run


def _record(neuron: AbstractProcess, record: Dict[str, Tuple[str, str]], total: int) -> None:
    """Give a neuron process its recording files (read by `hw_sim.lava_record`'s models)."""
    neuron.proc_params.overwrite(RECORD_KEY, record)
    neuron.proc_params.overwrite(RECORD_STEPS_KEY, total)
