"""`tgo verify`: the twin is the simulator, good exports pass, broken ones and Lava disagreements fail."""
import math
import shutil

import h5py
import pytest
import torch
from typer.testing import CliRunner

from hw_sim.netfile import load_net
from hw_sim.simulator import encode_inputs, logits, simulate
from robust.deployed import DeployedTwin, NoiseSeeds, logit_scale
from robust.flips import flip_curve
from robust.options import EngineBudget
from robust.stats import wilson_interval
from robust.verify import input_grid_notes
from robust.verify_command import build_options, run_verify
from tgo_cli import app
from train.checkpoint import load_checkpoint
from train.data import load_dataset

runner = CliRunner()


def _options(**overrides):
    values = dict(eps="0.0625", surrogates="own,ste", twin_surrogates="own", default_alpha=2.0, n=40, lava_n=4,
                  repeats=3, tolerance=0.05, seed=0, budget=EngineBudget.quick())
    values.update(overrides)
    return build_options(**values)


def _cli(run_dir, net, out, *args):
    return runner.invoke(app, ["verify", str(run_dir), str(net), "-o", str(out), "--quiet", "--n", "20", "--eps",
                               "0.125", "--steps", "2", "--restarts", "1", "--search-queries", "8", "--eot-k", "2",
                               "--surrogates", "own", "--repeats", "3", "--lava-n", "2", *args])


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
    twin, seeds = DeployedTwin(net, load_checkpoint(run_dir).config.neuron, scale), NoiseSeeds(net, fresh=True)
    twin.reseed_noise(7), seeds.reseed(7)

    def simulated() -> torch.Tensor:
        drawn = seeds.next_net()
        return logits(drawn, simulate(drawn, encode_inputs(drawn, x))).double() / scale
    first, again = twin(x).detach(), twin(x).detach()
    assert torch.equal(first, simulated()) and torch.equal(again, simulated())
    assert torch.equal(first, again) == (name == "vanilla")  # only the noisy network changes between forwards


def test_good_export_passes_and_stores_an_audit_trail(exported_runs, tmp_path):
    run_dir, export_dir = exported_runs["vanilla"]
    report = run_verify(run_dir, export_dir / "model.net", tmp_path, _options(), show_progress=False)
    assert report["verdict"] in ("pass", "unconverged") and not report["reasons"], report["reasons"]
    assert all("has not converged" in flag for flag in report["flags"])
    row, audit = report["robust"][0], report["per_sample"]["eps"][0]
    assert len(audit["fixed"]["headline"]) == 40 and len(audit["float"]["chosen"]) == 40
    assert abs(sum(audit["fixed"]["headline"]) / 40 - row["fixed"]["accuracy"]) < 1e-9
    assert row["float_minimum"] <= row["float"]["accuracy"] and row["fixed_minimum"] <= row["fixed"]["accuracy"]
    seeds = report["seeds"]
    assert not (set(seeds["select"]) & set(seeds["score"])) and not (set(seeds["search"]) & set(seeds["score"]))
    assert "Strongest source per eps" in (tmp_path / "verify.md").read_text()
    assert report["lava"]["agree"] and report["lava"]["samples"] == 8
    assert abs(report["clean"]["float"]["accuracy"] - report["clean"]["fixed"]["accuracy"]) <= 0.05
    for name in ("verify.json", "verify.md", "verify_robustness.png", "verify_potentials.png"):
        assert (tmp_path / name).is_file()


def test_broken_thresholds_fail_and_name_the_layer(exported_runs, tmp_path):
    run_dir, export_dir = exported_runs["vanilla"]
    broken = tmp_path / "broken.net"
    shutil.copy(export_dir / "model.net", broken)
    shutil.copy(export_dir / "export.json", tmp_path / "export.json")
    with h5py.File(broken, "r+") as fh:
        fh["layer/0/neuron/vThMant"][()] = int(fh["layer/0/neuron/vThMant"][()]) * 4
    result = _cli(run_dir, broken, tmp_path / "v", "--n", "40", "--eps", "0.0625")
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
    report = run_verify(run_dir, export_dir / "model.net", tmp_path, _options(n=10), show_progress=False)
    assert report["verdict"] == "fail" and not report["lava"]["agree"]
    assert "sample 1" in report["lava"]["mismatch"] and "neuron 5" in report["lava"]["mismatch"]


def test_bad_input_exits_2(exported_runs, tmp_path):
    run_dir, export_dir = exported_runs["vanilla"]
    net = str(export_dir / "model.net")
    for args, message in ((["--tolerance", "5"], "--tolerance"), (["--eps", "2"], "outside [0, 1]"),
                          (["--n", "100000"], "--n must be"), (["--surrogates", "nope"], "unknown surrogate"),
                          (["--steps", "0"], "--steps must be"),
                          (["--steps", "99999999999999999999"], "--steps must be in 1..1,000,000")):
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


