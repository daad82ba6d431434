"""Load a `.net` file into Lava as a process graph whose noisy layers are our `StochasticLIF`.

`StochasticNetwork` is a `lava.lib.dl.netx.hdf5.Network` (same `inp`/`out` ports, `layers`, `in_layer`,
`out_layer`), built from netx's own blocks (`netx.blocks.process.Dense`/`Conv`/`Input`) and synapses, but
from the file as `hw_sim.netfile` reads and validates it: a layer with noise keys gets a `StochasticLIF`
neuron (noise as Lava Vars), the others netx's `LIF`/`LIFReset`. It runs under any RunConfig that picks
`fixed_pt` models, e.g. `Loihi2SimCfg(select_tag="fixed_pt")`.

Imports Lava: import this module only where Lava is installed. Lava executes every .py file in this folder
when it searches for `StochasticNetwork`'s model, so the folder holds only import-safe modules.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np
import torch
from lava.lib.dl import netx
from lava.lib.dl.netx.blocks import process as blocks
from lava.lib.dl.netx.blocks.models import AbstractPyBlockModel
from lava.lib.dl.netx.utils import optimize_weight_bits
from lava.magma.core.decorator import implements
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.process import LIF, LIFReset

from hw_sim.lava_neuron.process import StochasticLIF
from hw_sim.netfile import Conv, Dense, Layer, NetFile, load_net
from hw_sim.simulator import encode_inputs
from tgo_errors import UsageError

BIAS_EXP = 6  # netx: bias_mant << 6, as the file's bias enters v


class StochasticNetwork(netx.hdf5.Network):
    """A .net file as a Lava process graph, netx-compatible (`inp`, `out`, `layers`), noise included.

    Build it with `load_network`. `netfile` keeps the validated file (`hw_sim.netfile.NetFile`).
    reset_interval: steps per sample (every layer restarts from zero state once per interval at its own
        phase, and the noise counter restarts with it), or None (no reset, netx's `LIF`; no noisy layers).
    input_message_bits: graded-input width of the first synapse (0 = binary spikes).
    """

    def __init__(self, netfile: NetFile, reset_interval: Optional[int], input_message_bits: int) -> None:
        self.netfile = netfile
        super().__init__(net_config=str(netfile.path), input_message_bits=input_message_bits,
                         reset_interval=reset_interval)

    def _create(self) -> List[AbstractProcess]:
        """One netx block per layer, connected like netx's `_create` (conv -> dense through a CHW flatten)."""
        net = self.netfile
        layers: List[AbstractProcess] = []
        bits = self.input_message_bits
        for layer, offset in zip(net.layers, net.offsets):
            neuron = self._neuron_params(layer, offset + 1)
            layers.append(_block(layer, neuron, bits, tuple(net.input_shape[::-1]) if not layers
                                 else layers[-1].shape))
            bits = layers[-1].output_message_bits
            if len(layers) > 1:
                source = layers[-2].out
                if len(layers[-2].shape) > 1 and isinstance(layer.synapse, Dense):
                    source = source.transpose([2, 1, 0]).flatten()  # Lava (W, H, C) -> torch's C-order flatten
                source.connect(layers[-1].inp)
        self.net_str = "\n".join(f"layer {layer.index}: {type(block).__name__} {layer.shape}, "
                                 f"{type(block.neuron).__name__}" for layer, block in zip(net.layers, layers))
        return layers

    def _neuron_params(self, layer: Layer, reset_offset: int) -> Dict[str, object]:
        """netx's neuron parameters for `layer` (du = iDecay - 1: Lava adds 1 back), with our noise Vars."""
        cell = layer.neuron
        params: Dict[str, object] = {"neuron_proc": LIF, "bias_key": "bias_mant", "vth": cell.vth_mant,
                                     "du": cell.i_decay - 1, "dv": cell.v_decay, "bias_exp": BIAS_EXP,
                                     "num_message_bits": 0}
        if self.reset_interval is not None:
            params.update(neuron_proc=LIFReset, reset_interval=self.reset_interval, reset_offset=reset_offset)
        if cell.noise is not None:
            params.update(neuron_proc=StochasticLIF, noise_sigma=cell.noise.sigma, noise_seed=cell.noise.seed,
                          noise_layer=layer.index, noise_prng=cell.noise.prng)
        return params


def _block(layer: Layer, neuron: Dict[str, object], input_message_bits: int, input_shape: tuple) -> AbstractProcess:
    """netx's block for `layer`; shapes in Lava's (W, H, C) order, the file's reversed."""
    shape = tuple(layer.shape[::-1])
    bias = layer.bias.T if layer.bias.any() else None
    if layer.synapse is None:
        return blocks.Input(shape=shape, neuron_params=neuron, bias=bias)
    if isinstance(layer.synapse, Conv):
        conv = layer.synapse
        return blocks.Conv(shape=shape, input_shape=input_shape, neuron_params=neuron, bias=bias,
                           weight=conv.weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1),  # netx: Lava convolves
                           stride=np.asarray(conv.stride[::-1]), padding=np.asarray(conv.padding[::-1]),
                           dilation=np.asarray(conv.dilation[::-1]), groups=conv.groups,
                           input_message_bits=input_message_bits)
    weight, weight_bits, weight_exp, sign_mode = optimize_weight_bits(layer.synapse.weight)
    delay = {"delay": np.full(weight.shape, layer.delay)} if layer.delay else {}
    return blocks.Dense(shape=shape, neuron_params=neuron, bias=bias, weight=weight, num_weight_bits=weight_bits,
                        weight_exponent=weight_exp, sign_mode=sign_mode, input_message_bits=input_message_bits,
                        **delay)


