"""The Lava-native loader (`hw_sim.lava.load_network`): the example in examples/lava_native.py runs as written
and equals hw_sim spike for spike and logit for logit with the threshold noise on."""
import runpy
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

pytest.importorskip("lava.lib.dl.netx")

from hw_sim.netfile import deterministic_net, load_net  # noqa: E402
from hw_sim.simulator import encode_inputs, logits, simulate  # noqa: E402
from tgo_errors import UsageError  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lava_native.py"


def test_readme_example_equals_hw_sim_with_noise_on(exported_runs, monkeypatch, capsys):
    model = exported_runs["tgo"][1] / "model.net"
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), str(model)])
    ran = runpy.run_path(str(EXAMPLE), run_name="__main__")
    net = load_net(model)
    assert net.layers[0].neuron.noise is not None and net.layers[0].neuron.noise.sigma > 0
    x = encode_inputs(net, torch.from_numpy(ran["images"]))
    sim = simulate(net, x)
    lava_spikes = torch.from_numpy(ran["spikes"].T.astype(bool)).reshape(sim.spikes[0].shape)
    assert torch.equal(lava_spikes, sim.spikes[0]) and lava_spikes.any()
    assert torch.equal(torch.from_numpy(np.stack(ran["logits"]).astype(np.int64)), logits(net, sim))
    assert not torch.equal(simulate(deterministic_net(net), x).spikes[0], sim.spikes[0])  # the noise bites
    assert "classes:" in capsys.readouterr().out


def test_noisy_layers_are_stochastic_lif_with_vars_and_plain_netx_ignores_them(exported_runs):
    from lava.lib.dl import netx
    from lava.proc.lif.process import LIFReset

    from hw_sim.lava import load_network
    from hw_sim.lava_neuron.process import GENERATORS, StochasticLIF

    model = exported_runs["tgo"][1] / "model.net"
    net = load_network(model)
    with h5py.File(model, "r") as fh:
        sigma, seed = int(fh["layer/0/neuron/noise_sigma"][()]), int(fh["layer/0/neuron/noise_seed"][()])
    hidden, readout = net.layers[0].neuron, net.layers[-1].neuron
    assert isinstance(net, netx.hdf5.Network) and isinstance(hidden, StochasticLIF)
    assert type(readout) is LIFReset  # the deterministic readout stays netx's neuron
    assert (hidden.noise_sigma.init, hidden.noise_seed.init, hidden.noise_layer.init) == (sigma, seed, 0)
    assert hidden.noise_prng.init == GENERATORS["tgo-hash32-gauss-v1"]
    assert net.reset_interval == load_net(model).window(load_net(model).tgo.timesteps)
    plain = netx.hdf5.Network(net_config=str(model))
    assert not any(isinstance(block.neuron, StochasticLIF) for block in plain.layers)


def test_noise_needs_a_reset_interval_without_tgo_metadata(tmp_path):
    from hw_sim.lava import load_network
    from tests.hw_sim_nets import tgo_mlp

    path = tgo_mlp(tmp_path / "n.net", sigma=900, noise_seed=3)
    with h5py.File(path, "a") as fh:
        del fh["tgo"]
    with pytest.raises(UsageError, match="reset_interval"):
        load_network(path)
