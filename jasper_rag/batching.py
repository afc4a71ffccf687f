"""Length-sorted encoding batches: the one batching rule of every text encoder backend.

A padded batch costs as much as its longest text times its size, so texts are grouped by token count,
longest first, and each batch is padded only to its own longest text. Attention and mean pooling ignore
padding, so each text's vector is the one it gets alone; callers put the rows back in input order
(``inverse``, or by writing each batch's rows at its indices).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def token_lengths(tokenizer, texts: Sequence[str], max_length: int) -> np.ndarray:
    """Each text's token count as the encoder sees it (special tokens included, truncated at ``max_length``)."""
    if not texts:
        return np.zeros(0, dtype=np.int64)
    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))


def sorted_batches(lengths: Sequence[int] | np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Row indices of batches of at most ``batch_size`` rows, longest first (ties keep input order)."""
    if batch_size < 1:
        raise ValueError(f"batch size must be positive, not {batch_size}")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def inverse(order: np.ndarray) -> np.ndarray:
    """The permutation that puts rows stacked in ``order`` back in input order."""
    positions = np.empty(len(order), dtype=np.int64)
    positions[order] = np.arange(len(order))
    return positions