@implements(proc=StochasticNetwork, protocol=LoihiProtocol)
class PyStochasticNetworkModel(AbstractPyBlockModel):
    """netx's network model (a sub-process model tagged fixed_pt) for our subclass."""


def load_network(net_config: Union[str, Path, NetFile], reset_interval: Optional[int] = None) -> StochasticNetwork:
    """The .net file as a Lava process graph whose noisy layers are `StochasticLIF` (see `StochasticNetwork`).

    net_config: a .net path, or a `NetFile` already read (possibly changed in memory, e.g. its noise seed).
    reset_interval: steps per sample; every layer restarts from zero state once per interval, at its own phase
        (its window offset `NetFile.offsets`), and the noise counter restarts with it. Default for tgo files:
        `L + T` (`NetFile.window`), one sample per window; for other files: no reset (netx's `LIF`), which
        files with noise keys cannot use.
    """
    net = net_config if isinstance(net_config, NetFile) else load_net(net_config)
    if reset_interval is None and net.tgo is not None:
        reset_interval = net.window(net.tgo.timesteps)
    if reset_interval is None and any(layer.neuron.noise for layer in net.layers):
        raise UsageError(f"{net.path}: stochastic layers restart their noise counter at each reset: "
                         f"pass reset_interval (steps per sample)")
    if reset_interval is not None and reset_interval < 1:
        raise UsageError(f"reset_interval must be >= 1, got {reset_interval}")
    return StochasticNetwork(net, reset_interval, net.input_message_bits)


def input_data(net: StochasticNetwork, images: np.ndarray) -> np.ndarray:
    """Input of a tgo network for `io.source.RingBuffer`: images [N, *input_shape] floats in [0, 1] ->
    [*Lava input shape, N * reset_interval] int32 graded spikes, one sample window after another."""
    spikes = encode_inputs(net.netfile, torch.as_tensor(np.asarray(images)))  # [N, T, *input_shape]
    count, steps = spikes.shape[:2]
    data = np.zeros((count, net.reset_interval) + net.netfile.input_shape, dtype=np.int32)
    data[:, :steps] = spikes.numpy()
    return data.reshape((-1,) + net.netfile.input_shape).T
