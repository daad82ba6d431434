"""One integer step per neuron type: the sigma-delta step against Lava's own fixed-point models driven directly,
and the CUBA step shared by the simulator, the differentiable twin and the diagnostics."""
import numpy as np
import pytest
import torch

from hw_sim.netfile import load_net
from hw_sim.neurons import cuba
from hw_sim.neurons.sigma_delta import SigmaDeltaState, sigma_delta_params, sigma_delta_step
from hw_sim.simulator import encode_inputs, logits, pre_spike_potentials, simulate
from robust.twin import QuantizedTwin
from hw_sim.fixed_point import UV_LIMIT
from tests.hw_sim_nets import dense, neuron, random_images, tgo_convnet, tgo_group, tgo_mlp, write_net

sdn_models = pytest.importorskip("lava.proc.sdn.models")
sdn_process = pytest.importorskip("lava.proc.sdn.process")


def _lava_sigma_delta(kind: str, vth: int, bias: np.ndarray, inputs: np.ndarray, cum_error: bool):
    """Lava's fixed-point Delta / SigmaDelta / Sigma model, step by step, with netx's exponents (6, 6)."""
    n = inputs.shape[1]
    if kind == "sigma":
        model = sdn_models.PySigmaModelFixed({})
    elif kind == "delta":
        model = sdn_models.PyDeltaModelFixed({})
    else:
        model = sdn_models.PySigmaDeltaModelFixed({"act_mode": sdn_process.ActivationMode.RELU})
        model.bias = (bias * (1 << 12)).astype(np.int32)
    model.sigma = np.zeros(n, np.int32)
    if kind != "sigma":
        model.act, model.residue, model.error = (np.zeros(n, np.int32) for _ in range(3))
        model.vth, model.spike_exp, model.state_exp, model.cum_error = vth << 12, 6, 6, cum_error
    outputs, sigmas = [], []
    for a in inputs.astype(np.int32):
        if kind == "sigma":
            out = model.sigma_dynamics(a)
            model.sigma = out
        elif kind == "delta":
            scaled = np.left_shift(a, 12)
            out = np.right_shift(model.delta_dynamics(scaled), 6)
            model.act = scaled
        else:
            out = np.right_shift(model.dynamics(a), 6)
        outputs.append(np.array(out, copy=True))
        sigmas.append(model.sigma.copy())
    return np.stack(outputs), np.stack(sigmas)


@pytest.mark.parametrize("kind", ["delta", "sigma_delta", "sigma"])
@pytest.mark.parametrize("cum_error", [False, True])
def test_sigma_delta_step_equals_lavas_models(kind, cum_error):
    rng = np.random.default_rng(3)
    scale = 40000 if kind == "sigma_delta" else 3000  # sigma-delta sends when the accumulated change reaches 5 << 12
    inputs = rng.integers(-scale, scale, (40, 32)) * (rng.random((40, 32)) < 0.6)
    bias = rng.integers(-200, 200, 32)
    vth = 5
    expected, expected_sigma = _lava_sigma_delta(kind, vth, bias, inputs, cum_error)
    params = sigma_delta_params(kind, vth, torch.from_numpy(bias))._replace(cum_error=cum_error)
    state, got, sigma = SigmaDeltaState.zeros(torch.zeros(32)), [], []
    for a in torch.from_numpy(inputs).double():
        out, state = sigma_delta_step(state, a, params)
        got.append(out.numpy().copy())
        sigma.append(state.sigma.numpy().copy())
    assert np.array_equal(np.stack(got), expected)
    assert np.array_equal(np.stack(sigma), expected_sigma)
    sent = (expected != 0).mean()
    assert 0.05 < sent < (1.0 if kind == "sigma" else 0.95), f"the case must send and hold back ({sent:.2f})"


@pytest.mark.parametrize("maker", [tgo_mlp, tgo_convnet])
@pytest.mark.parametrize("sigma", [None, 9000])
def test_twin_forward_equals_hw_sim(tmp_path, maker, sigma):
    net = load_net(maker(tmp_path / "net.net", sigma=sigma, noise_seed=4))
    x = torch.from_numpy(random_images(6, net.tgo.input_shape))
    run = simulate(net, encode_inputs(net, x))
    assert all(bool(s.any()) for s in run.spikes[:-1]), "hidden layers must spike for the comparison to bite"
    twin_logits = QuantizedTwin(net)(x)
    assert torch.equal(twin_logits, logits(net, run).double())


def test_twin_wraps_conv_sums_as_hw_sim(tmp_path):
    """A conv whose sums pass 24 bits: the twin's exact products wrap them as Lava and hw_sim do."""
    w = np.full((2, 16, 3, 3), 254.0, dtype=np.float32)
    w[1, :8] = -256.0
    conv = {"type": "conv", "shape": [2, 3, 3], "weight": w, "stride": [1, 1], "padding": [0, 0],
            "dilation": [1, 1], "groups": 1, "neuron": neuron()}
    layers = [{"type": "input", "shape": [16, 5, 5]}, conv, {"type": "flatten"},
              dense(3, np.full((3, 18), 60.0, dtype=np.float32))]
    net = load_net(write_net(tmp_path / "wrap.net", layers, tgo_group(4, (16, 5, 5), 3)))
    x = torch.from_numpy(np.concatenate([np.ones((1, 16, 5, 5)), random_images(3, (16, 5, 5))]))
    assert 144 * 254 * 255 >= UV_LIMIT, "the all-ones image must wrap the first channel's sums"
    run = simulate(net, encode_inputs(net, x))
    assert torch.equal(QuantizedTwin(net)(x), logits(net, run).double())


def test_pre_spike_potentials_are_the_steps_potential(tmp_path):
    """Where a neuron spiked, the pre-reset v exceeds the threshold; elsewhere it is the recorded v."""
    net = load_net(tgo_convnet(tmp_path / "conv.net"))
    run = simulate(net, encode_inputs(net, torch.from_numpy(random_images(4, net.tgo.input_shape))), record=True)
    for k, layer in enumerate(net.layers[:-1]):
        before = pre_spike_potentials(layer, run.u[k], run.v[k], run.spikes[k])
        assert run.spikes[k].any()
        assert bool((before[run.spikes[k]] > layer.neuron.vth_mant << 6).all())
        assert torch.equal(before[~run.spikes[k]], run.v[k][~run.spikes[k]])
