"""The fused CUBA kernels equal the eager step bit for bit: numba's (`hw_sim.neurons.cuba_numba`, the CPU's) and
Triton's (`hw_sim.neurons.cuba_triton`, run on CPU tensors under Triton's interpreter). Random layers covering
wrap, saturation, noise, bias and decays 0 and 4096, and lava-dl's mnist.net and small tgo nets (a stochastic
conv layer, delays) through `simulate`; a kernel that fails falls back to the eager step."""
import importlib
import inspect
import sys
import types
import warnings
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import pytest
import torch

from hw_sim import simulator
from hw_sim.fixed_point import UV_LIMIT
from hw_sim.netfile import DECAY_UNITY, NetFile, Neuron, load_net
from hw_sim.neurons.cuba import CubaParams, CubaState, cuba_params, cuba_step
from hw_sim.neurons.ops import ExactOps
from hw_sim.simulator import encode_inputs
from tests.hw_sim_nets import dense, neuron, random_images, tgo_convnet, tgo_mlp, weights, write_net

MNIST = Path(pytest.importorskip("lava.lib.dl.netx").__file__).parents[4] / "tests/lava/lib/dl/netx/mnist.net"


@pytest.fixture(params=["numba", "triton"])
def kernel(request, monkeypatch):
    """`cuba_numba`, or `cuba_triton` with its kernel under Triton's interpreter (reloaded as it was
    afterwards, `triton.language.math` restored)."""
    pytest.importorskip(request.param)
    if request.param == "numba":
        from hw_sim.neurons import cuba_numba
        yield cuba_numba
        return
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    from triton.runtime import interpreter
    import triton.language as tl
    for name, dtype in (("get_double_ty", tl.float64), ("get_int32_ty", tl.int32),
                        ("get_int8_ty", tl.uint8)):  # missing from 2.3's
        if not hasattr(interpreter.Builder, name):  # interpreter (casts to them fail there, not on a GPU)
            monkeypatch.setattr(interpreter.Builder, name, lambda self, dtype=dtype: dtype, raising=False)
    for name, member in inspect.getmembers(tl.math):  # the interpreter replaces every member (its __file__ too,
        monkeypatch.setattr(tl.math, name, member)      # which breaks hypothesis's module scan in later tests)
    from hw_sim.neurons import cuba_triton
    try:
        yield importlib.reload(cuba_triton)
    finally:
        monkeypatch.undo()
        importlib.reload(cuba_triton)


def _eager(a6: torch.Tensor, params: CubaParams, noise: Optional[torch.Tensor]):
    """Spikes, u and v of every step from zero state by `cuba_step` (the simulator's eager path)."""
    state, ops, out = CubaState.zeros(a6[0].to(torch.float64)), ExactOps(), []
    for j in range(a6.shape[0]):
        spikes, state = cuba_step(state, a6[j].clone(), params, ops, None if noise is None else noise[j])
        out.append((spikes.float(), state.u.clone(), state.v.clone()))
    return [torch.stack(t) for t in zip(*out)]


CASES = {  # (i_decay, v_decay, vth_mant, input magnitude in file units, bias, noise, input dtype)
    "decays": (1024, 256, 300, 200, False, False, torch.float32),
    "bias noise": (333, 4000, 100, 50, True, True, torch.float32),
    "u full decay, v none": (DECAY_UNITY, 0, 5000, 30000, True, False, torch.float64),
    "u none, v full decay": (0, DECAY_UNITY, 2000, 300, False, True, torch.float32),
    "saturate": (DECAY_UNITY, 0, (1 << 17) - 1, 1 << 15, True, False, torch.float32),
    "wrap": (100, 50, 1 << 16, 1 << 20, True, True, torch.float32),
    "wrap int32": (0, 0, (1 << 17) - 1, 1 << 26, False, False, torch.float64),
}


