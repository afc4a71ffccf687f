"""Ranking and correlation metrics, computed the way MTEB computes them (pytrec_eval / trec_eval).

Rankings follow trec_eval: documents sorted by score, highest first, ties broken by document id in
*descending* string order. Relevance comes from qrels: a grade > 0 is relevant; nDCG uses the grade as
the gain (linear, as trec_eval does) with a log2(rank + 1) discount; the ideal ranking is built from
every judged document of the query, retrieved or not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr

Qrels = Mapping[str, int]  # document id -> relevance grade, for one query


def rank_documents(scores: Mapping[str, float]) -> list[str]:
    """Document ids by decreasing score; equal scores in decreasing id order (trec_eval's rule)."""
    by_id_desc = sorted(scores, reverse=True)
    return sorted(by_id_desc, key=lambda doc_id: -scores[doc_id])


def ndcg_at_k(ranking: Sequence[str], qrels: Qrels, k: int) -> float:
    """nDCG@k of one ranked list of document ids (0.0 when the query has no relevant document)."""
    gains = [max(qrels.get(doc_id, 0), 0) for doc_id in ranking[:k]]
    ideal = sorted((max(grade, 0) for grade in qrels.values()), reverse=True)[:k]
    ideal_dcg = _dcg(ideal)
    return _dcg(gains) / ideal_dcg if ideal_dcg > 0 else 0.0


def recall_at_k(ranking: Sequence[str], qrels: Qrels, k: int) -> float:
    """Share of the query's relevant documents found in the top k (0.0 when it has none)."""
    relevant = {doc_id for doc_id, grade in qrels.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mrr_at_k(ranking: Sequence[str], qrels: Qrels, k: int) -> float:
    """1 / rank of the first relevant document within the top k, else 0.0."""
    for rank, doc_id in enumerate(ranking[:k], start=1):
        if qrels.get(doc_id, 0) > 0:
            return 1.0 / rank
    return 0.0


def _dcg(gains: Sequence[float]) -> float:
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def spearman(predicted: np.ndarray, gold: np.ndarray) -> float:
    """Spearman rank correlation (ties get average ranks)."""
    return float(spearmanr(predicted, gold).statistic)


def pearson(predicted: np.ndarray, gold: np.ndarray) -> float:
    """Pearson linear correlation."""
    return float(pearsonr(predicted, gold).statistic)


def calibrate_threshold(top_scores: np.ndarray, correct: np.ndarray, target_precision: float) -> float:
    """The lowest score threshold whose answers (top score >= threshold) reach ``target_precision``.

    Maximises coverage under the precision target. Returns ``inf`` (abstain on everything) when no
    threshold reaches the target.
    """
    order = np.argsort(-top_scores, kind="stable")
    scores, hits = top_scores[order], correct[order].astype(np.float64)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    # A cut is only possible after the last of a run of equal scores (">=" answers all of them).
    cut_allowed = np.append(scores[1:] < scores[:-1], True)
    ok = np.flatnonzero((precision >= target_precision) & cut_allowed)
    return float(scores[ok[-1]]) if len(ok) else math.inf


def selective_accuracy(top_scores: np.ndarray, correct: np.ndarray, threshold: float) -> tuple[float | None, float]:
    """(accuracy among answered queries or None when none is answered, coverage = answered share)."""
    answered = top_scores >= threshold
    coverage = float(answered.mean()) if len(answered) else 0.0
    if not answered.any():
        return None, coverage
    return float(correct[answered].mean()), coverage
