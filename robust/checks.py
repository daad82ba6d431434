"""Red flags of an unreliable evaluation (after AutoAttack's checks and Carlini et al. 2019's checklist).

Each check compares per-sample scores of runs on the same samples with a paired test: "b is higher than a"
means mean(b - a) > max(MIN_GAP, Z * standard error of the paired differences), so seed noise on a few
samples does not fire it. A fired check becomes a `Flag`; the report prints it next to the number.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from robust.attacks import parse_attack
from robust.evaluate import AttackRun, EpsResult, ModelResult

MIN_GAP = 0.01          # accuracy points (fraction) below which a difference is never a flag
Z = 3.0                 # standard errors a paired difference must exceed
ZERO_GRADIENT_MAX = 0.01
LARGE_EPS = 0.5         # from here every image can reach the constant 0.5 image: accuracy must fall to chance
LARGE_EPS_SLACK = 0.05

CHECKS = {
    "zero_gradients": "a surrogate gives an all-zero input gradient on more than 1% of the clean samples",
    "stochastic_without_eot": "the model is stochastic but no EOT attack ran",
    "square_beats_whitebox": "black-box Square is stronger than every white-box attack",
    "square_finds_more": "Square breaks samples that no white-box attack broke",
    "more_steps_higher": "a PGD attack with more steps leaves higher accuracy than with fewer",
    "eps_raises_accuracy": "accuracy under an attack rises with eps",
    "eot_k_unstable": "doubling the EOT draws changes accuracy",
    "above_clean": "accuracy under an attack is above clean accuracy",
    "large_eps_not_broken": f"accuracy at eps >= {LARGE_EPS} stays above the largest class share",
}


@dataclass(frozen=True)
class Flag:
    check: str                      # a key of CHECKS
    message: str
    eps: Optional[float] = None     # None: about the whole model
    run: Optional[str] = None       # the run key the flag belongs next to; None: the worst case


def higher(low: torch.Tensor, high: torch.Tensor) -> bool:
    """Is per-sample `high` higher than `low` beyond noise (paired, MIN_GAP and Z standard errors)?"""
    diff = (high - low).double()
    se = float(diff.std(unbiased=True)) / len(diff) ** 0.5 if len(diff) > 1 else 0.0
    return float(diff.mean()) > max(MIN_GAP, Z * se)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _zero_gradients(result: ModelResult) -> List[Flag]:
    return [Flag("zero_gradients", f"surrogate {label}: all-zero input gradient on {_pct(frac)} of clean "
                 f"samples (gradient masking; trust Square or another surrogate)")
            for label, frac in result.zero_gradients.items() if frac > ZERO_GRADIENT_MAX]


def _square(res: EpsResult) -> List[Flag]:
    white = [r for r in res.runs if parse_attack(r.attack).needs_gradients]
    black = [r for r in res.runs if not parse_attack(r.attack).needs_gradients]
    if not white or not black:
        return []
    flags = []
    strongest = min(white, key=lambda r: r.accuracy)
    for run in black:
        if higher(run.scores, strongest.scores):
            flags.append(Flag("square_beats_whitebox", f"{run.key} {_pct(run.accuracy)} < strongest white-box "
                              f"{strongest.key} {_pct(strongest.accuracy)}: gradients are likely masked",
                              res.eps, run.key))
    white_worst = torch.stack([r.scores for r in white]).min(0).values
    all_worst = torch.stack([r.scores for r in res.runs]).min(0).values
    if higher(all_worst, white_worst):
        flags.append(Flag("square_finds_more", f"Square lowers the white-box worst case from "
                          f"{_pct(float(white_worst.mean()))} to {_pct(float(all_worst.mean()))}", res.eps))
    return flags


def _more_steps(res: EpsResult) -> List[Flag]:
    groups: Dict[Tuple[str, str], List[Tuple[int, AttackRun]]] = {}
    for run in res.runs:
        spec = parse_attack(run.attack)
        if spec.steps is not None and not run.probe:
            groups.setdefault((spec.family, run.surrogate), []).append((spec.steps, run))
    flags = []
    for members in groups.values():
        members.sort(key=lambda item: item[0])
        for i, (fewer, a) in enumerate(members):
            for more, b in members[i + 1:]:
                if higher(a.scores, b.scores):
                    flags.append(Flag("more_steps_higher", f"{b.key} {_pct(b.accuracy)} > {a.key} "
                                      f"{_pct(a.accuracy)} with fewer steps", res.eps, b.key))
    return flags


def _eot_probe(res: EpsResult) -> List[Flag]:
    flags = []
    for probe in (r for r in res.runs if r.probe):
        base = next(r for r in res.runs if not r.probe and r.attack == probe.attack and r.surrogate == probe.surrogate)
        if higher(base.scores, probe.scores) or higher(probe.scores, base.scores):
            flags.append(Flag("eot_k_unstable", f"{base.key} {_pct(base.accuracy)} with k={base.eot_k} vs "
                              f"{_pct(probe.accuracy)} with k={probe.eot_k}: raise --eot-k", res.eps, base.key))
    return flags


def _above_clean(result: ModelResult, res: EpsResult) -> List[Flag]:
    return [Flag("above_clean", f"{r.key} {_pct(r.accuracy)} > clean {_pct(result.clean_accuracy)}: the attack "
                 f"moves samples the wrong way", res.eps, r.key)
            for r in res.runs if higher(result.clean_scores, r.scores)]


def _eps_monotone(results: Sequence[EpsResult]) -> List[Flag]:
    ordered = sorted(results, key=lambda r: r.eps)
    flags = []
    for i, small in enumerate(ordered):
        for large in ordered[i + 1:]:
            if higher(small.worst_scores, large.worst_scores):
                flags.append(Flag("eps_raises_accuracy", f"worst case {_pct(large.accuracy)} at eps={large.eps:g} "
                                  f"> {_pct(small.accuracy)} at eps={small.eps:g}", large.eps))
            by_key = {r.key: r for r in small.runs}
            for run in large.runs:
                if run.key in by_key and higher(by_key[run.key].scores, run.scores):
                    flags.append(Flag("eps_raises_accuracy", f"{run.key} {_pct(run.accuracy)} at eps={large.eps:g} "
                                      f"> {_pct(by_key[run.key].accuracy)} at eps={small.eps:g}", large.eps, run.key))
    return flags


def _large_eps(result: ModelResult) -> List[Flag]:
    share = float(torch.bincount(result.labels).max()) / len(result.labels)
    return [Flag("large_eps_not_broken", f"worst case {_pct(res.accuracy)} at eps={res.eps:g}, where a constant "
                 f"image is reachable (largest class share {_pct(share)}): the attacks are too weak", res.eps)
            for res in result.eps_results if res.eps >= LARGE_EPS and res.accuracy > share + LARGE_EPS_SLACK]


def run_checks(result: ModelResult) -> Tuple[List[Flag], Dict[str, str]]:
    """All red flags of `result`, and each check's status: 'passed', 'FIRED' or 'not applicable: why'."""
    flags = _zero_gradients(result)
    if result.stochastic and not any(parse_attack(r.attack).eot for res in result.eps_results for r in res.runs):
        flags.append(Flag("stochastic_without_eot", "the model is stochastic (logits vary between forwards) but "
                          "no eot- attack ran: add eot-pgd20 or eot-apgd-ce"))
    for res in result.eps_results:
        flags += _square(res) + _more_steps(res) + _eot_probe(res) + _above_clean(result, res)
    flags += _eps_monotone(result.eps_results) + _large_eps(result)
    fired = {flag.check for flag in flags}
    runs = [r for res in result.eps_results for r in res.runs]
    specs = [parse_attack(r.attack) for r in runs]
    white, black = any(s.needs_gradients for s in specs), any(not s.needs_gradients for s in specs)
    missing = {  # check -> why it could not run (None: it ran)
        "zero_gradients": None if result.zero_gradients else "model is a plain callable",
        "stochastic_without_eot": None if result.stochastic else "model is deterministic",
        "square_beats_whitebox": None if white and black else "needs square and a white-box attack",
        "more_steps_higher": None if len({s.steps for s in specs if s.steps}) > 1 else "needs two PGD step counts",
        "eps_raises_accuracy": None if len(result.eps_results) > 1 else "needs two eps values",
        "eot_k_unstable": None if any(r.probe for r in runs) else
        "model is deterministic" if not result.stochastic else "needs an eot- gradient attack",
        "above_clean": None if runs else "no attacks ran",
        "large_eps_not_broken": None if any(r.eps >= LARGE_EPS for r in result.eps_results)
        else f"needs an eps >= {LARGE_EPS}",
    }
    missing["square_finds_more"] = missing["square_beats_whitebox"]
    status = {name: "FIRED" if name in fired else "passed" if missing[name] is None else
              f"not applicable: {missing[name]}" for name in CHECKS}
    return flags, status
