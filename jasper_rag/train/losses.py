"""The paper's three distillation losses (Jasper & Stella, eq. 2-4) and their weighted sum.

Every function takes a batch of student vectors ``s`` (m x d_s) and teacher vectors ``t``
(m x d_t); both are L2-normalised inside, so raw head outputs can be passed. Example::

    loss = DistillationLoss()                      # 10 * cos + 200 * sim + 20 * resim, margin 0.015
    terms = loss(student_batch, teacher_batch)     # {"cos": ..., "sim": ..., "resim": ..., "total": ...}
    terms["total"].backward()

``DistillationLoss`` works on any (student, teacher) pair of batches: text heads against the teacher
ensemble, reduced heads against FC1 (self-distillation) or an image tower against caption vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

DEFAULT_MAX_PAIRS = 2048


def cosine_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """``mean_x (1 - s_x . t_x)``; needs equal dimensions."""
    if student.shape != teacher.shape:
        raise ValueError(f"cosine loss needs equal shapes, got {tuple(student.shape)} and {tuple(teacher.shape)}")
    return (1 - (F.normalize(student, dim=-1) * F.normalize(teacher, dim=-1)).sum(dim=-1)).mean()


def similarity_matrix(vectors: torch.Tensor) -> torch.Tensor:
    """In-batch cosine similarities ``V V^T`` of the normalised rows."""
    unit = F.normalize(vectors, dim=-1)
    return unit @ unit.T


def similarity_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """``MSE(S S^T, T T^T)``: mean squared difference of the in-batch similarity matrices."""
    return F.mse_loss(similarity_matrix(student), similarity_matrix(teacher))


def relative_similarity_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    margin: float = 0.015,
    max_pairs: int = DEFAULT_MAX_PAIRS,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Hinge over pairs of text pairs ordered by the teacher (CoSENT-like).

    For every two in-batch pairs a = (i, j), b = (m, n) (i < j, m < n) where the teacher says
    ``t_i.t_j > t_m.t_n``, the loss is ``max(0, s_m.s_n - s_i.s_j + margin)``, averaged over those
    ordered pairs of pairs. A batch of m texts has P = m(m-1)/2 pairs and P^2 pairs of pairs, so when
    P exceeds ``max_pairs`` a uniform random subset of ``max_pairs`` pairs is compared instead
    (memory stays at ``max_pairs^2`` entries: 2048 pairs = 4.2M entries, about 17 MB per float32
    tensor, whatever the batch size); the mean over the subset is an estimate of the full mean.
    """
    rows, cols = torch.triu_indices(len(student), len(student), offset=1, device=student.device)
    if len(rows) > max_pairs:
        chosen = torch.randperm(len(rows), generator=generator, device="cpu")[:max_pairs].to(student.device)
        rows, cols = rows[chosen], cols[chosen]
    student_pairs = similarity_matrix(student)[rows, cols]
    teacher_pairs = similarity_matrix(teacher)[rows, cols]
    ordered = (teacher_pairs[:, None] > teacher_pairs[None, :]).to(student_pairs.dtype)  # [a, b]: t_a > t_b
    hinge = F.relu(student_pairs[None, :] - student_pairs[:, None] + margin)  # [a, b]: s_b - s_a + margin
    return (hinge * ordered).sum() / ordered.sum().clamp(min=1)


class LossWeights(BaseModel):
    """Weights of the three terms and the hinge margin (paper and public code: 10 / 200 / 20, 0.015),
    checked when built (a recipe's ``loss`` entry); immutable, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cos: float = Field(10.0, ge=0)
    sim: float = Field(200.0, ge=0)
    resim: float = Field(20.0, ge=0)
    margin: float = Field(0.015, ge=0)
    max_pairs: int = Field(DEFAULT_MAX_PAIRS, ge=2, description="relative loss: pairs compared per batch")


class DistillationLoss(nn.Module):
    """``cos * L_cos + sim * L_sim + resim * L_resim`` for one (student, teacher) batch.

    The cosine term is used only when the two dimensions match (the paper's reduced heads are
    trained with the similarity and relative losses alone); a zero weight skips a term.
    """

    def __init__(self, weights: LossWeights | None = None) -> None:
        super().__init__()
        self.weights = weights or LossWeights()

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> dict[str, torch.Tensor]:
        w = self.weights
        student, teacher = student.float(), teacher.float()
        terms: dict[str, torch.Tensor] = {}
        if w.cos and student.shape[-1] == teacher.shape[-1]:
            terms["cos"] = cosine_loss(student, teacher)
        if w.sim:
            terms["sim"] = similarity_loss(student, teacher)
        if w.resim:
            terms["resim"] = relative_similarity_loss(student, teacher, w.margin, w.max_pairs)
        weight = {"cos": w.cos, "sim": w.sim, "resim": w.resim}
        terms["total"] = sum(weight[name] * value for name, value in terms.items())
        return terms
