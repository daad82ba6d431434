"""The one LIF neuron of tgo: Norse's current-based LIF with an optional Gaussian threshold noise.

Dynamics per step (Norse `lif_feed_forward_step` with v_leak = v_reset = 0; `x` is the synaptic input):
    i[t]   = (1 - d_syn) * i[t-1] + x[t]                 d_syn = dt * tau_syn_inv
    v[t]   = (1 - d_mem) * v[t-1] + d_mem * i[t] + b      d_mem = dt * tau_mem_inv, b: bias (default 0)
    z[t]   = H(v[t] + eta[t] - v_th)              eta ~ N(0, sigma^2): the stochastic threshold (NLIF)
    v[t]  <- v[t] * (1 - z[t])                    reset to 0
`v[t]` before the reset is the pre-spike potential that the TGO loss guards.

Exact map onto Loihi's CUBA neuron (lava `PyLifModelBitAcc`), for a per-layer scale S:
    iDecay = round(4096 d_syn), vDecay = round(4096 d_mem)    (train with these rounded decays: `loihi_decay`)
    w_file = round(W * d_mem * S), vThMant = v_th * S, u_Loihi = 64 S d_mem i, v_Loihi = 64 S v,
    eta_Loihi = 64 S eta (state units), bias_file = S b (Loihi adds bias << 6 to v every step).
Loihi spikes on `v > vThMant << 6`, strict, as `H` here.

Batch norm lives inside the neuron (`channels`): per channel it scales the synaptic current (folded into the
weights at export) and its shift is the bias b, which enters v as Loihi's bias does, never the current.
The recurrence, its noise and the potentials are always float32, also under autocast (mixed precision
stops at the synaptic products).
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
from torch import nn

from train.config import NeuronConfig
from train.surrogate import spike


def set_synaptic_precision(amp: str) -> None:
    """amp 'off': synaptic products in true float32 (CUDA's TF32 off); 'bf16': autocast may lower them (and
    TF32 may serve what stays float32). Neurons, noise and loss are float32 either way (`NoisyLIF`)."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = amp != "off"


def loihi_decay(dt: float, tau_inv: float) -> int:
    """Loihi's 12-bit decay for a Norse time constant: round(4096 * dt * tau_inv), an int in [0, 4096]."""
    return int(round(4096 * dt * tau_inv))


class LIFState(NamedTuple):
    i: torch.Tensor  # synaptic current after this step's input, [batch, ...]
    v: torch.Tensor  # membrane potential after reset, [batch, ...]


def noisy_lif_step(x: torch.Tensor, state: LIFState, syn_decay: float, mem_decay: float,
                   threshold: float | torch.Tensor, surrogate: str, alpha: float,
                   bias: float | torch.Tensor = 0.0) -> Tuple[torch.Tensor, LIFState, torch.Tensor]:
    """One step. x: [batch, ...] membrane units; decays are fractions per step (k/4096).

    `threshold` is v_th, or the stochastic threshold v_th - eta ([batch, ...]) of the noisy LIF. `bias`: added
    to v every step (membrane units, broadcast over the batch, e.g. [C, 1, 1]).
    Returns (spikes z, new state, pre-spike potential v before the reset).
    """
    i = state.i * (1.0 - syn_decay) + x
    v = state.v * (1.0 - mem_decay) + mem_decay * i + bias
    z = spike(v - threshold, surrogate, alpha)
    return z, LIFState(i, v * (1.0 - z)), v


