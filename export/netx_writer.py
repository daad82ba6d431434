"""Write a quantized network as a tgo `.net`: lava-dl netx HDF5 plus the `/tgo` keys (docs/NETFORMAT.md).

Plain h5py, following netx's conventions (`lava.lib.dl.netx.hdf5.Network` reads it unmodified): `/layer/<i>`
groups numbered from 0, `type` as bytes of shape (1,), integer weights, `neuron/type = 'CUBA'`, an optional
integer `bias` per output channel (netx makes it the LIF's bias_mant with bias_exp 6). Conv
networks start with an `input` layer holding only `shape` and need a `flatten` layer before the first dense
layer (netx connects conv -> dense only after one). The readout is a dense layer without a neuron group.
Every dense matrix is checked against the netx loader's bugs before anything is written.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from export.quantize import WEIGHT_MAX, WEIGHT_MIN, LayerQuantization, QuantizedNetwork
from hw_sim.prng import NAME as NOISE_PRNG
from tgo_errors import UsageError

FORMAT, VERSION = "tgo-net", 1
PLAIN_NETX_NOTE = ("plain lava-dl netx (netx.hdf5.Network) ignores the threshold-noise keys and runs deterministic "
                   "LIF neurons; load model.net with hw_sim.lava.load_network to run the verified stochastic neuron")


def check_netx_weights(name: str, weight: np.ndarray) -> None:
    """Refuse a matrix that netx would load wrongly: non-integer, outside [-256, 254], all zero (crash),
    all non-negative with max > 255 or max 0 with min < -256 (both silently zeroed)."""
    if not np.issubdtype(weight.dtype, np.integer):
        raise UsageError(f"{name}: weights must be integers for netx (floats are truncated), got {weight.dtype}")
    lo, hi = int(weight.min()), int(weight.max())
    if lo < WEIGHT_MIN or hi > WEIGHT_MAX:
        raise UsageError(f"{name}: weights span [{lo}, {hi}], outside netx's [{WEIGHT_MIN}, {WEIGHT_MAX}]")
    if lo == 0 and hi == 0:
        raise UsageError(f"{name}: every weight is 0 (netx's loader crashes on an all-zero matrix)")


def _type(group: h5py.Group, name: str) -> None:
    group.create_dataset("type", (1,), "S10", [name.encode("ascii")])


def _write_layer(group: h5py.Group, q: LayerQuantization, noise_seed: int) -> None:
    layer = q.layer
    check_netx_weights(layer.name, q.weight)
    _type(group, layer.kind)
    group.create_dataset("shape", data=np.asarray(layer.out_shape, dtype=np.int64))
    group.create_dataset("weight", data=q.weight.astype(np.int32))
    if layer.kind == "conv":
        group.create_dataset("stride", data=np.asarray(layer.stride, dtype=np.int64))
        group.create_dataset("padding", data=np.asarray(layer.padding, dtype=np.int64))
        group.create_dataset("dilation", data=np.ones(2, dtype=np.int64))
        group.create_dataset("groups", data=np.int64(layer.groups))
    if q.bias is not None:  # per channel (conv) or per neuron (dense); netx: bias_mant, bias_exp 6
        group.create_dataset("bias", data=q.bias.astype(np.int32))
    if layer.neuron is None:
        return
    neuron = group.create_group("neuron")
    neuron.create_dataset("type", data="CUBA")
    for key, value in (("iDecay", layer.neuron.i_decay), ("vDecay", layer.neuron.v_decay),
                       ("vThMant", q.v_th_mant), ("refDelay", 1), ("gradedSpike", 0)):
        neuron.create_dataset(key, data=np.int64(value))
    if q.noise_sigma > 0:
        neuron.create_dataset("noise_sigma", data=np.int64(q.noise_sigma))
        neuron.create_dataset("noise_seed", data=np.int64(noise_seed))
        neuron.create_dataset("noise_prng", data=NOISE_PRNG)


def check_noise_seed(seed: int) -> None:
    """The noise seed is a uint32 (the PRNG's key)."""
    if not 0 <= seed < 2 ** 32:
        raise UsageError(f"--seed must be in 0..{2 ** 32 - 1}, got {seed}")


def readout_step(net: QuantizedNetwork) -> int:
    """0-based step at which the readout's v holds the T integrated steps: L + T - 1 (L synaptic layers)."""
    return len(net.layers) + net.timesteps - 1


def write_net(path: Path, net: QuantizedNetwork, config_json: str, noise_seed: int = 0) -> None:
    """Write `net` to `path` (HDF5). noise_seed (uint32) goes to every stochastic layer."""
    check_noise_seed(noise_seed)
    with h5py.File(path, "w") as fh:
        layers = fh.create_group("layer")
        index = 0
        if net.layers[0].layer.kind == "conv":
            group = layers.create_group("0")
            _type(group, "input")
            group.create_dataset("shape", data=np.asarray(net.input_shape, dtype=np.int64))
            index = 1
        previous = None
        for q in net.layers:
            if previous == "conv" and q.layer.kind == "dense":
                _type(layers.create_group(str(index)), "flatten")
                index += 1
            _write_layer(layers.create_group(str(index)), q, noise_seed)
            previous, index = q.layer.kind, index + 1
        tgo = fh.create_group("tgo")
        for key, value in (("format", FORMAT), ("version", VERSION), ("timesteps", net.timesteps),
                           ("input_scale", net.input_scale), ("input_message_bits", net.input_message_bits),
                           ("input_shape", np.asarray(net.input_shape, dtype=np.int64)),
                           ("num_classes", net.num_classes), ("readout", "v"),
                           ("readout_step", readout_step(net)), ("config_json", config_json)):
            tgo.create_dataset(key, data=value)
