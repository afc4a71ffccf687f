"""The paper's text stages: what each trains, how new heads start, and the loss of one batch.

- stage 1 trains the full head (FC1) only: cos + sim + resim on FC1 against the teacher ensemble;
- stage 2 trains FC1 + the last 3 encoder layers, same losses;
- stage 3 trains every parameter + the reduced heads (FC2..): FC1 as above; reduced heads sim + resim
  against the ensemble, or against FC1's own (detached) vectors with ``self_distill``.

Stage 4 (vision) lives in ``stage4_vision.py`` and reuses ``DistillationLoss`` and ``Trainer``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from jasper_rag.encoder import FULL_HEAD, JasperEncoder
from jasper_rag.train.losses import DistillationLoss
from jasper_rag.train.trainer import StepLosses

TEXT_STAGES = (1, 2, 3)


def _layers_slot(backbone: nn.Module) -> tuple[nn.Module, str]:
    """The module holding the transformer blocks and the name of its ``nn.ModuleList`` attribute."""
    for path in ("encoder.layer", "transformer.layer", "layers"):
        *parents, name = path.split(".")
        owner: object = backbone
        for attribute in parents:
            owner = getattr(owner, attribute, None)
        if isinstance(owner, nn.Module) and isinstance(getattr(owner, name, None), nn.ModuleList):
            return owner, name
    raise ValueError(f"cannot find the transformer layers of {type(backbone).__name__}")


def encoder_layers(backbone: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a BERT / MPNet / RoBERTa-style (``encoder.layer``) or DistilBERT backbone."""
    owner, name = _layers_slot(backbone)
    return getattr(owner, name)


def keep_layers(encoder: JasperEncoder, layers: Sequence[int]) -> None:
    """Cut the backbone down to its transformer blocks ``layers`` (0-based, in this order).

    The backbone's config records the new count, so the saved model reloads with the standard loader.
    """
    owner, name = _layers_slot(encoder.backbone)
    blocks = getattr(owner, name)
    outside = [index for index in layers if not 0 <= index < len(blocks)]
    if outside:
        raise ValueError(f"student_layers {outside}: the student has {len(blocks)} layers (0-{len(blocks) - 1})")
    setattr(owner, name, nn.ModuleList(blocks[index] for index in layers))
    encoder.backbone.config.num_hidden_layers = len(layers)


def trainable_parameters(encoder: JasperEncoder, stage: int, last_layers: int = 3) -> list[nn.Parameter]:
    """Freeze everything the stage does not train; return the parameters it trains, in a fixed order."""
    if stage not in TEXT_STAGES:
        raise ValueError(f"text stages are {TEXT_STAGES}, got {stage}")
    if FULL_HEAD not in encoder.heads:
        raise ValueError(f"the encoder has no '{FULL_HEAD}' head (FC1): add it before training stage {stage}")
    encoder.requires_grad_(stage == 3)
    encoder.heads[FULL_HEAD].requires_grad_(True)
    if stage == 2:
        for layer in encoder_layers(encoder.backbone)[-last_layers:]:
            layer.requires_grad_(True)
    return [parameter for parameter in encoder.parameters() if parameter.requires_grad]


def set_dropout(module: nn.Module, probability: float) -> None:
    """Set every dropout inside ``module`` to ``probability``: ``nn.Dropout`` layers and the float
    ``dropout_prob`` that scaled-dot-product attention modules (BERT's SDPA attention) pass to the kernel."""
    for child in module.modules():
        if isinstance(child, nn.Dropout):
            child.p = probability
        elif isinstance(getattr(child, "dropout_prob", None), float):
            child.dropout_prob = probability


