"""Exactness rules of hw_sim/products.py, checked on the CPU against int64 products at the limits."""
import pytest
import torch

from hw_sim import products
from hw_sim.products import EXACT_INTEGERS, Plan
from tgo_errors import UsageError

HALF = Plan(torch.float16, torch.float32)
BHALF = Plan(torch.bfloat16, torch.float32)
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x.to(torch.int64) @ weight.to(torch.int64).T


def product(x: torch.Tensor, weight: torch.Tensor, plan: Plan, scale: int = 1) -> torch.Tensor:
    return products.matmul(x, products.prepare(weight, plan, scale).T, plan)


def limit_operands(limit: int, bound: int, rows: int = 6) -> tuple:
    """x [rows, in] and weight [2, in] with |w| <= limit, |x| <= 1 and a largest partial sum of `bound`:
    row 0 of the weights sums to `bound` (all positive), row 1 alternates signs."""
    count = bound // limit
    weight = torch.full((2, count + 1), limit, dtype=torch.int64)
    weight[:, -1] = bound - count * limit
    weight[1, ::2] *= -1
    x = torch.ones((rows, count + 1), dtype=torch.int64)
    x[1::2, 1::3] = 0
    return x, weight


@pytest.mark.parametrize("plan", [HALF, BHALF])
@pytest.mark.parametrize("scale", [1, 64])
def test_half_precision_products_are_exact_up_to_the_limits(plan, scale):
    limit = min(EXACT_INTEGERS[plan.operand], int(torch.finfo(plan.operand).max) // scale)  # float16 x 64: 1023
    bound = EXACT_INTEGERS[torch.float32] - 1
    assert products.representable(limit, plan.operand, scale) and bound < EXACT_INTEGERS[plan.accumulate]
    x, weight = limit_operands(limit, bound)
    assert int(reference(x, weight).max()) == bound
    assert torch.equal(product(x, weight, plan, scale).to(torch.int64), reference(x, weight) * scale)


@pytest.mark.parametrize("plan", [HALF, BHALF])
def test_an_operand_beyond_the_exact_range_is_not_representable_and_would_be_wrong(plan):
    beyond = EXACT_INTEGERS[plan.operand] + 1
    assert not products.representable(beyond, plan.operand)
    x, weight = limit_operands(beyond, 4 * beyond)
    assert not torch.equal(product(x, weight, plan).to(torch.int64), reference(x, weight))
    assert not products.representable(1 << 10, torch.float16, scale=64)  # 2^16 overflows float16


def test_a_sum_beyond_float32s_exact_range_would_be_wrong_so_the_plan_falls_back_to_float64():
    bound = EXACT_INTEGERS[torch.float32] + 1
    x, weight = limit_operands(254, bound)
    float32 = Plan(torch.float32, torch.float32)
    assert not torch.equal(product(x, weight, float32).to(torch.int64), reference(x, weight))
    chosen = products.plan(254, 1, bound, CPU)
    assert chosen == Plan(torch.float64, torch.float64)
    assert torch.equal(product(x, weight, chosen).to(torch.int64), reference(x, weight))


def test_plan_picks_the_cheapest_exact_dtype_per_device(monkeypatch):
    below = EXACT_INTEGERS[torch.float32] - 1
    assert products.plan(254, 1, below, CPU) == Plan(torch.float32, torch.float32)
    monkeypatch.setitem(products._FP32_OUTPUT, "cuda", True)  # a torch with float16 -> float32 products
    assert products.plan(254, 1, below, CUDA, scale=64) == HALF
    assert products.plan(254, 1, below, CUDA, half_precision=False) == Plan(torch.float64, torch.float64)
    assert products.plan(4096, 1, below, CUDA) == Plan(torch.float64, torch.float64)   # weight not in float16
    assert products.plan(254, 2049, below, CUDA) == Plan(torch.float64, torch.float64)  # input not in float16
    assert products.plan(254, 1, below + 1, CUDA) == Plan(torch.float64, torch.float64)
    monkeypatch.setitem(products._FP32_OUTPUT, "cuda", False)  # an older torch: no tensor-core path
    assert products.plan(254, 1, below, CUDA) == Plan(torch.float64, torch.float64)
    with products.only(torch.float64):
        assert products.plan(254, 1, below, CPU) == Plan(torch.float64, torch.float64)
    with pytest.raises(UsageError, match="cannot be computed exactly"):
        products.plan(254, 1, products.SUM_LIMIT, CPU)


def test_sum_bound_is_the_largest_row_sum_of_magnitudes_times_the_input():
    weight = torch.tensor([[3, -4, 0], [-1, -1, 1]])
    assert products.sum_bound(weight, 5) == 35
    conv = torch.tensor([[[[1, -2], [3, 0]]], [[[-7, 0], [0, 0]]]])  # [out 2, in 1, 2, 2]
    assert products.sum_bound(conv, 2) == 14


def test_prepare_scales_a_copy():
    weight = torch.tensor([[3.0, -254.0]])
    prepared = products.prepare(weight, Plan(torch.float32, torch.float32), 64)
    assert prepared.tolist() == [[192.0, -16256.0]] and weight.tolist() == [[3.0, -254.0]]
