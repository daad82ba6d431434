"""Record a Lava neuron population's spikes, u and v every step, without Lava's per-element Var transfers.

`Var.get()` and `Monitor.get_data()` move one element per message (~50 us each), which costs far more than
the simulation itself. A recording model runs the unchanged Lava model step and then copies the wanted
arrays into memory-mapped files that the parent process reads after the run.

These models are chosen per neuron instance through `exception_proc_model_map`; they live outside
`hw_sim/lava_neuron/` so that Lava's model search for `StochasticLIF` never finds them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import numpy as np
from lava.proc.lif.models import PyLifResetModelBitAcc
from lava.proc.rf_iz.models import PyRF_IZModelFixed
from lava.proc.sdn.models import PyDeltaModelFixed, PySigmaDeltaModelFixed, PySigmaModelFixed

from hw_sim.lava_neuron.models import PyStochasticLifModelBitAcc

RECORD_KEY = "tgo_record"  # proc_params key: {name: (file path, dtype name)} for names in 's', 'u', 'v'
RECORD_STEPS_KEY = "tgo_record_steps"


def record_params(folder: Path, layer: int, names: Tuple[str, ...], graded: bool = False) -> Dict[str, Tuple[str, str]]:
    """Files for layer `layer`'s recordings: binary spikes as int8, graded messages, u and v as int32 (their
    Lava dtypes)."""
    return {name: (str(folder / f"layer{layer}_{name}.bin"), "int8" if name == "s" and not graded else "int32")
            for name in names}


def read_record(spec: Tuple[str, str], steps: int, shape: Tuple[int, ...]) -> np.ndarray:
    """A recording as [steps, *shape] (file order)."""
    path, dtype = spec
    return np.fromfile(path, dtype=dtype).reshape((steps,) + shape)


class RecordingMixin:
    """After each step, writes row `time_step - 1` of every recording: the arrays in file order, flattened."""

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.record_spec = proc_params[RECORD_KEY]
        self.record_steps = proc_params[RECORD_STEPS_KEY]
        self.record_files = None
        self.spikes_now = None

    def spiking_activation(self) -> np.ndarray:
        self.spikes_now = super().spiking_activation()
        return self.spikes_now

    def recorded_values(self) -> Dict[str, np.ndarray]:
        """This step's values by recording name, Lava shape."""
        return {"s": self.spikes_now, "u": self.u, "v": self.v}

    def run_spk(self) -> None:
        super().run_spk()
        values = self.recorded_values()
        if self.record_files is None:
            size = values["s"].size
            self.record_files = {name: np.memmap(path, dtype=dtype, mode="r+", shape=(self.record_steps, size))
                                 for name, (path, dtype) in self.record_spec.items()}
        for name, target in self.record_files.items():
            target[self.time_step - 1] = values[name].T.reshape(-1)  # Lava's (W, H, C) -> file order (C, H, W)


class RecordingLifReset(RecordingMixin, PyLifResetModelBitAcc):
    """Lava's bit-accurate LIFReset model, recorded."""


class RecordingStochasticLif(RecordingMixin, PyStochasticLifModelBitAcc):
    """Our stochastic LIF model, recorded."""


class SigmaDeltaRecordingMixin(RecordingMixin):
    """Sigma-delta models: s is the message sent (the delta kept, >> state_exp), u is sigma, v is act."""

    def delta_dynamics(self, act_data: np.ndarray) -> np.ndarray:
        self.spikes_now = super().delta_dynamics(act_data)
        return self.spikes_now

    def recorded_values(self) -> Dict[str, np.ndarray]:
        return {"s": np.right_shift(self.spikes_now, self.state_exp), "u": self.sigma, "v": self.act}


class RecordingDelta(SigmaDeltaRecordingMixin, PyDeltaModelFixed):
    """Lava's fixed-point Delta model (netx SDNN input layer), recorded; Delta keeps no sigma (recorded 0)."""


class RecordingSigmaDelta(SigmaDeltaRecordingMixin, PySigmaDeltaModelFixed):
    """Lava's fixed-point SigmaDelta model, recorded."""


class RecordingSigma(RecordingMixin, PySigmaModelFixed):
    """Lava's fixed-point Sigma model (netx `sigma_output`), recorded: s, u and v are all sigma."""

    def recorded_values(self) -> Dict[str, np.ndarray]:
        return {"s": self.sigma, "u": self.sigma, "v": self.sigma}


def allocate(spec: Dict[str, Tuple[str, str]], steps: int, size: int) -> None:
    """Create zero-filled recording files of [steps, size]."""
    for path, dtype in spec.values():
        np.memmap(path, dtype=dtype, mode="w+", shape=(steps, size)).flush()


class RecordingRfIz(RecordingMixin, PyRF_IZModelFixed):
    """Lava's fixed-point RF_IZ model, recorded: s is its spike (its test on the clipped imag), u real, v imag."""

    def resonator_dynamics(self, a_real_in_data, a_imag_in_data, real, imag):
        new_real, new_imag = super().resonator_dynamics(a_real_in_data, a_imag_in_data, real, imag)
        self.spikes_now = np.clip(new_imag, self.neg_voltage_limit, self.pos_voltage_limit) >= self.vth
        return new_real, new_imag

    def recorded_values(self) -> Dict[str, np.ndarray]:
        return {"s": self.spikes_now, "u": self.real, "v": self.imag}
