"""The .net reader: lava-dl's shipped files and NETFORMAT files parse as netx reads them; every malformed file is
refused with a NetFormatError (a UsageError: exit 2 in the CLI) that names the layer and the key."""
import h5py
import numpy as np
import pytest

from hw_sim.netfile import INTEGRATOR, Conv, Dense, NetFormatError, load_net
from tests.hw_sim_nets import LAVA_DL_NETS, dense, neuron, tgo_convnet, tgo_group, tgo_mlp, write_net
from tgo_errors import UsageError


def test_reads_lava_dl_mnist_net():
    net = load_net(LAVA_DL_NETS / "mnist.net")
    assert net.input_shape == (784,) and net.tgo is None and net.input_message_bits == 0
    assert [(layer.index, layer.shape) for layer in net.layers] == [(0, (784,)), (1, (512,)), (2, (512,)), (3, (10,))]
    assert net.layers[0].synapse is None and not net.layers[0].bias.any()  # netx ignores the input layer's bias
    assert isinstance(net.layers[1].synapse, Dense) and net.layers[1].synapse.weight.shape == (512, 784)
    hidden = net.layers[1].neuron
    assert (hidden.i_decay, hidden.v_decay, hidden.vth_mant, hidden.noise) == (4096, 123, 80, None)
    assert net.layers[3].neuron == INTEGRATOR
    assert net.offsets == (0, 1, 2, 3) and net.input_lag == 0 and net.window(16) == 19


def test_reads_lava_dl_tiny_net_conv_layers():
    net = load_net(LAVA_DL_NETS / "tiny.net")
    conv = net.layers[1].synapse
    assert isinstance(conv, Conv) and conv.weight.shape == (24, 3, 5, 5) and conv.stride == (2, 2)
    assert net.layers[1].shape == (24, 6, 6) and net.layers[2].shape == (36, 1, 1)
    with h5py.File(LAVA_DL_NETS / "tiny.net", "r") as handle:
        per_channel = handle["layer/1/bias"][()]
    assert np.array_equal(net.layers[1].bias[:, 2, 3], per_channel)  # per-channel bias over (C, H, W)


def test_reads_tgo_files(tmp_path):
    mlp = load_net(tgo_mlp(tmp_path / "mlp.net", timesteps=6))
    assert mlp.input_shape == (48,) and mlp.tgo.input_shape == (3, 4, 4) and mlp.input_lag == 1
    assert mlp.offsets == (0, 1, 2) and mlp.window(6) == 3 + 6 and mlp.readout_local_step == 6
    assert mlp.tgo.input_scale == 255 and mlp.tgo.input_message_bits == 8 and mlp.tgo.num_classes == 10
    noisy = load_net(tgo_mlp(tmp_path / "noisy.net", sigma=900, noise_seed=4))
    assert {(layer.neuron.noise.sigma, layer.neuron.noise.seed) for layer in noisy.layers[:-1]} == {(900, 4)}
    assert load_net(tgo_mlp(tmp_path / "delay.net", delay=2)).offsets == (0, 3, 4)
    conv = load_net(tgo_convnet(tmp_path / "conv.net"))
    assert conv.input_shape == (2, 7, 6) and [layer.index for layer in conv.layers] == [1, 3, 4]


def _edit(path, action):
    with h5py.File(path, "r+") as handle:
        action(handle)
    return path


def _set(key, value):
    def action(handle):
        del handle[key]
        handle.create_dataset(key, data=value)
    return action


def _delete(key):
    def action(handle):
        del handle[key]
    return action


def _link(key, link):
    def action(handle):
        del handle[key]
        handle[key] = link
    return action


def _declare(key, shape, dtype):
    """Replace `key` by a compressed dataset that declares `shape` but stores (almost) nothing."""
    def action(handle):
        del handle[key]
        handle.create_dataset(key, shape=shape, dtype=dtype, chunks=(1,) + tuple(shape[1:]), compression="gzip")
    return action


