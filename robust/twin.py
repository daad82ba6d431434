"""A differentiable twin of a fixed-point `.net`: hw_sim's exact integer forward, with gradients.

The forward computes what `hw_sim.simulator.simulate` computes for a tgo file, value for value (state in float64,
synaptic products in hw_sim's cheapest exact dtype, `hw_sim.products`: the same weights, thresholds, decays,
24-bit wraps, saturation, seeded threshold noise and input quantization). The backward passes straight through
every rounding, wrap and clip (straight-through estimator) and through the spike with a surrogate gradient of the
distance to threshold in units of the threshold. Gradient attacks on the twin therefore target the deployed
integer network itself; its logits are bit-identical to hw_sim's (tests check it), so no adversarial example can
look different to the simulator.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn

from hw_sim import products
from hw_sim.fixed_point import STATE_SHIFT, UV_LIMIT, wrap_int32, wrap_signed24, wrap_u
from hw_sim.netfile import Conv, NetFile, Neuron
from hw_sim.neurons.cuba import CubaState, cuba_integrate, cuba_params
from hw_sim.simulator import layer_noise
from tgo_errors import UsageError
from train.surrogate import spike


class _StraightThrough(torch.autograd.Function):
    """Forward `fn(x)`, backward the identity."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return fn(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def straight_through(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    return _StraightThrough.apply(x, fn)


def _wrap_current(u: torch.Tensor) -> torch.Tensor:
    return wrap_u(wrap_int32(u))


def _trunc(x: torch.Tensor) -> torch.Tensor:
    return torch.div(x, 1, rounding_mode="trunc")   # torch.trunc's CPU kernel is not vectorized (5x slower)


def _saturate(v: torch.Tensor) -> torch.Tensor:
    return v.clamp(-(UV_LIMIT - 1), UV_LIMIT - 1)