@torch.no_grad()
def init_head_least_squares(head: nn.Linear, hidden: torch.Tensor, targets: torch.Tensor, ridge: float = 1e-3) -> None:
    """Set ``head`` to the ridge-regression fit of ``targets`` from ``hidden`` (closed form, float64).

    A better start than a random FC1: stage 1 then refines an already good map with the paper's losses.
    """
    inputs = torch.cat([hidden.double(), torch.ones(len(hidden), 1, dtype=torch.float64, device=hidden.device)], 1)
    gram = inputs.T @ inputs
    gram += ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=torch.float64, device=gram.device)
    solution = torch.linalg.solve(gram, inputs.T @ targets.double())
    head.weight.copy_(solution[:-1].T.to(head.weight.dtype))
    head.bias.copy_(solution[-1].to(head.bias.dtype))


@torch.no_grad()
def init_head_procrustes(head: nn.Linear, hidden: torch.Tensor, targets: torch.Tensor) -> None:
    """Set ``head`` to the isometry ``hidden -> target space`` best aligned with ``targets`` (orthogonal
    Procrustes on the normalised states: ``W = U V^T`` from the SVD of ``X^T T``, no bias).

    An isometry keeps every cosine, so the model starts exactly as good as its backbone, and where the
    student is one of the teachers (Jasper's student starts from its second teacher) that teacher's part
    of the target is largely reproduced at once; training then moves the geometry towards the others.
    """
    states = F.normalize(hidden.double(), dim=-1)
    left, _values, right_t = torch.linalg.svd(states.T @ targets.double(), full_matrices=False)
    head.weight.copy_((left @ right_t).T.to(head.weight.dtype))  # (target dim, hidden), orthonormal columns
    head.bias.zero_()


@torch.no_grad()
def init_heads_pca(heads: Sequence[nn.Linear], full_head: nn.Linear, hidden: torch.Tensor) -> None:
    """Set each reduced head to the top principal directions of the full head's outputs on ``hidden``.

    ``head(h) = U^T (FC1(h) - mean)``: at the start a reduced head keeps as much of FC1's geometry as
    any linear map of that size can; stage 3 then trains it with the similarity losses. One
    eigendecomposition serves every head (each takes as many leading directions as it has outputs).
    """
    outputs = full_head(hidden).double()
    mean = outputs.mean(dim=0)
    centred = outputs - mean
    _values, vectors = torch.linalg.eigh(centred.T @ centred)
    ordered = vectors.flip(1)  # (full dim, full dim), largest variance first
    for head in heads:
        top = ordered[:, : head.out_features]
        head.weight.copy_((top.T @ full_head.weight.double()).to(head.weight.dtype))
        head.bias.copy_((top.T @ (full_head.bias.double() - mean)).to(head.bias.dtype))


def _prefixed(prefix: str, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{name}": value for name, value in terms.items()}


def text_step_losses(
    encoder: JasperEncoder,
    texts: Sequence[str],
    targets: torch.Tensor,
    loss: DistillationLoss,
    reduced_heads: Sequence[str] = (),
    self_distill: bool = False,
    pooled: torch.Tensor | None = None,
    *,
    reduced_weight: float = 1.0,
) -> StepLosses:
    """The batch loss of a text stage: FC1 against the ensemble, reduced heads against it (or FC1).

    ``pooled`` holds precomputed pooled states of every text (stage 1: the frozen backbone runs once);
    otherwise each batch is tokenised and run through the backbone. ``reduced_weight`` scales each
    reduced head's loss in the total (1 = the paper's plain sum).
    """

    def step(indices: list[int]) -> dict[str, torch.Tensor]:
        if pooled is not None:
            hidden = pooled[indices].to(encoder.device)
        else:
            hidden = encoder.pool_texts([texts[i] for i in indices])
        teacher = targets[indices].to(encoder.device)
        full = encoder.heads[FULL_HEAD](hidden)
        terms = _prefixed(FULL_HEAD, loss(full, teacher))
        for name in reduced_heads:
            target = full.detach() if self_distill else teacher
            terms.update(_prefixed(name, loss(encoder.heads[name](hidden), target)))
        reduced_total = sum(terms[f"{name}/total"] for name in reduced_heads)
        terms["total"] = terms[f"{FULL_HEAD}/total"] + reduced_weight * reduced_total
        return terms

    return step
