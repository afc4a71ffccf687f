"""One query's candidates and ranking in every search mode: what the searcher and ``make eval`` both run.

``hybrid_rank`` takes the two shortlists a search produced (the dense one, already ranked by some
head, and the lexical BM25 one) and a function giving the *exact* dense score of any ids with the
chosen head. Per ``options.mode``:

- ``dense``: the first ``shortlist`` dense ids, re-scored exactly and ranked by that score (with a
  funnel, the dense shortlist comes from a smaller head: this is the re-scoring step);
- ``lexical``: the first ``shortlist`` lexical ids, ranked by BM25 (no dense score is computed);
- ``hybrid``: the union of both shortlists; every candidate gets its exact dense score, the lexical
  score is known only for the lexical shortlist (missing = no evidence); the two are fused with
  ``fusion.fuse`` (``mix`` with ``dense_weight`` or ``rrf`` with ``rrf_k``) and ranked.

``shortlist`` is ``max(options.shortlist, k)`` per side; ids below 0 and non-finite lexical scores
are padding and dropped; a repeated id counts once (its first place). Ties are broken by the dense
score, then the lexical score, then the smaller id, so the order is deterministic. Numpy only: no
store, index or model here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from jasper_rag.search.fusion import fuse, ranks
from jasper_rag.search.options import SearchOptions

DenseScores = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Evidence:
    """Why each returned id is where it is; arrays aligned with the returned ids.

    ``dense``: exact dense score with the chosen head (nan in lexical mode); ``lexical``: BM25 score
    (nan when the id is not in the lexical shortlist); ``dense_rank`` / ``lexical_rank``: 1-based rank
    of the id among the candidates on that side (0 = that side has no score for it).
    """

    dense: np.ndarray
    lexical: np.ndarray
    dense_rank: np.ndarray
    lexical_rank: np.ndarray

    def __len__(self) -> int:
        return len(self.dense)


def _first_unique(ids: np.ndarray, limit: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Positions of the first ``limit`` distinct valid ids (id >= 0 and ``keep``), in order."""
    valid = ids >= 0
    if keep is not None:
        valid &= keep
    positions = np.flatnonzero(valid)
    _, first = np.unique(ids[positions], return_index=True)
    return positions[np.sort(first)][:limit]


def _empty() -> tuple[np.ndarray, np.ndarray, Evidence]:
    none_f, none_i = np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
    return none_i, none_f, Evidence(none_f, none_f.copy(), none_i, none_i.copy())


def hybrid_rank(
    dense_ids: np.ndarray,
    dense_scores_of: DenseScores,
    lexical_ids: np.ndarray,
    lexical_scores: np.ndarray,
    options: SearchOptions,
    k: int | None = None,
) -> tuple[np.ndarray, np.ndarray, Evidence]:
    """The top ``k`` (default ``options.k``) ``(ids, scores, evidence)`` of one query, best first.

    ``dense_ids``: the dense shortlist, best first (padding -1 allowed); ``dense_scores_of(ids)``:
    exact dense scores of an int64 id array (same length); ``lexical_ids`` / ``lexical_scores``:
    the lexical shortlist, best first (padding -1 / -inf; empty when the query has only stop
    words). ``scores`` are the ranking values of the mode: dense cosine, BM25 or the fused score.
    Fewer than ``k`` come back when there are fewer candidates.
    """
    k = options.k if k is None else k
    if k < 1:
        raise ValueError(f"k must be positive, not {k}")
    limit = max(options.shortlist, k)
    dense_ids = np.asarray(dense_ids, dtype=np.int64).ravel()
    lexical_ids = np.asarray(lexical_ids, dtype=np.int64).ravel()
    lexical_scores = np.asarray(lexical_scores, dtype=np.float64).ravel()
    if len(lexical_ids) != len(lexical_scores):
        raise ValueError(f"{len(lexical_ids)} lexical ids but {len(lexical_scores)} lexical scores")

    if options.mode == "dense":  # the lexical shortlist plays no part
        lexical_ids, lexical_scores = lexical_ids[:0], lexical_scores[:0]
    keep = _first_unique(lexical_ids, limit, np.isfinite(lexical_scores))
    lex_ids, lex_scores = lexical_ids[keep], lexical_scores[keep]
    dense_side = dense_ids[_first_unique(dense_ids, limit)] if options.mode != "lexical" else dense_ids[:0]
    candidates = dense_side
    if options.mode == "lexical":
        candidates = lex_ids
    elif options.mode == "hybrid":
        extra = lex_ids[~np.isin(lex_ids, dense_side)]
        candidates = np.concatenate([dense_side, extra])
    if len(candidates) == 0:
        return _empty()

    lexical = np.full(len(candidates), np.nan)
    where = {int(entry): row for row, entry in enumerate(candidates)}
    for entry, score in zip(lex_ids, lex_scores, strict=True):
        lexical[where[int(entry)]] = score
    if options.mode == "lexical":
        dense = np.full(len(candidates), np.nan)
    else:
        dense = np.asarray(dense_scores_of(candidates), dtype=np.float64).ravel()
        if len(dense) != len(candidates):
            raise ValueError(f"dense_scores_of returned {len(dense)} scores for {len(candidates)} ids")
        dense = np.where(np.isnan(dense), -np.inf, dense)

    if options.mode == "dense":
        values = dense
    elif options.mode == "lexical":
        values = lexical
    else:
        values = fuse(dense, lexical, options.fusion, options.dense_weight, options.rrf_k)

    def key(side: np.ndarray) -> np.ndarray:
        return np.where(np.isfinite(side), -side, np.inf)

    order = np.lexsort((candidates, key(lexical), key(dense), key(values)))[:k]
    evidence = Evidence(
        dense=dense[order],
        lexical=lexical[order],
        dense_rank=ranks(dense)[order],
        lexical_rank=ranks(lexical)[order],
    )
    return candidates[order], values[order].astype(np.float64), evidence
