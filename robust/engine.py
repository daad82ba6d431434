"""The adaptive attack engine behind `tgo attack` and `tgo verify`.

For each eps, one pool of candidate inputs per image, shared by every side (the float model, the deployed
fixed-point model):
  1. APGD per side's differentiable model, swept over surrogates, restarts (losses ce, margin, dlr) and EOT
     over the neuron noise (`attacks.adaptive.sweep`), EOT draws chosen by a doubling probe at every eps (per
     side, or taken from a side with the same noise model: `Side.eot_from`, e.g. the twin from the float model);
  2. every such example also as the chip sees it (`grid.rounded`) and pushed to the ball's grid corners
     (`grid.corners`);
  3. a gradient-free search over integer input levels scored by the search oracle (hw_sim in verify)
     by expected margin over `search` seeds, from the best example so far and from the clean image.
Every side scores every candidate. Seeds (`Seeds`): the attacks draw their own noise; the `select` seeds
rank every candidate of an image; the `SHORTLIST` best are re-scored on the `confirm` seeds and the one with
the lowest accuracy over both sets is the image's example (`choose`); the disjoint `score` seeds score it:
that is the headline (one chosen example per image, scored on fresh noise). The per-image minimum on the
score seeds over the shortlist is reported beside it (biased low: a minimum over noisy scores).
Sources run as a cascade: each attacks only the images that some side still gets right on some select seed
with every candidate so far (`_Pool.alive`). Budget convergence: the images some side still gets right are
attacked again by the gradient sources strongest on those images and the search with every budget doubled
(steps, restarts, EOT draws, queries); the pool grows by those candidates and the headline may move by less
than `CONVERGED` (else a red flag).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from robust.attacks import grid
from robust.attacks.adaptive import sweep
from robust.evaluate import derive_seed
from robust.options import EngineBudget
from robust.seeded import SeededModel, score
from robust.sharding import Plan, block_seed, concat
from robust.surrogates import SurrogateSpec

SCORING_RULE = (
    "A sample's score is the fraction of noisy forwards, one per score seed, that classify it correctly (one "
    "forward for a deterministic model). Each image's candidates are ranked by their score on the select seeds; "
    "the best few are re-scored on the confirm seeds and the one with the lowest score over both seed sets "
    "(ties: lower mean margin) is the image's example; the headline is the mean over images of the chosen "
    "example's score on the score seeds, which no attack, search or choice has seen.")
CONVERGED = 0.01           # largest headline move (fraction) when every budget doubles
SHORTLIST = 8              # candidates per image re-scored on the confirm and score seeds
SELECT_TIEBREAK = 1e-3     # weight of tanh(expected margin) when choosing among equally scored candidates


@dataclass
class Side:
    """One model under evaluation: `scorer` judges inputs; `attackable` (if any) is its differentiable
    stand-in for gradient attacks (the float model itself, or the integer twin of the deployed one)."""
    name: str                                  # 'float' | 'fixed'
    scorer: SeededModel
    attackable: Optional[nn.Module] = None
    surrogates: List[SurrogateSpec] = field(default_factory=list)
    origin: str = ""                           # prefix of its gradient candidates ('float', 'twin')
    eot_from: Optional[str] = None             # take EOT draws from this side's probe (same noise model)


@dataclass
class Seeds:
    """Noise seeds by role; `check` asserts that no two roles share one."""
    search: List[int]
    select: List[int]
    confirm: List[int]
    score: List[int]
    attack_base: int

    @classmethod
    def derive(cls, seed: int, budget: EngineBudget, repeats: int) -> "Seeds":
        seeds = cls([derive_seed(seed, "search", i) for i in range(budget.search_seeds)],
                    [derive_seed(seed, "select", i) for i in range(budget.select_seeds)],
                    [derive_seed(seed, "confirm", i) for i in range(budget.confirm_seeds)],
                    [derive_seed(seed, "score", i) for i in range(repeats)], derive_seed(seed, "attack"))
        seeds.check()
        return seeds

    def check(self) -> None:
        roles = {"search": self.search, "select": self.select, "confirm": self.confirm, "score": self.score}
        for a, first in roles.items():
            for b, second in roles.items():
                if a < b and set(first) & set(second):
                    raise ValueError(f"noise seeds shared by the {a} and {b} roles: {set(first) & set(second)}")


@dataclass
class SideEps:
    """One side at one eps. Scores are per image [N] fractions of correct forwards on the score seeds."""
    eps: float
    headline: torch.Tensor            # the chosen example of each image
    minimum: torch.Tensor             # the minimum over the SHORTLIST candidates best on the select seeds
    chosen: List[str]                 # per image: which candidate was chosen ('clean': none beat it)
    examples: torch.Tensor            # [N, ...] the chosen inputs
    base_headline: float              # headline before the doubled-budget round
    per_source: Dict[str, float]      # source group -> accuracy of its per-image minimum (select seeds)

    @property
    def accuracy(self) -> float:
        return float(self.headline.mean())

    @property
    def moved(self) -> float:
        """How far the doubled budget moved the headline (fraction, >= 0 up to selection noise)."""
        return self.base_headline - self.accuracy

    @property
    def strongest(self) -> str:
        return min(self.per_source, key=self.per_source.get) if self.per_source else "clean"


@dataclass
class EngineResult:
    clean: Dict[str, torch.Tensor]            # side -> [N] clean scores
    eps: Dict[str, List[SideEps]]             # side -> one entry per eps
    eot: Dict[str, Dict[str, object]]         # side -> {'k', 'chosen_by', 'probe': [[k, accuracy], ...], 'eps'}
    seeds: Seeds
    budget: EngineBudget
    seconds: Dict[str, float]                 # source kind -> seconds spent

    def flags(self) -> List[str]:
        """Red flags: a headline that doubling the budget moved by CONVERGED or more."""
        return [f"{side} eps {e.eps:g}: doubling steps, restarts, EOT draws and search queries moved the "
                f"headline by {100 * e.moved:.1f} points ({100 * e.base_headline:.1f}% -> {100 * e.accuracy:.1f}%): "
                f"the attack budget has not converged" for side, rows in self.eps.items() for e in rows
                if e.moved >= CONVERGED]


def source_group(name: str) -> str:
    """'twin-apgd-dlr@ste:1#2/corner x2' -> 'twin-apgd/corner'; searches keep their start ('hw_sim-search@best')."""
    base = name.split(" ")[0]
    if "-search@" in base:
        return base
    origin, _, rest = base.partition("-")
    return f"{origin}-apgd" + (f"/{rest.split('/', 1)[1]}" if "/" in rest else "")


class _Pool:
    """Candidates of one eps and, per side, their select-seed keys, accuracies and mean margins (per image).

    A candidate may cover some rows only (`add`'s `rows`): the other images keep their clean input and clean
    scores, so a source is not credited with images that earlier sources of the cascade broke (`alive`)."""

    def __init__(self, sides: Sequence[Side], x: torch.Tensor, y: torch.Tensor, seeds: Seeds):
        self.sides, self.x, self.y, self.seeds = sides, x, y, seeds
        self.inputs: Dict[str, torch.Tensor] = {}
        self.keys: Dict[str, Dict[str, torch.Tensor]] = {s.name: {} for s in sides}
        self.accs: Dict[str, Dict[str, torch.Tensor]] = {s.name: {} for s in sides}
        self.margins: Dict[str, Dict[str, torch.Tensor]] = {s.name: {} for s in sides}

    def add(self, candidates: Dict[str, torch.Tensor], rows: Optional[torch.Tensor] = None) -> None:
        """Score `candidates` (name -> inputs [len(rows), ...] for the images `rows`; all images if None)."""
        names = list(candidates)
        if not names:
            return
        n = len(self.x)
        rows = torch.arange(n) if rows is None else rows
        m = len(rows)
        flat = torch.cat([candidates[k] for k in names])
        ys = self.y[rows].repeat(len(names))
        for side in self.sides:
            acc, mean_margin = score(side.scorer, flat, ys, self.seeds.select)
            key = acc + SELECT_TIEBREAK * torch.tanh(mean_margin)
            for i, name in enumerate(names):
                for table, values in ((self.keys, key), (self.accs, acc), (self.margins, mean_margin)):
                    full = table[side.name]["clean"].clone() if m < n else torch.empty_like(values[:n])
                    full[rows] = values[i * m:(i + 1) * m]
                    table[side.name][name] = full
        for name in names:
            full = self.x.clone()
            full[rows] = candidates[name].to(self.x.dtype)
            self.inputs[name] = full

    def alive(self) -> torch.Tensor:
        """Images that some side still classifies correctly on some select seed with every candidate: [k] rows."""
        best = torch.stack([torch.stack(list(self.accs[s.name].values())).min(0).values for s in self.sides])
        return (best > 0).any(0).nonzero()[:, 0]

    def source_minimum(self, judge: Side, names: Sequence[str]) -> torch.Tensor:
        """Per image, the lowest select-seed accuracy over the candidates `names` (clean scores where none
        attacked): [n]."""
        return torch.stack([self.accs[judge.name][k] for k in names]).min(0).values

    def source_minima(self, sides: Sequence[Side], rows: torch.Tensor) -> Dict[str, Dict[str, torch.Tensor]]:
        """Judging side -> (side, surrogate) gradient source ('side|surrogate') -> `source_minimum` of that
        source's candidates on the images `rows`, [len(rows)]; a source that attacked no image of this pool
        (nothing was left alive) is absent. The doubled round ranks its sources on the images still `alive`:
        every source of the cascade attacked each of them, so none is favoured by its place in the cascade."""
        out: Dict[str, Dict[str, torch.Tensor]] = {judge.name: {} for judge in self.sides}
        for side in sides:
            for surrogate in (side.surrogates if side.attackable is not None else []):
                tag = f"{side.origin}-apgd-"
                names = [k for k in self.inputs if k.startswith(tag) and f"@{surrogate.label}#" in k]
                for judge in (self.sides if names else []):
                    out[judge.name][f"{side.name}|{surrogate.label}"] = self.source_minimum(judge, names)[rows]
        return out

    def result(self, side: Side) -> Dict[str, object]:
        """Shortlist per image the `SHORTLIST` candidates best on the select seeds, re-score them on the confirm
        seeds, choose the one with the lowest expected correctness over both seed sets (`choose`), and score
        the shortlist on the score seeds. Per image: 'headline', 'minimum' [n], 'chosen' (names), 'examples'
        [n, ...], 'per_source' (source group -> `source_minimum` [n]), 'unattacked' [n] (clean select-seed
        accuracy); `side_eps` joins the rows of all blocks."""
        names = list(self.inputs)
        keys = torch.stack([self.keys[side.name][k] for k in names])              # [C, N]
        order = keys.argsort(0)[:SHORTLIST]                                       # [m, N]
        rows = torch.arange(len(self.x))
        stacked = torch.stack([self.inputs[k] for k in names])
        shortlist = stacked[order, rows]                                          # [m, N, ...]
        flat, ys = shortlist.flatten(0, 1), self.y.repeat(len(order))
        first = (torch.stack([self.accs[side.name][k] for k in names])[order, rows],
                 torch.stack([self.margins[side.name][k] for k in names])[order, rows])
        second, n_second = first, 0
        if side.scorer.stochastic and self.seeds.confirm:
            second = tuple(t.view(len(order), -1) for t in score(side.scorer, flat, ys, self.seeds.confirm))
            n_second = len(self.seeds.confirm)
        pick = choose(first, second, len(self.seeds.select), n_second)
        accs = score(side.scorer, flat, ys, self.seeds.score)[0].view(len(order), -1)
        groups: Dict[str, List[str]] = {}
        for name in names:
            if name != "clean":
                groups.setdefault(source_group(name), []).append(name)
        return {"headline": accs[pick, rows], "minimum": accs.min(0).values,
                "chosen": [names[i] for i in order[pick, rows].tolist()], "examples": shortlist[pick, rows],
                "per_source": {g: self.source_minimum(side, group) for g, group in groups.items()},
                "unattacked": self.accs[side.name]["clean"]}


def _fill(parts: Sequence[Dict[str, torch.Tensor]], unattacked: Sequence[torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Per-block per-image figures (source -> [n_b]) joined in block order, [N] per source: a source missing
    from a block (nothing was alive there when its turn came) takes that block's `unattacked` scores, as
    `_Pool` gives a source clean scores where it did not attack; a source missing from every block stays out."""
    sources = dict.fromkeys(source for part in parts for source in part)
    return {source: torch.cat([part.get(source, clean) for part, clean in zip(parts, unattacked)])
            for source in sources}


def side_eps(eps: float, parts: Sequence[Dict[str, object]], base_headline: Optional[float]) -> SideEps:
    """A side's `SideEps` from `_Pool.result`'s rows of every block, in block order (before the doubled round:
    `base_headline` None, the headline itself)."""
    rows = concat([{k: v for k, v in part.items() if k != "per_source"} for part in parts])
    per_source = _fill([part["per_source"] for part in parts], [part["unattacked"] for part in parts])
    headline = rows["headline"]
    return SideEps(eps, headline, rows["minimum"], rows["chosen"], rows["examples"],
                   float(headline.mean()) if base_headline is None else base_headline,
                   {g: float(v.mean()) for g, v in per_source.items()})


def strongest(sides: Sequence[Side], minima: Dict[str, Dict[str, torch.Tensor]],
              count: int) -> Dict[str, List[SurrogateSpec]]:
    """The `count` (side, surrogate) gradient sources whose candidates score lowest on any side, from
    `_Pool.source_minima` (judge -> 'side|surrogate' -> [n] over the images ranked on); a source that
    attacked none of them is not ranked."""
    ranked = []
    for side in sides:
        for surrogate in (side.surrogates if side.attackable is not None else []):
            key = f"{side.name}|{surrogate.label}"
            if key in minima[sides[0].name] and minima[sides[0].name][key].numel():
                ranked.append((min(float(minima[judge.name][key].mean()) for judge in sides), side.name, surrogate))
    chosen: Dict[str, List[SurrogateSpec]] = {side.name: [] for side in sides}
    for _, name, surrogate in sorted(ranked, key=lambda row: row[0])[:count]:
        chosen[name].append(surrogate)
    return chosen


def choose(first: Tuple[torch.Tensor, torch.Tensor], second: Tuple[torch.Tensor, torch.Tensor], n_first: int,
           n_second: int) -> torch.Tensor:
    """Per image, the shortlist row with the lowest expected correctness: the accuracy pooled over both seed
    sets (weights `n_first`, `n_second`: their numbers of forwards), ties broken by the lower pooled mean margin.
    first / second: (accuracy, mean margin), each [m, N] -> [N] row indices into the shortlist."""
    total = n_first + n_second
    acc = (n_first * first[0] + n_second * second[0]) / total
    mean_margin = (n_first * first[1] + n_second * second[1]) / total
    return (acc + SELECT_TIEBREAK * torch.tanh(mean_margin)).argmin(0)


@dataclass
class _Block:
    """One block of samples (`robust.sharding`): its images, labels, seed and the seeds derived from it."""
    x: torch.Tensor
    y: torch.Tensor
    seed: int
    seeds: Seeds


def _own(surrogates: Sequence[SurrogateSpec]) -> List[SurrogateSpec]:
    return [s for s in surrogates if s.name is None][:1] or list(surrogates[:1])


def probe_eot(side: Side, blocks: Sequence[_Block], eps: float, budget: EngineBudget,
              mean: Callable[[List[torch.Tensor]], float]) -> Dict[str, object]:
    """The smallest EOT draws k (from 2, doubling up to eot_k_max) at which APGD-CE with 2k draws at `eps`
    scores within CONVERGED of APGD-CE with k (on the select seeds); {'k', 'eps', 'probe': [[k, accuracy], ...]}.
    `mean` takes the per-image scores of this process's blocks to the mean over all images."""
    if budget.eot_k:
        return {"k": budget.eot_k, "probe": [], "chosen_by": "given"}
    stochastic = side.attackable is not None and side.scorer.stochastic
    if not stochastic:
        return {"k": 1, "probe": [], "chosen_by": "deterministic model"}
    trace, k = [], 2
    while True:
        accs = []
        for block in blocks:
            adv = sweep(side.attackable, block.x, block.y, eps, _own(side.surrogates), 1, budget.steps, k,
                        derive_seed(block.seed, "probe", side.name) + k)
            accs.append(score(side.scorer, next(iter(adv.values())), block.y, block.seeds.select)[0])
        trace.append([k, mean(accs)])
        if len(trace) > 1 and abs(trace[-1][1] - trace[-2][1]) < CONVERGED:
            return {"k": k // 2, "eps": eps, "probe": trace, "chosen_by": "doubling no longer moves the result"}
        if k >= budget.eot_k_max:
            return {"k": k, "eps": eps, "probe": trace,
                    "chosen_by": f"cap eot_k_max={budget.eot_k_max} (not converged)"}
        k *= 2


def _attack(pool: _Pool, sides: Sequence[Side], surrogates: Dict[str, List[SurrogateSpec]], oracle: Side,
            eps: float, q: int, budget: EngineBudget, eot_k: Dict[str, int], tag: str,
            seconds: Dict[str, float]) -> None:
    """Add to `pool`, one source after another, each on the images still `alive` (a cascade): the gradient
    examples of every side with its `surrogates` (+ grid and corner variants), then the oracle's grid search
    from the best candidate so far (and, in the first round, from the clean image). Names get `tag`."""
    suffix, seeds, x, y = (f" {tag}" if tag else ""), pool.seeds, pool.x, pool.y
    for side in sides:
        for surrogate in (surrogates[side.name] if side.attackable is not None else []):
            rows = pool.alive()
            if not len(rows):
                return
            started = time.perf_counter()
            xs = x[rows]
            runs = sweep(side.attackable, xs, y[rows], eps, [surrogate], budget.restarts, budget.steps,
                         eot_k[side.name], derive_seed(seeds.attack_base, eps, side.name, surrogate.label, tag))
            out: Dict[str, torch.Tensor] = {}
            for key, adv in runs.items():
                name = f"{side.origin}-{key}"
                out[name + suffix] = adv
                out[f"{name}/grid{suffix}"] = grid.rounded(adv, xs, eps, q)
                out[f"{name}/corner{suffix}"] = grid.corners(adv, xs, eps, q)
            seconds[f"{side.origin}-apgd"] = seconds.get(f"{side.origin}-apgd", 0.0) + time.perf_counter() - started
            pool.add(out, rows)
    rows = pool.alive()
    if not len(rows):
        return
    started = time.perf_counter()
    judge = next((s for s in sides if s.scorer is oracle.scorer), sides[0])
    names = list(pool.inputs)
    best = torch.stack([pool.keys[judge.name][k][rows] for k in names]).argmin(0)
    starts = {"best": torch.stack([pool.inputs[k][rows] for k in names])[best, torch.arange(len(rows))]}
    if not tag:
        starts["clean"] = x[rows]
    oracle_fn: Callable = lambda inputs, labels: score(oracle.scorer, inputs, labels, seeds.search)[1]
    generator = torch.Generator().manual_seed(derive_seed(seeds.attack_base, eps, "search", tag))
    found = {f"{oracle.origin}-search@{start_name}{suffix}":
             grid.search(oracle_fn, x[rows], y[rows], eps, q, start, budget.search_queries, budget.proposals, generator)
             for start_name, start in starts.items()}
    seconds[f"{oracle.origin}-search"] = seconds.get(f"{oracle.origin}-search", 0.0) + time.perf_counter() - started
    pool.add(found, rows)


def run_engine(sides: Sequence[Side], oracle: Side, x: torch.Tensor, y: torch.Tensor, eps_values: Sequence[float],
               q: int, budget: EngineBudget, seed: int, repeats: int,
               log: Callable[[str], None] = lambda msg: None, plan: Optional[Plan] = None) -> EngineResult:
    """Evaluate every side at every eps (x [N, ...] in [0, 1], y [N]); `oracle` guides the grid search and
    `q` is the input grid (levels per unit). `repeats` score seeds per input (stochastic sides).

    The images run block by block (`robust.sharding`; `plan` default: one process, one block of all N),
    block b on the seeds of `block_seed(seed, b)`, each block with its own pool and cascade; the EOT draws,
    the strongest sources and the headlines are taken over the gathered figures of all N images, so every
    rank returns the same result, that of one process. `seeds` in the result are block 0's; `seconds` are
    summed over the ranks."""
    plan = plan or Plan(len(x), max(1, len(x)))
    blocks = []
    for b in plan.mine():
        rows, block = plan.rows(b), block_seed(seed, b)
        blocks.append(_Block(x[rows], y[rows], block, Seeds.derive(block, budget, repeats)))
    mean = lambda parts: float(concat(plan.gather(parts)).mean())
    for side in sides:
        if side.attackable is not None:
            side.attackable.eval()
    clean = concat(plan.gather([{side.name: score(side.scorer, b.x, b.y, b.seeds.score)[0] for side in sides}
                                for b in blocks]))
    log("EOT draws: doubling probe")
    started = time.perf_counter()
    eot: Dict[str, Dict[str, object]] = {}
    for side in sorted(sides, key=lambda s: s.eot_from is not None):
        if side.eot_from in eot and side.scorer.stochastic and not budget.eot_k:
            eot[side.name] = {**eot[side.eot_from], "probe": [], "chosen_by": f"the {side.eot_from} side's probe"}
        else:
            # at every eps, keeping the largest k (ties: the smallest eps): a large eps can leave 0% standing at
            # every k, which tells nothing, and a small one can need fewer draws than a large one
            probes = [probe_eot(side, blocks, eps, budget, mean) for eps in sorted(eps_values)]
            eot[side.name] = max(probes, key=lambda probe: probe["k"])
    eot_k = {side.name: int(eot[side.name]["k"]) for side in sides}
    results: Dict[str, List[SideEps]] = {side.name: [] for side in sides}
    seconds: Dict[str, float] = {"eot-probe": time.perf_counter() - started}
    for eps in eps_values:
        log(f"eps {eps:g}: gradient sweep, grid variants and grid search")
        pools = []
        for block in blocks:
            pool = _Pool(sides, block.x, block.y, block.seeds)
            pool.add({"clean": block.x})
            _attack(pool, sides, {s.name: s.surrogates for s in sides}, oracle, eps, q, budget, eot_k, "", seconds)
            pools.append(pool)
        alive = [pool.alive() for pool in pools]
        base = plan.gather([{"headline": {side.name: pool.result(side)["headline"] for side in sides},
                             "minima": pool.source_minima(sides, rows), "alive": len(rows),
                             "unattacked": {judge.name: pool.accs[judge.name]["clean"][rows] for judge in sides}}
                            for pool, rows in zip(pools, alive)])
        base_headline = {name: float(h.mean()) for name, h in concat([part["headline"] for part in base]).items()}
        minima = {judge.name: _fill([part["minima"][judge.name] for part in base],
                                    [part["unattacked"][judge.name] for part in base]) for judge in sides}
        log(f"eps {eps:g}: doubled budget on {sum(part['alive'] for part in base)} images")
        doubled = budget.doubled(max(eot_k.values()))
        more_k = {s.name: 2 * eot_k[s.name] if s.scorer.stochastic else 1 for s in sides}
        chosen = strongest(sides, minima, budget.doubled_sources)
        for pool in pools:
            _attack(pool, sides, chosen, oracle, eps, q, doubled, more_k, "x2", seconds)
        final = plan.gather([{side.name: pool.result(side) for side in sides} for pool in pools])
        for side in sides:
            results[side.name].append(side_eps(eps, [part[side.name] for part in final], base_headline[side.name]))
    spent: Dict[str, float] = {}
    for part in plan.gather([seconds]):
        for kind, value in part.items():
            spent[kind] = spent.get(kind, 0.0) + value
    return EngineResult(clean, results, eot, Seeds.derive(seed, budget, repeats), budget, spent)
