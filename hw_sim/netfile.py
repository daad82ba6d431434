"""Read and validate a netx `.net` file (lava-dl's HDF5 format plus tgo's extension, docs/NETFORMAT.md).

Format knowledge lives here only. The reader interprets the file exactly as `lava.lib.dl.netx.hdf5.Network`
(lava-dl 0.6.0) does for everything netx runs in fixed point: layer types `input` (with or without neurons),
`dense` (real or complex weights), `dense_rec`, `conv`, `flatten`; neuron types CUBA/LOIHI, SDNN and RF_IZ;
axonal, input and per-synapse delays. Everything else is refused with a `NetFormatError` naming the layer
and key. The file is a border: links are refused, and every dataset's shape and size are checked before it
is read. Nothing in the file is executed.

Time alignment (see DESIGN.md "hw_sim"): every synaptic hop costs one Lava step plus its `delay`. Each layer
k restarts from zero state at the start of its own sample window, `offsets[k]` steps after the input's
window starts, so within a window ("local step" j) layer k reads layer k-1's spikes of the same local step,
and a first layer with a synapse reads the input of local step j-1. (Sigma-delta and RF neurons are never
reset: they run from Lava step 0, see `simulator.simulate`.)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Tuple, Union

import h5py
import numpy as np

from hw_sim import prng
from tgo_errors import UsageError, unreadable_path

DECAY_UNITY = 4096          # decays are out of 4096
VTH_MANT_MAX = (1 << 18) - 1  # slayer's non-spiking readout writes (1<<18)-1; netx's own default is 1<<17
VTH_MANT_SPIKING_MAX = (1 << 17) - 1  # the 17-bit threshold mantissa of a spiking neuron (tgo export)
MAX_DELAY = 62              # netx clips larger delays
DENSE_WEIGHT_RANGE = (-256, 254)  # netx's weight-exponent trick is exact in this range
BIAS_RANGE = (-(1 << 15), (1 << 15) - 1)  # Lava stores bias_mant as int16
NOISE_SIGMA_MAX = (1 << 23) - 1
CUBA_TYPES = ("CUBA", "LOIHI")
SDNN_TYPE = "SDNN"
RF_IZ_TYPE = "RF_IZ"        # netx builds Lava's RF_IZ for any type with "RF" and without "PHASE"
SDNN_MESSAGE_BITS = 16      # netx's default graded-spike width of sigma-delta layers (CUBA: 0, binary)
MAX_NEURONS = 1 << 24       # per layer: far beyond a Loihi 2 chip, small enough to allocate
MAX_ELEMENTS = 1 << 26      # per dataset, checked before reading (a 58 KB file can declare 10^9 x 64)
MAX_STRING_BYTES = 1 << 20  # per string dataset, checked before reading
TGO_FORMAT, TGO_VERSION = "tgo-net", 1


class NetFormatError(UsageError):
    """A .net file that hw_sim cannot read: missing, not HDF5, or with a bad layer or key."""


@dataclass(frozen=True)
class Noise:
    """Threshold noise of a stochastic layer: the neuron spikes when `v + noise > vth_mant << 6`."""
    sigma: int  # std of the noise, state units (units of v)
    seed: int   # uint32
    prng: str   # generator name and version, `prng.NAME`


@dataclass(frozen=True)
class Neuron:
    """Loihi CUBA LIF parameters shared by a layer (Lava: du = i_decay - 1, dv = v_decay, vth = vth_mant)."""
    i_decay: int   # current decay out of 4096 (0: none, 4096: full)
    v_decay: int   # voltage decay out of 4096
    vth_mant: int  # spike when v > vth_mant << 6
    noise: Optional[Noise] = None
    message_bits = 0  # binary spikes


@dataclass(frozen=True)
class SigmaDeltaNeuron:
    """A netx SDNN layer: Lava's Delta (input layer), SigmaDelta or Sigma (`sigma_output`), ReLU activation."""
    kind: str      # 'delta', 'sigma_delta' or 'sigma'
    vth_mant: int  # send delta when |delta| >= vth_mant << 12
    noise = None
    message_bits = SDNN_MESSAGE_BITS


# netx's never-spiking integrator for a dense layer without a `neuron` group (`1 << 18 - 1` == 1 << 17).
INTEGRATOR = Neuron(i_decay=0, v_decay=DECAY_UNITY, vth_mant=1 << 17)


