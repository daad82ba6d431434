"""hw_sim's CUBA step against Lava's own fixed-point LIF code, driven directly (no Lava runtime), including the
regimes the end-to-end tests never reach: u wrap, int32 overflow, v saturation, bias, threshold noise."""
from typing import Optional, Tuple

import numpy as np
import pytest
import torch

from hw_sim.neurons.cuba import CubaState, cuba_params, cuba_step
from hw_sim.neurons.ops import ExactOps
from hw_sim.netfile import Neuron
from hw_sim.prng import NAME, gauss_noise

lif_models = pytest.importorskip("lava.proc.lif.models")
from hw_sim.lava_neuron.models import PyStochasticLifModelBitAcc  # noqa: E402  (needs Lava)
from hw_sim.lava_neuron.process import GENERATORS  # noqa: E402

Traces = Tuple[np.ndarray, np.ndarray, np.ndarray]  # u, v, s: [steps, n]


def lava_traces(neuron: Neuron, bias: np.ndarray, inputs: np.ndarray, sigma: Optional[int]) -> Traces:
    """Lava's arithmetic step by step: PyLifModelBitAcc, or our stochastic model when sigma is given."""
    steps, n = inputs.shape
    if sigma is None:
        model = lif_models.PyLifModelBitAcc({})
    else:
        model = PyStochasticLifModelBitAcc({"reset_interval": steps, "reset_offset": 1})
        model.noise_sigma, model.noise_seed, model.noise_layer = sigma, SEED, LAYER
        model.noise_prng = GENERATORS[NAME]
    model.u, model.v = np.zeros(n, np.int32), np.zeros(n, np.int32)
    model.du, model.dv, model.vth = neuron.i_decay - 1, neuron.v_decay, neuron.vth_mant  # netx: du = iDecay - 1
    model.bias_mant, model.bias_exp = bias.astype(np.int16), np.full(n, 6, np.int16)
    model.scale_bias()
    model.scale_threshold()
    out = []
    for t, a in enumerate(inputs):
        model.time_step = t + 1
        model.subthr_dynamics(activation_in=a)
        spikes = model.spiking_activation()
        model.reset_voltage(spikes)
        out.append((model.u.copy(), model.v.copy(), spikes.copy()))
    return tuple(np.stack(x) for x in zip(*out))


def sim_traces(neuron: Neuron, bias: np.ndarray, inputs: np.ndarray, sigma: Optional[int]) -> Traces:
    steps, n = inputs.shape
    params = cuba_params(neuron, torch.from_numpy(bias), int(np.abs(inputs).max()), steps)
    noise = None
    if sigma is not None:
        noise = gauss_noise(SEED, LAYER, torch.arange(n)[None, :], torch.arange(steps)[:, None], sigma).double()
    state, ops = CubaState.zeros(torch.zeros(n)), ExactOps()
    out = []
    for j, a in enumerate(torch.from_numpy(inputs).double() * 64):
        spikes, state = cuba_step(state, a, params, ops, None if noise is None else noise[j])
        out.append((state.u.numpy().copy(), state.v.numpy().copy(), spikes.numpy() > 0))
    return tuple(np.stack(x) for x in zip(*out))


SEED, LAYER = 11, 3
LIMIT = 2 ** 23
CASES = {  # name: (i_decay, v_decay, vth_mant, input magnitude, input offset, bias magnitude, regime reached)
    "typical": (1024, 512, 400, 500, 0, 0, lambda u, v, a6: True),
    "mnist.net-like": (4096, 123, 80, 300, 0, 0, lambda u, v, a6: True),
    "integrator": (0, 4096, 1 << 17, 3000, 0, 0, lambda u, v, a6: np.abs(v).max() > 10 ** 6),
    "slowest decays, saturating v": (1, 0, 131071, 1 << 16, 1 << 15, 0, lambda u, v, a6: np.abs(v).max() == LIMIT - 1),
    "bias": (2000, 300, 600, 400, 0, 2000, lambda u, v, a6: True),
    "u wraps past 24 and 32 bits": (0, 0, 1000, 1 << 19, 1 << 20, 300, lambda u, v, a6: np.abs(u).max() > 2 ** 30),
    "negative u wraps": (0, 100, 1000, 1 << 19, -(1 << 19), 0, lambda u, v, a6: -u.min() > LIMIT),
    "a << 6 overflows int32": (3000, 2000, 5000, 1 << 26, 0, 0, lambda u, v, a6: np.abs(a6).max() >= 2 ** 31),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("sigma", [None, 20000])
def test_cuba_step_equals_lavas_model(name, sigma):
    i_decay, v_decay, vth, scale, offset, bias_scale, reached = CASES[name]
    rng = np.random.default_rng(len(name))
    inputs = (rng.integers(-scale, scale + 1, (60, 64)) + offset) * (rng.random((60, 64)) < 0.7)
    bias = rng.integers(-bias_scale, bias_scale + 1, 64)
    neuron = Neuron(i_decay, v_decay, vth)
    expected = lava_traces(neuron, bias, inputs.astype(np.int32), sigma)
    got = sim_traces(neuron, bias, inputs, sigma)
    for quantity, e, g in zip("uvs", expected, got):
        assert np.array_equal(e, g), f"{quantity} differs first at (step, neuron) {np.argwhere(e != g)[0]}"
    assert reached(expected[0], expected[1], inputs * 64), "the case does not reach its regime"


def test_noise_changes_spikes_and_sigma_zero_does_not():
    rng = np.random.default_rng(0)
    inputs = rng.integers(-500, 501, (60, 64))
    neuron, bias = Neuron(1024, 512, 400), np.zeros(64, np.int64)
    plain = sim_traces(neuron, bias, inputs, None)[2]
    assert np.array_equal(sim_traces(neuron, bias, inputs, 0)[2], plain)
    assert not np.array_equal(sim_traces(neuron, bias, inputs, 20000)[2], plain)


def _step(u: list, v: list, a6: list, neuron: Neuron) -> Tuple[list, list, list]:
    """One step from the given state: (u, v, spikes) as lists."""
    state = CubaState(*(torch.tensor(x, dtype=torch.float64) for x in (u, v)))
    params = cuba_params(neuron, torch.zeros(len(u)), 2, 1)
    spikes, state = cuba_step(state, torch.tensor(a6, dtype=torch.float64), params, ExactOps())
    return state.u.tolist(), state.v.tolist(), spikes.tolist()


def test_hand_computed_steps():
    """Values from lava-netx-facts.md: du=0 still decays, iDecay=0 does not, strict threshold, reset of v only."""
    zero = [0.0, 0.0, 0.0]
    assert _step([6400, -6400, 0], zero, zero, Neuron(1, 0, 1000))[0] == [6398, -6398, 0]  # rounded toward zero
    assert _step([6400, -6400, 0], zero, zero, Neuron(0, 0, 1000))[0] == [6400, -6400, 0]
    # v = u (no decay); threshold vth_mant=1 -> 64: v=64 stays, v=65 spikes and resets v, keeps u
    assert _step(zero, zero, [64, 65, 0], Neuron(4096, 4096, 1)) == ([64, 65, 0], [64, 0, 0], [0, 1, 0])
    # v decays by trunc(v * (4096 - 2048) / 4096) and adds u
    assert _step(zero, [1001, -1001, 7], [10, 0, 0], Neuron(4096, 2048, 1000)) == ([10, 0, 0], [510, -500, 3], [0, 0, 0])
