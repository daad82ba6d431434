"""Counter-based threshold-noise generator `tgo-hash32-gauss-v1`, identical in numpy and torch.

noise = g(seed, layer, neuron, step): a pure function of its counters, so every backend, batch size and
evaluation order draws the same value. Definition (all arithmetic on non-negative int64 holding uint32 values):

1. `h_k = MurmurHash3_x86_32(key = [layer, neuron, step, k] as four little-endian uint32 words, seed)`
   for k = 0, 1, 2 (standard MurmurHash3, 16-byte key).
2. `S` = sum of the 12 bytes of h_0, h_1, h_2 (each byte uniform in 0..255), `C = 2*S - 12*255`:
   Irwin-Hall with 12 terms, mean 0, std sqrt(12 * 65535 / 3) = 511.996, |C| <= 3060.
3. `noise = round_half_away_from_zero(sigma * C / 512)`: std sigma * (1 - 8e-6) (plus rounding for tiny
   sigma), bounded by +-5.98 sigma.

`layer` is the `/layer/<i>` index in the .net file, `neuron` the flat index in C order of the layer's
file `shape` (torch's NCHW flatten order), `step` the layer's step within the sample (0 at its state reset).

Functions take numpy int64 arrays or torch int64 tensors (any mix that broadcasts) and use only Python
operators, so one implementation serves both. No product exceeds 2^48, so nothing overflows int64.
"""
from __future__ import annotations

from typing import Sequence, TypeVar

NAME = "tgo-hash32-gauss-v1"

IntArray = TypeVar("IntArray")  # numpy int64 ndarray or torch int64 Tensor

_M32 = 0xFFFFFFFF
_C1, _C2 = 0xCC9E2D51, 0x1B873593
_IRWIN_HALL_TERMS = 12  # bytes summed: 3 hashes x 4 bytes


def _mul32(x: IntArray, c: int) -> IntArray:
    """(x * c) mod 2^32 for x in [0, 2^32), split into 16-bit halves of c so no product exceeds 2^48."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _M32


def _rotl32(x: IntArray, r: int) -> IntArray:
    return ((x << r) | (x >> (32 - r))) & _M32


def _fmix32(h: IntArray) -> IntArray:
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def murmur3_32(words: Sequence[IntArray | int], seed: int) -> IntArray:
    """MurmurHash3_x86_32 of the little-endian bytes of `words` (uint32 each), elementwise over arrays.

    words: int64 arrays/tensors (or ints) that broadcast together, values taken mod 2^32.
    Returns: uint32 values in int64, broadcast shape of the words.
    """
    h = seed & _M32
    for word in words:
        k = _mul32(word & _M32, _C1)
        k = _mul32(_rotl32(k, 15), _C2)
        h = _rotl32(h ^ k, 13)
        h = (_mul32(h, 5) + 0xE6546B64) & _M32
    return _fmix32(h ^ (4 * len(words)))


def gauss_noise(seed: int, layer: int, neuron: IntArray, step: IntArray, sigma: int) -> IntArray:
    """Integer threshold noise of std ~sigma (state units) for each (neuron, step) pair.

    neuron, step: int64 arrays/tensors that broadcast (e.g. neuron [1, n] and step [R, 1] -> [R, n]).
    Returns int64, same broadcast shape; all zeros when sigma == 0.
    """
    total = 0
    for k in range(_IRWIN_HALL_TERMS // 4):
        h = murmur3_32([layer, neuron, step, k], seed)
        total = total + (h & 0xFF) + ((h >> 8) & 0xFF) + ((h >> 16) & 0xFF) + (h >> 24)
    scaled = (2 * total - _IRWIN_HALL_TERMS * 255) * sigma
    magnitude = (abs(scaled) + 256) >> 9
    return magnitude * (1 - 2 * (scaled < 0))
