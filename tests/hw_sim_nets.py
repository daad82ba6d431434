"""Test helpers: write small .net files with h5py, following docs/NETFORMAT.md (the exporter's contract)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import h5py
import numpy as np

from hw_sim import prng

LAVA_DL_NETS = Path(__file__).resolve().parents[1] / ".venv/lib/python3.10/site-packages/tests/lava/lib/dl/netx"
HIDDEN = {"iDecay": 1024, "vDecay": 512, "vThMant": 400}


def neuron(i_decay: int = HIDDEN["iDecay"], v_decay: int = HIDDEN["vDecay"], vth_mant: int = HIDDEN["vThMant"],
           sigma: Optional[int] = None, seed: int = 0) -> Dict:
    """A CUBA neuron group; with `sigma`, the tgo noise keys of a stochastic layer."""
    group = {"type": "CUBA", "iDecay": i_decay, "vDecay": v_decay, "vThMant": vth_mant,
             "refDelay": 1, "gradedSpike": 0}
    if sigma is not None:
        group.update(noise_sigma=sigma, noise_seed=seed, noise_prng=prng.NAME)
    return group


def weights(rng: np.random.Generator, shape: Sequence[int], scale: int) -> np.ndarray:
    """Random integer weights in [-scale, scale] with the range ends -256 and 254 present once each."""
    w = rng.integers(-scale, scale + 1, size=shape)
    w.reshape(-1)[:2] = (-256, 254)
    return w.astype(np.float32)  # slayer writes float32 holding integers


def dense(out: int, weight: np.ndarray, neuron_group: Optional[Dict] = None, **extra) -> Dict:
    layer = {"type": "dense", "shape": [out], "weight": weight, **extra}
    if neuron_group is not None:
        layer["neuron"] = neuron_group
    return layer


def write_net(path: Path, layers: List[Dict], tgo: Optional[Dict] = None) -> Path:
    """Write /layer/<i> groups (type as bytes 'S10', neuron/type as str) and an optional /tgo group."""
    with h5py.File(path, "w") as handle:
        root = handle.create_group("layer")
        for i, layer in enumerate(layers):
            group = root.create_group(str(i))
            for key, value in layer.items():
                if key == "type":
                    group.create_dataset("type", (1,), "S10", [value.encode("ascii")])
                elif key == "neuron":
                    sub = group.create_group("neuron")
                    for name, item in value.items():
                        sub.create_dataset(name, data=item)
                else:
                    group.create_dataset(key, data=np.asarray(value))
        if tgo is not None:
            meta = handle.create_group("tgo")
            for key, value in tgo.items():
                meta.create_dataset(key, data=value)
    return path


def tgo_group(timesteps: int, input_shape: Sequence[int], num_classes: int, input_scale: int = 255,
              input_message_bits: int = 8) -> Dict:
    return {"format": "tgo-net", "version": 1, "timesteps": timesteps, "input_scale": input_scale,
            "input_message_bits": input_message_bits, "input_shape": np.asarray(input_shape),
            "num_classes": num_classes, "readout": "v",
            "config_json": json.dumps({"written_by": "tests/hw_sim_nets.py"})}


def tgo_mlp(path: Path, sizes: Sequence[int] = (48, 32, 24, 10), input_shape: Sequence[int] = (3, 4, 4),
            timesteps: int = 6, seed: int = 0, sigma: Optional[int] = None, noise_seed: int = 0,
            delay: int = 0) -> Path:
    """Dense MLP: graded input of `input_shape` (flattened, sizes[0] features), hidden CUBA layers, integrator
    readout of sizes[-1] classes.

    `sigma` makes every hidden layer stochastic; `delay` adds a `delay` key to the second dense layer.
    """
    assert int(np.prod(input_shape)) == sizes[0]
    rng = np.random.default_rng(seed)
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-2], sizes[1:-1])):
        extra = {"delay": np.full(n_out, delay)} if delay and k == 1 else {}
        layers.append(dense(n_out, weights(rng, (n_out, n_in), 3 if k == 0 else 60),
                            neuron(sigma=sigma, seed=noise_seed), **extra))
    layers.append(dense(sizes[-1], weights(rng, (sizes[-1], sizes[-2]), 60)))
    return write_net(path, layers, tgo_group(timesteps, input_shape, sizes[-1]))


def tgo_convnet(path: Path, timesteps: int = 5, seed: int = 0, sigma: Optional[int] = None,
                noise_seed: int = 0) -> Path:
    """input (2, 7, 6) -> conv 4x3x3 (stride (2, 1), padding (1, 0)) -> flatten -> dense 16 -> readout 5.

    `sigma` makes the conv layer stochastic (3-D neuron indexing); the dense hidden layer stays plain.
    """
    rng = np.random.default_rng(seed)
    conv = {"type": "conv", "shape": [4, 4, 4], "weight": weights(rng, (4, 2, 3, 3), 4),
            "stride": [2, 1], "padding": [1, 0], "dilation": [1, 1], "groups": 1,
            "neuron": neuron(sigma=sigma, seed=noise_seed)}
    layers = [{"type": "input", "shape": [2, 7, 6]}, conv, {"type": "flatten"},
              dense(16, weights(rng, (16, 64), 120), neuron()),
              dense(5, weights(rng, (5, 16), 60))]
    return write_net(path, layers, tgo_group(timesteps, (2, 7, 6), 5))


def random_images(count: int, shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """Float images in [0, 1], [count, *shape]."""
    return np.random.default_rng(seed).random((count,) + tuple(shape))
