"""NIR both ways: Norse's `from_nir` runs tgo's model.nir on a batch exactly like the float model, and
`tgo import` turns graphs that Norse's `to_nir` writes (and tgo's own model.nir) into run folders."""
import json

import nir
import norse.torch as norse
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from export.calibrate import deterministic
from export.network import describe_network
from export.nir_export import build_nir
from tests.conftest import digits_config
from tgo_cli import app
from tgo_errors import UsageError
from train.checkpoint import load_checkpoint
from train.config import ExperimentConfig
from train.data import load_dataset
from train.models import build_model
from train.nir_import import import_graph


@pytest.fixture(scope="module")
def digits():
    return load_dataset(digits_config().data)


def _tgo_model(arch: str, hidden, seed: int = 0):
    torch.manual_seed(seed)
    cfg = ExperimentConfig()
    cfg.model.arch, cfg.model.hidden = arch, hidden
    model = build_model(cfg.model, cfg.neuron, (1, 8, 8), 10)
    for weight in model.parameters():
        weight.data *= 12  # enough input for every layer to spike
    return model, cfg


def _norse_steps(module, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Mean over `steps` of a stateful Norse module's output for the same input each step."""
    state, total = None, 0.0
    for _ in range(steps):
        y, state = module(x, state)
        total = total + y
    return total / steps


@pytest.mark.parametrize("arch, hidden", [("mlp", [24]), ("convnet", [4, 8])])
def test_norse_from_nir_on_a_batch_equals_the_float_model(tmp_path, digits, arch, hidden):
    model, cfg = _tgo_model(arch, hidden)
    nir.write(str(tmp_path / "model.nir"), build_nir(describe_network(model, (1, 8, 8)), (1, 8, 8), cfg.neuron.dt,
                                                     cfg.model.timesteps))
    graph = nir.read(str(tmp_path / "model.nir"))
    x = digits.test_x[:40]
    with deterministic(model), torch.no_grad():
        expected = model(x)
        assert all(s.any() for s in model.run(x).spikes)
        got = _norse_steps(norse.from_nir(graph, dt=cfg.neuron.dt), x, cfg.model.timesteps)
    assert got.shape == (40, 10) and expected.abs().max() > 0
    assert (got - expected).abs().max() <= 1e-4


def _norse_params():
    return norse.LIFParameters(tau_syn_inv=torch.tensor(250.0), tau_mem_inv=torch.tensor(125.0))  # 1024, 512 / 4096


def _norse_mlp():
    torch.manual_seed(1)
    model = norse.SequentialState(torch.nn.Linear(64, 20, bias=False), norse.LIFCell(_norse_params()),
                                  torch.nn.Linear(20, 10, bias=False))
    model[0].weight.data *= 8
    return model, torch.rand(1, 64)


def _norse_convnet():
    torch.manual_seed(2)
    model = norse.SequentialState(torch.nn.Conv2d(1, 4, 3, padding=1), norse.LIFCell(_norse_params()),
                                  torch.nn.Conv2d(4, 6, 3, stride=2, padding=1), norse.LIFCell(_norse_params()),
                                  torch.nn.Flatten(), torch.nn.Linear(96, 10, bias=False))
    for conv in (model[0], model[2]):
        conv.bias.data.zero_()  # Norse 1.1.0's to_nir needs a conv bias; tgo's synapses have none
        conv.weight.data *= 6
    return model, torch.rand(1, 1, 8, 8)


def _to_nir(model, sample) -> nir.NIRGraph:
    """Norse 1.1.0's `to_nir`; it maps no Flatten (nirtorch keeps None there): fill in the nir.Flatten that
    Norse master writes."""
    graph = norse.to_nir(model, sample)
    for name, node in graph.nodes.items():
        if node is None:
            graph.nodes[name] = nir.Flatten(input_type=None, start_dim=1)
    return graph


@pytest.mark.parametrize("make", [_norse_mlp, _norse_convnet])
def test_a_graph_norse_writes_imports_as_the_same_model(digits, make):
    source, sample = make()
    cfg = ExperimentConfig()
    cfg.model.timesteps, cfg.tgo.sigma = 6, 0.0
    model, cfg = import_graph(_to_nir(source, sample), cfg, digits)
    assert (cfg.model.arch, cfg.neuron.sigma) == (("mlp" if make is _norse_mlp else "convnet"), 0.0)
    assert [round(l.syn_decay * 4096) for l in model.lif_layers()] == [1024] * len(model.lif_layers())
    assert [round(l.mem_decay * 4096) for l in model.lif_layers()] == [512] * len(model.lif_layers())
    x = digits.test_x[:30]
    with torch.no_grad():
        expected = _norse_steps(source, x.flatten(1) if make is _norse_mlp else x, 6)
        got = model(x)
        assert all(s.any() for s in model.run(x).spikes)
    assert (got - expected).abs().max() <= 1e-4 and expected.abs().max() > 0


def _writable(graph: nir.NIRGraph) -> nir.NIRGraph:
    """Norse 1.1.0 leaves 0-d tensors and floats in its nodes, which `nir.write` cannot store: as 1-d arrays."""
    for node in graph.nodes.values():
        for key, value in vars(node).items():
            if isinstance(value, (torch.Tensor, np.ndarray, float, np.floating)):
                setattr(node, key, np.atleast_1d(np.asarray(value)))
    return graph


def test_cli_import_then_export_attack_of_a_norse_graph(tmp_path):
    source, sample = _norse_mlp()
    nir.write(str(tmp_path / "norse.nir"), _writable(_to_nir(source, sample)))
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(tmp_path / "norse.nir"), "-o", str(tmp_path / "run"), "--sigma", "0.1",
                                 "-T", "6"])
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(tmp_path / "run")
    assert (ckpt.config.tgo.method, ckpt.config.neuron.sigma, ckpt.config.model.hidden) == ("nlif", 0.1, [20])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["timesteps"] == 6
    exported = runner.invoke(app, ["export", str(tmp_path / "run"), "-o", str(tmp_path / "export"), "--format", "net",
                                   "--quiet"])
    assert exported.exit_code == 0, exported.output
    assert "noise" in json.loads((tmp_path / "export" / "export.json").read_text())["lava"]["note"]
    attacked = runner.invoke(app, ["attack", str(tmp_path / "run"), "--attacks", "fgsm", "--eps", "0.1", "--n", "16",
                                   "--repeats", "2", "-o", str(tmp_path / "attack"), "--quiet"])
    assert attacked.exit_code == 0, attacked.output