def batch_norm_affine(norm: nn.BatchNorm2d, currents: torch.Tensor, training: bool
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) of batch norm over currents [T, batch, C, ...]: batch statistics over every
    axis but C when training (running statistics updated as torch's BatchNorm does), running ones otherwise.
    Returns two [C] float32 tensors: BN(x) = scale * x + shift."""
    if training:
        dims = [d for d in range(currents.dim()) if d != 2]
        var, mean = torch.var_mean(currents, dim=dims, unbiased=False)
        with torch.no_grad():
            n = currents.numel() // currents.shape[2]
            norm.running_mean.lerp_(mean, norm.momentum)
            norm.running_var.lerp_(var * (n / max(n - 1, 1)), norm.momentum)
            norm.num_batches_tracked.add_(1)
    else:
        mean, var = norm.running_mean, norm.running_var
    scale = norm.weight * torch.rsqrt(var + norm.eps)
    return scale, norm.bias - scale * mean


class NoisyLIF(nn.Module):
    """LIF layer over a whole sequence: currents [T, batch, ...] -> spikes [T, batch, ...].

    After each forward, `potentials` holds the pre-spike potentials [T, batch, ...] (for the TGO loss and
    diagnostics) and `spikes` the output. Noise is drawn when sigma > 0 and (training or `noise_at_inference`),
    from `generator` when one is set (`SpikingNetwork.reseed_noise`), else from torch's global generator.
    With `channels`, a batch norm over the current's channel axis (dim 2) scales the current and its shift
    enters v as a bias, times d_mem (what one step of that shift as a current would add to v).
    `guarded`: whether the TGO constraint covers this layer (False behind fixed synapses such as sum pooling,
    where it found silencing the layers before the cheapest way to keep potentials off the threshold).
    """

    def __init__(self, cfg: NeuronConfig, channels: Optional[int] = None, guarded: bool = True):
        super().__init__()
        self.syn_decay = loihi_decay(cfg.dt, cfg.tau_syn_inv) / 4096
        self.mem_decay = loihi_decay(cfg.dt, cfg.tau_mem_inv) / 4096
        self.v_th = cfg.v_th
        self.sigma = cfg.sigma
        self.noise_at_inference = cfg.noise_at_inference
        self.surrogate, self.alpha = cfg.surrogate, cfg.alpha
        self.norm = nn.BatchNorm2d(channels) if channels else None
        if self.norm is not None:  # threshold-scaled init (as tdBN): two std of current reach v_th in one step
            nn.init.constant_(self.norm.weight, 0.5 * self.v_th / self.mem_decay)
        self.guarded = guarded
        self.generator: Optional[torch.Generator] = None
        self.potentials: Optional[torch.Tensor] = None
        self.spikes: Optional[torch.Tensor] = None

    @property
    def noisy(self) -> bool:
        return self.sigma > 0 and (self.training or self.noise_at_inference)

    @property
    def bias_gain(self) -> float:
        """Factor from a BN shift (current units) to the per-step bias of v: d_mem, what one step of that
        current adds to v (the current's steady state, 1 / d_syn steps away, is beyond short windows)."""
        return self.mem_decay

    def affine(self, currents: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor | float]:
        """(the current after batch norm's scale, the bias of v [C, 1, 1] or 0.0) for currents [T, batch, C, ...]."""
        if self.norm is None:
            return currents, 0.0
        scale, shift = batch_norm_affine(self.norm, currents, self.training)
        view = (-1,) + (1,) * (currents.dim() - 3)
        return currents * scale.view(view), (shift * self.bias_gain).view(view)

    def forward(self, currents: torch.Tensor) -> torch.Tensor:
        kind = currents.device.type
        if kind not in ("cpu", "cuda"):  # e.g. the meta device of a memory estimate: no autocast there
            return self._run(currents)
        with torch.autocast(kind, enabled=False):  # Loihi-exact: at least float32 from here on
            low = currents.dtype in (torch.float16, torch.bfloat16)
            return self._run(currents.float() if low else currents)

    def _run(self, currents: torch.Tensor) -> torch.Tensor:
        currents, bias = self.affine(currents)
        state = LIFState(torch.zeros_like(currents[0]), torch.zeros_like(currents[0]))
        thresholds = [self.v_th] * currents.shape[0]
        if self.noisy:  # v + eta > v_th  <=>  v > v_th - eta
            eta = torch.randn(currents.shape, generator=self.generator, device=currents.device, dtype=currents.dtype)
            thresholds = eta.mul_(-self.sigma).add_(self.v_th)
        spikes, potentials = [], []
        for t in range(currents.shape[0]):
            z, state, v = noisy_lif_step(currents[t], state, self.syn_decay, self.mem_decay, thresholds[t],
                                         self.surrogate, self.alpha, bias)
            spikes.append(z)
            potentials.append(v)
        self.potentials, self.spikes = torch.stack(potentials), torch.stack(spikes)
        return self.spikes

    def extra_repr(self) -> str:
        return (f"d_syn={self.syn_decay * 4096:.0f}/4096, d_mem={self.mem_decay * 4096:.0f}/4096, "
                f"v_th={self.v_th}, sigma={self.sigma}, surrogate={self.surrogate}({self.alpha})")