class StraightThroughOps:
    """`hw_sim.neurons.ops.NeuronOps` with the exact forward of every rounding, wrap and clip and an identity
    backward; the spike's backward is the surrogate gradient of (v + noise - threshold) / threshold."""

    def __init__(self, surrogate: str, alpha: float) -> None:
        self.surrogate, self.alpha = surrogate, alpha

    def decay(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        return straight_through(x * factor, _trunc)

    def add(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y

    def wrap_current(self, u: torch.Tensor) -> torch.Tensor:
        return straight_through(u, _wrap_current)

    def wrap_int32(self, x: torch.Tensor) -> torch.Tensor:
        return straight_through(x, wrap_int32)

    def saturate(self, v: torch.Tensor) -> torch.Tensor:
        return straight_through(v, _saturate)

    def fire(self, v: torch.Tensor, threshold: float, noise: Optional[torch.Tensor],
             out: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        drive = v - threshold if noise is None else v + noise - threshold
        z = spike(drive / threshold, self.surrogate, self.alpha)
        return z, v * (1.0 - z)


class QuantizedTwin(nn.Module):
    """x [batch, *input_shape] in [0, 1] -> readout v at the readout step [batch, classes], float64.

    Logits are divided by `logit_scale` (state units per float logit; 1 keeps raw state units) so that
    cross-entropy attacks see the float model's logit scale; the argmax is unchanged.
    """

    def __init__(self, net: NetFile, surrogate: str = "superspike", alpha: float = 2.0, logit_scale: float = 1.0):
        super().__init__()
        if net.tgo is None:
            raise UsageError(f"{net.path}: not a tgo file (no /tgo group): the twin needs its input encoding")
        for layer in net.layers:
            if (layer.synapse is None or layer.delay or layer.spread is not None or layer.recurrent is not None
                    or not isinstance(layer.neuron, Neuron)):
                raise UsageError(f"{net.path}: layer {layer.index} has no synapse, a delay, recurrence or "
                                 f"sigma-delta neurons; the twin supports tgo exports (CUBA dense/conv layers)")
        self.net, self.surrogate_name, self.alpha, self.logit_scale = net, surrogate, alpha, logit_scale
        self.steps = net.window(net.tgo.timesteps)
        self._synapses: Dict[Tuple[int, torch.device], Tuple[torch.Tensor, products.Plan, bool]] = {}
        self.set_noise(net)
        # torchattacks reads the device from the first parameter; an empty one carries it
        self.device_marker = nn.Parameter(torch.empty(0), requires_grad=False)

    def set_noise(self, net: NetFile) -> None:
        """Use the threshold noise of `net` (the same network with, e.g., another noise seed)."""
        self.set_noise_values([layer_noise(layer, self.steps) for layer in net.layers])

    def set_noise_values(self, noises: List[Optional[torch.Tensor]]) -> None:
        """Use these threshold-noise arrays, one per layer: [steps, *shape] integers (state units) or None."""
        self.noises = list(noises)

    @contextlib.contextmanager
    def surrogate(self, name: str, alpha: float) -> Iterator[None]:
        """Temporarily backpropagate through another surrogate (same interface as SpikingNetwork)."""
        saved = self.surrogate_name, self.alpha
        self.surrogate_name, self.alpha = name, alpha
        try:
            yield
        finally:
            self.surrogate_name, self.alpha = saved

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """round(clip(x, 0, 1) * Q) straight through; returns the per-step input [steps, batch, *shape]."""
        meta = self.net.tgo
        x = x.to(torch.float64).reshape(x.shape[0], *self.net.input_shape)
        q = straight_through(x.clamp(0.0, 1.0) * meta.input_scale, torch.round)
        signal = q.new_zeros((self.steps,) + tuple(q.shape))
        lag = self.net.input_lag
        return torch.cat([signal[:lag], q.expand(meta.timesteps, *q.shape), signal[lag + meta.timesteps:]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        signal = self.encode(x)
        v_readout: Optional[torch.Tensor] = None
        for index, noise in enumerate(self.noises):
            signal, v_readout = self._layer(index, noise, signal)
        return v_readout / self.logit_scale

    def _synapse(self, index: int, device: torch.device) -> Tuple[torch.Tensor, products.Plan, bool]:
        """Layer `index`'s weights in the cheapest dtype that keeps its sums exact (`hw_sim.products`; the
        layer's input is at most Q for the first layer, a spike after), its plan, and whether its conv sums
        can pass 24 bits (Lava wraps conv outputs to 24 bits). Dense weights come transposed, [in, out]."""
        if (index, device) not in self._synapses:
            synapse = self.net.layers[index].synapse
            weight = torch.as_tensor(synapse.weight, device=device)
            max_in = self.net.tgo.input_scale if index == 0 else 1
            bound = products.sum_bound(weight, max_in)
            plan = products.plan(int(weight.abs().max()), max_in, bound, device, half_precision=False)
            prepared = products.prepare(weight, plan)
            conv = isinstance(synapse, Conv)
            self._synapses[index, device] = (prepared if conv else prepared.T, plan, conv and bound >= UV_LIMIT)
        return self._synapses[index, device]

    def _layer(self, index: int, noise: Optional[torch.Tensor], signal: torch.Tensor):
        layer = self.net.layers[index]
        weight, plan, wraps = self._synapse(index, signal.device)
        steps, count = signal.shape[:2]
        rows = signal.reshape(steps * count, *signal.shape[2:]).to(plan.operand)
        if isinstance(layer.synapse, Conv):
            a = products.conv(rows, weight, layer.synapse, layer.shape).to(torch.float64)
            a = straight_through(a, wrap_signed24) if wraps else a
        else:
            a = (rows.reshape(steps * count, -1) @ weight).to(torch.float64)
        a6 = a.reshape(steps, count, *layer.shape) * (1 << STATE_SHIFT)
        bias = torch.as_tensor(layer.bias, dtype=torch.float64, device=a6.device)
        # wrap and clip always: an attack may drive the input beyond any bound set for the exact simulator
        params = cuba_params(layer.neuron, bias, 0, steps)._replace(wrap=True, saturate=True)
        ops = StraightThroughOps(self.surrogate_name, self.alpha)
        state = CubaState.zeros(a6[0])
        spikes: List[torch.Tensor] = []
        v_at_readout = None
        # unbind, not a6[j]: each indexed step's backward would allocate and fill a zero tensor of all steps
        noises = [None] * steps if noise is None else noise.to(a6.device).unbind(0)
        for j, (a_j, noise_j) in enumerate(zip(a6.unbind(0), noises)):
            before = cuba_integrate(state, a_j, params, ops)
            if j == self.net.readout_local_step:
                v_at_readout = before.v.reshape(count, -1)
            z, v = ops.fire(before.v, params.threshold, noise_j, None)
            spikes.append(z)
            state = CubaState(before.u, v)
        return torch.stack(spikes), v_at_readout
