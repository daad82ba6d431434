"""`tgo export` refuses what Loihi/netx cannot express: one line naming the layer and the reason, exit 2,
and no output folder (not even a half-written one)."""
import dataclasses

import numpy as np
import pytest
from torch import nn
from typer.testing import CliRunner

from export.netx_writer import check_netx_weights
from export.network import describe_network
from tgo_cli import app
from tgo_errors import UsageError
from train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from train.config import ExperimentConfig, NeuronConfig
from train.models import ResidualBlock, SpikingNetwork, TimeDistributed, build_model
from train.neuron import NoisyLIF

runner = CliRunner()


def _variant(source, target, config=None, scale=None):
    """Save a copy of the checkpoint at `source` with its config edited and/or body.1's weights scaled."""
    ckpt = load_checkpoint(source)
    cfg = ExperimentConfig.from_dict(ckpt.config.to_dict())
    for section, values in (config or {}).items():
        for key, value in values.items():
            setattr(getattr(cfg, section), key, value)
    state = dict(ckpt.model_state)
    if scale is not None:
        state["body.1.module.weight"] = state["body.1.module.weight"] * scale
    target.mkdir()
    save_checkpoint(target / "checkpoint.pt", dataclasses.replace(ckpt, config=cfg, model_state=state))
    return target


def _export_fails(run_dir, out, message, *args):
    result = runner.invoke(app, ["export", str(run_dir), "-o", str(out), "--quiet", *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))


@pytest.mark.parametrize("config, scale, message", [
    (None, 1e7, "body.1 (Linear): weights overflow"),                          # vThMant would round to 0
    (None, 1e-9, "body.1 (Linear): every weight rounds to 0"),
    ({"neuron": {"tau_mem_inv": 1000.0}}, None, "membrane decay 4096/4096 is outside Loihi's range 0..4095"),
    ({"neuron": {"tau_mem_inv": 0.05}}, None, "membrane decay 0/4096"),
    ({"model": {"encoding": "rate"}}, None, "encoding 'rate'"),
])
def test_unmappable_checkpoints_are_refused(trained_runs, tmp_path, config, scale, message):
    run_dir = _variant(trained_runs["vanilla"][0], tmp_path / "variant", config, scale)
    _export_fails(run_dir, tmp_path / "out", message)


def test_vgg11_on_data_of_another_shape_is_refused(tmp_path):
    """A vgg11 checkpoint (3x32x32 inputs) whose config names digits (1x8x8): one line naming both shapes."""
    cfg = ExperimentConfig()
    cfg.model.arch, cfg.model.width = "vgg11", 1
    model = build_model(cfg.model, cfg.neuron, (3, 32, 32), 10)
    (tmp_path / "run").mkdir()
    save_checkpoint(tmp_path / "run" / "checkpoint.pt",
                    Checkpoint(cfg, (3, 32, 32), 10, 1, model.state_dict(), None, None, {}))
    _export_fails(tmp_path / "run", tmp_path / "out", "expects inputs (3, 32, 32) with 10 classes, but digits has "
                                                      "(1, 8, 8)")


def _network(*body):
    return SpikingNetwork(nn.Sequential(*body), nn.Linear(8, 10, bias=False), 4, "direct")


@pytest.mark.parametrize("body, message", [
    ((TimeDistributed(nn.Flatten()), TimeDistributed(nn.Linear(64, 8, bias=False)), NoisyLIF(NeuronConfig()),
      TimeDistributed(nn.AvgPool1d(1))), "body.3 (AvgPool1d): not mappable to Loihi: netx 0.6.0 cannot load pooling"),
    ((TimeDistributed(nn.Conv2d(1, 8, 3, padding=1, bias=False)), NoisyLIF(NeuronConfig()),
      ResidualBlock(8, 8, 1, NeuronConfig())), "body.2 (ResidualBlock): not mappable to Loihi: a residual sum"),
    ((TimeDistributed(nn.Flatten()), TimeDistributed(nn.Linear(64, 8, bias=True)), NoisyLIF(NeuronConfig())),
     "body.1 (Linear): has a bias"),
    ((TimeDistributed(nn.Flatten()), TimeDistributed(nn.Linear(64, 8, bias=False))),
     "body.1 (Linear): must be followed by a NoisyLIF"),
    ((TimeDistributed(nn.Conv2d(1, 8, 3, groups=1, dilation=2, bias=False)), NoisyLIF(NeuronConfig())),
     "body.0 (Conv2d): only convolutions with dilation 1"),
])
def test_layers_netx_cannot_express_are_named(body, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        describe_network(_network(*body), (1, 8, 8))


@pytest.mark.parametrize("weight, message", [
    (np.zeros((3, 4), dtype=np.int64), "every weight is 0"),
    (np.array([[0, 255]]), "outside netx's [-256, 254]"),
    (np.array([[-257, 3]]), "outside netx's [-256, 254]"),
    (np.array([[1.0, -2.0]]), "must be integers"),
])
def test_netx_loader_bugs_are_refused_before_writing(weight, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_netx_weights("layer", weight)


@pytest.mark.parametrize("args, message", [
    (["--format", "net,pdf"], "--format: choose"),
    (["--input-scale", "300"], "--input-scale must be in 1..255"),
    (["--seed", "-1"], "--seed must be in 0..4294967295"),
])
def test_bad_options(trained_runs, tmp_path, args, message):
    _export_fails(trained_runs["vanilla"][0], tmp_path / "out", message, *args)


def test_foreign_output_folder_is_left_alone(trained_runs, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["export", str(trained_runs["vanilla"][0]), "-o", str(out), "--quiet"])
    assert result.exit_code == 2 and "holds other files" in result.output
    assert (out / "notes.txt").read_text() == "keep me" and len(list(out.iterdir())) == 1


def test_missing_checkpoint(tmp_path):
    _export_fails(tmp_path / "nothing", tmp_path / "out", "no checkpoint at")