def test_unpaired_exports_are_refused(exported_runs, tmp_path):
    vanilla_run, vanilla_export = exported_runs["vanilla"]
    _, tgo_export = exported_runs["tgo"]
    result = _cli(vanilla_run, tgo_export / "model.net", tmp_path / "a")
    assert result.exit_code == 2 and "exported from another checkpoint" in result.output, result.output
    lonely = tmp_path / "lonely" / "model.net"
    lonely.parent.mkdir()
    shutil.copy(vanilla_export / "model.net", lonely)
    result = _cli(vanilla_run, lonely, tmp_path / "b")
    assert result.exit_code == 2 and "no export.json" in result.output and "--allow-unpaired" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    result = _cli(vanilla_run, lonely, tmp_path / "c", "--allow-unpaired", "--lava-n", "0")
    assert result.exit_code in (0, 1) and (tmp_path / "c" / "verify.json").is_file(), result.output


def test_non_finite_weights_are_refused(exported_runs, tmp_path):
    run_dir, export_dir = exported_runs["vanilla"]
    poisoned = tmp_path / "checkpoint.pt"
    payload = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    state = payload["model_state"] if "model_state" in payload else payload["model"]
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first][0] = float("nan")
    torch.save(payload, poisoned)
    result = _cli(poisoned, export_dir / "model.net", tmp_path / "v", "--allow-unpaired")
    assert result.exit_code == 2 and f"model entry '{first}' is not finite (NaN or inf)" in result.output, \
        result.output

    net = tmp_path / "nan.net"
    shutil.copy(export_dir / "model.net", net)
    with h5py.File(net, "r+") as handle:
        values = handle["layer/0/weight"][()].astype("float64")
        values.flat[0] = float("nan")
        del handle["layer/0/weight"]
        handle["layer/0/weight"] = values
    result = _cli(run_dir, net, tmp_path / "w", "--allow-unpaired")
    assert result.exit_code == 2 and "must be integers" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_lava_not_run_is_reported_unchecked(exported_runs, tmp_path):
    run_dir, export_dir = exported_runs["vanilla"]
    report = run_verify(run_dir, export_dir / "model.net", tmp_path, _options(n=20, lava_n=0,
                        budget=EngineBudget(steps=2, restarts=1, eot_k=1, search_queries=8, doubled_sources=1)),
                        show_progress=False)
    assert report["lava"] == {"samples": 0, "checked": False, "agree": None, "mismatch": None}
    assert report["verdict"] in ("unchecked", "unconverged") and not report["reasons"]
    assert "Lava: not checked" in (tmp_path / "verify.md").read_text()


def test_generator_dependent_noise_is_caught(exported_runs, tmp_path, monkeypatch):
    """hw_sim's generator made degenerate (one draw shared by every neuron and pushed 4 sigma up): the fixed
    point's accuracy under it no longer matches the independent PCG64 generator, and verify fails."""
    import hw_sim.simulator as simulator
    real = simulator.layer_noise

    def stuck(layer, steps, device="cpu"):
        noise = real(layer, steps, device)
        if noise is None:
            return None
        shared = noise.flatten(1)[:, :1].abs().expand_as(noise.flatten(1)).reshape(noise.shape)
        return 4 * (shared + layer.neuron.noise.sigma)

    run_dir, export_dir = exported_runs["tgo"]
    monkeypatch.setattr(simulator, "layer_noise", stuck)
    options = _options(n=60, lava_n=0, repeats=10, budget=EngineBudget(steps=2, restarts=1, eot_k=2, search_queries=8,
                                                                        select_seeds=2, doubled_sources=1))
    report = run_verify(run_dir, export_dir / "model.net", tmp_path, options, show_progress=False)
    assert report["verdict"] == "fail"
    assert any("depends on the noise generator" in reason for reason in report["reasons"]), report["reasons"]


@pytest.mark.parametrize("q, stretched", [(29, True), (32, False)])
def test_input_grid_note_matches_what_rounding_does(q, stretched):
    """The largest move round((x + d) * Q) - round(x * Q) over |d| <= eps and pixels x: the note's level count."""
    eps = 0.0625
    x = torch.linspace(0, 1 - eps, 20001, dtype=torch.float64)   # natural pixels: mostly off the grid
    moved = int(((x + eps) * q).round().sub((x * q).round()).max())
    notes = input_grid_notes([eps, 2 * eps], q)
    if stretched:
        assert moved == math.ceil(eps * q) == 2 and moved / q > eps
        assert f"can face {moved} levels = {moved / q:.4f}" in notes[0]
        assert notes[-1].endswith("--input-scale 32`")                   # the nearest Q with whole levels
    else:
        assert moved / q == eps and notes == []