def _recurrent(weight_rec, delay=False):
    def action(handle):
        handle["layer/1/type"][0] = b"dense_rec"
        handle.create_dataset("layer/1/weight_rec", data=weight_rec)
        if delay:
            handle.create_dataset("layer/1/delay", data=np.ones(24))
    return action


def _rf_neurons(handle):
    handle["layer/0/neuron/type"][()] = "RF_IZ"
    for key, value in (("sinDecay", 1000), ("cosDecay", 3700)):
        handle.create_dataset(f"layer/0/neuron/{key}", data=value)


def _complex_weights(handle):
    """netx's ComplexDense layout: a 'weight' group with 'real' and 'imag'."""
    del handle["layer/1/weight"]
    for part in ("real", "imag"):
        handle.create_dataset(f"layer/1/weight/{part}", data=np.ones((24, 32)))


MLP_CASES = {  # edit of a valid tgo MLP file -> fragments the message must contain
    "layer gap": (_delete("layer/1"), ["/layer", "without gaps"]),
    "missing type": (_delete("layer/1/type"), ["layer 1", "missing key 'type'"]),
    "unsupported layer type": (_set("layer/1/type", np.array([b"pool"], "S10")), ["layer 1", "'pool'"]),
    "type not a string": (_set("layer/0/type", 3), ["layer 0", "'type'", "string"]),
    "unknown neuron type": (_set("layer/0/neuron/type", "RF_PHASE"), ["layer 0", "neuron/type", "'RF_PHASE'"]),
    "RF neurons behind real weights": (_rf_neurons, ["layer 0", "'weight'", "complex"]),
    "missing vThMant": (_delete("layer/1/neuron/vThMant"), ["layer 1", "'neuron/vThMant'"]),
    "negative iDecay": (_set("layer/0/neuron/iDecay", -5), ["layer 0", "'neuron/iDecay'", "-5"]),
    "vDecay above 4096": (_set("layer/1/neuron/vDecay", 5000), ["layer 1", "'neuron/vDecay'", "5000"]),
    "fractional vDecay": (_set("layer/1/neuron/vDecay", 12.5), ["layer 1", "'neuron/vDecay'", "integers"]),
    "messageBits": (lambda h: h.create_dataset("layer/1/neuron/messageBits", data=0),
                    ["layer 1", "'neuron/messageBits'"]),
    "vThMant array": (_set("layer/1/neuron/vThMant", [1, 2]), ["layer 1", "'neuron/vThMant'", "scalar"]),
    "weight shape": (_set("layer/1/weight", np.ones((24, 31))), ["layer 1", "'weight'", "(24, 31)", "in=32"]),
    "weight out of range": (_set("layer/1/weight", np.full((24, 32), 300)), ["layer 1", "'weight'", "300"]),
    "all-zero weight": (_set("layer/2/weight", np.zeros((10, 24))), ["layer 2", "'weight'", "all zero"]),
    "fractional weight": (_set("layer/0/weight", np.full((32, 48), 0.5)), ["layer 0", "'weight'", "integers"]),
    "bias out of range": (lambda h: h.create_dataset("layer/0/bias", data=np.full(32, 40000)), ["layer 0", "'bias'"]),
    "bias shape": (lambda h: h.create_dataset("layer/0/bias", data=np.ones(5)), ["layer 0", "'bias'", "(5,)"]),
    "delay shape": (lambda h: h.create_dataset("layer/1/delay", data=np.arange(5)), ["layer 1", "'delay'", "(5,)"]),
    "negative delay": (lambda h: h.create_dataset("layer/1/delay", data=np.full(24, -1)),
                       ["layer 1", "'delay'", "negative"]),
    "partial noise keys": (lambda h: h.create_dataset("layer/0/neuron/noise_sigma", data=10),
                           ["layer 0", "'neuron/noise_seed'"]),
    "readout with neuron": (lambda h: h["layer/0/neuron"].copy(h["layer/0/neuron"], h["layer/2"], "neuron"),
                            ["layer 2", "readout 'v'"]),
    "tgo version": (_set("tgo/version", 2), ["/tgo", "'version'", "2"]),
    "tgo missing timesteps": (_delete("tgo/timesteps"), ["/tgo", "'timesteps'"]),
    "tgo input scale beyond bits": (_set("tgo/input_scale", 300), ["/tgo", "'input_scale'", "300"]),
    "tgo input shape": (_set("tgo/input_shape", [3, 4, 5]), ["/tgo", "'input_shape'"]),
    "tgo classes": (_set("tgo/num_classes", 9), ["/tgo", "'num_classes'", "9"]),
    "tgo readout kind": (_set("tgo/readout", "spikes"), ["/tgo", "'readout'"]),
    "tgo readout step": (lambda h: h.create_dataset("tgo/readout_step", data=7), ["/tgo", "'readout_step'", "8"]),
    "tgo config json": (_set("tgo/config_json", "{oops"), ["/tgo", "'config_json'"]),
    "tgo config json not an object": (_set("tgo/config_json", "[1, 2]"), ["/tgo", "'config_json'", "list"]),
    # the file as a border (issue 11): no links, no dataset where a group belongs, sizes checked before reading
    "layer is a dataset": (_set("layer/1", np.zeros(3)), ["/layer", "'1'", "expected a group"]),
    "soft link": (_link("layer/1/weight", h5py.SoftLink("/layer/0/weight")), ["layer 1", "'weight'", "SoftLink"]),
    "soft link loop": (_link("layer/1/neuron", h5py.SoftLink("/layer/1/neuron")), ["layer 1", "'neuron'", "SoftLink"]),
    "external link": (_link("layer/0", h5py.ExternalLink("elsewhere.h5", "/layer/0")), ["/layer", "ExternalLink"]),
    "config json linked": (_link("tgo/config_json", h5py.SoftLink("/layer/0/type")), ["/tgo", "SoftLink"]),
    "weight memory bomb": (_declare("layer/1/weight", (10 ** 9, 64), "f4"),
                           ["layer 1", "'weight'", "(1000000000, 64)", "in=32"]),
    "first weight memory bomb": (_declare("layer/0/weight", (10 ** 9, 64), "f4"), ["layer 0", "'weight'", "declares"]),
    "4 GB type string": (_declare("layer/1/type", (10 ** 6,), "S4096"), ["layer 1", "'type'", "4096000000 bytes"]),
    "neuron count bomb": (_set("layer/2/shape", [10 ** 6, 10 ** 6, 1]), ["layer 2", "'shape'", "neurons"]),
    "dense_comp": (_set("layer/1/type", np.array([b"dense_comp"], "S10")), ["layer 1", "'dense_comp'"]),
    "complex weights into CUBA neurons": (_complex_weights, ["layer 1", "'weight'", "RF neurons"]),
    "recurrent weights out of range": (_recurrent(np.full((24, 24), 400)), ["layer 1", "'weight_rec'", "400"]),
    "recurrent layer with delays": (_recurrent(np.full((24, 24), 2), delay=True), ["layer 1", "'delay'", "recurrent"]),
}


