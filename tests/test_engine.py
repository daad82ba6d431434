"""The adaptive engine: grid projections, a masked gradient still broken, disjoint seeds, the budget flag."""
import pytest
import torch
from torch import nn

from robust.attacks import grid
from robust.attacks.adaptive import checkpoints
from robust.attacks.losses import row_losses
from robust.engine import Seeds, Side, _Pool, choose, run_engine, source_group, strongest
from robust.options import EngineBudget
from robust.seeded import FloatModel, SeededModel
from robust.surrogates import parse_surrogates
from train.checkpoint import load_checkpoint
from train.data import load_dataset


@pytest.fixture(scope="module")
def vanilla(trained_runs):
    ckpt = load_checkpoint(trained_runs["vanilla"][0])
    data = load_dataset(ckpt.config.data)
    return ckpt.build_model("cpu").eval(), data.test_x[:40], data.test_y[:40]


class _Staircase(nn.Module):
    """A planted gradient mask: the model sees round(x * 16) / 16 and its input gradient is exactly zero."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stepped = torch.round(x * 16) / 16
        return self.model(stepped.detach() + 0 * x)

    def reseed_noise(self, seed: int) -> None:
        self.model.reseed_noise(seed)


def _side(model: nn.Module, x: torch.Tensor, surrogates: str = "own") -> Side:
    return Side("float", FloatModel(model, x), model, parse_surrogates(surrogates, 2.0), "float")


def test_grid_variants_stay_in_the_ball_and_on_the_chips_levels():
    x = torch.tensor([[0.0, 0.5, 1.0, 0.25]])
    adv = torch.tensor([[0.1, 0.45, 0.93, 0.25]])
    lo, hi = grid.bounds(x, 0.125, 16)
    assert lo.tolist() == [[0, 6, 14, 2]] and hi.tolist() == [[2, 10, 16, 6]]
    for variant in (grid.rounded(adv, x, 0.125, 16), grid.corners(adv, x, 0.125, 16)):
        assert float((variant - x).abs().max()) <= 0.125 + 1e-7 and float(variant.min()) >= 0
    assert (torch.round(grid.corners(adv, x, 0.125, 16) * 16)).tolist() == [[2, 6, 14, 4]]
    assert (torch.round(grid.rounded(adv, x, 0.125, 16) * 16)).tolist() == [[2, 7, 15, 4]]


def test_apgd_schedule_and_losses():
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    y = torch.tensor([0, 0])
    ce, margin, dlr = (row_losses(logits, y, torch.full((2,), i)) for i in range(3))
    assert torch.allclose(margin, torch.tensor([-2.0, 2.0]))
    assert torch.allclose(dlr, torch.tensor([-2.0 / 3.0, 2.0 / 2.0]))
    assert float(ce[0]) < float(ce[1])


def test_planted_gradient_mask_is_still_broken_by_the_grid_search(vanilla):
    model, x, y = vanilla
    budget = EngineBudget(steps=5, restarts=1, eot_k=1, search_queries=160, doubled_sources=1)
    masked = _side(_Staircase(model), x)
    result = run_engine([masked], masked, x, y, [0.125], 16, budget, seed=0, repeats=1)
    row = result.eps["float"][0]
    assert row.per_source["float-apgd"] > 0.85                  # gradients see nothing
    assert row.strongest.startswith("float-search")             # the level search does the work
    assert row.accuracy < 0.5 < result.clean["float"].mean() - 0.4   # most images broken without gradients


def test_seed_roles_are_disjoint_and_overlap_is_refused():
    seeds = Seeds.derive(0, EngineBudget(), repeats=20)
    roles = [set(seeds.search), set(seeds.select), set(seeds.confirm), set(seeds.score)]
    assert sum(map(len, roles)) == len(set().union(*roles)) == 4 + 8 + 32 + 20
    seeds.select.append(seeds.score[3])
    with pytest.raises(ValueError, match="select and score|score and select"):
        seeds.check()
    seeds = Seeds.derive(0, EngineBudget(), repeats=20)
    seeds.confirm.append(seeds.score[0])
    with pytest.raises(ValueError, match="confirm and score|score and confirm"):
        seeds.check()


def test_choice_pools_select_and_confirm_forwards():
    # image 0: row 0 won on 8 select forwards by luck (0/8) but is right on 16 of 32 confirm forwards (pooled 0.4);
    # row 1 is right on 1/8 and 4/32 (0.125): row 1 is chosen. Image 1: equal accuracy, the lower margin wins.
    first = (torch.tensor([[0.0, 0.5], [0.125, 0.5]]), torch.tensor([[-1.0, 0.3], [0.5, -0.2]]))
    second = (torch.tensor([[0.5, 0.5], [0.125, 0.5]]), torch.tensor([[0.2, 0.3], [0.1, -0.2]]))
    assert choose(first, second, 8, 32).tolist() == [1, 1]
    assert choose(first, second, 8, 0).tolist() == [0, 1]          # without confirm forwards: the lucky row


def test_under_budgeted_run_is_flagged(vanilla):
    model, x, y = vanilla
    side = _side(model, x, "own,ste")
    starved = EngineBudget(steps=1, restarts=1, eot_k=1, search_queries=8, doubled_sources=2)
    result = run_engine([side], side, x, y, [0.125], 16, starved, seed=0, repeats=1)
    row = result.eps["float"][0]
    assert row.base_headline - row.accuracy >= 0.01
    assert len(result.flags()) == 1 and "has not converged" in result.flags()[0]


def test_source_groups():
    assert source_group("twin-apgd-dlr@ste:1#2/corner x2") == "twin-apgd/corner"
    assert source_group("float-apgd-ce@own#0") == "float-apgd"
    assert source_group("hw_sim-search@best x2") == "hw_sim-search@best"


class _Sign(SeededModel):
    """Deterministic 2-class model on 1 pixel: class 1 when x > 0.5."""
    stochastic = False

    def logits(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        return torch.stack([0.5 - x[:, 0], x[:, 0] - 0.5], 1).double()


def test_cascade_pool_covers_alive_rows_and_counts_earlier_breaks():
    x, y = torch.tensor([[0.9], [0.8], [0.1]]), torch.tensor([1, 1, 1])     # image 2 is wrong when clean
    side = Side("float", _Sign())
    pool = _Pool([side], x, y, Seeds.derive(0, EngineBudget.quick(), repeats=1))
    pool.add({"clean": x})
    assert pool.alive().tolist() == [0, 1]
    pool.add({"a": torch.tensor([[0.2], [0.7]])}, rows=torch.tensor([0, 1]))  # breaks image 0 only
    assert pool.alive().tolist() == [1]
    assert torch.equal(pool.inputs["a"][2], x[2])                           # uncovered rows keep the clean input
    pool.add({"b": torch.tensor([[0.3]])}, rows=torch.tensor([1]))            # breaks image 1
    assert pool.alive().tolist() == []
    # 'b' ran on image 1 only: it is not credited with image 0, which 'a' broke before it ran
    assert pool.accs["float"]["b"].tolist() == [1.0, 0.0, 0.0]                # clean scores where it did not run
    assert pool.source_minimum(side, ["b"]).tolist() == [1.0, 0.0, 0.0]
    assert pool.source_minimum(side, ["a"]).tolist() == [0.0, 1.0, 0.0]
    assert pool.source_minimum(side, ["a", "b"]).tolist() == [0.0, 0.0, 0.0]


class _NoisySign(SeededModel):
    """Stochastic 2-class model on 1 pixel: class 1 when x - 0.5 + noise > 0, noise ~ N(0, 0.1^2) per seed."""

    def logits(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        noise = 0.1 * torch.randn(1, generator=torch.Generator().manual_seed(seed)).double()
        d = x[:, 0].double() - 0.5 + noise
        return torch.stack([-d, d], 1)


def test_doubled_round_ranks_sources_on_the_images_still_alive():
    """A source late in the cascade runs on fewer images and keeps clean scores elsewhere; ranked on all
    images it would look weaker than an early one even where it attacks better. Ranked on the images still
    alive, which every source attacked, it comes first."""
    own, ste = parse_surrogates("own,ste", 2.0)
    side = Side("float", _NoisySign(), nn.Identity(), [own, ste], "float")
    x, y = torch.tensor([[0.9], [0.9], [0.9]]), torch.tensor([1, 1, 1])
    pool = _Pool([side], x, y, Seeds.derive(0, EngineBudget(select_seeds=64), repeats=1))
    pool.add({"clean": x})
    pool.add({f"float-apgd-ce@{own.label}#0": torch.tensor([[0.1], [0.1], [0.6]])})      # breaks images 0, 1
    rows = pool.alive()
    assert rows.tolist() == [2]
    pool.add({f"float-apgd-ce@{ste.label}#0": torch.tensor([[0.52]])}, rows)            # nearer the boundary
    everywhere = pool.source_minima([side], torch.arange(3))
    assert strongest([side], everywhere, 1) == {"float": [own]}
    on_alive = pool.source_minima([side], rows)
    assert on_alive["float"][f"float|{ste.label}"].numel() == 1
    assert strongest([side], on_alive, 1) == {"float": [ste]}


def test_twin_side_takes_the_float_sides_eot_probe(trained_runs):
    ckpt = load_checkpoint(trained_runs["tgo"][0])
    data = load_dataset(ckpt.config.data)
    model, x, y = ckpt.build_model("cpu").eval(), data.test_x[:8], data.test_y[:8]
    first = _side(model, x)
    second = Side("fixed", first.scorer, model, first.surrogates, "twin", eot_from="float")
    budget = EngineBudget(steps=2, restarts=1, eot_k=0, eot_k_max=2, search_queries=8, search_seeds=1,
                          select_seeds=2, confirm_seeds=2, doubled_sources=1)
    result = run_engine([second, first], first, x, y, [0.5, 0.0625], 16, budget, seed=0, repeats=2)
    assert result.eot["float"]["probe"] and result.eot["fixed"]["probe"] == []
    assert result.eot["float"]["eps"] == 0.0625       # at 0.5 nothing stands at any k: that probe says nothing
    assert result.eot["fixed"]["k"] == result.eot["float"]["k"] == 2
    assert result.eot["fixed"]["chosen_by"] == "the float side's probe"
