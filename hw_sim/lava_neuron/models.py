"""Fixed-point (bit-accurate) model of `StochasticLIF`."""
from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed

from hw_sim import prng
from hw_sim.lava_neuron.process import StochasticLIF


@implements(proc=StochasticLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyStochasticLifModelFixed(AbstractPyLifModelFixed):
    """Lava's bit-accurate LIF update (`AbstractPyLifModelFixed`) with LIFReset's periodic state reset, and
    the threshold test `v + noise[step within sample] > vth << 6`.

    Also usable for a netx-built LIFReset whose proc_params carry the noise keys.
    """

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: int = LavaPyType(int, np.int32, precision=17)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.reset_interval = proc_params["reset_interval"]
        self.reset_offset = proc_params["reset_offset"] % self.reset_interval
        self.noise_args = tuple(proc_params[key] for key in StochasticLIF.NOISE_KEYS)
        self.noise = None  # [reset_interval, *v.shape] int64, built on the first step (v's shape known)
        self.effective_vth = 0

    def scale_threshold(self) -> None:
        self.effective_vth = np.left_shift(self.vth, self.vth_shift)
        self.isthrscaled = True

    def noise_table(self) -> np.ndarray:
        """Noise of every step within the sample; neuron index in C order of the file's shape (v.shape[::-1])."""
        sigma, seed, layer = self.noise_args
        neuron = np.arange(self.v.size, dtype=np.int64).reshape(self.v.shape[::-1]).T
        step = np.arange(self.reset_interval, dtype=np.int64).reshape((-1,) + (1,) * self.v.ndim)
        return prng.gauss_noise(seed, layer, neuron[None], step, sigma)

    def spiking_activation(self) -> np.ndarray:
        if self.noise is None:
            self.noise = self.noise_table()
        step = (self.time_step - self.reset_offset) % self.reset_interval
        return self.v + self.noise[step] > self.effective_vth

    def run_spk(self) -> None:
        a_in_data = self.a_in.recv()
        if self.time_step % self.reset_interval == self.reset_offset:
            self.u *= 0
            self.v *= 0
        self.scale_bias()
        if not self.isthrscaled:
            self.scale_threshold()
        self.subthr_dynamics(activation_in=a_in_data)
        self.s_out_buff = self.spiking_activation()
        self.reset_voltage(spike_vector=self.s_out_buff)
        self.s_out.send(self.s_out_buff)
