"""Float vs fixed point on test data: accuracy, prediction agreement and the fraction of threshold-neighbouring
potentials (|V - V_th| < delta) per spiking layer, with the threshold noise off in both (and, for a
stochastic network, also on).

Fixed-point potentials come from hw_sim's bit-exact simulator run on the written `.net` and are converted to
membrane units by v / (64 P), P = vThMant / v_th the layer's state scale (`export.quantize`).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

import torch

from export.calibrate import deterministic
from export.quantize import QuantizedNetwork
from hw_sim.netfile import deterministic_net, load_net
from hw_sim.simulator import encode_inputs, logits, pre_spike_potentials, predict, simulate
from train.data import batches
from train.diagnostics import EVAL_NOISE_SEED
from train.models import SpikingNetwork
from train.tgo_loss import near_threshold_count


def _fractions(counts: Sequence[int], totals: Sequence[int]) -> Dict[str, object]:
    return {"near_threshold": [c / t for c, t in zip(counts, totals)],
            "near_threshold_all": sum(counts) / sum(totals)}


@contextlib.contextmanager
def _noise_mode(model: SpikingNetwork, noise_seed: Optional[int]) -> Iterator[None]:
    """Noise off (None), or eval mode with the configured noise drawn from `noise_seed`."""
    if noise_seed is None:
        with deterministic(model):
            yield
        return
    was_training = model.training
    model.eval()
    model.reseed_noise(noise_seed)
    try:
        yield
    finally:
        model.train(was_training)


@torch.no_grad()
def float_metrics(model: SpikingNetwork, x: torch.Tensor, y: torch.Tensor, delta: float,
                  noise_seed: Optional[int] = None, batch_size: int = 256) -> Dict[str, object]:
    """Float model on x [N, C, H, W], noise off (noise_seed None) or on: accuracy, predictions [N],
    near-threshold fraction per spiking layer."""
    layers = model.lif_layers()
    counts, totals, predictions = [0] * len(layers), [0] * len(layers), []
    with _noise_mode(model, noise_seed):
        for xb, _ in batches(x, y, batch_size):
            out = model.run(xb)
            predictions.append(out.logits.argmax(1))
            for k, (lif, v) in enumerate(zip(layers, out.potentials)):
                counts[k] += near_threshold_count(v, lif.v_th, delta)
                totals[k] += v.numel()
    predictions = torch.cat(predictions)
    return {"accuracy": float((predictions == y).float().mean()), "predictions": predictions,
            **_fractions(counts, totals)}


def fixed_metrics(net_path: Path, qnet: QuantizedNetwork, x: torch.Tensor, y: torch.Tensor, delta: float,
                  noise: bool = False, batch_size: int = 256) -> Dict[str, object]:
    """The `.net` in hw_sim on x [N, C, H, W], noise off or as the file says: accuracy, predictions [N]
    (ties: lowest class), near-threshold fraction per spiking layer of v / (64 P) over the T steps of each
    sample (local steps 1..T of every layer: each synaptic hop costs one step)."""
    net = load_net(net_path) if noise else deterministic_net(load_net(net_path))
    spiking = [k for k, q in enumerate(qnet.layers) if q.v_th_mant is not None]
    counts, totals, predictions = [0] * len(spiking), [0] * len(spiking), []
    steps = slice(1, qnet.timesteps + 1)
    for xb, _ in batches(x, y, batch_size):
        run = simulate(net, encode_inputs(net, xb), record=True)
        predictions.append(predict(logits(net, run)))
        for n, k in enumerate(spiking):
            q = qnet.layers[k]
            v = pre_spike_potentials(net.layers[k], run.u[k], run.v[k], run.spikes[k])[:, steps]
            volts = v.double() / (64 * q.state_scale)
            counts[n] += near_threshold_count(volts, q.layer.neuron.v_th, delta)
            totals[n] += v.numel()
    predictions = torch.cat(predictions)
    return {"accuracy": float((predictions == y).float().mean()), "predictions": predictions,
            **_fractions(counts, totals)}


def compare(float_result: Dict[str, object], fixed_result: Dict[str, object]) -> Dict[str, object]:
    """JSON-ready float vs fixed-point results and their prediction agreement."""
    strip = lambda r: {k: v for k, v in r.items() if k != "predictions"}
    agree = float((float_result["predictions"] == fixed_result["predictions"]).float().mean())
    return {"float": strip(float_result), "fixed": strip(fixed_result), "agreement": agree}


def evaluate_export(model: SpikingNetwork, net_path: Path, qnet: QuantizedNetwork, x: torch.Tensor,
                    y: torch.Tensor, delta: float) -> Dict[str, object]:
    """export.json's 'evaluation': float vs fixed point with the noise off; for a stochastic network also
    with the noise on (float noise seeded with train's EVAL_NOISE_SEED, fixed-point noise from the file)."""
    result = {"samples": len(x), "delta": delta,
              "layers": [q.layer.name for q in qnet.layers if q.v_th_mant is not None],
              **compare(float_metrics(model, x, y, delta), fixed_metrics(net_path, qnet, x, y, delta))}
    if any(q.noise_sigma for q in qnet.layers):
        result["noise_on"] = compare(float_metrics(model, x, y, delta, EVAL_NOISE_SEED),
                                     fixed_metrics(net_path, qnet, x, y, delta, noise=True))
    return result