@dataclass(frozen=True)
class ResonatorNeuron:
    """A netx RF_IZ layer (Lava's resonate-and-fire Izhikevich neuron), as Lava's RF process stores it."""
    sin_decay: int  # out of 4096, after netx's round trip through period and alpha
    cos_decay: int
    vth: int        # spike when imag >= vth (vThMant << 6)
    noise = None
    message_bits = 0


def resonator_decays(sin_mant: int, cos_mant: int) -> Tuple[int, int]:
    """Lava's integer sin/cos decays of an RF neuron whose file says sinDecay/cosDecay (out of 4096).

    netx converts them to a period and a decay (slayer's `rf.neuron_params`), and Lava's RF process back
    (`(1 - alpha) * sin(2 pi / period)`, truncated to 12 bits); the same float64 operations here.
    """
    sin, cos = np.float64(sin_mant) / 4096, np.float64(cos_mant) / 4096
    with np.errstate(divide="ignore"):
        alpha = 1 - np.sqrt(sin ** 2 + cos ** 2)
        period = 1 / (np.arctan2(sin, cos) / 2 / np.pi)
        angle = np.pi * 2 * 1 / period
    return int(np.int32((1 - alpha) * np.sin(angle) * 4096)), int(np.int32((1 - alpha) * np.cos(angle) * 4096))


@dataclass(frozen=True)
class Dense:
    """Fully connected synapse: each neuron receives exactly `weight @ s` (file integers)."""
    weight: np.ndarray  # [out, in] int64 in DENSE_WEIGHT_RANGE


@dataclass(frozen=True)
class Conv:
    """2-D convolution as torch computes it (cross-correlation), output wrapped to 24 bits."""
    weight: np.ndarray            # [out, in/groups, kH, kW] int64, torch layout
    stride: Tuple[int, int]       # (H, W)
    padding: Tuple[int, int]      # (H, W)
    dilation: Tuple[int, int]     # (H, W)
    groups: int


@dataclass(frozen=True)
class Layer:
    """One neuron population and the synapse that feeds it (None: netx input layer, input enters a_in)."""
    index: int                             # i of /layer/<i>
    synapse: Union[Dense, Conv, None]
    shape: Tuple[int, ...]                 # neurons, file order: (N,) or (C, H, W)
    neuron: Union[Neuron, SigmaDeltaNeuron, ResonatorNeuron]
    bias: np.ndarray                       # [*shape] int64, CUBA: added to v as bias << 6 every step
    delay: int                             # extra steps on the synaptic hop for every synapse (0: one step in total)
    spread: Optional[np.ndarray] = None    # [out, in] int64 further steps per synapse (netx delays minus `delay`)
    recurrent: Optional[np.ndarray] = None  # dense_rec: [out, out] int64 weights from the layer's own spikes
    binary_input: bool = True              # the synapse counts any nonzero input as one spike (message bits 0)
    imag: Optional[np.ndarray] = None      # complex weights: [out, in] int64 imaginary part (synapse: the real)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def hop(self) -> int:
        """Lava steps between a spike of the previous layer and its earliest effect here."""
        return 1 + self.delay

    @property
    def max_spread(self) -> int:
        return 0 if self.spread is None else int(self.spread.max())


@dataclass(frozen=True)
class TgoMeta:
    """The /tgo group: how the analog input is encoded and the output read."""
    timesteps: int                 # T: input steps per sample
    input_scale: int               # Q: input spike value = round(clip(x, 0, 1) * Q)
    input_message_bits: int        # graded-spike width of the input
    input_shape: Tuple[int, ...]   # one sample, (C, H, W) or (features,)
    num_classes: int
    readout: str                   # 'v': logits = readout layer's v
    config_json: str


