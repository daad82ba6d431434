"""Deep conv SNNs on Loihi: sum pooling and batch norm export exactly, residual nets refuse with the reason,
the neuron stays float32 under autocast, and a narrow vgg11 on CIFAR-format files crosses the whole bridge."""
import pickle

import numpy as np
import pytest
import torch

from export.network import describe_network
from tests.conftest import digits_config, train_quietly
from tgo_errors import UsageError
from train.config import ExperimentConfig, ModelConfig, NeuronConfig, apply_method
from train.data import load_dataset
from train.models import build_model
from train.neuron import LIFState, noisy_lif_step


def _model(arch: str, shape, **model):
    torch.manual_seed(0)
    return build_model(ModelConfig(arch=arch, timesteps=4, **model), NeuronConfig(), shape, 10)


def _randomize_norms(model):
    for lif in model.lif_layers():
        if lif.norm is not None:
            lif.norm.weight.data.uniform_(5.0, 15.0)
            lif.norm.bias.data.uniform_(-0.5, 0.5)
            lif.norm.running_mean.uniform_(-0.2, 0.2)
            lif.norm.running_var.uniform_(0.5, 2.0)


def test_wrn16_refuses_export_naming_the_limit():
    with pytest.raises(UsageError, match=r"residual sum needs two synapses into one neuron group.*netx 0\.6\.0"):
        describe_network(_model("wrn16", (3, 16, 16)), (3, 16, 16))


def test_pooling_is_a_fixed_depthwise_conv_and_batch_norm_folds_exactly():
    model = _model("pooled", (1, 8, 8), hidden=[3, 4]).eval()
    _randomize_norms(model)
    layers = describe_network(model, (1, 8, 8))
    assert [(l.kind, l.groups, l.bias is not None) for l in layers] == [
        ("conv", 1, True), ("conv", 3, True), ("conv", 1, True), ("conv", 4, True), ("dense", 1, False)]
    pool, gain = layers[1], model.body[3].affine(torch.ones(1, 1, 3, 1, 1))[0].flatten()
    assert pool.stride == (2, 2) and torch.allclose(pool.weight, gain.view(3, 1, 1, 1).expand(3, 1, 2, 2))
    assert not any(p.requires_grad for p in model.body[2].parameters())
    # the folded first layer (weights x BN scale, bias into v) reproduces the float model's potentials
    x = torch.rand(5, 1, 8, 8)
    lif = model.lif_layers()[0]
    with torch.no_grad():
        model.run(x)
        current = layers[0].apply(x)
        state = LIFState(torch.zeros_like(current), torch.zeros_like(current))
        for t in range(4):
            _, state, v = noisy_lif_step(current, state, lif.syn_decay, lif.mem_decay, lif.v_th, "superspike", 2.0,
                                         layers[0].bias.view(-1, 1, 1))
            assert torch.allclose(v, lif.potentials[t], atol=1e-5)


