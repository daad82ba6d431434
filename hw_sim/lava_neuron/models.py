"""Bit-accurate model of `StochasticLIF`: Lava's `PyLifResetModelBitAcc` with a noisy spike test."""
from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import PyLifResetModelBitAcc

from hw_sim import prng
from hw_sim.lava_neuron.process import GENERATORS, StochasticLIF


@implements(proc=StochasticLIF, protocol=LoihiProtocol)
class PyStochasticLifModelBitAcc(PyLifResetModelBitAcc):
    """Lava's bit-accurate LIFReset model, unchanged except the spike test `v + noise > vth << 6`.

    noise[neuron] = `prng.gauss_noise(seed, layer, neuron, step, sigma)` with `neuron` the flat index in C
    order of the file's shape (Lava holds the population transposed, as (W, H, C)) and `step` the step
    within the sample, `(time_step - reset_offset) mod reset_interval`. Its tags and resource, inherited from the
    parent, are `bit_accurate_loihi`, `fixed_pt` and CPU: a RunConfig selecting either tag picks it.
    """

    implements_process = None  # the parent implements LIFReset; @implements above binds StochasticLIF
    noise_sigma: int = LavaPyType(int, np.int32, precision=24)
    noise_seed: int = LavaPyType(int, np.int64, precision=32)
    noise_layer: int = LavaPyType(int, np.int32, precision=32)
    noise_prng: int = LavaPyType(int, np.int32, precision=8)

    def noise(self) -> np.ndarray:
        """This step's noise, state units, shaped like v."""
        if int(self.noise_prng) != GENERATORS[prng.NAME]:
            raise ValueError(f"noise_prng {int(self.noise_prng)}: unknown generator (known: {GENERATORS})")
        neuron = np.arange(self.v.size, dtype=np.int64).reshape(self.v.shape[::-1]).T
        step = (self.time_step - self.reset_offset) % self.reset_interval
        return prng.gauss_noise(int(self.noise_seed), int(self.noise_layer), neuron, step, int(self.noise_sigma))

    def spiking_activation(self) -> np.ndarray:
        return self.v + self.noise() > self.effective_vth
