"""`tgo export` on trained digits checkpoints: the .net loads in netx unmodified, runs in Lava exactly like
hw_sim's integer simulator, keeps the float accuracy, and the ONNX and NIR graphs reproduce the float model."""
import json

import h5py
import nir
import numpy as np
import onnxruntime
import pytest
import torch
from typer.testing import CliRunner

from export.calibrate import deterministic
from hw_sim.netfile import deterministic_net
from hw_sim.simulator import pre_spike_potentials
from export.pipeline import export_checkpoint
from hw_sim import prng
from hw_sim.netfile import load_net
from hw_sim.simulator import encode_inputs, logits, predict, simulate
from tests.conftest import digits_config, train_quietly
from tgo_cli import app
from train.checkpoint import file_sha256, load_checkpoint
from train.data import load_dataset

LAVA_SAMPLES = 4


@pytest.fixture(scope="module")
def exported(trained_runs, tmp_path_factory):
    """{'vanilla' | 'tgo' | 'conv': (checkpoint folder, export folder, report)}; conv: a briefly trained TGO convnet."""
    conv_dir = tmp_path_factory.mktemp("run-conv")
    train_quietly(digits_config("tgo", epochs=4, model={"arch": "convnet", "hidden": [8, 16]}), conv_dir)
    runs = {"vanilla": trained_runs["vanilla"][0], "tgo": trained_runs["tgo"][0], "conv": conv_dir}
    out = {}
    for name, run_dir in runs.items():
        target = tmp_path_factory.mktemp(f"export-{name}") / "out"
        out[name] = (run_dir, target, export_checkpoint(run_dir, target, seed=7))
    return out


@pytest.fixture(scope="module")
def digits():
    return load_dataset(digits_config().data)


def test_writes_every_format_and_ties_them_to_the_checkpoint(exported):
    run_dir, out, report = exported["tgo"]
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "hardware.json", "model.net", "model.nir",
                                                     "model.onnx"]
    assert json.loads((out / "export.json").read_text()) == json.loads(json.dumps(report))
    assert report["source"]["sha256"] == file_sha256(run_dir / "checkpoint.pt")
    ckpt = load_checkpoint(run_dir)
    assert report["config"]["checkpoint"] == ckpt.config.to_dict()
    assert report["config"]["export"] == {"formats": ["net", "onnx", "nir"], "seed": 7, "profile": "loihi2",
                                          "input_scale": report["quantization"]["input_scale"]}
    with h5py.File(out / "model.net", "r") as fh:
        assert json.loads(fh["tgo/config_json"][()]) == report["config"]
        assert fh["tgo/format"][()] == b"tgo-net" and fh["tgo/version"][()] == 1
        assert fh["tgo/readout_step"][()] == 2 + ckpt.config.model.timesteps - 1
    assert not list(out.parent.glob(".*"))  # no temporary folder left beside the output


@pytest.mark.parametrize("name", ["vanilla", "tgo"])
def test_fixed_point_mlp_keeps_float_accuracy(exported, name):
    ev = exported[name][2]["evaluation"]
    assert ev["samples"] == 450 and ev["float"]["accuracy"] >= 0.95
    assert abs(ev["fixed"]["accuracy"] - ev["float"]["accuracy"]) <= 0.01
    assert ev["agreement"] >= 0.98


def test_convnet_exports_and_agrees(exported):
    ev = exported["conv"][2]["evaluation"]
    assert ev["float"]["accuracy"] >= 0.5  # 4 epochs only
    assert abs(ev["fixed"]["accuracy"] - ev["float"]["accuracy"]) <= 0.02 and ev["agreement"] >= 0.97
    kinds = [layer["kind"] for layer in exported["conv"][2]["quantization"]["layers"]]
    assert kinds == ["conv", "conv", "dense"]


def test_threshold_neighbours_survive_quantization(exported):
    """Fixed-point potentials / (64 P) give the same near-threshold fractions, and TGO still has fewer."""
    fixed = {}
    for name in ("vanilla", "tgo", "conv"):
        ev = exported[name][2]["evaluation"]
        for f, q in zip(ev["float"]["near_threshold"], ev["fixed"]["near_threshold"]):
            assert abs(f - q) <= 0.01
        fixed[name] = ev["fixed"]["near_threshold_all"]
    assert fixed["tgo"] <= 0.75 * fixed["vanilla"]


