"""`tgo simulate`: results and simulate.json (exit 0), --compare (exit 0, or 1 at a mismatch), user mistakes
(exit 2)."""
import json
import sys

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import tgo_simulate
from hw_sim.netfile import load_net
from hw_sim.simulator import encode_inputs, logits, predict, simulate
from tests.hw_sim_nets import LAVA_DL_NETS, random_images, tgo_mlp
from tgo_cli import app

SAMPLES = 12


@pytest.fixture
def files(tmp_path):
    """A tgo MLP, float images for it and labels, each in its own file."""
    (tmp_path / "model").mkdir()
    model = tgo_mlp(tmp_path / "model" / "mlp.net")
    np.save(tmp_path / "x.npy", random_images(SAMPLES, (3, 4, 4)))
    np.save(tmp_path / "y.npy", np.random.default_rng(0).integers(0, 10, SAMPLES))
    return model, tmp_path / "x.npy", tmp_path / "y.npy"


def _invoke(*args):
    return CliRunner().invoke(app, ["simulate", *map(str, args)])


def test_hwsim_reports_accuracy_and_spike_rates(files):
    model, x, y = files
    result = _invoke(model, "--inputs", x, "--labels", y, "--batch", 5)
    assert result.exit_code == 0, result.output
    report = json.loads((model.parent / "simulate.json").read_text())
    net = load_net(model)
    run = simulate(net, encode_inputs(net, torch.from_numpy(np.load(x))))
    expected = predict(logits(net, run)).tolist()
    hwsim = report["backends"]["hwsim"]
    assert report["samples"] == SAMPLES and report["steps_per_sample"] == 3 + 6 and "compare" not in report
    assert hwsim["predictions"] == expected
    assert hwsim["correct"] == int((np.array(expected) == np.load(y)).sum())
    rates = [layer["spikes_per_neuron_per_step"] for layer in hwsim["layers"]]
    assert rates == pytest.approx([float(s.float().mean()) for s in run.spikes])
    assert f"accuracy: {hwsim['accuracy']:.2%}" in result.output
    assert sorted(p.name for p in model.parent.iterdir()) == ["mlp.net", "simulate.json"]  # no temporary file left


def test_compare_agrees_and_writes_to_out(files, tmp_path):
    model, x, y = files
    result = _invoke(model, "--inputs", x, "--n", 4, "--compare", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "simulate.json").read_text())
    assert report["compare"] == {"equal": True, "first_mismatch": None}
    assert report["backends"]["lava"] == report["backends"]["hwsim"] and report["samples"] == 4
    assert "agree spike for spike" in result.output


def test_compare_reports_the_first_mismatch_and_exits_1(files, monkeypatch):
    model, x, _ = files
    def flipped(*args, **kwargs):  # hw_sim with one wrong spike: /layer/1, sample 1, local step 4, neuron 2
        run = simulate(*args, **kwargs)
        run.spikes[1][1, 4, 2] ^= True
        return run
    monkeypatch.setattr(tgo_simulate, "simulate", flipped)
    result = _invoke(model, "--inputs", x, "--n", 3, "--compare")
    assert result.exit_code == 1, result.output
    found = json.loads((model.parent / "simulate.json").read_text())["compare"]["first_mismatch"]
    assert {k: found[k] for k in ("sample", "layer", "neuron", "step", "quantity")} == \
        {"sample": 1, "layer": 1, "neuron": 2, "step": 5, "quantity": "s"}
    assert "MISMATCH" in result.output


def test_runs_a_foreign_netx_file_on_integer_spikes(tmp_path):
    spikes = np.random.default_rng(0).integers(0, 2, (2, 5, 784)) * 300
    np.save(tmp_path / "spikes.npy", spikes)
    result = _invoke(LAVA_DL_NETS / "mnist.net", "--inputs", tmp_path / "spikes.npy", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "simulate.json").read_text())
    assert report["format"] == "netx" and len(report["backends"]["hwsim"]["predictions"]) == 2


