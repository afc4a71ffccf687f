"""Which vectors the store keeps for an encoder, and how to compute all of them in one pass.

Every named head of a ``JasperEncoder`` gets its own index (``full``, ``d256``, ...); an encoder
without heads gets one index of its pooled vector, under the head name ``pooled``. One backbone
forward pass feeds every head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from jasper_rag.embedding import normalize_rows
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


def head_dim_argument(head: str, dim: int) -> int | None:
    """The ``dim`` to pass to ``encoder.encode`` for one store head (None = pooled vector)."""
    return None if head == POOLED else dim


@torch.inference_mode()
def embed_heads(
    encoder,
    texts: Sequence[str],
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """L2-normalised float32 vectors of ``texts`` for every store head, from one forward pass per batch.

    Batches run longest-first (less padding); rows come back in input order. ``on_batch(n)`` is
    called after each batch of ``n`` texts (for progress bars).
    """
    heads = encoder_heads(encoder)
    out = {head: np.empty((len(texts), dim), dtype=np.float32) for head, dim in heads.items()}
    was_training = encoder.training
    encoder.eval()
    order = np.argsort([-len(text) for text in texts], kind="stable")
    for start in range(0, len(texts), batch_size):
        rows = order[start : start + batch_size]
        outputs = encoder(**encoder.tokenize([texts[i] for i in rows]))
        for head in heads:
            out[head][rows] = outputs[head].float().cpu().numpy()
        if on_batch is not None:
            on_batch(len(rows))
    encoder.train(was_training)
    return {head: normalize_rows(vectors) for head, vectors in out.items()}