@pytest.mark.parametrize("case", CASES)
def test_kernel_equals_eager_step(kernel, case):
    i_decay, v_decay, vth, peak, with_bias, with_noise, dtype = CASES[case]
    steps, count, shape = 23, 5, (3, 70)  # 1050 neurons: two programs, the second one partly masked
    gen = torch.Generator().manual_seed(len(case))
    a6 = torch.randint(-peak, peak + 1, (steps, count) + shape, generator=gen).to(dtype) * 64
    bias = torch.randint(-peak, peak + 1, shape, generator=gen) if with_bias else torch.zeros(shape, dtype=torch.int64)
    noise = torch.randint(-vth << 6, vth << 6, (steps,) + shape, generator=gen).double() if with_noise else None
    params = cuba_params(Neuron(i_decay, v_decay, vth), bias, peak, steps)
    assert params.wrap == case.startswith("wrap") and params.saturate == (case in ("saturate", "u full decay, v none")
                                                                          or params.wrap)
    spikes, u, v = _eager(a6, params, noise)
    assert 0 < int(spikes.sum()) < spikes.numel()
    assert params.saturate == bool((v.abs() == UV_LIMIT - 1).any())  # the clip is exercised where it is on
    out_u, out_v = torch.zeros(a6.shape, dtype=torch.float64), torch.zeros(a6.shape, dtype=torch.float64)
    out = a6.float() if dtype == torch.float32 else torch.empty(a6.shape)  # spikes written over the input
    scale = 64 if dtype == torch.float64 else 1  # float64 cases pass file units (a netx input layer's signal)
    kernel.run_cuba(a6 / scale, out, params, noise, out_u, out_v, a_scale=scale)
    assert torch.equal(out, spikes) and torch.equal(out_u, u) and torch.equal(out_v, v)


def _mnist(tmp_path: Path) -> Tuple[NetFile, torch.Tensor]:
    net = load_net(MNIST)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 300, (3, 8, *net.input_shape), generator=gen, dtype=torch.int32)  # graded, as netx's
    return net, x * (torch.rand(x.shape, generator=gen) < 0.3)  # own tests feed it


def _tgo(net: NetFile) -> Tuple[NetFile, torch.Tensor]:
    return net, encode_inputs(net, torch.from_numpy(random_images(3, net.tgo.input_shape)))


def _after_sigma_delta(tmp_path: Path) -> Tuple[NetFile, torch.Tensor]:
    """A delta input layer before CUBA layers: the network runs from before the window, so the CUBA layers
    start early and reset at the window's start (two kernel launches)."""
    rng = np.random.default_rng(0)
    layers = [{"type": "input", "shape": [12], "neuron": {"type": "SDNN", "vThMant": 1}},
              dense(16, weights(rng, (16, 12), 60), neuron(), bias=rng.integers(-100, 400, 16)),  # busy before
              dense(5, weights(rng, (5, 16), 60))]                                               # the reset
    net = load_net(write_net(tmp_path / "mixed.net", layers))
    return net, torch.randint(0, 200, (3, 6, 12), generator=torch.Generator().manual_seed(0), dtype=torch.int32)


NETS = {"mnist.net": _mnist, "after sigma-delta": _after_sigma_delta,
        "stochastic convnet": lambda tmp: _tgo(load_net(tgo_convnet(tmp / "conv.net", sigma=3000))),
        "mlp with delays": lambda tmp: _tgo(load_net(tgo_mlp(tmp / "mlp.net", delay=2)))}


@pytest.mark.parametrize("name", NETS)
def test_simulate_uses_the_kernel_bit_exactly(kernel, monkeypatch, tmp_path, name):
    net, x = NETS[name](tmp_path)
    with simulator.eager_cuba():
        eager = simulator.simulate(net, x, record=True)
    calls = []
    monkeypatch.setattr(simulator, "_cuba_kernel", lambda device: calls.append(device) or kernel)
    fast = simulator.simulate(net, x, record=True)
    assert len(calls) == sum(isinstance(layer.neuron, Neuron) for layer in net.layers)
    assert all(bool(s.any()) for s in eager.spikes[:-1])  # the readout layer integrates without spiking
    unrecorded = simulator.simulate(net, x)  # spikes written over the float32 input
    for expected, actual in zip(eager.spikes * 2 + eager.u + eager.v + [eager.readout_v] * 2,
                                fast.spikes + unrecorded.spikes + fast.u + fast.v + [fast.readout_v,
                                                                                     unrecorded.readout_v]):
        assert torch.equal(expected, actual)


def test_numba_kernel_splits_the_batch_across_threads(monkeypatch):
    pytest.importorskip("numba")
    from hw_sim.neurons import cuba_numba
    monkeypatch.setattr(cuba_numba, "SPLIT_WORK", 1)   # split even this small batch
    gen = torch.Generator().manual_seed(3)
    a6 = torch.randint(-400, 401, (9, 7, 33), generator=gen).to(torch.float32) * 64
    params = cuba_params(Neuron(700, 300, 150), torch.randint(-50, 50, (33,), generator=gen), 400, 9)
    spikes, u, v = _eager(a6, params, None)
    threads = torch.get_num_threads()
    torch.set_num_threads(3)  # 7 samples in slices of 2, 2 and 3
    try:
        out, out_u, out_v = torch.empty(a6.shape), torch.zeros(a6.shape), torch.zeros(a6.shape)
        flags = torch.zeros((7, 9, 33), dtype=torch.bool)
        cuba_numba.run_cuba(a6, out, params, None, out_u, out_v, flags)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(out, spikes) and torch.equal(out_u, u.float()) and torch.equal(out_v, v.float())
    assert torch.equal(flags, spikes.bool().transpose(0, 1)) and 0 < int(spikes.sum()) < spikes.numel()


