"""The options of `tgo attack` and their defaults (imported by the CLI without loading torch)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

DEFAULT_ATTACKS = "fgsm,rfgsm,pgd10,pgd20,eot-pgd20,apgd-ce,apgd-dlr,eot-apgd-ce,square"
DEFAULT_SURROGATES = "own,superspike:8,triangle:4"   # the trained one, a sharper one, one of another family
DEFAULT_SWEEP = "own,superspike:10,superspike:30,arctan:10,triangle:10,sigmoid:30,ste"
SAMPLE_BLOCK = 256   # samples per block: the unit of seeding and of sharding across ranks (robust.sharding)
MAX_COUNT = 1_000_000   # the most steps, draws, restarts, queries, repeats or samples any option takes: beyond it
                        # a run never ends (and sizes overflow torch's int64): a typo, not a plan
MAX_INPUT_LEVELS = 65535   # the finest input grid of the engine's level search (16-bit images)
DEFAULT_TWIN_SWEEP = "own"   # the integer twin costs 2-3x the float model per gradient; hw_sim search covers it


@dataclass(frozen=True)
class EngineBudget:
    """The adaptive engine's budget, shared by `tgo attack` and `tgo verify` (robust.engine).

    steps: APGD iterations per start; restarts: starts per image and surrogate (losses cycle ce, margin,
    dlr); eot_k: noise draws per gradient (0: chosen by the doubling probe, at most eot_k_max);
    search_queries: oracle evaluations per image and start of the grid search, `proposals` per round;
    search_seeds / select_seeds: noise seeds that guide the search / rank every candidate of each image;
    confirm_seeds: further noise seeds that re-score each image's shortlist before its example is chosen
    (a stochastic model's per-image accuracy is a probability: the choice needs enough forwards not to be noise);
    doubled_sources: how many of the strongest (side, surrogate) gradient sources the doubled round reruns.
    """
    steps: int = 50
    restarts: int = 3
    eot_k: int = 0
    eot_k_max: int = 8
    search_queries: int = 400
    proposals: int = 8
    search_seeds: int = 4
    select_seeds: int = 8
    confirm_seeds: int = 32
    doubled_sources: int = 2

    @classmethod
    def quick(cls) -> "EngineBudget":
        """A tiny budget for tests and `tgo demo --quick` (seconds; its headline is not converged)."""
        return cls(steps=4, restarts=1, eot_k=2, search_queries=16, search_seeds=2, select_seeds=2,
                   confirm_seeds=2, doubled_sources=1)

    def doubled(self, eot_k: int) -> "EngineBudget":
        """Twice the steps, restarts, EOT draws (from the `eot_k` in use) and search queries."""
        return replace(self, steps=2 * self.steps, restarts=2 * self.restarts, eot_k=2 * eot_k,
                       eot_k_max=max(self.eot_k_max, 2 * eot_k), search_queries=2 * self.search_queries)


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
    sweep: str = DEFAULT_SWEEP
    steps: int = EngineBudget.steps                    # the adaptive engine's budget, as in tgo verify
    search_queries: int = EngineBudget.search_queries
    input_levels: int = 255    # the input grid of the engine's level search (Q: x enters as round(x * Q))
    block: int = SAMPLE_BLOCK
