"""Read and validate a netx `.net` file (lava-dl's HDF5 format plus tgo's extension, docs/NETFORMAT.md).

Format knowledge lives here only. The reader interprets the file exactly as `lava.lib.dl.netx.hdf5.Network`
does for the subset hw_sim supports (layer types `input`, `dense`, `conv`, `flatten`; neuron type CUBA/LOIHI)
and rejects everything else with a `NetFormatError` naming the layer and key. It only reads arrays and
scalars: nothing in the file is executed.

Time alignment (see DESIGN.md "hw_sim"): every synaptic hop costs one Lava step plus its `delay`. Each layer
k restarts from zero state at the start of its own sample window, `offsets[k]` steps after the input's
window starts, so within a window ("local step" j) layer k reads layer k-1's spikes of the same local step,
and a first layer with a synapse reads the input of local step j-1.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Tuple, Union

import h5py
import numpy as np

from hw_sim import prng
from tgo_errors import UsageError

DECAY_UNITY = 4096          # decays are out of 4096
VTH_MANT_MAX = (1 << 18) - 1  # slayer's non-spiking readout writes (1<<18)-1; netx's own default is 1<<17
MAX_DELAY = 62              # netx clips larger delays
DENSE_WEIGHT_RANGE = (-256, 254)  # netx's weight-exponent trick is exact in this range
BIAS_RANGE = (-(1 << 15), (1 << 15) - 1)  # Lava stores bias_mant as int16
NOISE_SIGMA_MAX = (1 << 23) - 1
SUPPORTED_NEURONS = ("CUBA", "LOIHI")
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


# netx's never-spiking integrator for a dense layer without a `neuron` group (`1 << 18 - 1` == 1 << 17).
INTEGRATOR = Neuron(i_decay=0, v_decay=DECAY_UNITY, vth_mant=1 << 17)


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
    neuron: Neuron
    bias: np.ndarray                       # [*shape] int64, added to v as bias << 6 every step
    delay: int                             # extra steps on the synaptic hop (0: one step in total)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def hop(self) -> int:
        """Lava steps between a spike of the previous layer and its effect here."""
        return 1 + self.delay


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
        return self.offsets[-1] + self.input_lag + input_steps

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


def load_net(path: Union[str, Path]) -> NetFile:
    """Read and validate a .net file; raise NetFormatError naming the layer and key on any problem."""
    path = Path(path)
    if not path.is_file():
        raise NetFormatError(f"{path}: no such file")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise NetFormatError(f"{path}: not an HDF5 file ({err})") from None
    with handle:
        return _Reader(path, handle).read()


class _Reader:
    """Walks /layer/0..n-1 like netx's `Network._create`, building validated dataclasses."""

    def __init__(self, path: Path, handle: h5py.File) -> None:
        self.path, self.handle = path, handle

    def fail(self, where: str, message: str) -> NetFormatError:
        return NetFormatError(f"{self.path}: {where}: {message}")

    def read(self) -> NetFile:
        if "layer" not in self.handle or not isinstance(self.handle["layer"], h5py.Group):
            raise self.fail("/", "missing group 'layer'")
        groups = self.handle["layer"]
        count = len(groups)
        if count == 0 or set(groups.keys()) != {str(i) for i in range(count)}:
            raise self.fail("/layer", f"layers must be numbered 0..n-1 without gaps, found {sorted(groups.keys())}")
        input_shape: Optional[Tuple[int, ...]] = None
        prev_shape: Optional[Tuple[int, ...]] = None
        flatten = False
        layers = []
        for i in range(count):
            group = groups[str(i)]
            where = f"layer {i} (/layer/{i})"
            kind = self.string(group, "type", where)
            if kind == "input":
                if i != 0:
                    raise self.fail(where, "an 'input' layer must be /layer/0")
                input_shape = self.shape(group, where)
                prev_shape = input_shape
                if "neuron" in group:
                    layers.append(Layer(i, None, input_shape, self.neuron(group, where),
                                        np.zeros(input_shape, np.int64), 0))
            elif kind == "flatten":
                flatten = True
            elif kind in ("dense", "conv"):
                if kind == "dense":
                    layer, in_shape = self.dense(group, where, i, prev_shape, flatten)
                else:
                    layer, in_shape = self.conv(group, where, i, prev_shape)
                input_shape = input_shape or in_shape
                prev_shape, flatten = layer.shape, False
                layers.append(layer)
            else:
                raise self.fail(where, f"key 'type': unsupported layer type {kind!r} "
                                       f"(hw_sim supports input, dense, conv, flatten)")
        if not layers:
            raise self.fail("/layer", "no dense or conv layer")
        tgo = self.tgo(layers, input_shape) if "tgo" in self.handle else None
        return NetFile(self.path, input_shape, tuple(layers), tgo)

    # --- layers -------------------------------------------------------------------------------------------
    def dense(self, group: h5py.Group, where: str, index: int, prev_shape: Optional[Tuple[int, ...]],
              flatten: bool) -> Tuple[Layer, Tuple[int, ...]]:
        shape = self.shape(group, where)
        size = int(np.prod(shape))
        weight = self.integers(group, "weight", where)
        if weight.ndim == 1 and weight.size % size == 0:
            weight = weight.reshape(size, -1)  # netx accepts a flat weight
        if weight.ndim != 2 or weight.shape[0] != size:
            raise self.fail(where, f"key 'weight': shape {weight.shape} does not match (out={size}, in)")
        if prev_shape is not None:
            if len(prev_shape) > 1 and not flatten:
                raise self.fail(where, f"dense layer after a layer of shape {prev_shape} needs a 'flatten' layer")
            if weight.shape[1] != int(np.prod(prev_shape)):
                raise self.fail(where, f"key 'weight': {weight.shape[1]} inputs, previous layer has "
                                       f"{int(np.prod(prev_shape))} neurons")
        lo, hi = DENSE_WEIGHT_RANGE
        if not weight.any():
            raise self.fail(where, "key 'weight': all zero (netx cannot load it)")
        if weight.min() < lo or weight.max() > hi:
            raise self.fail(where, f"key 'weight': values in [{weight.min()}, {weight.max()}], "
                                   f"netx is exact only for [{lo}, {hi}]")
        neuron = self.neuron(group, where) if "neuron" in group else INTEGRATOR
        layer = Layer(index, Dense(weight), shape, neuron, self.bias(group, where, shape), self.delay(group, where))
        return layer, (weight.shape[1],)

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
        if "delay" in group:
            raise self.fail(where, "key 'delay': netx ignores delays on conv layers; remove it")
        synapse = Conv(weight, stride, padding, dilation, groups)
        layer = Layer(index, synapse, shape, self.neuron(group, where), self.bias(group, where, shape), 0)
        return layer, prev_shape

    def neuron(self, group: h5py.Group, where: str) -> Neuron:
        if "neuron" not in group or not isinstance(group["neuron"], h5py.Group):
            raise self.fail(where, "missing group 'neuron'")
        cfg = group["neuron"]
        kind = self.string(cfg, "type", where, "neuron/")
        if kind not in SUPPORTED_NEURONS:
            raise self.fail(where, f"key 'neuron/type': unsupported neuron type {kind!r} "
                                   f"(supported: {', '.join(SUPPORTED_NEURONS)})")
        if "messageBits" in cfg:
            raise self.fail(where, "key 'neuron/messageBits': netx 0.6.0 cannot read it (it compiles a group "
                                   "wrapper as the message width); remove it, CUBA spikes are binary")
        keys = ("noise_sigma", "noise_seed", "noise_prng")
        present = [k for k in keys if k in cfg]
        noise = None
        if present:
            missing = [k for k in keys if k not in cfg]
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

    def bias(self, group: h5py.Group, where: str, shape: Tuple[int, ...]) -> np.ndarray:
        if "bias" not in group:
            return np.zeros(shape, np.int64)
        bias = self.integers(group, "bias", where)
        lo, hi = BIAS_RANGE
        if bias.size and (bias.min() < lo or bias.max() > hi):
            raise self.fail(where, f"key 'bias': values outside [{lo}, {hi}] wrap in Lava's int16 bias")
        if bias.shape == shape:
            return bias
        if len(shape) == 3 and bias.shape == (shape[0],):
            return np.broadcast_to(bias[:, None, None], shape).copy()
        raise self.fail(where, f"key 'bias': shape {bias.shape} is neither per neuron {shape} nor per channel")

    def delay(self, group: h5py.Group, where: str) -> int:
        if "delay" not in group:
            return 0
        delay = self.integers(group, "delay", where).ravel()
        if delay.size == 0 or (delay != delay[0]).any():
            raise self.fail(where, "key 'delay': hw_sim supports one delay per layer (all values equal)")
        if not 0 <= delay[0] <= MAX_DELAY:
            raise self.fail(where, f"key 'delay': {delay[0]} outside [0, {MAX_DELAY}]")
        return int(delay[0])

    # --- /tgo ---------------------------------------------------------------------------------------------
    def tgo(self, layers: list, input_shape: Tuple[int, ...]) -> TgoMeta:
        group, where = self.handle["tgo"], "/tgo"
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
        if "readout_step" in group:  # optional; the exporter writes it
            expected = sum(layer.hop for layer in layers) - 1 + meta.timesteps  # L + T - 1 without delays
            if self.scalar(group, "readout_step", where, 0, 1 << 30) != expected:
                raise self.fail(where, f"key 'readout_step': expected L + T - 1 = {expected}")
        try:
            json.loads(meta.config_json)
        except ValueError as err:
            raise self.fail(where, f"key 'config_json': not JSON ({err})") from None
        return meta

    # --- typed values -------------------------------------------------------------------------------------
    def dataset(self, group: h5py.Group, key: str, where: str, prefix: str = "") -> np.ndarray:
        if key not in group or not isinstance(group[key], h5py.Dataset):
            raise self.fail(where, f"missing key '{prefix}{key}'")
        value = group[key][()]
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
            raise self.fail(where, f"key '{key}': {value.tolist()}, expected (N,) or (C, H, W) of positive sizes")
        return tuple(int(v) for v in value)

    def pair(self, group: h5py.Group, key: str, where: str) -> Tuple[int, int]:
        value = self.integers(group, key, where).reshape(-1)
        if value.size == 1:
            value = np.repeat(value, 2)
        if value.size != 2 or (value < (1 if key != "padding" else 0)).any():
            raise self.fail(where, f"key '{key}': {value.tolist()}, expected (H, W)")
        return int(value[0]), int(value[1])
