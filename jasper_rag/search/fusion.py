"""Fusing dense and lexical evidence for one query's candidates.

Every candidate has its exact dense score (the searcher re-scores the union of both shortlists with
the chosen head); the lexical score is known for the lexical shortlist only (missing = no evidence).
``mix`` divides each side by its best score over the candidates (the scale's bottom is 0: BM25 is
never negative, and a cosine at or below 0 is no evidence of relevance; the "theoretical minimum"
normalisation of Bruch et al., *An Analysis of Fusion Functions for Hybrid Retrieval*, 2023) and takes
``w * dense + (1 - w) * lexical``; ``minmax`` scales each side from its worst to its best candidate
instead (so the weakest candidate of each side scores 0 however good it is); for both, a missing
lexical score counts as 0. ``rrf`` sums ``1 / (rrf_k + rank)`` over the sides that rank the candidate.
"""

from __future__ import annotations

import numpy as np


def _min_max(values: np.ndarray) -> np.ndarray:
    """Scaled to [0, 1] over the known (finite) values; unknown -> 0."""
    known = np.isfinite(values)
    out = np.zeros(len(values), dtype=np.float64)
    if not known.any():
        return out
    low, high = values[known].min(), values[known].max()
    out[known] = 1.0 if high == low else (values[known] - low) / (high - low)
    return out


def _max_scaled(values: np.ndarray) -> np.ndarray:
    """Divided by the best known value, negatives and unknown -> 0 (all 0 when none is positive)."""
    out = np.where(np.isfinite(values), np.maximum(values, 0.0), 0.0)
    high = out.max(initial=0.0)
    return out / high if high > 0 else out


def ranks(values: np.ndarray) -> np.ndarray:
    """1-based rank of each known value (best = 1, ties by position); 0 where unknown."""
    known = np.flatnonzero(np.isfinite(values))
    order = known[np.argsort(-values[known], kind="stable")]
    out = np.zeros(len(values), dtype=np.int64)
    out[order] = np.arange(1, len(order) + 1)
    return out


def fuse(
    dense: np.ndarray, lexical: np.ndarray, method: str = "mix", dense_weight: float = 0.5, rrf_k: int = 60
) -> np.ndarray:
    """Fused scores of the candidates (higher is better); ``-inf`` / ``nan`` mark a side's missing scores."""
    dense = np.where(np.isnan(dense), -np.inf, dense).astype(np.float64)
    lexical = np.where(np.isnan(lexical), -np.inf, lexical).astype(np.float64)
    if method in ("mix", "minmax"):
        scale = _max_scaled if method == "mix" else _min_max
        return dense_weight * scale(dense) + (1.0 - dense_weight) * scale(lexical)
    if method == "rrf":
        fused = np.zeros(len(dense), dtype=np.float64)
        for side in (dense, lexical):
            rank = ranks(side)
            fused += np.where(rank > 0, 1.0 / (rrf_k + np.maximum(rank, 1)), 0.0)
        return fused
    raise ValueError(f"unknown fusion method '{method}' (mix, minmax or rrf)")
