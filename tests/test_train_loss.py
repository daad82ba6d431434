"""The TGO constraint and its schedule on hand-computed values."""
import pytest
import torch

from train.config import TGOConfig
from train.tgo_loss import membrane_constraint, near_threshold_count, tgo_lambda, total_constraint


def test_constraint_on_hand_computed_potentials():
    v = torch.tensor([[[0.5, 0.9, 1.0, 1.25, 2.0]]])  # [T=1, batch=1, 5 neurons]
    # max(0, 0.3 - |v - 1|) = 0, 0.2, 0.3, 0.05, 0 -> mean 0.11
    assert float(membrane_constraint(v, 1.0, 0.3)) == pytest.approx(0.11)
    assert float(total_constraint([v, v * 0 + 1.0], 1.0, 0.3)) == pytest.approx(0.11 + 0.3)
    assert near_threshold_count(v, 1.0, 0.3) == 3


def test_constraint_gradient_pushes_away_from_threshold():
    v = torch.tensor([0.9, 1.1, 3.0], requires_grad=True)
    membrane_constraint(v, 1.0, 0.3).backward()
    assert v.grad.tolist() == pytest.approx([1 / 3, -1 / 3, 0.0])  # descent moves 0.9 down, 1.1 up


def test_lambda_cosine_ramp():
    cfg = TGOConfig(lambda_max=0.6)
    values = [tgo_lambda(e, 11, cfg) for e in range(11)]
    assert values[0] == 0.0 and values[-1] == pytest.approx(0.6) and values[5] == pytest.approx(0.3)
    assert all(a < b for a, b in zip(values, values[1:]))
    short = TGOConfig(lambda_max=0.4, ramp_epochs=3)
    assert [tgo_lambda(e, 10, short) for e in (0, 1, 2, 7)] == pytest.approx([0.0, 0.2, 0.4, 0.4])
