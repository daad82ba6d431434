"""`tgo verify`: does adversarial robustness survive quantization to the deployed fixed-point network?

Two sides, one candidate pool per eps (`robust.engine`): the float checkpoint (attacked through its own
gradients under a surrogate sweep) and the deployed `.net` (scored bit-exactly on hw_sim, attacked through
its differentiable integer twin and by a gradient-free search over input levels on hw_sim itself). Every
candidate is scored on both sides. Refused up front: a `.net` whose export.json names another checkpoint
(or has none, unless allowed), and non-finite weights on either side.

Verdict (`judge`), per eps on the per-image headline scores:
  - fail when fixed point is worse than float by more than `tolerance` (paired bootstrap CI on the gap);
  - fail when the fixed point's accuracy under an independent noise generator (numpy PCG64, same integer
    sigma and rounding; same images and examples) differs from hw_sim's: the paired 95% bootstrap CI of the
    per-image difference excludes 0 and the difference is at least GENERATOR_MARGIN. Robustness that depends
    on the generator would not survive the chip's own;
  - fail when Lava disagrees with hw_sim;
  - 'inconsistent' when fixed point is better than float by more than `tolerance` with the whole CI beyond
    it (a quantized copy is not more robust than its source: a weak attack or a broken model);
  - 'unconverged' when doubling the attack budget moved a headline (`engine.CONVERGED`);
  - 'unchecked' when Lava was not run (`lava_n` 0); else 'pass'.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from export.quantize import INPUT_SCALE_MAX
from hw_sim.compare import first_mismatch
from hw_sim.netfile import NetFile, load_net
from hw_sim.simulator import Run, encode_inputs, simulate
from robust.deployed import DeployedTwin, logit_scale
from robust.diagnose import layer_rates, potential_histograms
from robust.engine import EngineResult, Side, run_engine
from robust.options import SAMPLE_BLOCK, EngineBudget
from robust.seeded import FloatModel, HwSimModel, Pcg64Model, score
from robust.sharding import Plan
from robust.stats import paired_bootstrap, wilson_interval
from robust.surrogates import SurrogateSpec
from tgo_errors import UsageError
from train.checkpoint import Checkpoint, file_sha256, resolve_checkpoint_path
from train.data import Dataset

GENERATOR_MARGIN = 0.01   # generator differences below 1 point are practically equal, whatever their CI


@dataclass
class VerifyOptions:
    eps: List[float]
    surrogates: List[SurrogateSpec]
    twin_surrogates: List[SurrogateSpec]
    budget: EngineBudget = field(default_factory=EngineBudget)
    n: Optional[int] = None          # test samples (None: all)
    lava_n: int = 50                 # samples re-run in Lava (0: not checked)
    repeats: int = 20                # score seeds per input (stochastic sides)
    tolerance: float = 0.02          # allowed gap of robust accuracy, fixed vs float (fraction)
    seed: int = 0
    allow_unpaired: bool = False     # accept a .net without export.json
    block: int = SAMPLE_BLOCK        # samples per block (seeding and sharding unit, robust.sharding)


@dataclass
class Verification:
    engine: EngineResult
    pcg64: Dict[str, torch.Tensor]   # 'clean' and f'{eps:g}' -> [N] fixed-point scores under PCG64 noise
    lava: Dict[str, object]          # samples, checked, agree, mismatch description
    layers: List[Dict[str, object]]  # per-layer spike rates float vs fixed
    histograms: Dict[str, object]
    notes: List[str] = field(default_factory=list)
    verdict: str = "fail"
    reasons: List[str] = field(default_factory=list)
    flags: List[str] = field(default_factory=list)


def refuse_unvouched(checkpoint: Path, net_path: Path, ckpt: Checkpoint, net: NetFile, allow_unpaired: bool) -> None:
    """UsageError unless `net_path` was exported from this very checkpoint (export.json's sha256). Without
    export.json only `allow_unpaired` lets it through. (Non-finite weights never get here: `load_checkpoint`
    and `load_net` refuse them.)"""
    report = Path(net_path).with_name("export.json")
    if not report.is_file():
        if not allow_unpaired:
            raise UsageError(f"{net_path}: no export.json beside it, so nothing says it was exported from "
                             f"'{checkpoint}' (pass --allow-unpaired to verify it anyway)")
    else:
        try:
            recorded = json.loads(report.read_text())["source"]["sha256"]
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"{report}: no source checkpoint sha256 in it; re-export the checkpoint") from None
        actual = file_sha256(resolve_checkpoint_path(checkpoint))
        if recorded != actual and not allow_unpaired:
            raise UsageError(f"{net_path} was exported from another checkpoint (export.json sha256 "
                             f"{recorded[:12]}..., '{checkpoint}' is {actual[:12]}...): verify a model with its own export")


def _lava_agreement(net: NetFile, inputs: torch.Tensor) -> Dict[str, object]:
    """Run `inputs` in Lava and hw_sim; report whether every spike of every layer agrees."""
    if not len(inputs):
        return {"samples": 0, "checked": False, "agree": None, "mismatch": None}
    from hw_sim.lava_runner import run_lava  # Lava is imported only here
    spikes = encode_inputs(net, inputs)
    reference: Run = run_lava(net, spikes)
    candidate: Run = simulate(net, spikes)
    mismatch = first_mismatch(net, reference, candidate)
    return {"samples": len(inputs), "checked": True, "agree": mismatch is None,
            "mismatch": None if mismatch is None else mismatch.describe()}


def sample_count(options: VerifyOptions, data: Dataset) -> int:
    """The number of test samples verified (UsageError outside 1..test split)."""
    n = len(data.test_x) if options.n is None else options.n
    if not 1 <= n <= len(data.test_x):
        raise UsageError(f"--n must be in 1..{len(data.test_x)} (test samples), got {n}")
    return n


def verify(ckpt: Checkpoint, net_path: Path, data: Dataset, options: VerifyOptions,
           log=lambda *_: None, plan: Optional[Plan] = None) -> Optional[Verification]:
    """Run the whole verification on the first `options.n` test samples; see the module docstring.

    With a `plan` (robust.sharding) the engine's blocks are shared among the ranks; rank 0 alone scores
    the PCG64 generator, runs Lava and judges (the other ranks return None)."""
    net = load_net(net_path)
    if net.tgo is None:
        raise UsageError(f"{net_path}: not a tgo export (no /tgo group)")
    if tuple(net.tgo.input_shape) != tuple(ckpt.input_shape) or net.tgo.num_classes != ckpt.num_classes:
        raise UsageError(f"{net_path} (input {tuple(net.tgo.input_shape)}, {net.tgo.num_classes} classes) does not "
                         f"match the checkpoint (input {tuple(ckpt.input_shape)}, {ckpt.num_classes} classes)")
    n = sample_count(options, data)
    x, y = data.test_x[:n], data.test_y[:n]
    model = ckpt.build_model("cpu").eval()
    scale = logit_scale(net_path, net)
    hwsim = HwSimModel(net, scale)
    sides = [Side("float", FloatModel(model, x[:64]), model, options.surrogates, "float"),
             Side("fixed", hwsim, DeployedTwin(net, ckpt.config.neuron, scale), options.twin_surrogates, "twin",
                  eot_from="float")]
    engine = run_engine(sides, Side("hw_sim", hwsim, origin="hw_sim"), x, y, options.eps, net.tgo.input_scale,
                        options.budget, options.seed, options.repeats, log, plan or Plan(n, options.block))
    if plan is not None and not plan.is_main:
        return None
    log("fixed point under a second noise generator (PCG64)")
    pcg = Pcg64Model(net, scale)
    pcg64 = {"clean": score(pcg, x, y, engine.seeds.score)[0]}
    for row in engine.eps["fixed"]:
        pcg64[f"{row.eps:g}"] = score(pcg, row.examples, y, engine.seeds.score)[0]
    m = min(options.lava_n, n)
    log(f"Lava: {m} clean and {m * len(options.eps)} chosen adversarial samples")
    lava = _lava_agreement(net, torch.cat([x[:m]] + [row.examples[:m] for row in engine.eps["fixed"]]))
    result = Verification(engine, pcg64, lava, layer_rates(model, net, x),
                          potential_histograms(model, net, x, ckpt.config.neuron.v_th, ckpt.config.tgo.delta))
    result.notes = input_grid_notes(options.eps, net.tgo.input_scale)
    return judge(result, options.tolerance)


def input_grid_notes(eps_values: Sequence[float], q: int) -> List[str]:
    """The chip sees round(x * Q). Where eps is not a whole number of levels (1/Q), rounding changes the ball
    the fixed point faces: an image off the grid (natural pixels) can move by ceil(eps * Q) levels, one on it
    by round(eps * Q). Say so where it happens, and name the Q nearest this one (in 1..INPUT_SCALE_MAX) that
    makes every eps whole."""
    notes = []
    for eps in eps_values:
        levels = eps * q
        if abs(levels - round(levels)) > 1e-9:
            up, near = math.ceil(levels), round(levels)
            faced = f"{up} level{'s' * (up != 1)} = {up / q:.4f}"
            if near != up:
                faced += f" on images off the grid, {near} = {near / q:.4f} on images on it"
            notes.append(f"eps {eps:g} is {levels:.2f} input levels (Q = {q}): after rounding, the fixed-point model "
                         f"can face {faced}")
    whole = [c for c in range(1, INPUT_SCALE_MAX + 1) if all(abs(e * c - round(e * c)) <= 1e-9 for e in eps_values)]
    if notes and whole:
        best = min(whole, key=lambda c: (abs(c - q), c))
        notes.append(f"every eps is a whole number of levels with Q = {best}: `tgo export ... --input-scale {best}`")
    return notes


def rows(result: Verification) -> List[Dict[str, object]]:
    """Per eps: both headlines with intervals, the paired gap with its CI, the PCG64 figure."""
    out = []
    for f_eps, fixed in zip(result.engine.eps["float"], result.engine.eps["fixed"]):
        gap, low, high = paired_bootstrap(f_eps.headline - fixed.headline)
        out.append({"eps": fixed.eps, "float": accuracy_with_interval(f_eps.headline),
                    "fixed": accuracy_with_interval(fixed.headline),
                    "fixed_pcg64": accuracy_with_interval(result.pcg64[f"{fixed.eps:g}"]),
                    "gap": gap, "gap_ci": [low, high]})
    return out


def judge(result: Verification, tolerance: float) -> Verification:
    """Set the verdict, the reasons of a failure and the red flags (see the module docstring)."""
    reasons, inconsistent = [], []
    generator = [("clean", result.engine.clean["fixed"], result.pcg64["clean"])]
    generator += [(f"eps {row.eps:g}", row.headline, result.pcg64[f"{row.eps:g}"]) for row in result.engine.eps["fixed"]]
    for where, ours, theirs in generator:
        gap, low, high = paired_bootstrap(ours - theirs)
        if abs(gap) >= GENERATOR_MARGIN and not low <= 0 <= high:
            reasons.append(f"{where}: fixed-point accuracy depends on the noise generator: {float(ours.mean()):.1%} "
                           f"with tgo-hash32-gauss-v1, {float(theirs.mean()):.1%} with numpy PCG64 (paired 95% CI "
                           f"of the difference {low:+.1%} to {high:+.1%} excludes 0)")
    for row in rows(result):
        if row["gap"] > tolerance:
            reasons.append(f"eps {row['eps']:g}: fixed-point robust accuracy {row['fixed']['accuracy']:.1%} is "
                           f"{row['gap']:.1%} (95% CI {row['gap_ci'][0]:+.1%} to {row['gap_ci'][1]:+.1%}) below "
                           f"float's {row['float']['accuracy']:.1%} (tolerance {tolerance:.1%}); "
                           + _culprit(result.layers))
        elif row["gap_ci"][1] < -tolerance:
            inconsistent.append(f"eps {row['eps']:g}: fixed point {row['fixed']['accuracy']:.1%} is more robust than "
                                f"its float source {row['float']['accuracy']:.1%} beyond the tolerance (gap CI "
                                f"{row['gap_ci'][0]:+.1%} to {row['gap_ci'][1]:+.1%}): a weak attack or a broken model")
    if result.lava["checked"] and not result.lava["agree"]:
        reasons.append(f"Lava and hw_sim disagree: {result.lava['mismatch']}")
    result.flags = inconsistent + result.engine.flags()
    if reasons:
        result.verdict = "fail"
    elif inconsistent:
        result.verdict = "inconsistent"
    elif result.engine.flags():
        result.verdict = "unconverged"
    elif not result.lava["checked"]:
        result.verdict = "unchecked"
    else:
        result.verdict = "pass"
    result.reasons = reasons
    return result


RATE_CHANGE_NOTABLE = 0.01  # spikes per neuron per step


def _culprit(layers: Sequence[Dict[str, object]]) -> str:
    """Which layer's quantization hurts: the one whose clean spike rate moves most, if any moves notably."""
    worst = max(layers, key=lambda row: abs(row["rate_change"]))
    if abs(worst["rate_change"]) < RATE_CHANGE_NOTABLE:
        return (f"no layer's clean spike rate moves by {RATE_CHANGE_NOTABLE} or more (largest: layer {worst['layer']}, "
                f"{worst['rate_change']:+.4f}), so the loss comes from the responses to perturbations: see the "
                f"per-source accuracies in verify.md")
    return (f"layer {worst['layer']} ({worst['name']}) changes its spike rate most: "
            f"{worst['float_rate']:.3f} float vs {worst['fixed_rate']:.3f} fixed point")


def accuracy_with_interval(scores: torch.Tensor) -> Dict[str, float]:
    """Mean of per-sample scores in [0, 1] with its 95% Wilson interval."""
    low, high = wilson_interval(float(scores.sum()), len(scores))
    return {"accuracy": float(scores.double().mean()), "ci_low": low, "ci_high": high}