@pytest.mark.parametrize("case", MLP_CASES)
def test_malformed_mlp_is_refused_naming_layer_and_key(tmp_path, case):
    action, fragments = MLP_CASES[case]
    path = _edit(tgo_mlp(tmp_path / "bad.net"), action)
    with pytest.raises(NetFormatError) as err:
        load_net(path)
    assert isinstance(err.value, UsageError) and str(path) in str(err.value)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_noise_with_unknown_generator_is_refused(tmp_path):
    path = _edit(tgo_mlp(tmp_path / "bad.net", sigma=10), _set("layer/1/neuron/noise_prng", "xorshift-v0"))
    with pytest.raises(NetFormatError, match=r"layer 1 .*'neuron/noise_prng'.*'xorshift-v0'"):
        load_net(path)


CONV_CASES = {
    "conv shape": (_set("layer/1/shape", [4, 5, 4]), ["layer 1", "'shape'", "(4, 4, 4)"]),
    "conv missing stride": (_delete("layer/1/stride"), ["layer 1", "'stride'"]),
    "conv groups": (_set("layer/1/groups", 2), ["layer 1", "groups=2"]),
    "conv delay": (lambda h: h.create_dataset("layer/1/delay", data=1), ["layer 1", "'delay'", "ignores"]),
    "conv weight out of range": (_set("layer/1/weight", np.full((4, 2, 3, 3), 2.0 ** 40)),
                                 ["layer 1", "'weight'", "exact"]),
    "missing input shape": (_delete("layer/0/shape"), ["layer 0", "'shape'"]),
}