def test_tgo_model_nir_round_trips_through_import(tmp_path, digits):
    model, cfg = _tgo_model("convnet", [4, 8], seed=3)
    graph = build_nir(describe_network(model, (1, 8, 8)), (1, 8, 8), cfg.neuron.dt, cfg.model.timesteps)
    cfg.tgo.sigma = 0.0
    imported, _ = import_graph(graph, cfg, digits)
    x = digits.test_x[:30]
    with deterministic(model), torch.no_grad():
        assert torch.allclose(imported(x), model(x), atol=1e-5)
    for a, b in zip(imported.parameters(), model.parameters()):
        assert torch.allclose(a, b, rtol=1e-6)


def test_unsupported_nodes_are_refused_in_one_line(tmp_path):
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1, 8, 8])}),
                                "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                                      padding=np.array([0, 0])),
                                "delay": nir.Delay(delay=np.ones((1, 4, 4))),
                                "output": nir.Output(output_type={"output": np.array([1, 4, 4])})},
                         edges=[("input", "pool"), ("pool", "delay"), ("delay", "output")])
    nir.write(str(tmp_path / "pool.nir"), graph)
    result = CliRunner().invoke(app, ["import", str(tmp_path / "pool.nir"), "-o", str(tmp_path / "run")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "unsupported NIR nodes: " in result.output
    assert "'pool' (SumPool2d)" in result.output and "'delay' (Delay)" in result.output
    assert not (tmp_path / "run").exists()


def test_a_neuron_with_a_leak_potential_is_refused(digits):
    source, sample = _norse_mlp()
    graph = _to_nir(source, sample)
    lif = next(node for node in graph.nodes.values() if isinstance(node, nir.CubaLIF))
    lif.v_leak = torch.tensor(0.5)
    with pytest.raises(UsageError, match="v_leak must be 0"):
        import_graph(graph, ExperimentConfig(), digits)
