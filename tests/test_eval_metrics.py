"""Metric functions on hand-made cases: perfect, reversed, ties, missing relevant documents."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jasper_rag.eval.metrics import (
    calibrate_threshold,
    mrr_at_k,
    ndcg_at_k,
    pearson,
    rank_documents,
    recall_at_k,
    selective_accuracy,
    spearman,
)


def test_perfect_ranking_scores_one() -> None:
    qrels = {"a": 2, "b": 1}
    assert ndcg_at_k(["a", "b", "c"], qrels, 10) == pytest.approx(1.0)
    assert recall_at_k(["a", "b", "c"], qrels, 100) == 1.0
    assert mrr_at_k(["a", "b", "c"], qrels, 10) == 1.0


def test_reversed_ranking() -> None:
    qrels = {"r": 1}
    ranking = ["x", "y", "r"]  # the only relevant document last
    assert ndcg_at_k(ranking, qrels, 10) == pytest.approx(1 / math.log2(4))
    assert mrr_at_k(ranking, qrels, 10) == pytest.approx(1 / 3)
    assert recall_at_k(ranking, qrels, 2) == 0.0
    graded = {"a": 2, "b": 1}  # linear gains, as trec_eval
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg_at_k(["b", "a"], graded, 10) == pytest.approx(expected)


def test_cutoffs_and_unretrieved_relevant_documents() -> None:
    qrels = {"a": 1, "z": 1}  # z is never retrieved: it still counts in the ideal DCG and recall
    assert ndcg_at_k(["a", "b"], qrels, 10) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert recall_at_k(["a", "b"], qrels, 100) == 0.5
    assert mrr_at_k(["b", "a"], qrels, 1) == 0.0
    assert ndcg_at_k(["b", "a"], qrels, 1) == 0.0


def test_zero_grades_are_not_relevant() -> None:
    qrels = {"a": 0, "b": 0}
    assert ndcg_at_k(["a", "b"], qrels, 10) == 0.0
    assert recall_at_k(["a"], qrels, 10) == 0.0
    assert mrr_at_k(["a"], qrels, 10) == 0.0


def test_ties_follow_trec_eval_order() -> None:
    # equal scores: decreasing document id, whatever the input order
    assert rank_documents({"a": 0.5, "c": 0.9, "b": 0.5}) == ["c", "b", "a"]
    assert rank_documents({"b": 0.5, "a": 0.5}) == ["b", "a"]
    ranking = rank_documents({"a": 0.5, "b": 0.5})  # relevant "a" loses the tie
    assert ndcg_at_k(ranking, {"a": 1}, 10) == pytest.approx(1 / math.log2(3))


def test_correlations() -> None:
    gold = np.array([0.0, 1.0, 2.0, 3.0])
    assert spearman(gold * 2 + 1, gold) == pytest.approx(1.0)
    assert spearman(-gold, gold) == pytest.approx(-1.0)
    assert pearson(gold * 3, gold) == pytest.approx(1.0)
    # tied gold scores get average ranks: ranks (1, 2, 3) vs (1.5, 1.5, 3)
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 2.0])) == pytest.approx(math.sqrt(3) / 2)


def test_threshold_calibration_maximises_coverage_under_precision() -> None:
    scores = np.array([0.6, 0.9, 0.7, 0.8])
    correct = np.array([True, True, False, True])
    assert calibrate_threshold(scores, correct, 1.0) == pytest.approx(0.8)
    assert calibrate_threshold(scores, correct, 0.75) == pytest.approx(0.6)
    assert selective_accuracy(scores, correct, 0.8) == (1.0, 0.5)


def test_threshold_never_splits_tied_scores() -> None:
    scores = np.array([0.9, 0.8, 0.8])
    correct = np.array([True, True, False])
    assert calibrate_threshold(scores, correct, 1.0) == pytest.approx(0.9)


def test_unreachable_precision_abstains_on_everything() -> None:
    scores = np.array([0.9, 0.8])
    threshold = calibrate_threshold(scores, np.array([False, False]), 0.5)
    assert math.isinf(threshold)
    assert selective_accuracy(scores, np.array([False, False]), threshold) == (None, 0.0)