@dataclass(frozen=True)
class NetFile:
    """A validated network: layers in order, plus the tgo metadata when present."""
    path: Path
    input_shape: Tuple[int, ...]   # one sample's network input, file order (flat for an MLP)
    layers: Tuple[Layer, ...]
    tgo: Optional[TgoMeta]

    @property
    def input_message_bits(self) -> int:
        """Graded-input width given to netx; 0 means binary input (any nonzero value is one spike)."""
        return self.tgo.input_message_bits if self.tgo else 0

    @property
    def input_lag(self) -> int:
        """Local steps between an input step and the first layer's step that receives it (0 or 1)."""
        return 1 if self.layers[0].synapse is not None else 0

    @property
    def offsets(self) -> Tuple[int, ...]:
        """Lava step at which each layer's window starts, counted from the start of the input's window.

        A first layer with a synapse reads the previous step's input (offset = its delay); a netx input
        layer with a neuron group reads the input directly (offset 0).
        """
        return tuple(int(o) for o in np.cumsum([layer.hop for layer in self.layers]) - 1)

    def window(self, input_steps: int) -> int:
        """Default steps per sample: the last input step reaches the last layer in the window's last step.

        For tgo files this is L + T (docs/NETFORMAT.md).
        """
        return self.offsets[-1] + self.input_lag + input_steps + sum(layer.max_spread for layer in self.layers)

    @property
    def readout_local_step(self) -> int:
        """Local step of the readout layer whose v holds the logits (tgo files): T.

        That is Lava step `offsets[-1] + T` of a run started at step 0, NETFORMAT's `readout_step`.
        """
        if self.tgo is None:
            raise UsageError(f"{self.path}: not a tgo file (no /tgo group), so it defines no readout")
        return self.tgo.timesteps


def deterministic_net(net: NetFile) -> NetFile:
    """`net` with the threshold noise of every layer removed (the plain netx LIF)."""
    layers = tuple(replace(layer, neuron=replace(layer.neuron, noise=None)) for layer in net.layers)
    return replace(net, layers=layers)


def with_noise_seed(net: NetFile, seed: int) -> NetFile:
    """`net` with every stochastic layer's noise seed replaced by `seed` (uint32): another noise draw."""
    layers = tuple(layer if layer.neuron.noise is None else
                   replace(layer, neuron=replace(layer.neuron, noise=replace(layer.neuron.noise, seed=seed)))
                   for layer in net.layers)
    return replace(net, layers=layers)


def load_net(path: Union[str, Path], num_layers: Optional[int] = None) -> NetFile:
    """Read and validate a .net file; raise NetFormatError naming the layer and key on any problem.

    num_layers: read only /layer/0..num_layers-1, like netx's `Network(num_layers=...)`.
    """
    path = Path(path)
    if not path.is_file():
        raise NetFormatError(f"{path}: {unreadable_path(path)}")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise NetFormatError(f"{path}: not an HDF5 file ({err})") from None
    with handle:
        return _Reader(path, handle, num_layers).read()


