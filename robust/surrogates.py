"""Which surrogate gradient an attack backpropagates through: 'own' (the model's) or 'name[:alpha]'.

Attack strength on SNNs depends on the surrogate (Xu et al. 2022, Ozdenizci & Legenstein 2024), so the
evaluation takes the per-sample worst case over several. Swapping uses the model's `surrogate(name, alpha)`
context manager (train.models.SpikingNetwork); forwards are unchanged.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import ContextManager, List, Optional

from torch import nn

from tgo_errors import UsageError
from train.surrogate import SURROGATES


@dataclass(frozen=True)
class SurrogateSpec:
    name: Optional[str]      # None: the model's own surrogate
    alpha: Optional[float]

    @property
    def label(self) -> str:
        return "own" if self.name is None else f"{self.name}:{self.alpha:g}"

    def applied(self, model: nn.Module) -> ContextManager:
        """A context in which `model` backpropagates through this surrogate."""
        if self.name is None:
            return contextlib.nullcontext()
        swap = getattr(model, "surrogate", None)
        if not callable(swap):
            raise UsageError(f"surrogate '{self.label}': the model has no surrogate(name, alpha) to swap")
        return swap(self.name, self.alpha)


def parse_surrogates(text: str, default_alpha: float) -> List[SurrogateSpec]:
    """'own,superspike:8,ste' -> specs; a bare name uses `default_alpha`. Unknown names are UsageErrors."""
    specs: List[SurrogateSpec] = []
    for part in filter(None, (p.strip().lower() for p in text.split(","))):
        if part == "own":
            spec = SurrogateSpec(None, None)
        else:
            name, _, alpha_text = part.partition(":")
            if name not in SURROGATES:
                raise UsageError(f"unknown surrogate '{name}' (choose own or one of {', '.join(SURROGATES)}, "
                                 f"optionally with :alpha)")
            try:
                alpha = float(alpha_text) if alpha_text else float(default_alpha)
            except ValueError:
                raise UsageError(f"surrogate '{part}': alpha '{alpha_text}' is not a number") from None
            if not (math.isfinite(alpha) and alpha > 0):
                raise UsageError(f"surrogate '{part}': alpha must be a finite number > 0")
            spec = SurrogateSpec(name, alpha)
        if spec not in specs:
            specs.append(spec)
    if not specs:
        raise UsageError("no surrogates given (e.g. --surrogates own,superspike:8,ste)")
    return specs