@pytest.mark.parametrize("name", ["mnist.net", "after sigma-delta"])
def test_a_failing_kernel_falls_back_to_the_eager_step(monkeypatch, tmp_path, name):
    """A kernel that raises (a compile error, an unsupported GPU) warns once; every CUBA layer then runs the
    eager step, the netx input layer's values (passed to kernels in file units) included."""
    net, x = NETS[name](tmp_path)
    with simulator.eager_cuba():
        eager = simulator.simulate(net, x, record=True)
    calls = []

    def run_cuba(*args, **kwargs):
        calls.append(args)
        raise RuntimeError("no kernel image is available for execution on the device")
    broken = types.ModuleType("broken_kernel")
    broken.run_cuba = run_cuba
    monkeypatch.setitem(simulator._KERNELS, "cpu", True)  # restored afterwards
    monkeypatch.setattr(simulator, "_cuba_kernel", lambda device: broken if simulator._KERNELS[device.type] else None)
    with pytest.warns(RuntimeWarning, match="broken_kernel failed on cpu .*no kernel image"):
        fallback = simulator.simulate(net, x, record=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = simulator.simulate(net, x)
    assert len(calls) == 1
    for expected, actual in zip(eager.spikes * 2 + eager.u + eager.v + [eager.readout_v] * 2,
                                fallback.spikes + again.spikes + fallback.u + fallback.v + [fallback.readout_v,
                                                                                           again.readout_v]):
        assert torch.equal(expected, actual)


def test_kernel_wraps_the_current_at_its_edges(kernel):
    """Lava's 24-bit wrap of u at its edges: +-2^23 and one either side, held in u by a full current decay."""
    edges = torch.tensor([UV_LIMIT + d for d in (-1, 0, 1)] + [-UV_LIMIT + d for d in (-1, 0, 1)], dtype=torch.float64)
    a6 = torch.stack([edges, -edges, edges * 0]).reshape(3, 1, 6).contiguous()  # [steps, 1 sample, 6 neurons]
    params = cuba_params(Neuron(DECAY_UNITY, 2048, (1 << 17) - 1), torch.zeros(6, dtype=torch.int64), 1 << 17, 3)
    assert params.wrap
    spikes, u, v = _eager(a6, params, None)
    out, out_u, out_v = torch.empty(a6.shape), torch.zeros(a6.shape, dtype=torch.float64), torch.zeros(
        a6.shape, dtype=torch.float64)
    kernel.run_cuba(a6, out, params, None, out_u, out_v)
    assert torch.equal(out, spikes) and torch.equal(out_u, u) and torch.equal(out_v, v)
    assert sorted(set(u[0, 0].tolist())) == [-UV_LIMIT + 1, UV_LIMIT - 1, UV_LIMIT]  # both edges wrapped once


def test_cpu_runs_the_eager_step_without_numba(monkeypatch):
    monkeypatch.setitem(simulator._KERNELS, "cpu", True)
    assert simulator._cuba_kernel(torch.device("cpu")) is not None or importlib.util.find_spec("numba") is None
    import hw_sim.neurons
    monkeypatch.setitem(sys.modules, "numba", None)  # as if numba were not installed
    monkeypatch.delitem(sys.modules, "hw_sim.neurons.cuba_numba", raising=False)
    monkeypatch.delattr(hw_sim.neurons, "cuba_numba", raising=False)
    assert simulator._cuba_kernel(torch.device("cpu")) is None


def test_numba_threads_work_in_a_forked_child(monkeypatch):
    """A child forked after the batch was split across threads (Lava's and torch's workers fork) splits it
    again with threads of its own instead of waiting on its parent's."""
    pytest.importorskip("numba")
    import multiprocessing
    from hw_sim.neurons import cuba_numba
    monkeypatch.setattr(cuba_numba, "SPLIT_WORK", 1)
    a6 = torch.randint(-300, 301, (4, 6, 8), generator=torch.Generator().manual_seed(5)).float() * 64
    params = cuba_params(Neuron(500, 200, 100), torch.zeros(8, dtype=torch.int64), 300, 4)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cuba_numba.run_cuba(a6, torch.empty(a6.shape), params, None)  # starts the parent's threads
        child = multiprocessing.get_context("fork").Process(target=cuba_numba.run_cuba,
                                                            args=(a6, torch.empty(a6.shape), params, None))
        child.start()
        child.join(timeout=60)
    finally:
        torch.set_num_threads(threads)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung and child.exitcode == 0