def _bf16_exact(model):
    """Small integer weights, so that with 0/1 inputs every synaptic sum (below 256) is exact in bfloat16."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randint(-2, 3, p.shape) if p.requires_grad else torch.full_like(p, 16.0))


@pytest.mark.parametrize("arch, hidden", [("mlp", [16]), ("pooled", [4, 4])])
def test_autocast_leaves_the_neuron_float32(arch, hidden):
    model = _model(arch, (1, 8, 8), hidden=hidden).train()
    _bf16_exact(model)
    x = torch.randint(0, 2, (6, 1, 8, 8)).float()
    outs = []
    for enabled in (False, True):
        model.reseed_noise(3)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            outs.append(model.run(x))
    plain, mixed = outs
    assert all(v.dtype == torch.float32 for v in mixed.potentials)
    assert all(torch.equal(a, b) for a, b in zip(plain.potentials, mixed.potentials))
    assert sum(float(s.sum()) for s in plain.spikes) > 0


def _write_cifar(root, per_class_train: int, per_class_test: int, seed: int = 0):
    """A tiny CIFAR-10 folder: class c is a bright horizontal band at rows 3c..3c+2 in channel c % 3, plus noise."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir()

    def batch(count: int):
        labels = np.repeat(np.arange(10), count)
        images = rng.integers(0, 90, size=(len(labels), 3, 32, 32))
        for k, c in enumerate(labels):
            images[k, c % 3, 3 * c:3 * c + 3] = 255
        return {"data": images.astype(np.uint8).reshape(len(labels), -1), "labels": labels.tolist()}

    for k in range(1, 6):
        (folder / f"data_batch_{k}").write_bytes(pickle.dumps(batch(per_class_train), protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(batch(per_class_test), protocol=2))


def test_narrow_vgg11_on_cifar_files_crosses_the_bridge(tmp_path):
    from lava.lib.dl import netx

    from export.pipeline import export_checkpoint
    from hw_sim.lava_runner import run_lava
    from hw_sim.netfile import deterministic_net, load_net
    from hw_sim.simulator import encode_inputs, logits, simulate
    torch.set_num_threads(1)
    _write_cifar(tmp_path, per_class_train=4, per_class_test=10)
    cfg = digits_config("tgo", epochs=4, data={"dataset": "cifar10", "data_dir": str(tmp_path)},
                        model={"arch": "vgg11", "width": 2, "timesteps": 4}, optim={"batch_size": 20})
    metrics = train_quietly(cfg, tmp_path / "run")
    report = export_checkpoint(tmp_path / "run", tmp_path / "out", formats=("net",))
    quant, evaluation = report["quantization"], report["evaluation"]
    assert len(quant["layers"]) == 14 and sum(layer["groups"] > 1 for layer in quant["layers"]) == 5
    assert all(layer["bias"] is None or -32768 <= layer["bias"]["min"] <= layer["bias"]["max"] <= 32767
               for layer in quant["layers"])
    assert all(layer["u_max"] is None or layer["u_max"] <= 2 ** 23 for layer in quant["layers"])
    assert metrics["test_accuracy"] > 0.2 and evaluation["float"]["accuracy"] > 0.2  # learned, not constant
    assert evaluation["agreement"] >= 0.99
    net = load_net(tmp_path / "out" / "model.net")
    assert len(netx.hdf5.Network(net_config=str(tmp_path / "out" / "model.net"),
                                 input_message_bits=quant["input_message_bits"]).layers) == 14
    for candidate in (deterministic_net(net), net):
        spikes = encode_inputs(candidate, load_dataset(cfg.data).test_x[:2])
        lava, ours = run_lava(candidate, spikes), simulate(candidate, spikes)
        assert torch.equal(logits(candidate, lava), logits(candidate, ours))
        assert all(torch.equal(a, b) for a, b in zip(lava.spikes, ours.spikes))


def test_amp_is_opt_in_and_recorded():
    cfg = ExperimentConfig()
    assert cfg.optim.amp == "off" and ExperimentConfig.from_dict(cfg.to_dict()).optim.amp == "off"
    cfg.optim.amp = "fp16"
    with pytest.raises(UsageError, match="--amp 'fp16'"):
        apply_method(cfg).validate()


def test_nir_graph_reproduces_a_pooled_model_with_batch_norm():
    from export.calibrate import deterministic
    from export.nir_export import build_nir
    from tests.test_export import _run_nir
    model = _model("pooled", (1, 8, 8), hidden=[3, 4]).eval()
    _randomize_norms(model)
    graph = build_nir(describe_network(model, (1, 8, 8)), (1, 8, 8), 1e-3, 4)
    model, x = model.double(), torch.rand(7, 1, 8, 8, dtype=torch.float64)
    with deterministic(model), torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(expected).max() > 0 and np.abs(_run_nir(graph, x.numpy()) - expected).max() <= 1e-9
