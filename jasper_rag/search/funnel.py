"""Funnel search: shortlist with a small head's index, re-score with the full head's vectors.

MRL heads make the small index a cheap, good approximation of the full one; re-scoring the
shortlist with exact full-dimension inner products gives back full quality at a fraction of the
cost. The index holding the full vectors is only asked to ``reconstruct`` the shortlisted ids.
"""

from __future__ import annotations

import numpy as np

from jasper_rag.store import VectorIndex


def funnel_search(
    small_index: VectorIndex,
    full_index: VectorIndex,
    small_queries: np.ndarray,
    full_queries: np.ndarray,
    k: int,
    shortlist: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` ``(scores, ids)`` per query by full-head inner product over a small-head shortlist.

    Rows are padded with score ``-inf`` and id ``-1`` when fewer than ``k`` vectors exist.
    """
    shortlist = max(shortlist, k)
    _, candidates = small_index.search(small_queries, shortlist)
    scores = np.full((len(candidates), k), -np.inf, dtype=np.float32)
    ids = np.full((len(candidates), k), -1, dtype=np.int64)
    for row, (query, found) in enumerate(zip(np.atleast_2d(full_queries), candidates, strict=True)):
        found = found[found >= 0]
        if len(found) == 0:
            continue
        exact = full_index.reconstruct(found) @ query
        best = np.argsort(-exact, kind="stable")[:k]
        scores[row, : len(best)] = exact[best]
        ids[row, : len(best)] = found[best]
    return scores, ids