@pytest.mark.parametrize("name", ["vanilla", "tgo", "conv"])
def test_quantization_respects_loihi_ranges(exported, name):
    report = exported[name][2]
    ckpt = load_checkpoint(exported[name][0])
    T = ckpt.config.model.timesteps
    for layer in report["quantization"]["layers"]:
        assert -256 <= layer["weight_min"] and layer["weight_max"] <= 254
        assert layer["threshold_rel_error"] == 0.0 and layer["weight_rel_error"] < 0.02
        if layer["vThMant"] is not None:
            assert 1 <= layer["vThMant"] <= 131071
            assert layer["vThMant"] == pytest.approx(ckpt.config.neuron.v_th * layer["state_scale"])
            assert (layer["iDecay"], layer["vDecay"]) == (819, 410)
    net = load_net(exported[name][1] / "model.net")
    readout = net.layers[-1].synapse.weight
    worst = max(readout.clip(min=0).sum(1).max(), (-readout).clip(min=0).sum(1).max())
    assert 64 * T * worst <= 2 ** 23 - 1  # the readout integrator cannot wrap for any spike pattern


def test_fixed_point_potentials_track_the_float_ones(exported, digits):
    """hw_sim's pre-spike v / (64 P) at local steps 1..T is the float pre-spike potential up to rounding."""
    run_dir, out, report = exported["tgo"]
    net = deterministic_net(load_net(out / "model.net"))
    x = digits.test_x[:64]
    run = simulate(net, encode_inputs(net, x), record=True)
    T = load_checkpoint(run_dir).config.model.timesteps
    fixed = pre_spike_potentials(net.layers[0], run.u[0], run.v[0], run.spikes[0])[:, 1:T + 1]
    fixed = fixed.double() / (64 * report["quantization"]["layers"][0]["state_scale"])
    model = load_checkpoint(run_dir).build_model()
    with deterministic(model), torch.no_grad():
        floating = model.run(x).potentials[0].transpose(0, 1).double()
    gap = (fixed - floating).abs().flatten()
    assert float(gap.median()) < 0.01 and float(gap.quantile(0.95)) < 0.05  # rare spike flips diverge further


def test_u_never_wraps_on_test_data(exported, digits):
    _, out, _ = exported["tgo"]
    net = deterministic_net(load_net(out / "model.net"))
    run = simulate(net, encode_inputs(net, digits.test_x), record=True)
    for u, v in zip(run.u, run.v):
        assert int(u.abs().max()) < 2 ** 23 and int(v.min()) > -(2 ** 23 - 1)  # no wrap, no saturation


def test_noise_keys_follow_the_model(exported):
    for name, stochastic in (("vanilla", False), ("tgo", True)):
        run_dir, out, report = exported[name]
        sigma = load_checkpoint(run_dir).config.neuron.sigma
        with h5py.File(out / "model.net", "r") as fh:
            neuron = fh["layer/0/neuron"]
            assert ("noise_sigma" in neuron) == stochastic
            if stochastic:
                scale = report["quantization"]["layers"][0]["state_scale"]
                assert neuron["noise_sigma"][()] == round(sigma * 64 * scale) > 0
                assert neuron["noise_seed"][()] == 7 and neuron["noise_prng"][()].decode() == prng.NAME
            assert "noise_sigma" not in fh["layer/1"]  # the readout never has noise


@pytest.mark.parametrize("name", ["tgo", "conv"])
def test_netx_loads_the_file_and_integers_round_trip(exported, name):
    from lava.lib.dl import netx
    _, out, report = exported[name]
    network = netx.hdf5.Network(net_config=str(out / "model.net"),
                                input_message_bits=report["quantization"]["input_message_bits"])
    quant = report["quantization"]["layers"]
    assert len(network.layers) == len(quant)
    with h5py.File(out / "model.net", "r") as fh:
        groups = [fh[f"layer/{i}"] for i in range(len(fh["layer"])) if fh[f"layer/{i}/type"][0] in (b"dense", b"conv")]
        for block, group, layer in zip(network.layers, groups, quant):
            weight = group["weight"][()]
            assert weight.dtype.kind == "i" and int(weight.min()) == layer["weight_min"]
            if layer["kind"] == "dense":
                exponent = block.synapse.proc_params["weight_exp"]
                assert np.array_equal(block.synapse.weights.init * 2.0 ** exponent, weight)
            else:
                assert np.array_equal(block.synapse.weight.init, weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))
            if layer["vThMant"] is not None:
                assert (block.neuron.vth.init, block.neuron.du.init + 1, block.neuron.dv.init) == \
                    (layer["vThMant"], layer["iDecay"], layer["vDecay"])


