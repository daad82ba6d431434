"""export.hardware on a tiny net whose resources, partition, activity and estimates are computed by hand."""
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from export.hardware import Profile, activity, hardware_report, load_profile, profile_names
from hw_sim.netfile import load_net
from hw_sim.simulator import Run
from tests.hw_sim_nets import dense, neuron, tgo_group, tgo_mlp, write_net
from tgo_cli import app
from tgo_errors import UsageError

FIGURES = {"neurons_per_core": 3, "synapse_bits_per_core": 20, "fan_out_axons_per_core": 2,
           "fan_in_axons_per_core": 100, "cores_per_chip": 4, "weight_bits_max": 9, "delay_max": 62,
           "energy_synaptic_op_pj": 2, "energy_neuron_update_pj": 1, "energy_spike_pj": 10,
           "time_synaptic_op_ns": 1, "time_neuron_update_ns": 0.5, "barrier_sync_ns": 10}


def _profile(**changes) -> Profile:
    values = {**FIGURES, **changes}
    return Profile("tiny", "test chip", {k: {"value": v, "estimate": True, "source": "test"} for k, v in values.items()})


@pytest.fixture
def tiny(tmp_path):
    """input (1, 3, 3) -> conv 2x2 [[1, 0], [-3, 2]] -> (1, 2, 2) -> flatten -> dense 2 -> readout 2."""
    conv = {"type": "conv", "shape": [1, 2, 2], "weight": np.array([[[[1, 0], [-3, 2]]]]), "stride": [1, 1],
            "padding": [0, 0], "dilation": [1, 1], "groups": 1, "neuron": neuron()}
    layers = [{"type": "input", "shape": [1, 3, 3]}, conv, {"type": "flatten"},
              dense(2, np.array([[5, 0, 0, -1], [0, 7, 0, 0]]), neuron()), dense(2, np.array([[1, 2], [3, -4]]))]
    return load_net(write_net(tmp_path / "tiny.net", layers, tgo_group(1, (1, 3, 3), 2)))


def test_resources_and_partition_by_hand(tiny):
    report = hardware_report(tiny, _profile())
    rows = [(r["layer"], r["kind"], r["neurons"], r["synapses"], r["synapses_nonzero"], r["fan_in_axons"],
             r["fan_out_axons"], r["weight_bits"], r["cores"], r["cores_limited_by"]) for r in report["layers"]]
    # conv: 4 outputs x 4 taps, 3 nonzero taps; pixel (0, 2) feeds only the zero tap; 12 * 3 bits > 20 -> 2 cores
    assert rows == [(1, "conv", 4, 16, 12, 8, 1, 3, 2, "neurons"),
                    (3, "dense", 2, 8, 3, 3, 1, 4, 1, "neurons"),
                    (4, "dense", 2, 4, 4, 2, 0, 3, 1, "neurons")]  # [-4, 3]: 3 bits
    assert report["cores"] == 4 and report["fits"] and report["problems"] == []


def test_a_model_that_does_not_fit_names_the_layer_and_the_excess(tiny):
    report = hardware_report(tiny, _profile(fan_in_axons_per_core=2, cores_per_chip=3, weight_bits_max=3))
    assert not report["fits"]
    assert report["problems"] == [
        "layer 1: needs 4 input axons per core, tiny allows 2 (2 too many)",
        "layer 3: needs 3 input axons per core, tiny allows 2 (1 too many)",
        "layer 3: needs 4 weight bits, tiny allows 3 (1 too many)",
        "the network needs 4 cores, one tiny chip has 3 (1 too many; layer 1 alone needs 2)"]


def test_synaptic_memory_and_fan_out_set_the_cores(tiny):
    rows = hardware_report(tiny, _profile(neurons_per_core=100, synapse_bits_per_core=11,
                                          fan_out_axons_per_core=1))["layers"]
    # readout: 4 nonzero x 3 bits = 12 > 11 -> 2 cores; dense: 2 neurons x 2 readout cores / 1 axon -> 4 cores
    # (its 3 x 4 bits need only 2); conv: 4 neurons x 4 dense cores -> 16 (36 bits need 4)
    assert [(r["cores"], r["cores_limited_by"], r["fan_out_axons"]) for r in rows] == [
        (16, "fan-out axons", 4), (4, "fan-out axons", 2), (2, "synaptic memory", 0)]


def test_activity_energy_and_latency_by_hand(tiny):
    inputs = torch.zeros((1, 2, 1, 3, 3), dtype=torch.int32)
    inputs[0, 0, 0, 1, 1], inputs[0, 1, 0, 2, 1] = 5, 1     # pixel fan-outs 3 and 2
    spikes = [torch.zeros((1, 4, 1, 2, 2), dtype=torch.bool), torch.zeros((1, 4, 2), dtype=torch.bool),
              torch.zeros((1, 4, 2), dtype=torch.bool)]
    spikes[0][0, 0, 0, 0, 0] = spikes[0][0, 2, 0, 0, 0] = spikes[0][0, 1, 0, 1, 1] = True  # fan-outs 1, 1, 1
    spikes[1][0, 3, 1] = True                                                               # fan-out 2
    measured = activity(tiny, inputs, Run(spikes, torch.zeros((1, 4, 2), dtype=torch.int64)))
    assert measured == [{"synaptic_ops": 5.0, "neuron_updates": 16.0, "spikes": 3.0},
                        {"synaptic_ops": 3.0, "neuron_updates": 8.0, "spikes": 1.0},
                        {"synaptic_ops": 2.0, "neuron_updates": 8.0, "spikes": 0.0}]
    inf = hardware_report(tiny, _profile(), {"samples": 1, "steps": 4, "activity": measured})["per_inference"]
    assert (inf["synaptic_ops"], inf["neuron_updates"], inf["spikes"]) == (10, 32, 4)
    assert inf["energy_uj"] == pytest.approx(92e-6)   # 10 * 2 + 32 * 1 + 4 * 10 pJ
    assert inf["latency_us"] == pytest.approx(0.047)  # 4 steps * (max(13/8, 7/4, 6/4) + 10) ns


def test_profiles_are_data_with_a_source_for_every_figure():
    assert {"loihi1", "loihi2"} <= set(profile_names())
    keys = set(FIGURES)
    for name in profile_names():
        profile = load_profile(name)
        assert set(profile.figures) == keys
        assert all(f["source"] and isinstance(f["estimate"], bool) for f in profile.figures.values())
    assert load_profile("loihi1").value("neurons_per_core") == 1024
    with pytest.raises(UsageError, match="unknown chip profile"):
        load_profile("loihi9")


def test_cli_hardware_measures_activity(tmp_path):
    model = tgo_mlp(tmp_path / "mlp.net")
    x = np.random.default_rng(0).random((5, 3, 4, 4))
    np.save(tmp_path / "x.npy", x)
    result = CliRunner().invoke(app, ["hardware", str(model), "--inputs", str(tmp_path / "x.npy"), "--profile",
                                      "loihi1", "--n", "5"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "hardware.json").read_text())
    assert report["profile"] == "loihi1" and report["per_inference"]["samples"] == 5
    assert report["per_inference"]["neuron_updates"] == (32 + 24 + 10) * 9  # window L + T = 3 + 6
    assert report["per_inference"]["synaptic_ops"] > 0 and "synaptic ops" in result.output
