"""The batched simulator: batch- and order-independence, seeded noise, input encoding, readout, dtype paths,
error paths, and the mismatch finder. (Equality with Lava itself: test_hw_sim_lava.py.)"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hw_sim.compare import first_mismatch
from hw_sim.netfile import load_net
from hw_sim.simulator import encode_inputs, logits, predict, simulate
from tests.hw_sim_nets import dense, neuron, random_images, tgo_convnet, tgo_mlp, weights, write_net


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nets")
    return {"mlp": load_net(tgo_mlp(folder / "mlp.net")),
            "noisy": load_net(tgo_mlp(folder / "noisy.net", sigma=12000, noise_seed=1)),
            "noisy-same": load_net(tgo_mlp(folder / "noisy-same.net", sigma=12000, noise_seed=1)),
            "noisy-other": load_net(tgo_mlp(folder / "noisy-other.net", sigma=12000, noise_seed=2)),
            "silent-noise": load_net(tgo_mlp(folder / "silent.net", sigma=0, noise_seed=1)),
            "conv": load_net(tgo_convnet(folder / "conv.net", sigma=9000, noise_seed=3))}


def _inputs(net, count=8, seed=0):
    return encode_inputs(net, torch.from_numpy(random_images(count, net.tgo.input_shape, seed)))


def _same_spikes(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.spikes, b.spikes))


@pytest.mark.parametrize("name", ["mlp", "noisy", "conv"])
def test_results_do_not_depend_on_batch_size_or_order(nets, name):
    net = nets[name]
    x = _inputs(net)
    whole = simulate(net, x, record=True)
    assert all(0 < float(s.float().mean()) < 1 for s in whole.spikes[:-1])  # the hidden layers are active
    for k in range(len(x)):
        alone = simulate(net, x[k:k + 1], record=True)
        assert _same_spikes(alone, whole.select(slice(k, k + 1)))
        assert all(torch.equal(a, b[k:k + 1]) for a, b in zip(alone.v, whole.v))
    backwards = simulate(net, x.flip(0))
    assert all(torch.equal(a, b.flip(0)) for a, b in zip(backwards.spikes, whole.spikes))


def test_seed_fixes_the_noise_and_sigma_zero_is_deterministic(nets):
    x = _inputs(nets["mlp"])
    plain, noisy = simulate(nets["mlp"], x), simulate(nets["noisy"], x)
    assert _same_spikes(noisy, simulate(nets["noisy-same"], x))
    assert not _same_spikes(noisy, simulate(nets["noisy-other"], x))
    assert not _same_spikes(noisy, plain)
    assert _same_spikes(simulate(nets["silent-noise"], x), plain)


def test_encoding_rounds_half_to_even_and_clips(nets):
    net = nets["mlp"]
    x = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    x[0, 0, 0, :4] = torch.tensor([0.5, 1.5, -0.2, 2 / 255])  # 127.5 -> 128 (even), clipped to 255 and 0, 2
    spikes = encode_inputs(net, x)
    assert spikes.shape == (2, 6, 48) and spikes.dtype == torch.int32
    assert spikes[0, :, :4].tolist() == [[128, 255, 0, 2]] * 6
    assert torch.equal(encode_inputs(net, x.reshape(2, 48)), spikes)  # flat features are accepted too


def test_readout_is_the_last_layer_v_at_step_t(nets):
    net = nets["mlp"]
    run = simulate(net, _inputs(net), record=True)
    assert torch.equal(run.readout_v, run.v[-1])
    assert torch.equal(logits(net, run), run.v[-1][:, net.tgo.timesteps])
    assert not run.spikes[-1].any()  # the integrator never spikes
    # v integrates the T input steps, then only decayed hidden activity: it changes after step T
    assert not torch.equal(run.v[-1][:, net.tgo.timesteps], run.v[-1][:, net.tgo.timesteps - 1])


def test_predict_breaks_ties_toward_the_lowest_class():
    scores = torch.tensor([[3, 5, 5], [7, 7, 7], [-1, -2, -3], [0, 0, 9]])
    assert predict(scores).tolist() == [1, 0, 0, 2]


def test_float64_synapses_give_the_same_result(nets):
    """The float32 shortcut (exact below 2^24) agrees with the float64 path taken at lower matmul precision."""
    net = nets["conv"]
    x = _inputs(net)
    reference = simulate(net, x, record=True)
    torch.set_float32_matmul_precision("medium")
    try:
        other = simulate(net, x, record=True)
    finally:
        torch.set_float32_matmul_precision("highest")
    assert _same_spikes(reference, other) and all(torch.equal(a, b) for a, b in zip(reference.u, other.u))


def test_binary_synapse_counts_any_nonzero_input_as_one_spike(tmp_path):
    rng = np.random.default_rng(0)
    net = load_net(write_net(tmp_path / "netx.net", [dense(20, weights(rng, (20, 12), 60), neuron()),
                                                     dense(4, weights(rng, (4, 20), 60))]))
    x = torch.from_numpy(rng.integers(0, 2, (5, 6, 12)))
    assert net.input_message_bits == 0
    assert _same_spikes(simulate(net, x * 7), simulate(net, x))


def test_bad_inputs_are_refused(nets):
    net = nets["mlp"]
    with pytest.raises(ValueError, match="input shape"):
        simulate(net, torch.zeros(2, 6, 47, dtype=torch.int32))
    with pytest.raises(ValueError, match="do not fit a window of 6 steps"):
        simulate(net, torch.zeros(2, 6, 48, dtype=torch.int32), steps=6)


def test_first_mismatch_finds_the_earliest_lava_step(nets):
    net = nets["mlp"]
    run = simulate(net, _inputs(net), record=True)
    assert first_mismatch(net, run, run) is None
    other = simulate(net, _inputs(net), record=True)
    other.spikes[1][3, 2, 5] ^= True                # layer /layer/1 starts one step later: Lava step 3
    other.v[0][3, 4, 7] += 1                       # Lava step 4
    other.u[0][5, 0, 0] += 1                       # a later sample
    found = first_mismatch(net, run, other, sample_offset=10)
    assert (found.sample, found.step, found.layer, found.neuron, found.quantity) == (13, 3, 1, 5, "s")
    assert found.candidate == int(other.spikes[1][3, 2, 5]) and found.reference != found.candidate
    assert "sample 13, layer 1, neuron 5, step 3" in found.describe()


def test_simulator_runs_where_lava_is_not_installed():
    """hw_sim imports Lava only in lava, lava_runner, lava_record and lava_neuron (e.g. on a GPU box without Lava)."""
    code = ("import sys; sys.modules['lava'] = None\n"  # any `import lava...` now raises ImportError
            "import hw_sim.compare, hw_sim.report, hw_sim.simulator, torch\n"
            "from hw_sim.netfile import load_net\n"
            "from tests.hw_sim_nets import LAVA_DL_NETS\n"
            "net = load_net(LAVA_DL_NETS / 'mnist.net')\n"
            "run = hw_sim.simulator.simulate(net, torch.ones(1, 2, 784, dtype=torch.int32) * 300)\n"
            "assert run.spikes[0].any() and not [m for m in sys.modules if m.startswith('lava.')]\n")
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_recurrent_weights_are_prepared_once(tmp_path, monkeypatch):
    """A dense_rec layer converts its recurrent weights to the product dtype once, not on every step (on CUDA
    that was a host-to-device copy per step), and its own spikes still feed back."""
    from hw_sim import products
    rng = np.random.default_rng(4)
    layers = [{"type": "input", "shape": [12], "neuron": neuron()},
              dense(16, weights(rng, (16, 12), 60), neuron(), type="dense_rec", weight_rec=weights(rng, (16, 16), 90)),
              dense(5, weights(rng, (5, 16), 60))]
    recurrent = load_net(write_net(tmp_path / "rec.net", layers))
    layers[1]["weight_rec"] = np.zeros((16, 16), np.float32)
    silent = load_net(write_net(tmp_path / "zero.net", layers))
    x = torch.randint(0, 250, (4, 30, 12), generator=torch.Generator().manual_seed(0), dtype=torch.int32)
    calls = []
    prepare = products.prepare
    monkeypatch.setattr(products, "prepare", lambda *args: calls.append(args[0].shape) or prepare(*args))
    run = simulate(recurrent, x)
    assert sorted(calls) == [(5, 16), (16, 12), (16, 16)]  # 33 steps, one preparation per weight matrix
    assert run.spikes[1].any() and not torch.equal(run.spikes[1], simulate(silent, x).spikes[1])