@pytest.mark.parametrize("name, noise", [("tgo", False), ("conv", False), ("conv", True)])
def test_lava_runs_the_export_exactly_like_hw_sim(exported, digits, name, noise):
    from hw_sim.lava_runner import run_lava
    net = load_net(exported[name][1] / "model.net")
    net = net if noise else deterministic_net(net)
    spikes = encode_inputs(net, digits.test_x[:LAVA_SAMPLES])
    lava, reference = run_lava(net, spikes), simulate(net, spikes)
    assert torch.equal(logits(net, lava), logits(net, reference))
    assert all(torch.equal(a, b) for a, b in zip(lava.spikes, reference.spikes))
    assert torch.equal(predict(logits(net, lava)), predict(logits(net, reference)))


def test_onnx_graph_matches_pytorch(exported, digits):
    run_dir, out, report = exported["conv"]
    assert report["onnx"]["max_abs_diff_vs_torch"] <= 1e-5
    model = load_checkpoint(run_dir).build_model()
    x = digits.test_x[100:137]  # another batch size than the traced one
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"image": x.numpy()})[0]
    with deterministic(model), torch.no_grad():
        expected = model(x).numpy()
    assert got.shape == (37, 10) and np.abs(got - expected).max() <= 1e-5


def _run_nir(graph: nir.NIRGraph, x: np.ndarray) -> np.ndarray:
    """Euler-step the NIR graph with the convention in its metadata; logits = mean of output over T."""
    dt, steps = float(graph.metadata["dt"]), int(graph.metadata["timesteps"])
    nxt = dict(graph.edges)
    states, total = {}, 0.0
    for _ in range(steps):
        name, h = "input", x
        while name != "output":
            name = nxt[name]
            node = graph.nodes[name]
            if isinstance(node, nir.Flatten):
                h = h.reshape(len(h), -1)
            elif isinstance(node, nir.Linear):
                h = h @ node.weight.T
            elif isinstance(node, nir.Conv2d):
                h = torch.nn.functional.conv2d(torch.from_numpy(h), torch.from_numpy(node.weight),
                                               stride=tuple(node.stride), padding=tuple(node.padding)).numpy()
            elif isinstance(node, nir.CubaLIF):
                i, v = states.get(name, (0.0, 0.0))
                i = i + dt / node.tau_syn * (node.w_in * h - i)
                v = v + dt / node.tau_mem * (node.v_leak - v + node.r * i)
                h = (v > node.v_threshold).astype(np.float64)
                states[name] = (i, np.where(h > 0, node.v_reset, v))
        total = total + h
    return total / steps


@pytest.mark.parametrize("name", ["tgo", "conv"])
def test_nir_graph_reproduces_the_model(exported, digits, name):
    run_dir, out, _ = exported[name]
    graph = nir.read(out / "model.nir")
    kinds = {type(node).__name__ for node in graph.nodes.values()}
    assert "CubaLIF" in kinds and ("Conv2d" in kinds) == (name == "conv")
    lif = graph.nodes["lif0"]
    cfg = load_checkpoint(run_dir).config.neuron
    assert np.allclose(lif.tau_syn, cfg.dt / (819 / 4096)) and np.allclose(lif.tau_mem, cfg.dt / (410 / 4096))
    assert np.allclose(lif.v_threshold, cfg.v_th)
    model = load_checkpoint(run_dir).build_model().double()
    x = digits.test_x[:32].double()
    with deterministic(model), torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(_run_nir(graph, x.numpy()) - expected).max() <= 1e-9


def test_cli_exports_a_subset_with_a_summary(exported, tmp_path):
    run_dir = exported["vanilla"][0]
    out = tmp_path / "subset"
    result = CliRunner().invoke(app, ["export", str(run_dir), "-o", str(out), "--format", "net,nir",
                                      "--input-scale", "8", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Loihi quantization" in result.output and "Float vs fixed point" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "hardware.json", "model.net", "model.nir"]
    net = load_net(out / "model.net")
    assert (net.tgo.input_scale, net.tgo.input_message_bits) == (8, 4)
    report = json.loads((out / "export.json").read_text())
    assert report["quantization"]["input_scale"] == 8 and "onnx" not in report
    again = CliRunner().invoke(app, ["export", str(run_dir), "-o", str(out), "--format", "onnx", "--quiet"])
    assert again.exit_code == 0, again.output  # an earlier export folder is replaced as a whole
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "model.onnx"]
