"""The counter-based noise generator: MurmurHash3 test vectors, numpy == torch, Gaussian statistics."""
import math

import numpy as np
import pytest
import torch

from hw_sim import prng


def _murmur(data: bytes, seed: int) -> int:
    words = [np.asarray(int.from_bytes(data[i:i + 4], "little"), dtype=np.int64) for i in range(0, len(data), 4)]
    return int(prng.murmur3_32(words, seed))


@pytest.mark.parametrize("data, seed, expected", [
    (b"", 0, 0), (b"", 1, 0x514E28B7), (b"", 0xFFFFFFFF, 0x81F16F39),
    (b"\0\0\0\0", 0, 0x2362F9DE), (b"aaaa", 0x9747B28C, 0x5A97808A), (b"\xff\xff\xff\xff", 0, 0x76293B50),
    (b"!Ce\x87", 0, 0xF55B516B), (b"!Ce\x87", 0x5082EDEE, 0x2362F9DE),
])
def test_murmur3_matches_published_vectors(data, seed, expected):
    assert _murmur(data, seed) == expected


def _grid(lib, neurons: int, steps: int):
    neuron = lib.arange(neurons, dtype=lib.int64)[None, :]
    step = lib.arange(steps, dtype=lib.int64)[:, None]
    return neuron, step


def test_numpy_and_torch_draw_identical_noise():
    for seed, layer, sigma in [(0, 0, 1000), (2 ** 32 - 1, 7, 3), (123456789, 2, 2 ** 23 - 1)]:
        expected = prng.gauss_noise(seed, layer, *_grid(np, 300, 40), sigma)
        got = prng.gauss_noise(seed, layer, *_grid(torch, 300, 40), sigma)
        assert got.dtype == torch.int64 and np.array_equal(got.numpy(), expected)


def test_noise_is_a_pure_function_of_its_counters():
    """Any sub-block (other batch, order or slice) draws exactly the corresponding values."""
    full = prng.gauss_noise(5, 1, *_grid(np, 200, 30), 500)
    neuron = np.array([[199, 3, 50]], dtype=np.int64)
    step = np.array([[29], [0]], dtype=np.int64)
    assert np.array_equal(prng.gauss_noise(5, 1, neuron, step, 500), full[step, neuron])


def test_noise_statistics_are_gaussian_with_std_sigma():
    sigma = 1000
    x = prng.gauss_noise(42, 3, *_grid(np, 4000, 100), sigma).astype(np.float64)
    assert abs(x.mean()) < 0.01 * sigma            # std error of the mean: 1.6e-3 sigma
    assert abs(x.std() / sigma - 1) < 0.01         # std error of the std: ~1e-3
    assert np.abs(x).max() <= 6 * sigma            # Irwin-Hall 12 is bounded by 5.98 sigma
    within = [np.mean(np.abs(x) <= k * sigma) for k in (1, 2, 3)]
    normal = [math.erf(k / math.sqrt(2)) for k in (1, 2, 3)]
    assert np.allclose(within, normal, atol=0.005)
    skew = np.mean((x / x.std()) ** 3)
    assert abs(skew) < 0.02


def test_noise_is_independent_across_neurons_steps_layers_and_seeds():
    grid = _grid(np, 2000, 100)
    x = prng.gauss_noise(1, 0, *grid, 1000).astype(np.float64)
    corr = lambda a, b: np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert abs(corr(x[:, 1:], x[:, :-1])) < 0.01   # neighbouring neurons (200k pairs: std error 0.002)
    assert abs(corr(x[1:], x[:-1])) < 0.01         # consecutive steps
    assert abs(corr(x, prng.gauss_noise(1, 1, *grid, 1000))) < 0.01  # another layer
    assert abs(corr(x, prng.gauss_noise(2, 0, *grid, 1000))) < 0.01  # another seed


def test_sigma_scales_the_noise_and_zero_sigma_gives_none():
    grid = _grid(np, 100, 10)
    assert not prng.gauss_noise(9, 0, *grid, 0).any()
    small, large = (prng.gauss_noise(9, 0, *grid, s) for s in (100, 10000))
    assert np.abs(large - 100 * small).max() <= 50  # same draws, rounded at each scale
    assert prng.NAME == "tgo-hash32-gauss-v1"
