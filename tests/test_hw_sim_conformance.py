"""hw_sim equals Lava, spike for spike and state for state, on every `.net` shipped with lava-dl's netx tests
(against their ground-truth arrays where they ship) and on networks exported here by lava-dl's own slayer
blocks (CUBA with axonal delays, recurrent, conv -> flatten -> dense, sigma-delta); hidden layers must be
active so that a silent network cannot pass. One sample, few steps per Lava run."""
from dataclasses import replace
from pathlib import Path
from typing import Dict

import h5py
import numpy as np
import pytest
import torch

pytest.importorskip("lava.lib.dl.netx")

from lava.lib.dl import netx, slayer  # noqa: E402

from hw_sim.compare import first_mismatch  # noqa: E402
from hw_sim.lava_runner import run_lava  # noqa: E402
from hw_sim.netfile import NetFile, NetFormatError, SigmaDeltaNeuron, load_net  # noqa: E402
from hw_sim.simulator import simulate  # noqa: E402
from tests.hw_sim_nets import LAVA_DL_NETS, write_net  # noqa: E402

GTS = LAVA_DL_NETS / "gts"
CUBA = {"threshold": 0.5, "current_decay": 0.25, "voltage_decay": 0.03, "requires_grad": False}
SDNN = {"threshold": 0.05, "activation": torch.relu, "requires_grad": False}


def _with_input_bias(net: NetFile, lava_bias: np.ndarray) -> NetFile:
    """`net` with its netx input layer driven by a bias given in Lava's (W, H, C) order, as lava-dl's tests set it."""
    layers = list(net.layers)
    layers[0] = replace(layers[0], bias=lava_bias.astype(np.int64).T.copy())
    return replace(net, layers=tuple(layers))


def _local(net: NetFile, k: int, lava_series: np.ndarray, steps: int) -> np.ndarray:
    """A Lava-step series [T, ...] of layer k cut to the layer's local steps 0..steps-1."""
    return lava_series[net.offsets[k]:net.offsets[k] + steps]


# --- ground truths shipped with lava-dl ---------------------------------------------------------------------
def test_tiny_net_matches_lava_dl_ground_truth():
    net = _with_input_bias(load_net(LAVA_DL_NETS / "tiny.net"), np.load(GTS / "tinynet/input_bias.npy"))
    run = simulate(net, torch.zeros((1, 17) + net.input_shape, dtype=torch.int32), steps=17)
    truth = np.load(GTS / "tinynet/output.npy")[0]  # [W, H, C, steps]; lava-dl's test reads index t at Lava step t + 1
    expected = truth.T.reshape(truth.shape[-1], -1)[1:]
    got = run.spikes[-1][0].reshape(17, -1).numpy()[:len(expected)]
    assert expected.sum() > 50 and np.array_equal(got, expected)


def test_pilotnet_lif_matches_loihi_ground_truth():
    """Spikes of every layer and u of every spiking layer, over the first 10 steps of the recording's 16-step
    reset window (the recordings are from Loihi 2 hardware, whose v read-out differs from Lava's Python model
    and is not compared)."""
    folder = GTS / "pilotnet_lif"
    net = _with_input_bias(load_net(folder / "network.net"), np.load(folder / "image.npy"))
    window = 10
    run = simulate(net, torch.zeros((1, window) + net.input_shape, dtype=torch.int32), steps=window, record=True)
    names = ["input"] + [f"conv-{i}" for i in range(5)] + [f"fc-{i}" for i in range(4)]
    compared = 0
    for k, name in enumerate(names[:-1]):
        for quantity, values in (("", run.spikes[k]), ("-u", run.u[k])):
            path = folder / f"{name}{quantity}.npy"
            if k == 0 and quantity or not path.exists():
                continue
            truth = np.load(path)
            truth = _local(net, k, truth.T.reshape(truth.shape[-1], -1), window)
            got = values[0].reshape(window, -1).numpy()[:len(truth)].astype(truth.dtype)
            assert np.array_equal(got, truth), f"{name}{quantity}"
            compared += 1
    assert compared == 17 and all(bool(s.any()) for s in run.spikes[:-2])


