"""`tgo verify`: the twin is the simulator, good exports pass, broken ones and Lava disagreements fail."""
import math
import shutil

import h5py
import pytest
import torch
from typer.testing import CliRunner

from hw_sim.netfile import load_net
from hw_sim.simulator import encode_inputs, logits, simulate
from robust.deployed import DeployedTwin, HwSimClassifier, logit_scale
from robust.flips import flip_curve
from robust.stats import wilson_interval
from robust.verify_command import build_options, run_verify
from tgo_cli import app
from train.checkpoint import load_checkpoint
from train.data import load_dataset

runner = CliRunner()


def _options(**overrides):
    values = dict(attacks="fgsm,pgd5,square", eps="0.0625", surrogates="own", default_alpha=2.0, n=40, lava_n=4,
                  eot_k=2, repeats=3, tolerance=0.05, seed=0, apgd_steps=5, square_queries=30)
    values.update(overrides)
    return build_options(**values)


@pytest.fixture(scope="module")
def digits(trained_runs):
    return load_dataset(load_checkpoint(trained_runs["tgo"][0]).config.data)


@pytest.mark.parametrize("name", ["vanilla", "tgo"])
def test_twin_is_bit_exact_with_hw_sim_and_has_gradients(exported_runs, digits, name):
    run_dir, export_dir = exported_runs[name]
    net = load_net(export_dir / "model.net")
    scale = logit_scale(export_dir / "model.net", net)
    x = digits.test_x[:64]
    twin = DeployedTwin(net, load_checkpoint(run_dir).config.neuron, scale, fresh_noise=False)
    reference = logits(net, simulate(net, encode_inputs(net, x))).double() / scale
    xg = x.clone().requires_grad_(True)
    out = twin(xg)
    assert torch.equal(out.detach(), reference)
    out.gather(1, digits.test_y[:64, None]).sum().backward()
    assert float((xg.grad.flatten(1).abs().sum(1) > 0).float().mean()) > 0.9
    # with fresh noise per forward, twin and simulator draw the same seeds from the same generator
    twin, sim = DeployedTwin(net, load_checkpoint(run_dir).config.neuron, scale), HwSimClassifier(net, scale)
    twin.reseed_noise(7), sim.reseed_noise(7)
    first, again = twin(x).detach(), twin(x).detach()
    assert torch.equal(first, sim(x)) and torch.equal(again, sim(x))
    assert torch.equal(first, again) == (name == "vanilla")  # only the noisy network changes between forwards


def test_good_export_passes(exported_runs, tmp_path):
    run_dir, export_dir = exported_runs["vanilla"]
    report = run_verify(run_dir, export_dir / "model.net", tmp_path, _options(), show_progress=False)
    assert report["verdict"] == "pass", report["reasons"]
    assert report["lava"]["agree"] and report["lava"]["samples"] == 8
    assert abs(report["clean"]["float"]["accuracy"] - report["clean"]["fixed"]["accuracy"]) <= 0.05
    for name in ("verify.json", "verify.md", "verify_robustness.png", "verify_potentials.png"):
        assert (tmp_path / name).is_file()


def test_broken_thresholds_fail_and_name_the_layer(exported_runs, tmp_path):
    run_dir, export_dir = exported_runs["vanilla"]
    broken = tmp_path / "broken.net"
    shutil.copy(export_dir / "model.net", broken)
    with h5py.File(broken, "r+") as fh:
        fh["layer/0/neuron/vThMant"][()] = int(fh["layer/0/neuron/vThMant"][()]) * 4
    result = runner.invoke(app, ["verify", str(run_dir), str(broken), "-o", str(tmp_path / "v"), "--n", "40",
                                 "--attacks", "fgsm", "--eps", "0.0625", "--lava-n", "2", "--quiet"])
    assert result.exit_code == 1, result.output
    report = (tmp_path / "v" / "verify.json").read_text()
    assert '"verdict": "fail"' in report and "layer 0" in report


def test_planted_one_spike_difference_is_caught(exported_runs, tmp_path, monkeypatch):
    import hw_sim.lava_runner as lava_runner
    real = lava_runner.run_lava

    def one_spike_off(net, spikes, *args, **kwargs):
        run = real(net, spikes, *args, **kwargs)
        run.spikes[0][1, 3, 5] = ~run.spikes[0][1, 3, 5]
        return run

    monkeypatch.setattr(lava_runner, "run_lava", one_spike_off)
    run_dir, export_dir = exported_runs["vanilla"]
    report = run_verify(run_dir, export_dir / "model.net", tmp_path, _options(attacks="fgsm", n=10),
                        show_progress=False)
    assert report["verdict"] == "fail" and not report["lava"]["agree"]
    assert "sample 1" in report["lava"]["mismatch"] and "neuron 5" in report["lava"]["mismatch"]


def test_bad_input_exits_2(exported_runs, tmp_path):
    run_dir, export_dir = exported_runs["vanilla"]
    net = str(export_dir / "model.net")
    for args, message in ((["--tolerance", "5"], "--tolerance"), (["--eps", "2"], "outside [0, 1]"),
                          (["--n", "100000"], "--n must be"), (["--attacks", "nope"], "unknown attack")):
        result = runner.invoke(app, ["verify", str(run_dir), net, "-o", str(tmp_path), "--quiet", *args])
        assert result.exit_code == 2 and message in result.output, result.output
    result = runner.invoke(app, ["verify", str(run_dir), str(tmp_path / "missing.net"), "-o", str(tmp_path)])
    assert result.exit_code == 2 and "no such file" in result.output


def test_wilson_interval_known_values():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_flip_curve_recovers_phi():
    gen = torch.Generator().manual_seed(0)
    z = torch.rand(200_000, generator=gen, dtype=torch.float64) * 8 - 4
    flipped = torch.rand(200_000, generator=gen, dtype=torch.float64) < torch.special.ndtr(-z.abs())
    curve = flip_curve(z, flipped)
    for rate, theory, count in zip(curve.flip_rate, curve.theory, curve.counts):
        assert abs(rate - theory) < 4 * math.sqrt(theory * (1 - theory) / count) + 1e-3
