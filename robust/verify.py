"""`tgo verify`: does adversarial robustness survive quantization to the deployed fixed-point network?

Float side: the checkpoint's model under the attack suite (`robust.evaluate`), per-sample worst case.
Fixed-point side, every adversarial example scored on bit-exact hw_sim:
  - white-box attacks on the differentiable twin of the integer network (`robust.twin`),
  - the float model's adversarial examples transferred,
  - black-box Square run on hw_sim itself (gradient masking cannot hide weakness from it);
per sample, the worst of all of them. A subset (clean and worst-case adversarial inputs) is re-run in the
Lava simulator and must agree with hw_sim spike for spike. Verdict: pass when, at every eps, fixed-point
worst-case robust accuracy is at most `tolerance` below float's, and Lava agrees.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from rich.progress import Progress

from hw_sim.compare import first_mismatch
from hw_sim.netfile import NetFile, load_net
from hw_sim.simulator import Run, encode_inputs, simulate
from robust.attacks import AttackSettings, AttackSpec
from robust.deployed import DeployedTwin, HwSimClassifier, is_stochastic_net, logit_scale
from robust.diagnose import layer_rates, potential_histograms
from robust.evaluate import EpsResult, ModelResult, derive_seed, evaluate_model, mean_score
from robust.stats import wilson_interval
from robust.surrogates import SurrogateSpec
from robust.target import score
from tgo_errors import UsageError
from train.checkpoint import Checkpoint
from train.data import Dataset


@dataclass
class VerifyOptions:
    attacks: List[AttackSpec]
    eps: List[float]
    surrogates: List[SurrogateSpec]
    settings: AttackSettings
    n: Optional[int] = None          # test samples (None: all)
    lava_n: int = 50                 # samples re-run in Lava
    repeats: int = 20                # scoring forwards of the stochastic float model
    tolerance: float = 0.02          # allowed drop of worst-case robust accuracy, fixed vs float
    seed: int = 0
    batch_size: int = 500


@dataclass
class FixedEps:
    eps: float
    worst_scores: torch.Tensor       # [N] per-sample score on hw_sim (fraction of correct noisy forwards)
    worst_by: List[str]
    per_attack: Dict[str, float]     # accuracy on hw_sim per source ('twin:pgd20@own', 'transfer:...', 'square')
    worst_examples: torch.Tensor     # [N, ...] the input that gave each sample's worst score

    @property
    def accuracy(self) -> float:
        return mean_score(self.worst_scores)


@dataclass
class Verification:
    float_result: ModelResult
    fixed_clean: torch.Tensor        # [N] per-sample score on hw_sim
    fixed: List[FixedEps]
    lava: Dict[str, object]          # samples, agree, mismatch description
    layers: List[Dict[str, object]]  # per-layer spike rates float vs fixed
    histograms: Dict[str, object]
    notes: List[str] = field(default_factory=list)
    passed: bool = False
    reasons: List[str] = field(default_factory=list)


def _square_specs(attacks: Sequence[AttackSpec]) -> List[AttackSpec]:
    return [spec for spec in attacks if not spec.needs_gradients]


def _gradient_specs(attacks: Sequence[AttackSpec]) -> List[AttackSpec]:
    return [spec for spec in attacks if spec.needs_gradients]


def _fixed_side(hwsim: HwSimClassifier, float_eps: EpsResult, x: torch.Tensor, y: torch.Tensor,
                clean: torch.Tensor, twin_eps: Optional[EpsResult], square_eps: Optional[EpsResult],
                repeats: int, score_seed: int, batch_size: int) -> FixedEps:
    """Per-sample worst case on hw_sim over twin attacks, transferred float examples and Square."""
    sources: Dict[str, tuple] = {}
    for prefix, result in (("twin", twin_eps), ("hw_sim", square_eps)):
        for run in (result.runs if result is not None else []):
            sources[f"{prefix}:{run.key}"] = (run.scores, run.examples)
    for run in float_eps.runs:
        if not run.probe:
            sources[f"transfer:{run.key}"] = (score(hwsim, run.examples, y, repeats, score_seed, batch_size),
                                              run.examples)
    names = list(sources)
    stacked = torch.stack([clean] + [sources[k][0] for k in names])
    worst, index = stacked.min(0)
    examples = torch.stack([x] + [sources[k][1] for k in names])  # [1 + sources, N, ...]
    worst_examples = examples[index, torch.arange(len(x))]
    return FixedEps(float_eps.eps, worst, [(["clean"] + names)[i] for i in index.tolist()],
                    {k: float(sources[k][0].mean()) for k in names}, worst_examples)


def _lava_agreement(net: NetFile, inputs: torch.Tensor) -> Dict[str, object]:
    """Run `inputs` in Lava and hw_sim; report whether every spike of every layer agrees."""
    from hw_sim.lava_runner import run_lava  # Lava is imported only here
    spikes = encode_inputs(net, inputs)
    reference: Run = run_lava(net, spikes)
    candidate: Run = simulate(net, spikes)
    mismatch = first_mismatch(net, reference, candidate)
    return {"samples": len(inputs), "agree": mismatch is None,
            "mismatch": None if mismatch is None else mismatch.describe()}


def verify(ckpt: Checkpoint, net_path: Path, data: Dataset, options: VerifyOptions,
           progress: Optional[Progress] = None, log=lambda *_: None) -> Verification:
    """Run the whole verification on the first `options.n` test samples; see the module docstring."""
    net = load_net(net_path)
    if net.tgo is None:
        raise UsageError(f"{net_path}: not a tgo export (no /tgo group)")
    if tuple(net.tgo.input_shape) != tuple(ckpt.input_shape) or net.tgo.num_classes != ckpt.num_classes:
        raise UsageError(f"{net_path} (input {tuple(net.tgo.input_shape)}, {net.tgo.num_classes} classes) does not "
                         f"match the checkpoint (input {tuple(ckpt.input_shape)}, {ckpt.num_classes} classes)")
    n = len(data.test_x) if options.n is None else options.n
    if not 1 <= n <= len(data.test_x):
        raise UsageError(f"--n must be in 1..{len(data.test_x)} (test samples), got {n}")
    x, y = data.test_x[:n], data.test_y[:n]
    model = ckpt.build_model("cpu")
    scale = logit_scale(net_path, net)
    hwsim, twin = HwSimClassifier(net, scale), DeployedTwin(net, ckpt.config.neuron, scale)
    common = dict(eps_values=options.eps, settings=options.settings, seed=options.seed,
                  batch_size=options.batch_size, progress=progress, keep_examples=True)
    log("float model")
    float_result = evaluate_model(model, x, y, options.attacks, surrogates=options.surrogates,
                                  repeats=options.repeats, name="float", **common)
    gradient, square = _gradient_specs(options.attacks), _square_specs(options.attacks)
    log("fixed point: twin attacks, scored on hw_sim")
    twin_result = (evaluate_model(twin, x, y, gradient, surrogates=options.surrogates, repeats=options.repeats,
                                  name="fixed-point twin", scorer=hwsim, **common) if gradient else None)
    log("fixed point: Square on hw_sim")
    square_result = (evaluate_model(hwsim, x, y, square, surrogates=[SurrogateSpec(None, None)], repeats=options.repeats,
                                    name="hw_sim", **common) if square else None)
    repeats = options.repeats if is_stochastic_net(net) else 1
    score_seed = derive_seed(options.seed, "score")  # the seed evaluate_model scores with
    fixed_clean = score(hwsim, x, y, repeats, score_seed, options.batch_size)
    fixed = [_fixed_side(hwsim, f_eps, x, y, fixed_clean, twin_result.eps_results[i] if twin_result else None,
                         square_result.eps_results[i] if square_result else None, repeats, score_seed,
                         options.batch_size)
             for i, f_eps in enumerate(float_result.eps_results)]
    m = min(options.lava_n, n)
    log(f"Lava: {m} clean and {m * len(fixed)} worst-case adversarial samples")
    lava = _lava_agreement(net, torch.cat([x[:m]] + [f.worst_examples[:m] for f in fixed])) if m else \
        {"samples": 0, "agree": True, "mismatch": None}
    result = Verification(float_result, fixed_clean, fixed, lava, layer_rates(model, net, x),
                          potential_histograms(model, net, x, ckpt.config.neuron.v_th, ckpt.config.tgo.delta))
    result.notes = input_grid_notes(options.eps, net.tgo.input_scale)
    return judge(result, options.tolerance)


def input_grid_notes(eps_values: Sequence[float], q: int) -> List[str]:
    """The chip sees round(x * Q): an eps that is not a multiple of 1/Q lets rounding stretch a perturbation
    of an on-grid image to round(eps * Q) levels. Say so where it happens."""
    notes = []
    for eps in eps_values:
        levels = eps * q
        if abs(levels - round(levels)) > 1e-9 and round(levels) / q > eps:
            notes.append(f"eps {eps:g} is {levels:.2f} input levels (Q = {q}): after rounding the fixed-point "
                         f"model can face {round(levels)} levels = {round(levels) / q:.4f}; prefer multiples of 1/{q}")
    return notes


def judge(result: Verification, tolerance: float) -> Verification:
    """Set `passed` and the reasons for a failure."""
    reasons = []
    for f_eps, fixed in zip(result.float_result.eps_results, result.fixed):
        gap = f_eps.accuracy - fixed.accuracy
        if gap > tolerance:
            reasons.append(f"eps {fixed.eps:g}: fixed-point worst-case robust accuracy {fixed.accuracy:.1%} is "
                           f"{gap:.1%} below float's {f_eps.accuracy:.1%} (tolerance {tolerance:.1%}); "
                           + _culprit(result.layers))
    if not result.lava["agree"]:
        reasons.append(f"Lava and hw_sim disagree: {result.lava['mismatch']}")
    result.passed, result.reasons = not reasons, reasons
    return result


RATE_CHANGE_NOTABLE = 0.01  # spikes per neuron per step


def _culprit(layers: Sequence[Dict[str, object]]) -> str:
    """Which layer's quantization hurts: the one whose clean spike rate moves most, if any moves notably."""
    worst = max(layers, key=lambda row: abs(row["rate_change"]))
    if abs(worst["rate_change"]) < RATE_CHANGE_NOTABLE:
        return (f"no layer's clean spike rate moves by {RATE_CHANGE_NOTABLE} or more (largest: layer {worst['layer']}, "
                f"{worst['rate_change']:+.4f}), so the loss comes from the responses to perturbations: see the "
                f"per-source accuracies (twin, transfer, square) in verify.md")
    return (f"layer {worst['layer']} ({worst['name']}) changes its spike rate most: "
            f"{worst['float_rate']:.3f} float vs {worst['fixed_rate']:.3f} fixed point")


def accuracy_with_interval(scores: torch.Tensor) -> Dict[str, float]:
    """Mean of per-sample scores in [0, 1] with its 95% Wilson interval."""
    low, high = wilson_interval(float(scores.sum()), len(scores))
    return {"accuracy": mean_score(scores), "ci_low": low, "ci_high": high}