def test_ntidigits_axonal_delays_match_lava_dl_ground_truth():
    """3000 steps through two dense layers with per-neuron delays up to 62 (the file's average layer is cut,
    as in lava-dl's test); every output spike of lava-dl's recording (index t = Lava step t + 1)."""
    net = load_net(GTS / "ntidigits/ntidigits.net", num_layers=5)
    assert [layer.max_spread for layer in net.layers] == [62, 62, 0] and net.layers[0].spread[:, 0].min() == 0
    inputs, truth = np.load(GTS / "ntidigits/input.npy"), np.load(GTS / "ntidigits/output.npy")
    steps = inputs.shape[1]
    x = torch.from_numpy(inputs.T.reshape((1, steps) + net.input_shape).astype(np.int32))
    run = simulate(net, x, steps=steps + 1)
    expected = _local(net, 2, truth.T[1:], steps)
    assert expected.sum() > 20000
    assert np.array_equal(run.spikes[-1][0, :len(expected)].numpy(), expected)


# --- networks exported by lava-dl's slayer blocks -----------------------------------------------------------
def _export(path: Path, blocks, sample: torch.Tensor, input_shape=None, delays: bool = False) -> Path:
    """Run `blocks` once (slayer sets shapes then), optionally give them integer axonal delays, and export them
    as the lava-dl tutorials do; `input_shape` prepends a shape-only netx input layer."""
    torch.manual_seed(0)
    with torch.no_grad():
        for block in blocks:
            sample = block(sample)
        for block in blocks:
            if delays:
                block.delay.delay.data = torch.randint(0, 4, block.delay.delay.shape).float()
    with h5py.File(path, "w") as handle:
        group = handle.create_group("layer")
        first = 0
        if input_shape is not None:
            group.create_group("0").create_dataset("type", (1,), "S10", [b"input"])
            group["0"].create_dataset("shape", data=np.array(input_shape))
            first = 1
        for i, block in enumerate(blocks):
            block.export_hdf5(group.create_group(f"{i + first}"))
    return path


def _slayer_delay(path: Path) -> Path:
    torch.manual_seed(1)
    blocks = [slayer.block.cuba.Dense(CUBA, 10, 8, delay=True, weight_scale=3),
              slayer.block.cuba.Dense(CUBA, 8, 4, delay=True, weight_scale=3)]
    return _export(path, blocks, torch.rand(1, 10, 5), delays=True)


def _slayer_recurrent(path: Path) -> Path:
    torch.manual_seed(2)
    blocks = [slayer.block.cuba.Recurrent(CUBA, 10, 8, weight_scale=3),
              slayer.block.cuba.Dense(CUBA, 8, 4, weight_scale=3)]
    return _export(path, blocks, torch.rand(1, 10, 5))


def _slayer_conv(path: Path) -> Path:
    torch.manual_seed(3)
    blocks = [slayer.block.cuba.Conv(CUBA, 2, 4, 3, padding=1, weight_scale=3), slayer.block.cuba.Flatten(),
              slayer.block.cuba.Dense(CUBA, 4 * 6 * 6, 5, weight_scale=3)]
    return _export(path, blocks, torch.rand(1, 2, 6, 6, 5), input_shape=(2, 6, 6))


def _slayer_sigma_delta(path: Path) -> Path:
    torch.manual_seed(4)
    blocks = [slayer.block.sigma_delta.Input(SDNN), slayer.block.sigma_delta.Dense(SDNN, 10, 8),
              slayer.block.sigma_delta.Output(SDNN, 8, 4)]
    return _export(path, blocks, torch.rand(1, 10, 5))


def _netx_synapse_delays(path: Path) -> Path:
    """Two dense layers: one delay per synapse (out, in), then one per input (in,)."""
    rng = np.random.default_rng(7)
    hidden = {"type": "CUBA", "iDecay": 1024, "vDecay": 256, "vThMant": 60}
    layers = [{"type": "dense", "shape": [12], "weight": rng.integers(-80, 120, (12, 10)) * 2.0,
               "delay": rng.integers(0, 4, (12, 10)), "neuron": hidden},
              {"type": "dense", "shape": [4], "weight": rng.integers(-60, 120, (4, 12)) * 2.0,
               "delay": rng.integers(1, 4, 12), "neuron": hidden}]
    return write_net(path, layers)


def _netx_resonators(path: Path) -> Path:
    """Complex weights into RF_IZ neurons (netx's ComplexDense), then a CUBA layer."""
    rng = np.random.default_rng(8)
    layers = [{"type": "dense", "shape": [6], "neuron": {"type": "RF_IZ", "sinDecay": 1000, "cosDecay": 3700,
                                                          "vThMant": 40}},
              {"type": "dense", "shape": [3], "weight": rng.integers(-100, 120, (3, 6)) * 2.0,
               "neuron": {"type": "CUBA", "iDecay": 1024, "vDecay": 256, "vThMant": 60}}]
    write_net(path, layers)
    with h5py.File(path, "r+") as handle:
        for part in ("real", "imag"):
            handle.create_dataset(f"layer/0/weight/{part}", data=rng.integers(-100, 120, (6, 5)) * 2.0)
    return path


