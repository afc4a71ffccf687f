"""Which vectors the store keeps for an encoder, and how to compute all of them in one pass.

Every named head of a ``JasperEncoder`` gets its own index (``full``, ``d256``, ...); an encoder
without heads gets one index of its pooled vector, under the head name ``POOLED``. One backbone
forward pass feeds every head (``JasperEncoder.encode_heads`` / ``encode_image_heads``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from jasper_rag.encoder import POOLED


@dataclass(frozen=True)
class ModelIdentity:
    """What the store records about the encoder that built its vectors."""

    fingerprint: str
    source: str
    heads: dict[str, int]


def encoder_heads(encoder) -> dict[str, int]:
    """Head name -> vector size, for every index the store keeps for ``encoder``."""
    return dict(encoder.config.heads) or {POOLED: encoder.hidden_size}


def model_identity(encoder) -> ModelIdentity:
    return ModelIdentity(encoder.fingerprint(), encoder.config.source, encoder_heads(encoder))


def embed_heads(
    encoder,
    texts: Sequence[str],
    batch_size: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Unit float32 vectors of ``texts`` for every store head, from one backbone pass
    (``encoder.encode_heads``; ``on_batch(n)`` after each batch of ``n`` texts, for progress bars)."""
    return encoder.encode_heads(list(texts), list(encoder_heads(encoder)), batch_size, on_batch=on_batch)


def embed_image_heads(encoder, images: Sequence[object]) -> dict[str, np.ndarray]:
    """Unit float32 vectors of images for every store head, from one pass of the vision tower."""
    return encoder.encode_image_heads(list(images), list(encoder_heads(encoder)))
