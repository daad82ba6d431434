"""Evaluate one model under a suite of attacks, surrogates and eps values; keep the per-sample worst case.

How adversarial inputs are scored: `SCORING_RULE` (also written into every report).
"""
from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from rich.progress import Progress
from torch import nn

from robust.attacks import AttackSettings, AttackSpec
from robust.surrogates import SurrogateSpec
from robust.target import Classifier, as_module, differentiable, is_stochastic, score, zero_gradient_fraction
from tgo_errors import UsageError

SCORING_RULE = (
    "Each input is classified `repeats` times with the model's noise on (eval mode: tgo's neurons keep their "
    "noise when noise_at_inference is set), with a scoring seed the attacks never see, the same for the clean "
    "and every adversarial input. A sample's score under an attack is the fraction of those forwards that are "
    "correct (0 or 1 for a deterministic model, which is scored once). The headline, worst-case robust accuracy, "
    "is the mean over samples of the minimum score over the clean input and every (attack, surrogate) run: the "
    "expected accuracy against an attacker who picks the best attack per sample. The strict variant counts a "
    "sample only if it is correct in all `repeats` forwards under every attack.")


def derive_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed from the run seed and a job's identity (stable across runs and platforms)."""
    digest = hashlib.sha256(repr((seed,) + parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def mean_score(scores: torch.Tensor) -> float:
    """Expected accuracy: the mean of per-sample scores (fractions of correct noisy forwards)."""
    return float(scores.double().mean())


def strict_score(scores: torch.Tensor) -> float:
    """Strict accuracy: the fraction of samples correct in every scoring forward."""
    return float((scores == 1).double().mean())


@dataclass
class AttackRun:
    attack: str                 # canonical attack name, e.g. 'eot-pgd20'
    surrogate: str              # surrogate label ('own', 'ste:2'), '-' for gradient-free attacks
    eps: float
    eot_k: int                  # noise draws per gradient/query actually used (1 on a deterministic model)
    scores: torch.Tensor        # [N] per-sample fraction of correct forwards
    seconds: float
    probe: bool = False         # the EOT convergence probe (2 * eot_k), not a listed attack
    examples: Optional[torch.Tensor] = None  # [N, ...] the adversarial inputs (only with keep_examples)

    @property
    def key(self) -> str:
        return f"{self.attack}@{self.surrogate}" + (f"(k={self.eot_k})" if self.probe else "")

    @property
    def accuracy(self) -> float:
        return mean_score(self.scores)

    @property
    def strict_accuracy(self) -> float:
        return strict_score(self.scores)


@dataclass
class EpsResult:
    eps: float
    runs: List[AttackRun]
    worst_scores: torch.Tensor  # [N] min over clean and all runs
    worst_by: List[str]         # per sample: the run key that gave the minimum ('clean': no attack did worse)

    @property
    def accuracy(self) -> float:
        return mean_score(self.worst_scores)

    @property
    def strict_accuracy(self) -> float:
        return strict_score(self.worst_scores)


@dataclass
class ModelResult:
    name: str
    stochastic: bool                   # the attacked model's logits vary between forwards
    repeats: int                       # scoring forwards per input (1 when the scorer is deterministic)
    clean_scores: torch.Tensor         # [N]
    zero_gradients: Dict[str, float]   # surrogate label -> fraction of samples with all-zero input gradient
    eps_results: List[EpsResult]
    labels: torch.Tensor               # [N]

    @classmethod
    def join(cls, parts: Sequence["ModelResult"]) -> "ModelResult":
        """One result for consecutive blocks of samples evaluated apart (per-sample tensors joined on the
        CPU, zero-gradient fractions weighted by block size, run seconds summed)."""
        first, n = parts[0], sum(len(p.labels) for p in parts)
        cat = lambda tensors: torch.cat([t.cpu() for t in tensors])
        zero = {label: sum(round(p.zero_gradients[label] * len(p.labels)) for p in parts) / n
                for label in first.zero_gradients}
        eps_results = []
        for i, eps_result in enumerate(first.eps_results):
            runs = [replace(run, scores=cat([p.eps_results[i].runs[j].scores for p in parts]),
                            seconds=sum(p.eps_results[i].runs[j].seconds for p in parts),
                            examples=None if run.examples is None else
                            cat([p.eps_results[i].runs[j].examples for p in parts]))
                    for j, run in enumerate(eps_result.runs)]
            eps_results.append(EpsResult(eps_result.eps, runs, cat([p.eps_results[i].worst_scores for p in parts]),
                                         [key for p in parts for key in p.eps_results[i].worst_by]))
        return cls(first.name, first.stochastic, first.repeats, cat([p.clean_scores for p in parts]), zero,
                   eps_results, cat([p.labels for p in parts]))

    @property
    def clean_accuracy(self) -> float:
        return mean_score(self.clean_scores)

    @property
    def strict_clean_accuracy(self) -> float:
        return strict_score(self.clean_scores)


def _worst(clean: torch.Tensor, runs: Sequence[AttackRun]) -> Tuple[torch.Tensor, List[str]]:
    """Per sample: the minimum score over clean and the runs, and which gave it (the first on ties)."""
    stacked = torch.stack([clean] + [run.scores for run in runs])
    values, index = stacked.min(0)
    keys = ["clean"] + [run.key for run in runs]
    return values, [keys[i] for i in index.tolist()]


@dataclass(frozen=True)
class _Job:
    spec: AttackSpec
    surrogate: Optional[SurrogateSpec]   # None for gradient-free attacks
    settings: AttackSettings
    probe: bool = False

    @property
    def label(self) -> str:
        return self.surrogate.label if self.surrogate is not None else "-"


def _plan(attacks: Sequence[AttackSpec], surrogates: Sequence[SurrogateSpec], settings: AttackSettings,
          stochastic: bool) -> List[_Job]:
    """Every attack (gradient ones once per surrogate), then the EOT probe on a stochastic model."""
    jobs = [_Job(spec, s, settings) for spec in attacks for s in (surrogates if spec.needs_gradients else [None])]
    first_eot = next((job for job in jobs if job.spec.eot and job.spec.needs_gradients), None)
    if stochastic and first_eot is not None:
        jobs.append(_Job(first_eot.spec, first_eot.surrogate, replace(settings, eot_k=2 * settings.eot_k), True))
    return jobs


def evaluate_model(model: nn.Module | Classifier, x: torch.Tensor, y: torch.Tensor, attacks: Sequence[AttackSpec],
                   eps_values: Sequence[float], surrogates: Sequence[SurrogateSpec], settings: AttackSettings,
                   seed: int = 0, repeats: int = 20, batch_size: int = 500, name: str = "model",
                   progress: Optional[Progress] = None, scorer: Optional[nn.Module | Classifier] = None,
                   keep_examples: bool = False, probe: Optional[torch.Tensor] = None) -> ModelResult:
    """Attack `model` (x [N, C, H, W] in [0, 1] and y [N] on its device) and score every result.

    Runs every attack at every eps (gradient attacks once per surrogate), plus, for a stochastic model,
    the first EOT gradient attack again with 2 * eot_k draws (the convergence probe of `robust.checks`).
    A plain callable gets the gradient-free attacks only. Models are evaluated in eval mode and given
    back in the mode they came in. Clean and adversarial inputs are scored with the same noise seed, by
    `scorer` when given (e.g. the bit-exact simulator of an attacked fixed-point twin), else by the model;
    `repeats` forwards each when the scorer is stochastic, one when it is not.
    `keep_examples` keeps every run's adversarial inputs (on the CPU) in `AttackRun.examples`. `probe`
    (default x[:64]) are the inputs on which the models are checked for randomness.
    """
    model = as_module(model)
    judge = model if scorer is None else as_module(scorer)
    needy = [spec.name for spec in attacks if spec.needs_gradients]
    if needy and not differentiable(model):
        raise UsageError(f"attacks {', '.join(needy)} need gradients, but the model is a plain callable "
                         f"(use square or eot-square)")
    modes = [(m, m.training) for m in (model, judge)]
    for m, _ in modes:
        m.eval()
    try:
        probe = x[:64] if probe is None else probe
        stochastic = is_stochastic(model, probe)
        reps = repeats if (stochastic if judge is model else is_stochastic(judge, probe)) else 1
        score_seed = derive_seed(seed, "score")
        clean = score(judge, x, y, reps, score_seed, batch_size)
        zero = ({s.label: _zero_gradients(model, x, y, s, batch_size) for s in surrogates}
                if differentiable(model) else {})
        jobs = _plan(attacks, surrogates, settings, stochastic)
        task = None
        if progress is not None:
            task = progress.add_task(name, total=len(eps_values) * len(jobs) * -(-len(x) // batch_size))
        eps_results = []
        for eps in eps_values:
            runs = []
            for job in jobs:
                if progress is not None:
                    progress.update(task, description=f"{name} eps={eps:g} {job.spec.name}@{job.label}")
                started = time.perf_counter()
                adv = _attack(model, x, y, job, eps, stochastic,
                              derive_seed(seed, eps, job.spec.name, job.label, job.settings.eot_k),
                              batch_size, progress, task)
                k = job.settings.eot_k if job.spec.eot and stochastic else 1
                runs.append(AttackRun(job.spec.name, job.label, eps, k, score(judge, adv, y, reps, score_seed, batch_size),
                                      time.perf_counter() - started, job.probe,
                                      adv.detach().cpu() if keep_examples else None))
            eps_results.append(EpsResult(eps, runs, *_worst(clean, runs)))
        return ModelResult(name, stochastic, reps, clean, zero, eps_results, y.detach().cpu())
    finally:
        for m, training in reversed(modes):
            m.train(training)


def _attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, job: _Job, eps: float, stochastic: bool,
            seed: int, batch_size: int, progress: Optional[Progress], task) -> torch.Tensor:
    """Adversarial images for all of x, batch by batch, with the job's surrogate swapped in."""
    pieces = []
    with (job.surrogate.applied(model) if job.surrogate is not None else contextlib.nullcontext()):
        for index, start in enumerate(range(0, len(x), batch_size)):
            atk = job.spec.build(model, eps, job.settings, seed + index, stochastic)
            pieces.append(atk(x[start:start + batch_size], y[start:start + batch_size]))
            if progress is not None:
                progress.advance(task)
    return torch.cat(pieces)


def _zero_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, surrogate: SurrogateSpec,
                    batch_size: int) -> float:
    with surrogate.applied(model):
        return zero_gradient_fraction(model, x, y, batch_size)