def _binary(net: NetFile, steps: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return (torch.rand((1, steps) + net.input_shape, generator=g) < 0.4).to(torch.int32)


def _graded(net: NetFile, steps: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(6)
    return torch.randint(0, 300, (1, steps) + net.input_shape, generator=g, dtype=torch.int32) * _binary(net, steps)


def _pilotnet_sdnn_input(net: NetFile, steps: int) -> torch.Tensor:
    """lava-dl's PilotNet frame ([W, H, C, 1], Lava order) cut to the network's width, for `steps` steps."""
    lava_input = np.load(GTS / "pilotnet_sdnn/input.npy")[:net.input_shape[2]]
    return torch.from_numpy(lava_input.T.copy()).unsqueeze(0).expand(1, steps, *net.input_shape)


CASES: Dict[str, tuple] = {  # name: (write or locate the .net, input maker, input steps)
    "lava-dl pilotnet_sdnn square_network.net (SDNN conv, bias, strides, dilation)":
        (lambda d: GTS / "pilotnet_sdnn/square_network.net", _pilotnet_sdnn_input, 2),
    "slayer cuba Dense with axonal delays": (_slayer_delay, _binary, 12),
    "netx delays per synapse and per input": (_netx_synapse_delays, _binary, 8),
    "slayer cuba Recurrent (dense_rec)": (_slayer_recurrent, _binary, 12),
    "slayer cuba Conv -> Flatten -> Dense": (_slayer_conv, _binary, 8),
    "slayer sigma_delta Input -> Dense -> Output": (_slayer_sigma_delta, _graded, 10),
    "netx complex weights into RF_IZ neurons": (_netx_resonators, _binary, 12),
}


@pytest.mark.parametrize("case", CASES)
def test_hw_sim_equals_lava(tmp_path, case):
    locate, make_inputs, steps = CASES[case]
    net = load_net(locate(tmp_path / "net.net"))
    x = make_inputs(net, steps)
    lava, sim = run_lava(net, x, record=True), simulate(net, x, record=True)
    mismatch = first_mismatch(net, lava, sim)
    assert mismatch is None, mismatch.describe()
    assert all(bool(s.any()) for s in lava.spikes[:-1]), "every hidden layer must be active for the test to bite"
    assert bool(lava.spikes[-1].any()) or isinstance(net.layers[-1].neuron, SigmaDeltaNeuron)


def test_slayer_features_reach_the_reader(tmp_path):
    """The slayer exports above use the vocabulary they are meant to test."""
    delay = load_net(_slayer_delay(tmp_path / "delay.net"))
    assert all(layer.spread is not None for layer in delay.layers)
    assert load_net(_slayer_recurrent(tmp_path / "rec.net")).layers[0].recurrent.shape == (8, 8)
    kinds = [layer.neuron.kind for layer in load_net(_slayer_sigma_delta(tmp_path / "sd.net")).layers]
    assert kinds == ["delta", "sigma_delta", "sigma"]  # slayer's Output block writes 'sigma_output'


def test_pilotnet_sdnn_output_matches_lava_dl_ground_truth():
    net = load_net(GTS / "pilotnet_sdnn/network.net")
    run = simulate(net, _pilotnet_sdnn_input(net, 1), steps=1)
    truth = np.load(GTS / "pilotnet_sdnn/output.npy")[0]  # Lava steps 0..8 of the sigma output
    assert truth[net.offsets[-1]] != 0 and run.spikes[-1][0, 0, 0] == truth[net.offsets[-1]]


def test_dense_after_conv_without_flatten_is_refused_like_netx(tmp_path):
    conv = {"type": "conv", "shape": [2, 2, 2], "weight": np.full((2, 1, 2, 2), 2.0), "stride": [1, 1],
            "padding": [0, 0], "dilation": [1, 1], "groups": 1,
            "neuron": {"type": "CUBA", "iDecay": 1024, "vDecay": 128, "vThMant": 64}}
    path = write_net(tmp_path / "noflat.net", [{"type": "input", "shape": [1, 3, 3]}, conv,
                                               {"type": "dense", "shape": [3], "weight": np.full((3, 8), 2.0)}])
    with pytest.raises(NetFormatError, match=r"layer 2 .*'type'.*needs a 'flatten' layer"):
        load_net(path)
    with pytest.raises(AssertionError, match="incompatible"):
        netx.hdf5.Network(net_config=str(path))
