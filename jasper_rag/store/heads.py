"""Which vectors the store keeps for an encoder, and how to compute all of them in one pass.

Every named head of a ``JasperEncoder`` gets its own index (``full``, ``d256``, ...); an encoder
without heads gets one index of its pooled vector, under the head name ``POOLED``. One backbone
forward pass feeds every head (``JasperEncoder.encode_heads`` / ``encode_image_heads``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

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


def embed_heads(
    encoder,
    texts: Sequence[str],
    batch_size: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Unit float32 vectors of ``texts`` for every store head, from one backbone pass
    (``encoder.encode_heads``; ``on_batch(n)`` after each batch of ``n`` texts, for progress bars)."""
    return encoder.encode_heads(list(texts), list(encoder_heads(encoder)), batch_size, on_batch=on_batch)


def embed_entry_heads(
    encoder,
    entries: Sequence[Sequence[str]],
    batch_size: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Unit float32 vectors, for every store head, of entries made of one or more texts
    (``Entry.embedding_texts``; an FAQ entry: its question and its answer), from one backbone pass over
    all the texts (``on_batch`` counts texts); each entry's vector as ``combine_entry_vectors``."""
    vectors = embed_heads(encoder, [text for parts in entries for text in parts], batch_size, on_batch)
    return {head: combine_entry_vectors(rows, entries) for head, rows in vectors.items()}


def combine_entry_vectors(vectors: np.ndarray, entries: Sequence[Sequence[str]]) -> np.ndarray:
    """One unit vector per entry from the vectors of its texts (rows of ``vectors`` in the order of the
    entries' texts): their normalised sum."""
    if any(not parts for parts in entries):
        raise ValueError("every entry needs at least one text to embed")
    if not entries:
        return np.zeros((0, vectors.shape[1]), dtype=np.float32)
    starts = np.cumsum([0, *(len(parts) for parts in entries[:-1])])
    return normalize_rows(np.add.reduceat(vectors, starts, axis=0))


def embed_image_heads(encoder, images: Sequence[object]) -> dict[str, np.ndarray]:
    """Unit float32 vectors of images for every store head, from one pass of the vision tower."""
    return encoder.encode_image_heads(list(images), list(encoder_heads(encoder)))
