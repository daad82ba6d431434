"""The attack suite by name: `parse_attacks("fgsm,pgd20,eot-apgd-ce")` and `AttackSpec.build(...)`.

Names: fgsm, rfgsm, pgd<steps> (e.g. pgd20), apgd-ce, apgd-dlr, square; the prefix `eot-` runs any of
them on the noise-averaged model (`eot.NoiseAveraged`, k = `AttackSettings.eot_k` draws per gradient or
query) instead of on single noisy forwards.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional

from torch import nn

from robust.attacks.apgd import APGD
from robust.attacks.base import Attack
from robust.attacks.eot import NoiseAveraged
from robust.attacks.fgsm import FGSM
from robust.attacks.pgd import PGD
from robust.attacks.rfgsm import RFGSM
from robust.attacks.square import Square
from robust.options import MAX_COUNT
from tgo_errors import UsageError

NAME_FORMS = "fgsm, rfgsm, pgd<steps> (e.g. pgd20), apgd-ce, apgd-dlr, square, each optionally prefixed 'eot-'"
_PATTERN = re.compile(r"(eot-)?(fgsm|rfgsm|pgd(\d+)|apgd-ce|apgd-dlr|square)")


@dataclass(frozen=True)
class AttackSettings:
    """Knobs shared by the suite: EOT draws, random restarts, APGD iterations, Square queries."""
    eot_k: int = 8
    restarts: int = 1
    apgd_steps: int = 100
    square_queries: int = 5000


@dataclass(frozen=True)
class AttackSpec:
    name: str                # canonical name, e.g. 'eot-pgd20'
    base: str                # fgsm | rfgsm | pgd | apgd-ce | apgd-dlr | square
    eot: bool
    steps: Optional[int]     # pgd only

    @property
    def needs_gradients(self) -> bool:
        return self.base != "square"

    @property
    def family(self) -> str:
        """The name without the step count: attacks of one family differ only in steps (e.g. 'eot-pgd')."""
        return ("eot-" if self.eot else "") + self.base

    def build(self, model: nn.Module, eps: float, settings: AttackSettings, seed: int,
              stochastic: bool) -> Attack:
        """The attack on `model` (noise-averaged over eot_k draws when `eot` and the model is stochastic)."""
        target = NoiseAveraged(model, settings.eot_k) if self.eot and stochastic and settings.eot_k > 1 else model
        common = dict(restarts=settings.restarts, seed=seed)
        if self.base == "fgsm":
            return FGSM(target, eps, **common)
        if self.base == "rfgsm":
            return RFGSM(target, eps, **common)
        if self.base == "pgd":
            return PGD(target, eps, self.steps, **common)
        if self.base == "square":
            return Square(target, eps, settings.square_queries, **common)
        return APGD(target, eps, self.base.split("-")[1], settings.apgd_steps, **common)


def parse_attack(name: str) -> AttackSpec:
    """'eot-pgd20' -> AttackSpec; unknown names and pgd0 are UsageErrors."""
    match = _PATTERN.fullmatch(name.strip().lower())
    if match is None:
        raise UsageError(f"unknown attack '{name}' (names: {NAME_FORMS})")
    eot, body, steps = match.group(1) is not None, match.group(2), match.group(3)
    if steps is not None and not 1 <= int(steps) <= MAX_COUNT:
        raise UsageError(f"attack '{name}': PGD takes 1..{MAX_COUNT:,} steps")
    base = "pgd" if steps is not None else body
    return AttackSpec(("eot-" if eot else "") + body, base, eot, int(steps) if steps else None)


def parse_attacks(names: str) -> List[AttackSpec]:
    """A comma-separated list of attack names -> specs, in order, duplicates removed; empty is an error."""
    specs: List[AttackSpec] = []
    for name in filter(None, (part.strip() for part in names.split(","))):
        spec = parse_attack(name)
        if spec not in specs:
            specs.append(spec)
    if not specs:
        raise UsageError(f"no attacks given (names: {NAME_FORMS})")
    return specs
