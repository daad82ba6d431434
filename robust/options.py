"""The options of `tgo attack` and their defaults (imported by the CLI without loading torch)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

DEFAULT_ATTACKS = "fgsm,rfgsm,pgd10,pgd20,eot-pgd20,apgd-ce,apgd-dlr,eot-apgd-ce,square"
DEFAULT_SURROGATES = "own,superspike:8,triangle:4"   # the trained one, a sharper one, one of another family


@dataclass
class AttackOptions:
    """Everything `tgo attack` takes besides the checkpoints (the CLI help describes each)."""
    attacks: str = DEFAULT_ATTACKS
    eps: str = "0.05,0.1"
    n: Optional[int] = None
    eot_k: int = 8
    seed: int = 0
    surrogates: str = DEFAULT_SURROGATES
    repeats: int = 20
    restarts: int = 1
    apgd_steps: int = 100
    square_queries: int = 5000
    batch_size: int = 500
    dataset: Optional[str] = None
    data_dir: Optional[str] = None
    device: str = "cpu"
    out: str = "runs/attack"
    progress: bool = True
