"""The LIF neuron, its noise and its surrogates, on hand-computed numbers and against Norse itself."""

import pytest
import torch
from norse.torch.functional.lif import LIFFeedForwardState, LIFParameters, lif_feed_forward_step

from train.config import NeuronConfig
from train.neuron import LIFState, NoisyLIF, loihi_decay, noisy_lif_step
from train.surrogate import SURROGATES, spike, surrogate_derivative


def test_loihi_decays_round_norse_defaults():
    assert loihi_decay(1e-3, 200.0) == 819   # 819.2
    assert loihi_decay(1e-3, 100.0) == 410   # 409.6
    assert loihi_decay(1e-3, 1000.0) == 4096


def test_step_on_hand_computed_numbers():
    x = torch.tensor([1.0])
    state = LIFState(torch.zeros(1), torch.zeros(1))
    expected = [(0.0, 0.1), (1.0, 0.27), (0.0, 0.244)]  # (spike, pre-spike v) with d_syn 0.2, d_mem 0.1, v_th .25
    for z_ref, v_ref in expected:
        z, state, v = noisy_lif_step(x, state, 0.2, 0.1, 0.25, "superspike", 2.0)
        assert float(z) == z_ref and float(v) == pytest.approx(v_ref)
        assert float(state.v) == pytest.approx(0.0 if z_ref else v_ref)


def test_matches_norse_lif_feed_forward_step():
    torch.manual_seed(0)
    cfg = NeuronConfig()
    layer = NoisyLIF(cfg)
    currents = torch.rand(12, 5, 7) * 3
    ours = layer(currents)
    p = LIFParameters(tau_syn_inv=torch.tensor(loihi_decay(cfg.dt, cfg.tau_syn_inv) / 4096 / cfg.dt),
                      tau_mem_inv=torch.tensor(loihi_decay(cfg.dt, cfg.tau_mem_inv) / 4096 / cfg.dt),
                      v_th=torch.tensor(cfg.v_th), method="heaviside")
    state = LIFFeedForwardState(v=torch.zeros(5, 7), i=torch.zeros(5, 7))
    for t in range(12):
        z, state = lif_feed_forward_step(currents[t], state, p, dt=cfg.dt)
        assert torch.equal(z, ours[t])
        torch.testing.assert_close(state.v, layer.potentials[t] * (1 - ours[t]))


def _noisy_layer(sigma: float, noise_at_inference: bool = True) -> NoisyLIF:
    return NoisyLIF(NeuronConfig(sigma=sigma, noise_at_inference=noise_at_inference))


def _run(layer: NoisyLIF, seed: int) -> torch.Tensor:
    layer.generator = torch.Generator().manual_seed(seed)
    return layer(torch.full((20, 64, 32), 1.2))


def test_noise_seeding():
    layer = _noisy_layer(0.3)
    assert torch.equal(_run(layer, 1), _run(layer, 1))
    assert not torch.equal(_run(layer, 1), _run(layer, 2))


def test_noise_off_is_deterministic():
    assert torch.equal(_run(_noisy_layer(0.0), 1), _run(_noisy_layer(0.0), 2))
    quiet = _noisy_layer(0.3, noise_at_inference=False).eval()
    assert torch.equal(_run(quiet, 1), _run(quiet, 2))
    assert torch.equal(_run(quiet, 1), _run(_noisy_layer(0.0), 1))
    assert not torch.equal(_run(quiet.train(), 1), _run(quiet.train(), 2))  # training keeps the noise


def test_threshold_noise_never_enters_the_state():
    layer = _noisy_layer(0.25)
    _run(layer, 0)
    clean = _noisy_layer(0.0)
    # the threshold noise never enters the state: potentials are the same as without noise until a spike differs
    clean(torch.full((1, 64, 32), 1.2))
    torch.testing.assert_close(layer.potentials[0], clean.potentials[0])


def test_spike_is_strict_and_surrogates_have_their_shapes():
    assert spike(torch.tensor([0.0, 1e-6, -1e-6]), "superspike", 1.0).tolist() == [0.0, 1.0, 0.0]
    x = torch.tensor([0.0, 1.0])
    assert surrogate_derivative("superspike", x, 2.0).tolist() == pytest.approx([1.0, 1 / 9])
    assert surrogate_derivative("triangle", x, 2.0).tolist() == pytest.approx([2.0, 0.0])
    assert surrogate_derivative("arctan", x, 2.0)[0] == pytest.approx(1.0)
    assert surrogate_derivative("ste", x, 5.0).tolist() == [1.0, 1.0]
    for name in SURROGATES:
        assert float(surrogate_derivative(name, torch.tensor([0.0]), 2.0)) > 0, name
    with pytest.raises(ValueError):
        spike(x, "nope", 1.0)
