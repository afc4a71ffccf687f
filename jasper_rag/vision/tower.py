"""The vision tower: a frozen ImageNet backbone + a trainable projection into the student's hidden space.

An image's hidden vector is

    h = softmax(logits / T) @ C + W f + b

with ``f`` the backbone's pooled features, ``logits`` its ImageNet class logits, ``C`` one hidden
vector per ImageNet class, ``T`` a temperature and ``W f + b`` a residual map. Because it lands in
the hidden space (where the text side mean-pools), every text head (``full``, ``d256``, ...)
applies to it unchanged and images share each head's space with texts.

Caption-free start (``caption_free_tower``): ``C`` holds the pooled text vectors of
``"a photo of a {class}"``, ``W = 0``, ``b = 0``, ``T = 1``: an image becomes the class-probability
weighted mix of its class names' text vectors, before any caption training. Stage 4
(``jasper_rag.train.stage4_vision``) then trains ``C``, ``W``, ``b`` and ``T``; the backbone stays frozen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from jasper_rag.vision.backbone import FEATURE_DIM, NUM_CLASSES, ImageBackbone
from jasper_rag.vision.images import IMAGE_SIZE

if TYPE_CHECKING:
    from jasper_rag.encoder import JasperEncoder


class VisionProjection(nn.Module):
    """Backbone features + class logits -> hidden vector (the trainable part of the tower)."""

    def __init__(self, hidden_size: int, feature_dim: int = FEATURE_DIM, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.class_vectors = nn.Parameter(torch.zeros(num_classes, hidden_size))
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.residual = nn.Linear(feature_dim, hidden_size)
        nn.init.zeros_(self.residual.weight)
        nn.init.zeros_(self.residual.bias)

    def forward(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        probabilities = torch.softmax(logits / self.log_temperature.exp(), dim=-1)
        return probabilities @ self.class_vectors + self.residual(features)


class VisionTower(nn.Module):
    """Frozen backbone (always in eval mode) + ``VisionProjection``; ``forward(pixels) -> hidden``."""

    def __init__(self, backbone: str, hidden_size: int, pretrained: bool = True) -> None:
        super().__init__()
        self.backbone = ImageBackbone(backbone, pretrained=pretrained)
        self.backbone.requires_grad_(False)
        self.projection = VisionProjection(hidden_size)
        self.hidden_size = hidden_size

    @property
    def config(self) -> dict[str, object]:
        """What ``from_config`` needs to rebuild the architecture (stored in the encoder's config)."""
        return {"backbone": self.backbone.name, "hidden_size": self.hidden_size, "image_size": IMAGE_SIZE}

    @classmethod
    def from_config(cls, config: dict[str, object]) -> VisionTower:
        """An untrained tower of the saved architecture (its tensors are loaded afterwards)."""
        return cls(str(config["backbone"]), int(config["hidden_size"]), pretrained=False)  # type: ignore[call-overload]

    def train(self, mode: bool = True) -> VisionTower:
        super().train(mode)
        self.backbone.eval()  # batch-norm statistics of the frozen backbone never move
        return self

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features of a normalised pixel batch (what the feature cache stores)."""
        return self.backbone.features(pixels)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Hidden vectors from backbone features."""
        return self.projection(features, self.backbone.logits(features))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(pixels))


def caption_free_tower(
    encoder: JasperEncoder, class_names: list[str], backbone: str | None = None, pretrained: bool = True
) -> VisionTower:
    """A tower whose class vectors are the encoder's pooled text vectors of ``"a photo of a {class}"``."""
    from jasper_rag.config import get_settings
    from jasper_rag.vision.classes import class_prompts

    tower = VisionTower(backbone or get_settings().vision_backbone, encoder.hidden_size, pretrained=pretrained)
    if len(class_names) != tower.projection.class_vectors.shape[0]:
        raise ValueError(f"expected {tower.projection.class_vectors.shape[0]} class names, got {len(class_names)}")
    pooled = encoder.encode(class_prompts(class_names), dim=None, normalize=False)
    with torch.no_grad():
        tower.projection.class_vectors.copy_(torch.from_numpy(pooled))
    return tower.to(encoder.device)
