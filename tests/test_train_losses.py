"""The paper's losses against hand-computed tiny examples."""

from __future__ import annotations

import pytest
import torch

from jasper_rag.train.losses import (
    DistillationLoss,
    LossWeights,
    cosine_loss,
    relative_similarity_loss,
    similarity_loss,
)

# Three 2-d texts. Student pair similarities: (0,1)=0, (0,2)=1, (1,2)=0.
STUDENT = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
# Teacher pair similarities: (0,1)=1, (0,2)=0, (1,2)=0.
TEACHER = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])


def test_cosine_loss_by_hand() -> None:
    # 1 - s.t per text: 1 - 1, 1 - 0, 1 - 0  ->  mean 2/3 (rows are normalised first: scale is irrelevant)
    assert cosine_loss(STUDENT * 3, TEACHER).item() == pytest.approx(2 / 3)


def test_similarity_loss_by_hand() -> None:
    # S S^T - T T^T = [[0,-1,1],[-1,0,0],[1,0,0]]: four entries of squared error 1 out of 9
    assert similarity_loss(STUDENT, TEACHER).item() == pytest.approx(4 / 9)


def test_relative_similarity_loss_by_hand() -> None:
    # Teacher orders (0,1) above (0,2) and above (1,2): two ordered pairs of pairs.
    # hinge((0,1) > (0,2)) = max(0, s02 - s01 + m) = 1 + m ; hinge((0,1) > (1,2)) = max(0, s12 - s01 + m) = m
    margin = 0.015
    expected = ((1 + margin) + margin) / 2
    assert relative_similarity_loss(STUDENT, TEACHER, margin=margin).item() == pytest.approx(expected)


def test_relative_loss_is_zero_when_student_keeps_the_order_with_margin() -> None:
    teacher = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])  # pair sims 0.6, 0.0, 0.8
    assert relative_similarity_loss(teacher, teacher, margin=0.1).item() == 0.0


def test_cosine_and_similarity_are_zero_when_student_equals_teacher() -> None:
    vectors = torch.randn(16, 12)
    assert cosine_loss(vectors, vectors).item() == pytest.approx(0.0, abs=1e-6)
    assert similarity_loss(vectors, vectors).item() == pytest.approx(0.0, abs=1e-10)


def test_total_is_the_weighted_sum_and_cosine_needs_equal_dims() -> None:
    loss = DistillationLoss(LossWeights(cos=10, sim=200, resim=20, margin=0.015))
    terms = loss(STUDENT, TEACHER)
    expected = 10 * terms["cos"] + 200 * terms["sim"] + 20 * terms["resim"]
    assert terms["total"].item() == pytest.approx(expected.item())
    reduced = loss(torch.randn(3, 2), torch.randn(3, 5))  # a reduced head against the full teacher
    assert set(reduced) == {"sim", "resim", "total"}


def test_relative_loss_memory_is_bounded_by_sampling_pairs() -> None:
    student, teacher = torch.randn(80, 8), torch.randn(80, 8)  # 3,160 pairs
    full = relative_similarity_loss(student, teacher, max_pairs=10_000)
    sampled = relative_similarity_loss(student, teacher, max_pairs=500, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(sampled)
    assert sampled.item() == pytest.approx(full.item(), rel=0.25)  # an estimate of the same mean


def test_losses_give_gradients_to_the_student_only() -> None:
    student = torch.randn(6, 4, requires_grad=True)
    teacher = torch.randn(6, 4, requires_grad=True)
    DistillationLoss()(student, teacher.detach())["total"].backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None