class _Reader:
    """Walks /layer/0..n-1 like netx's `Network._create`, building validated dataclasses."""

    def __init__(self, path: Path, handle: h5py.File, num_layers: Optional[int] = None) -> None:
        self.path, self.handle, self.num_layers = path, handle, num_layers

    def fail(self, where: str, message: str) -> NetFormatError:
        return NetFormatError(f"{self.path}: {where}: {message}")

    def read(self) -> NetFile:
        groups = self.child(self.handle, "layer", "/", h5py.Group)
        if groups is None:
            raise self.fail("/", "missing group 'layer'")
        count = len(groups)
        if count == 0 or set(groups.keys()) != {str(i) for i in range(count)}:
            raise self.fail("/layer", f"layers must be numbered 0..n-1 without gaps, found {sorted(groups.keys())[:8]}")
        if self.num_layers is not None:
            count = min(count, self.num_layers)
        input_shape: Optional[Tuple[int, ...]] = None
        prev: Optional[Layer] = None  # the previous neuron layer
        prev_shape: Optional[Tuple[int, ...]] = None
        flatten = False
        layers = []
        for i in range(count):
            where = f"layer {i} (/layer/{i})"
            group = self.child(groups, str(i), "/layer", h5py.Group)
            if group is None:
                raise self.fail(where, "not a group")
            kind = self.string(group, "type", where)
            binary = prev is None or prev.neuron.message_bits == 0
            if kind == "input":
                if i != 0:
                    raise self.fail(where, "an 'input' layer must be /layer/0")
                input_shape = self.shape(group, where)
                prev_shape = input_shape
                if self.child(group, "neuron", where) is not None:
                    neuron = self.neuron(group, where, input_layer=True)
                    prev = Layer(i, None, input_shape, neuron, np.zeros(input_shape, np.int64), 0)
                    layers.append(prev)
            elif kind == "flatten":
                flatten = True
            elif kind in ("dense", "dense_rec", "conv"):
                if kind == "conv":
                    layer, in_shape = self.conv(group, where, i, prev_shape)
                else:
                    layer, in_shape = self.dense(group, where, i, prev_shape, flatten, kind == "dense_rec")
                layer = replace(layer, binary_input=binary)
                input_shape = input_shape or in_shape
                prev, prev_shape, flatten = layer, layer.shape, False
                layers.append(layer)
            elif kind == "dense_comp":
                raise self.fail(where, "key 'type': netx 0.6.0 cannot build 'dense_comp' (its Network has no "
                                       "create_complex_dense)")
            else:
                raise self.fail(where, f"key 'type': unsupported layer type {kind!r} "
                                       f"(hw_sim supports input, dense, dense_rec, conv, flatten)")
        if not layers:
            raise self.fail("/layer", "no dense or conv layer")
        tgo = None
        if self.child(self.handle, "tgo", "/", h5py.Group) is not None:
            tgo = self.tgo(layers, input_shape)
            layers[0] = replace(layers[0], binary_input=tgo.input_message_bits == 0)
        return NetFile(self.path, input_shape, tuple(layers), tgo)

    # --- layers -------------------------------------------------------------------------------------------
    def dense(self, group: h5py.Group, where: str, index: int, prev_shape: Optional[Tuple[int, ...]],
              flatten: bool, recurrent: bool) -> Tuple[Layer, Tuple[int, ...]]:
        size = int(np.prod(self.shape(group, where)))
        shape = (size,)  # netx flattens a dense layer's declared shape
        if prev_shape is not None and len(prev_shape) > 1 and not flatten:
            raise self.fail(where, f"key 'type': a dense layer after a layer of shape {prev_shape} needs a "
                                   f"'flatten' layer between them (netx 0.6.0 cannot connect them either)")
        in_size = None if prev_shape is None else int(np.prod(prev_shape))
        neuron = self.neuron(group, where) if self.child(group, "neuron", where) is not None else INTEGRATOR
        if isinstance(self.child(group, "weight", where), h5py.Group) or isinstance(neuron, ResonatorNeuron):
            return self.complex_dense(group, where, index, shape, in_size, neuron, recurrent)
        weight = self.matrix(group, "weight", where, size, in_size)
        rec = self.matrix(group, "weight_rec", where, size, size) if recurrent else None
        self.check_weights(np.hstack([weight, rec]) if recurrent else weight, where,
                           "'weight' and 'weight_rec'" if recurrent else "'weight'")
        delay, spread = self.delay(group, where, weight.shape)
        if recurrent and self.child(group, "delay", where) is not None:
            raise self.fail(where, "key 'delay': netx drops the weight exponent of a recurrent layer with delays, "
                                   "so it does not compute the file's weights; hw_sim refuses it")
        layer = Layer(index, Dense(weight), shape, neuron, self.bias(group, where, shape, neuron), delay, spread, rec)
        return layer, (weight.shape[1],)

    def complex_dense(self, group: h5py.Group, where: str, index: int, shape: Tuple[int, ...],
                      in_size: Optional[int], neuron, recurrent: bool) -> Tuple[Layer, Tuple[int, ...]]:
        """netx's ComplexDense: real and imaginary weights into RF_IZ neurons (no bias, no delay)."""
        parts = self.child(group, "weight", where)
        if recurrent or not isinstance(neuron, ResonatorNeuron) or not isinstance(parts, h5py.Group):
            raise self.fail(where, "key 'weight': netx builds complex weights (weight/real, weight/imag) only in a "
                                   "'dense' layer of RF neurons, and RF neurons only behind complex weights")
        for key in ("bias", "delay"):
            if self.child(group, key, where) is not None:
                raise self.fail(where, f"key '{key}': netx ignores it on a layer with complex weights; remove it")
        real = self.matrix(parts, "real", where, shape[0], in_size, "weight/")
        imag = self.matrix(parts, "imag", where, shape[0], in_size, "weight/")
        if real.shape != imag.shape:
            raise self.fail(where, f"key 'weight/imag': shape {imag.shape}, 'weight/real' has {real.shape}")
        self.check_weights(real, where, "'weight/real'")
        self.check_weights(imag, where, "'weight/imag'")
        layer = Layer(index, Dense(real), shape, neuron, np.zeros(shape, np.int64), 0, imag=imag)
        return layer, (real.shape[1],)

    def matrix(self, group: h5py.Group, key: str, where: str, rows: int, cols: Optional[int],
               prefix: str = "") -> np.ndarray:
        """A dense weight [rows, cols] (netx also accepts it flat); cols None: any."""
        declared = self.child(group, key, where, h5py.Dataset)
        if declared is not None and cols is not None and declared.size != rows * cols:  # checked before reading
            raise self.fail(where, f"key '{prefix}{key}': shape {declared.shape} does not match (out={rows}, "
                                   f"in={cols})")
        weight = self.integers(group, key, where, prefix)
        if weight.ndim == 1 and weight.size % rows == 0:
            weight = weight.reshape(rows, -1)
        if weight.ndim != 2 or weight.shape[0] != rows or (cols is not None and weight.shape[1] != cols):
            raise self.fail(where, f"key '{prefix}{key}': shape {weight.shape} does not match (out={rows}, "
                                   f"in={'any' if cols is None else cols})")
        return weight

    def check_weights(self, weight: np.ndarray, where: str, keys: str) -> None:
        lo, hi = DENSE_WEIGHT_RANGE
        if not weight.any():
            raise self.fail(where, f"key {keys}: all zero (netx cannot load it)")
        if weight.min() < lo or weight.max() > hi:
            raise self.fail(where, f"key {keys}: values in [{weight.min()}, {weight.max()}], "
                                   f"netx is exact only for [{lo}, {hi}]")

    def conv(self, group: h5py.Group, where: str, index: int,
             prev_shape: Optional[Tuple[int, ...]]) -> Tuple[Layer, Tuple[int, ...]]:
        if prev_shape is None or len(prev_shape) != 3:
            raise self.fail(where, f"conv layer needs a (C, H, W) input (an 'input' layer with 'shape' before it), "
                                   f"got {prev_shape}")
        shape = self.shape(group, where)
        weight = self.integers(group, "weight", where)
        if weight.ndim == 5 and weight.shape[4] == 1:
            weight = weight[..., 0]  # slayer writes a trailing time axis of 1
        if weight.ndim != 4:
            raise self.fail(where, f"key 'weight': shape {weight.shape}, expected (out, in/groups, kH, kW)")
        self.check_weights(weight, where, "'weight'")
        stride, padding, dilation = (self.pair(group, key, where) for key in ("stride", "padding", "dilation"))
        groups = self.scalar(group, "groups", where, 1, prev_shape[0])
        channels, height, width = prev_shape
        if channels % groups or weight.shape[0] % groups or weight.shape[1] * groups != channels:
            raise self.fail(where, f"key 'weight': shape {weight.shape} with groups={groups} does not fit "
                                   f"{channels} input channels")
        out_hw = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                       for n, p, d, k, s in zip((height, width), padding, dilation, weight.shape[2:], stride))
        if len(shape) != 3 or shape != (weight.shape[0],) + out_hw:
            raise self.fail(where, f"key 'shape': {shape}, but the convolution produces {(weight.shape[0],) + out_hw}")
        if self.child(group, "delay", where) is not None:
            raise self.fail(where, "key 'delay': netx ignores delays on conv layers; remove it")
        synapse = Conv(weight, stride, padding, dilation, groups)
        neuron = self.neuron(group, where)
        layer = Layer(index, synapse, shape, neuron, self.bias(group, where, shape, neuron), 0)
        return layer, prev_shape

    def neuron(self, group: h5py.Group, where: str,
               input_layer: bool = False) -> Union[Neuron, SigmaDeltaNeuron, ResonatorNeuron]:
        cfg = self.child(group, "neuron", where, h5py.Group)
        if cfg is None:
            raise self.fail(where, "missing group 'neuron'")
        kind = self.string(cfg, "type", where, "neuron/")
        if self.child(cfg, "messageBits", where) is not None:
            raise self.fail(where, "key 'neuron/messageBits': netx 0.6.0 cannot read it (it compiles a group "
                                   "wrapper as the message width); remove it")
        if kind == SDNN_TYPE:
            sigma = not input_layer and self.child(cfg, "sigma_output", where) is not None
            vth = 0 if sigma else self.scalar(cfg, "vThMant", where, 0, VTH_MANT_MAX, "neuron/")
            return SigmaDeltaNeuron("delta" if input_layer else "sigma" if sigma else "sigma_delta", vth)
        if "RF" in kind and "PHASE" not in kind and not input_layer:  # netx's rule for Lava's RF_IZ
            sin, cos = resonator_decays(self.scalar(cfg, "sinDecay", where, -DECAY_UNITY, DECAY_UNITY, "neuron/"),
                                        self.scalar(cfg, "cosDecay", where, -DECAY_UNITY, DECAY_UNITY, "neuron/"))
            return ResonatorNeuron(sin, cos, self.scalar(cfg, "vThMant", where, 0, VTH_MANT_MAX, "neuron/") << 6)
        if kind not in CUBA_TYPES:
            note = " (Lava 0.10.0's fixed-point RF model sends twice per step)" if "RF" in kind else ""
            raise self.fail(where, f"key 'neuron/type': unsupported neuron type {kind!r}{note} "
                                   f"(supported: {', '.join(CUBA_TYPES + (SDNN_TYPE, RF_IZ_TYPE))})")
        keys = ("noise_sigma", "noise_seed", "noise_prng")
        present = [k for k in keys if self.child(cfg, k, where) is not None]
        noise = None
        if present:
            missing = [k for k in keys if k not in present]
            if missing:
                raise self.fail(where, f"missing key 'neuron/{missing[0]}' (stochastic layers need all of {keys})")
            name = self.string(cfg, "noise_prng", where, "neuron/")
            if name != prng.NAME:
                raise self.fail(where, f"key 'neuron/noise_prng': unknown generator {name!r} (supported: {prng.NAME})")
            noise = Noise(self.scalar(cfg, "noise_sigma", where, 0, NOISE_SIGMA_MAX, "neuron/"),
                          self.scalar(cfg, "noise_seed", where, 0, (1 << 32) - 1, "neuron/"), name)
        return Neuron(self.scalar(cfg, "iDecay", where, 0, DECAY_UNITY, "neuron/"),
                      self.scalar(cfg, "vDecay", where, 0, DECAY_UNITY, "neuron/"),
                      self.scalar(cfg, "vThMant", where, 0, VTH_MANT_MAX, "neuron/"), noise)

    def bias(self, group: h5py.Group, where: str, shape: Tuple[int, ...],
             neuron: Union[Neuron, SigmaDeltaNeuron]) -> np.ndarray:
        if self.child(group, "bias", where) is None:
            return np.zeros(shape, np.int64)
        if isinstance(neuron, SigmaDeltaNeuron) and neuron.kind == "sigma":
            raise self.fail(where, "key 'bias': netx cannot give a bias to a 'sigma_output' layer")
        bias = self.integers(group, "bias", where)
        lo, hi = BIAS_RANGE
        if bias.size and (bias.min() < lo or bias.max() > hi):
            raise self.fail(where, f"key 'bias': values outside [{lo}, {hi}] wrap in Lava's int16 bias")
        if bias.shape == shape:
            return bias
        if len(shape) == 3 and bias.shape == (shape[0],):
            return np.broadcast_to(bias[:, None, None], shape).copy()
        raise self.fail(where, f"key 'bias': shape {bias.shape} is neither per neuron {shape} nor per channel")

    def delay(self, group: h5py.Group, where: str, weight_shape: Tuple[int, int]) -> Tuple[int, Optional[np.ndarray]]:
        """netx's delays as (steps common to every synapse, [out, in] further steps or None when uniform).

        Like netx: a scalar applies to every synapse, (out,) is axonal (per neuron), (in,) per input, (out, in)
        per synapse; when any value exceeds MAX_DELAY all are clipped to [0, MAX_DELAY].
        """
        if self.child(group, "delay", where) is None:
            return 0, None
        delay = self.integers(group, "delay", where)
        out, inputs = weight_shape
        if delay.size == 1:
            delay = np.full(weight_shape, int(delay.reshape(-1)[0]), np.int64)
        elif delay.ndim == 1 and delay.size == out:
            delay = np.repeat(delay.reshape(-1, 1), inputs, axis=1)
        elif delay.ndim == 1 and delay.size == inputs:
            delay = np.repeat(delay.reshape(1, -1), out, axis=0)
        elif delay.shape != weight_shape:
            raise self.fail(where, f"key 'delay': shape {delay.shape} fits neither (out={out},), (in={inputs},) "
                                   f"nor the weight {weight_shape}")
        if delay.max() > MAX_DELAY:
            delay = np.clip(delay, 0, MAX_DELAY)  # netx clips (with a warning)
        if delay.min() < 0:
            raise self.fail(where, f"key 'delay': negative value {delay.min()}")
        common = int(delay.min())
        return common, (None if (delay == common).all() else delay - common)

    # --- /tgo ---------------------------------------------------------------------------------------------
    def tgo(self, layers: list, input_shape: Tuple[int, ...]) -> TgoMeta:
        group, where = self.handle["tgo"], "/tgo"  # a hard-linked group: checked by `child`
        fmt = self.string(group, "format", where)
        if fmt != TGO_FORMAT:
            raise self.fail(where, f"key 'format': {fmt!r}, expected {TGO_FORMAT!r}")
        version = self.scalar(group, "version", where, 0, 1 << 30)
        if version != TGO_VERSION:
            raise self.fail(where, f"key 'version': {version}, this hw_sim reads version {TGO_VERSION}")
        bits = self.scalar(group, "input_message_bits", where, 1, 24)
        meta = TgoMeta(timesteps=self.scalar(group, "timesteps", where, 1, 1 << 20),
                       input_scale=self.scalar(group, "input_scale", where, 1, (1 << bits) - 1),
                       input_message_bits=bits,
                       input_shape=self.shape(group, where, "input_shape"),
                       num_classes=self.scalar(group, "num_classes", where, 1, 1 << 30),
                       readout=self.string(group, "readout", where),
                       config_json=self.string(group, "config_json", where))
        flat_ok = len(input_shape) == 1 and int(np.prod(meta.input_shape)) == input_shape[0]
        if meta.input_shape != input_shape and not flat_ok:
            raise self.fail(where, f"key 'input_shape': {meta.input_shape} does not match the first layer's "
                                   f"input {input_shape}")
        last = layers[-1]
        if layers[0].synapse is None:
            raise self.fail("layer 0 (/layer/0)", "tgo files feed the input to a synapse: "
                                                  "an 'input' layer may hold only 'shape'")
        if meta.readout != "v":
            raise self.fail(where, f"key 'readout': {meta.readout!r}, supported: 'v'")
        if not isinstance(last.synapse, Dense) or last.neuron != INTEGRATOR:
            raise self.fail(f"layer {last.index} (/layer/{last.index})",
                            "readout 'v' needs a last dense layer without a 'neuron' group")
        if meta.num_classes != last.size:
            raise self.fail(where, f"key 'num_classes': {meta.num_classes}, readout layer has {last.size} neurons")
        if self.child(group, "readout_step", where) is not None:  # optional; the exporter writes it
            expected = sum(layer.hop for layer in layers) - 1 + meta.timesteps  # L + T - 1 without delays
            if self.scalar(group, "readout_step", where, 0, 1 << 30) != expected:
                raise self.fail(where, f"key 'readout_step': expected L + T - 1 = {expected}")
        try:
            config = json.loads(meta.config_json)
        except (ValueError, RecursionError) as err:
            raise self.fail(where, f"key 'config_json': not JSON ({str(err)[:80]})") from None
        if not isinstance(config, dict):
            raise self.fail(where, f"key 'config_json': a JSON {type(config).__name__}, expected an object")
        return meta

    # --- typed values -------------------------------------------------------------------------------------
    def child(self, group: h5py.Group, key: str, where: str, kind: type = object) -> Optional[Any]:
        """group[key] when it exists as a hard link (soft and external links are refused, never followed),
        else None; a `kind` (h5py.Group or h5py.Dataset) other than the object's is refused."""
        link = group.get(key, getlink=True)
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            raise self.fail(where, f"key '{key}': a {type(link).__name__}; .net files may not hold links")
        item = group[key]
        if not isinstance(item, kind):
            raise self.fail(where, f"key '{key}': expected a {kind.__name__.lower()}, found a "
                                   f"{type(item).__name__.lower()}")
        return item

    def dataset(self, group: h5py.Group, key: str, where: str, prefix: str = "") -> np.ndarray:
        """The dataset's value, after checking its declared size (a memory bomb is refused before reading)."""
        item = self.child(group, key, where, h5py.Dataset)
        if item is None:
            raise self.fail(where, f"missing key '{prefix}{key}'")
        dtype = item.dtype
        if dtype.kind not in "biufSO" or dtype.hasobject and h5py.check_string_dtype(dtype) is None:
            raise self.fail(where, f"key '{prefix}{key}': unsupported data type {dtype}")
        size = int(np.prod(item.shape)) if item.shape is not None else 0
        limit, nbytes = ((MAX_STRING_BYTES, size * dtype.itemsize) if dtype.kind in "SO"
                         else (MAX_ELEMENTS, size))
        if dtype.kind == "O" and size > 1:
            raise self.fail(where, f"key '{prefix}{key}': {size} variable-length strings, expected one")
        if nbytes > limit:
            unit = "bytes" if dtype.kind in "SO" else "values"
            raise self.fail(where, f"key '{prefix}{key}': declares {nbytes} {unit}, more than the {limit} "
                                   f"a .net file may hold per key")
        try:
            value = item[()]
        except (OSError, ValueError, TypeError) as err:
            raise self.fail(where, f"key '{prefix}{key}': unreadable ({err})") from None
        return value if isinstance(value, np.ndarray) else np.asarray(value)

    def string(self, group: h5py.Group, key: str, where: str, prefix: str = "") -> str:
        value = self.dataset(group, key, where, prefix)
        if value.size != 1:
            raise self.fail(where, f"key '{prefix}{key}': expected one string, got shape {value.shape}")
        item = value.reshape(-1)[0]
        if isinstance(item, bytes):
            try:
                return item.decode("ascii")
            except UnicodeDecodeError:
                raise self.fail(where, f"key '{prefix}{key}': not ASCII") from None
        if isinstance(item, str):
            return item
        raise self.fail(where, f"key '{prefix}{key}': expected a string, got {value.dtype}")

    def integers(self, group: h5py.Group, key: str, where: str, prefix: str = "") -> np.ndarray:
        value = self.dataset(group, key, where, prefix)
        if value.dtype.kind not in "biuf":
            raise self.fail(where, f"key '{prefix}{key}': expected numbers, got {value.dtype}")
        if value.dtype.kind == "f" and not (np.isfinite(value).all() and (value == np.round(value)).all()):
            raise self.fail(where, f"key '{prefix}{key}': values must be integers (netx truncates fractions)")
        if value.dtype.kind == "f" and value.size and np.abs(value).max() >= 2 ** 53:
            raise self.fail(where, f"key '{prefix}{key}': values too large")
        return value.astype(np.int64)

    def scalar(self, group: h5py.Group, key: str, where: str, lo: int, hi: int, prefix: str = "") -> int:
        value = self.integers(group, key, where, prefix)
        if value.size != 1:
            raise self.fail(where, f"key '{prefix}{key}': expected a scalar, got shape {value.shape}")
        item = int(value.reshape(-1)[0])
        if not lo <= item <= hi:
            raise self.fail(where, f"key '{prefix}{key}': {item} outside [{lo}, {hi}]")
        return item

    def shape(self, group: h5py.Group, where: str, key: str = "shape") -> Tuple[int, ...]:
        value = self.integers(group, key, where).reshape(-1)
        if value.size not in (1, 3) or (value < 1).any():
            raise self.fail(where, f"key '{key}': {value.tolist()[:4]}, expected (N,) or (C, H, W) of positive sizes")
        if int(np.prod(value.astype(float))) > MAX_NEURONS:
            raise self.fail(where, f"key '{key}': {value.tolist()} holds more than {MAX_NEURONS} neurons")
        return tuple(int(v) for v in value)

    def pair(self, group: h5py.Group, key: str, where: str) -> Tuple[int, int]:
        value = self.integers(group, key, where).reshape(-1)
        if value.size == 1:
            value = np.repeat(value, 2)
        if value.size != 2 or (value < (1 if key != "padding" else 0)).any():
            raise self.fail(where, f"key '{key}': {value.tolist()}, expected (H, W)")
        return int(value[0]), int(value[1])
