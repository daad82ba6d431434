"""hw_sim/memory.py: the batch is chunked to fit a memory budget, bit-equal to one run; too little memory is
refused before anything is allocated."""
import pytest
import torch

from hw_sim import memory, simulator
from hw_sim.netfile import load_net
from hw_sim.simulator import encode_inputs, simulate
from tests.hw_sim_nets import random_images, tgo_convnet, tgo_mlp
from tgo_errors import UsageError

SAMPLES = 10


@pytest.fixture(params=["mlp", "conv"])
def net_and_inputs(request, tmp_path):
    write = {"mlp": tgo_mlp, "conv": tgo_convnet}[request.param]
    net = load_net(write(tmp_path / f"{request.param}.net", sigma=9000, noise_seed=3))
    return net, encode_inputs(net, torch.from_numpy(random_images(SAMPLES, net.tgo.input_shape)))


def test_a_small_budget_runs_the_batch_in_chunks_with_bit_equal_results(net_and_inputs, monkeypatch):
    net, x = net_and_inputs
    whole = simulate(net, x, record=True)
    steps = net.window(x.shape[1])
    budget = 3 * memory.sample_bytes(net, steps, x.shape[1], True) + 2 * SAMPLES * memory.run_bytes(net, steps, True)
    assert memory.batch_chunk(net, SAMPLES, steps, x.shape[1], True, torch.device("cpu"), budget) == 3
    chunks = []
    run_chunk = simulator._simulate
    monkeypatch.setattr(simulator, "_simulate", lambda net, x, *rest: chunks.append(len(x)) or run_chunk(net, x, *rest))
    parts = simulate(net, x, record=True, memory_limit=budget)
    assert chunks == [3, 3, 3, 1]
    assert any(bool(s.any()) for s in whole.spikes[:-1])  # hidden layers spike: the comparison means something
    for name in ("spikes", "u", "v"):
        assert all(torch.equal(a, b) for a, b in zip(getattr(whole, name), getattr(parts, name)))
    assert torch.equal(whole.readout_v, parts.readout_v)


def test_a_batch_that_fits_whole_runs_in_one_chunk_with_its_results_counted_once(net_and_inputs):
    net, x = net_and_inputs
    steps, cpu = net.window(x.shape[1]), torch.device("cpu")
    whole = SAMPLES * (memory.sample_bytes(net, steps, x.shape[1], True) + memory.run_bytes(net, steps, True))
    assert memory.batch_chunk(net, SAMPLES, steps, x.shape[1], True, cpu, whole) == SAMPLES
    assert memory.batch_chunk(net, SAMPLES, steps, x.shape[1], True, cpu, whole - 1) < SAMPLES


def test_one_sample_that_does_not_fit_is_refused(net_and_inputs):
    net, x = net_and_inputs
    one = memory.sample_bytes(net, net.window(x.shape[1]), x.shape[1], False)
    with pytest.raises(UsageError, match="one sample needs about"):
        simulate(net, x, memory_limit=one - 1)


def test_results_that_do_not_fit_are_refused(net_and_inputs):
    net, x = net_and_inputs
    steps = net.window(x.shape[1])
    budget = memory.sample_bytes(net, steps, x.shape[1], True) + SAMPLES * memory.run_bytes(net, steps, True)
    with pytest.raises(UsageError, match=f"the results of {SAMPLES} samples"):
        simulate(net, x, record=True, memory_limit=budget)


def test_the_estimate_grows_with_the_declared_shapes_and_the_machine_has_room_for_a_small_batch(tmp_path):
    small = load_net(tgo_mlp(tmp_path / "small.net", sizes=(48, 32, 10)))
    large = load_net(tgo_mlp(tmp_path / "large.net", sizes=(48, 320, 10)))
    assert memory.sample_bytes(large, 9, 6, False) > memory.sample_bytes(small, 9, 6, False)
    assert memory.sample_bytes(small, 18, 6, False) > memory.sample_bytes(small, 9, 6, False)
    assert memory.run_bytes(small, 9, True) > memory.run_bytes(small, 9, False)
    assert memory.available_bytes(torch.device("cpu")) > 0
    assert memory.batch_chunk(small, 4, 9, 6, False, torch.device("cpu")) == 4