def _bad_inputs(tmp_path, name, array):
    np.save(tmp_path / name, array)
    return tmp_path / name


USAGE_ERRORS = {  # name: (arguments after the model, given the fixture files and tmp_path; message fragment)
    "missing --inputs": (lambda f, t: [], "--inputs"),
    "inputs file absent": (lambda f, t: ["--inputs", t / "nope.npy"], "no such file"),
    "inputs a folder": (lambda f, t: ["--inputs", t], "not a regular file"),
    "inputs wrong shape": (lambda f, t: ["--inputs", _bad_inputs(t, "s.npy", np.zeros((3, 47)))], "expected float"),
    "inputs outside [0, 1]": (lambda f, t: ["--inputs", _bad_inputs(t, "r.npy", np.full((3, 48), 1.5))], "[0, 1]"),
    "pickled inputs": (lambda f, t: ["--inputs", _bad_inputs(t, "p.npy", np.array([{"a": 1}], dtype=object))],
                       "not a readable .npy"),
    "n too large": (lambda f, t: ["--inputs", f[1], "--n", SAMPLES + 1], "--n"),
    "labels out of range": (lambda f, t: ["--inputs", f[1], "--labels", _bad_inputs(t, "l.npy", np.full(SAMPLES, 10))],
                            "[0, 9]"),
    "too few labels": (lambda f, t: ["--inputs", f[1], "--labels", _bad_inputs(t, "k.npy", np.zeros(3, int))],
                       "integer labels"),
    "unknown backend": (lambda f, t: ["--inputs", f[1], "--backend", "loihi"], "--backend"),
    "batch zero": (lambda f, t: ["--inputs", f[1], "--batch", 0], "--batch"),
}


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_user_mistakes_exit_2_with_one_line(files, tmp_path, case):
    arguments, fragment = USAGE_ERRORS[case]
    result = _invoke(files[0], *arguments(files, tmp_path))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith("error:") and fragment in result.output


def test_malformed_or_missing_model_exits_2(files, tmp_path):
    (tmp_path / "junk.net").write_bytes(b"not hdf5")
    for model, fragment in ((tmp_path / "junk.net", "not an HDF5 file"), (tmp_path / "none.net", "no such file")):
        result = _invoke(model, "--inputs", files[1])
        assert result.exit_code == 2 and fragment in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_cuda_device_without_cuda_exits_2(files):
    result = _invoke(files[0], "--inputs", files[1], "--device", "cuda")
    assert result.exit_code == 2 and "CUDA is not available" in result.output


def test_lava_backend_without_lava_exits_2(files, monkeypatch):
    monkeypatch.setitem(sys.modules, "hw_sim.lava_runner", None)  # as if Lava were not installed
    result = _invoke(files[0], "--inputs", files[1], "--backend", "lava")
    assert result.exit_code == 2 and "needs lava-nc and lava-dl" in result.output


CONFIG_ERRORS = {  # /tgo/config_json data section -> fragment of the one error line
    "test_fraction beyond 1": ({"dataset": "digits", "test_fraction": 7}, "'test_fraction'"),
    "string split_seed": ({"dataset": "digits", "split_seed": "0"}, "'split_seed'"),
    "unknown dataset": ({"dataset": "imagenet"}, "imagenet"),
    "another dataset's samples": ({"dataset": "digits"}, "the network takes"),  # digits are 1x8x8, the net 3x4x4
}


@pytest.mark.parametrize("case", CONFIG_ERRORS)
def test_bad_config_json_dataset_exits_2_with_one_line(files, case):
    data, fragment = CONFIG_ERRORS[case]
    with h5py.File(files[0], "r+") as handle:
        del handle["tgo/config_json"]
        handle["tgo/config_json"] = json.dumps({"checkpoint": {"data": data}})
    result = _invoke(files[0])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output.startswith("error:") and fragment in result.output