@pytest.mark.parametrize("case", CONV_CASES)
def test_malformed_convnet_is_refused_naming_layer_and_key(tmp_path, case):
    action, fragments = CONV_CASES[case]
    with pytest.raises(NetFormatError) as err:
        load_net(_edit(tgo_convnet(tmp_path / "bad.net"), action))
    for fragment in fragments:
        assert fragment in str(err.value)


def test_dense_after_conv_needs_flatten(tmp_path):
    conv = {"type": "conv", "shape": [2, 2, 2], "weight": np.ones((2, 1, 2, 2)), "stride": [1, 1], "padding": [0, 0],
            "dilation": [1, 1], "groups": 1, "neuron": neuron()}
    layers = [{"type": "input", "shape": [1, 3, 3]}, conv, dense(3, np.ones((3, 8)))]
    with pytest.raises(NetFormatError, match=r"layer 2 .*needs a 'flatten' layer"):
        load_net(write_net(tmp_path / "bad.net", layers))


def test_conv_without_input_shape_is_refused(tmp_path):
    conv = {"type": "conv", "shape": [2, 2, 2], "weight": np.ones((2, 1, 2, 2)), "stride": [1, 1], "padding": [0, 0],
            "dilation": [1, 1], "groups": 1, "neuron": neuron()}
    with pytest.raises(NetFormatError, match=r"layer 0 .*conv layer needs a \(C, H, W\) input"):
        load_net(write_net(tmp_path / "bad.net", [conv]))


def test_missing_file_non_hdf5_and_empty_files_are_refused(tmp_path):
    with pytest.raises(NetFormatError, match="no such file"):
        load_net(tmp_path / "absent.net")
    with pytest.raises(NetFormatError, match="not a regular file"):
        load_net(tmp_path)
    (tmp_path / "text.net").write_text("import os; os.remove('x')\n")
    with pytest.raises(NetFormatError, match="not an HDF5 file"):
        load_net(tmp_path / "text.net")
    with h5py.File(tmp_path / "empty.net", "w") as handle:
        handle.create_group("tgo")
    with pytest.raises(NetFormatError, match="missing group 'layer'"):
        load_net(tmp_path / "empty.net")


def test_tgo_file_must_feed_its_input_to_a_synapse(tmp_path):
    layers = [{"type": "input", "shape": [48], "neuron": neuron()}, dense(10, np.ones((10, 48)))]
    with pytest.raises(NetFormatError, match=r"layer 0 .*input' layer may hold only 'shape'"):
        load_net(write_net(tmp_path / "bad.net", layers, tgo_group(4, (3, 4, 4), 10)))


def test_delays_are_read_as_netx_builds_them(tmp_path):
    """Axonal (out,), per-input (in,) and per-synapse delays; all clipped to [0, 62] once one exceeds 62."""
    rng = np.random.default_rng(0)
    axonal = np.array([3, 70, 5])
    layers = [dense(3, np.full((3, 4), 2.0), neuron(), delay=axonal),
              dense(2, np.full((2, 3), 2.0), neuron(), delay=np.array([1, 2, 4])),
              dense(2, np.full((2, 2), 2.0), neuron(), delay=rng.integers(2, 5, (2, 2)))]
    net = load_net(write_net(tmp_path / "delays.net", layers))
    first, second, third = net.layers
    assert first.delay == 3 and np.array_equal(first.spread, np.repeat([[0], [59], [2]], 4, axis=1))
    assert second.delay == 1 and np.array_equal(second.spread, np.tile([0, 1, 3], (2, 1)))
    assert third.delay + third.spread.min() == 2 and net.offsets == (3, 5, 8)
    assert net.window(1) == net.offsets[-1] + 1 + 1 + 59 + 3 + third.max_spread
