"""hw_sim equals Lava's fixed-point simulator spike for spike and state for state: every spike, u and v of every
layer at every step, for several samples run back to back in one Lava run (states reset between samples)."""
import numpy as np
import pytest
import torch

pytest.importorskip("lava.lib.dl.netx")

from hw_sim.compare import first_mismatch  # noqa: E402
from hw_sim.lava_runner import FixedPtRunConfig, run_lava  # noqa: E402
from hw_sim.netfile import Layer, NetFile, Neuron, Noise, load_net  # noqa: E402
from hw_sim.prng import NAME  # noqa: E402
from hw_sim.simulator import encode_inputs, logits, simulate  # noqa: E402
from tests.hw_sim_nets import (LAVA_DL_NETS, dense, neuron, random_images, tgo_convnet, tgo_mlp, weights,  # noqa: E402
                               write_net)

SAMPLES = 3


def _random_spikes(net: NetFile, steps: int, high: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    values = torch.randint(0, high, (SAMPLES, steps) + net.input_shape, generator=g, dtype=torch.int32)
    return values * (torch.rand(values.shape, generator=g) < 0.5)


def _netx_binary_mlp(path):
    rng = np.random.default_rng(1)
    return write_net(path, [dense(40, weights(rng, (40, 30), 60), neuron(2048, 1024, 100)),
                            dense(6, weights(rng, (6, 40), 60))])


def _netx_grouped_conv(path):
    """input (4, 9, 8) -> conv groups 2, dilation (2, 1), padding (1, 2), stride (1, 2), per-channel bias -> flatten
    -> dense 12 -> readout 3; binary input spikes (input_message_bits 0)."""
    rng = np.random.default_rng(2)
    conv = {"type": "conv", "shape": [6, 7, 5], "weight": weights(rng, (6, 2, 3, 3), 20), "stride": [1, 2],
            "padding": [1, 2], "dilation": [2, 1], "groups": 2, "bias": rng.integers(-30, 30, 6),
            "neuron": neuron(3000, 800, 150)}
    return write_net(path, [{"type": "input", "shape": [4, 9, 8]}, conv, {"type": "flatten"},
                            dense(12, weights(rng, (12, 210), 40), neuron()), dense(3, weights(rng, (3, 12), 60))])


CASES = {  # name: (write or locate the .net, input spikes for it)
    "lava-dl mnist.net": (lambda d: LAVA_DL_NETS / "mnist.net", lambda net: _random_spikes(net, 6, 300)),
    "lava-dl tiny.net (conv, bias)": (lambda d: LAVA_DL_NETS / "tiny.net", lambda net: _random_spikes(net, 6, 60)),
    "netx dense, binary input": (lambda d: _netx_binary_mlp(d / "netx.net"), lambda net: _random_spikes(net, 5, 4)),
    "netx conv: groups, dilation, padding, bias": (lambda d: _netx_grouped_conv(d / "conv.net"),
                                                   lambda net: _random_spikes(net, 5, 2)),
    "tgo MLP": (lambda d: tgo_mlp(d / "mlp.net"), None),
    "tgo MLP with delay": (lambda d: tgo_mlp(d / "delay.net", delay=2), None),
    "tgo conv-flatten-dense": (lambda d: tgo_convnet(d / "conv.net"), None),
    "tgo conv, stochastic conv layer": (lambda d: tgo_convnet(d / "convn.net", sigma=9000, noise_seed=5), None),
}


def _tgo_inputs(net: NetFile) -> torch.Tensor:
    return encode_inputs(net, torch.from_numpy(random_images(SAMPLES, net.tgo.input_shape)))


@pytest.mark.parametrize("case", CASES)
def test_hw_sim_equals_lava_state_for_state(tmp_path, case):
    locate, make_inputs = CASES[case]
    net = load_net(locate(tmp_path))
    x = (make_inputs or _tgo_inputs)(net)
    lava, sim = run_lava(net, x, record=True), simulate(net, x, record=True)
    mismatch = first_mismatch(net, lava, sim)
    assert mismatch is None, mismatch.describe()
    assert all(bool(s.any()) for s in lava.spikes[:-1]), "every hidden layer must spike for the test to bite"
    assert lava.spikes[0].shape == (SAMPLES, net.window(x.shape[1])) + net.layers[0].shape
    if net.tgo is not None:
        assert torch.equal(logits(net, lava), logits(net, sim)) and logits(net, lava).abs().sum() > 0


def test_stochastic_layers_same_seed_same_spikes_other_seed_differs(tmp_path):
    nets = [load_net(tgo_mlp(tmp_path / f"seed{seed}.net", sigma=12000, noise_seed=seed)) for seed in (1, 1, 2)]
    x = _tgo_inputs(nets[0])
    runs = [run_lava(net, x, record=True) for net in nets]
    for net, run in zip(nets, runs):
        assert first_mismatch(net, run, simulate(net, x, record=True)) is None
    assert first_mismatch(nets[0], runs[0], runs[1]) is None
    assert first_mismatch(nets[0], runs[0], runs[2]) is not None


def test_stochastic_lif_process_on_its_own(tmp_path):
    """Our process and model outside netx: Lava finds the model in hw_sim/lava_neuron/, neurons are indexed in
    file order (C, H, W) while Lava holds (W, H, C), and the noise counter restarts with every sample window."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc import io

    from hw_sim.lava_neuron.process import StochasticLIF

    shape, window, layer = (2, 3, 4), 7, 5
    cell = Neuron(1024, 256, 300, Noise(sigma=15000, seed=77, prng=NAME))
    x = torch.from_numpy(np.random.default_rng(3).integers(0, 400, (1, window) + shape).astype(np.int32))
    lif = StochasticLIF(shape=shape[::-1], du=cell.i_decay - 1, dv=cell.v_decay, vth=cell.vth_mant, bias_mant=0,
                        bias_exp=6, reset_interval=window, reset_offset=1, noise_sigma=cell.noise.sigma,
                        noise_seed=cell.noise.seed, noise_layer=layer)
    data = np.concatenate([x[0].numpy()] * 2)  # the same sample twice: [2 * window, *shape]
    source, sink = io.source.RingBuffer(data=data.T), io.sink.RingBuffer(shape=shape[::-1], buffer=2 * window)
    source.s_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)
    try:
        lif.run(condition=RunSteps(num_steps=2 * window), run_cfg=FixedPtRunConfig({}))
        spikes = torch.from_numpy(sink.data.get().T.astype(bool))  # [2 * window, *shape]
    finally:
        lif.stop()
    net = NetFile(tmp_path, shape, (Layer(layer, None, shape, cell, np.zeros(shape, np.int64), 0),), None)
    expected = simulate(net, x).spikes[0][0]
    assert expected.any() and not expected.all()
    assert torch.equal(spikes[:window], expected) and torch.equal(spikes[window:], expected)
    plain = simulate(NetFile(tmp_path, shape, (Layer(layer, None, shape, Neuron(1024, 256, 300), net.layers[0].bias,
                                                     0),), None), x).spikes[0][0]
    assert not torch.equal(plain, expected)
