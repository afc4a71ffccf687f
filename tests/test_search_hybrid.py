"""hybrid_rank: candidates and order in every mode, on hand-made shortlists (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from jasper_rag.search.hybrid import hybrid_rank
from jasper_rag.search.options import SearchOptions

# exact dense scores of ids 0..9 with "the chosen head"
DENSE = np.array([0.90, 0.80, 0.70, 0.60, 0.50, 0.40, 0.30, 0.20, 0.10, 0.00])


def dense_of(ids: np.ndarray) -> np.ndarray:
    return DENSE[ids]


def options(**changes) -> SearchOptions:
    return SearchOptions(**changes)


def test_dense_mode_rescores_and_ranks_the_dense_shortlist():
    calls = []

    def scores(ids):
        calls.append(ids.copy())
        return DENSE[ids]

    # a funnel's shortlist comes in a small head's order; the exact score decides
    ids, values, evidence = hybrid_rank(
        np.array([3, 1, 2, -1]), scores, np.array([5, 6]), np.array([9.0, 8.0]), options(mode="dense")
    )
    assert ids.tolist() == [1, 2, 3]
    assert values.tolist() == pytest.approx([0.8, 0.7, 0.6])
    assert sorted(calls[0].tolist()) == [1, 2, 3]  # lexical hits are not candidates in dense mode
    assert np.isnan(evidence.lexical).all() and evidence.lexical_rank.tolist() == [0, 0, 0]
    assert evidence.dense_rank.tolist() == [1, 2, 3]


def test_lexical_mode_ranks_by_bm25_without_dense_scores():
    def never(ids):
        raise AssertionError("lexical mode must not compute dense scores")

    ids, values, evidence = hybrid_rank(
        np.array([0, 1]), never, np.array([7, 4, 6]), np.array([3.0, 2.0, 1.0]), options(mode="lexical")
    )
    assert ids.tolist() == [7, 4, 6]
    assert values.tolist() == [3.0, 2.0, 1.0]
    assert np.isnan(evidence.dense).all() and evidence.lexical_rank.tolist() == [1, 2, 3]


def test_hybrid_mix_is_the_equal_mix_of_scores_divided_by_the_best_candidate_s():
    dense_ids = np.array([0, 1, 2])  # dense 0.9, 0.8, 0.7
    lexical_ids, lexical_scores = np.array([2, 5]), np.array([10.0, 4.0])  # 5 only lexical (dense 0.4)
    ids, values, _ = hybrid_rank(dense_ids, dense_of, lexical_ids, lexical_scores, options(k=10))
    # dense / 0.9; lexical / 10 (missing -> 0)
    expected = {0: 0.5, 1: 0.5 * 0.8 / 0.9, 2: 0.5 * 0.7 / 0.9 + 0.5, 5: 0.5 * 0.4 / 0.9 + 0.5 * 0.4}
    assert ids.tolist() == [2, 0, 1, 5]
    assert values.tolist() == pytest.approx([expected[i] for i in ids.tolist()])


def test_mix_counts_a_negative_cosine_as_no_evidence():
    cosines = np.array([0.5, 0.0, -0.5])
    ids, values, _ = hybrid_rank(
        np.array([0, 1, 2]), lambda ids: cosines[ids], np.array([2]), np.array([2.0]), options()
    )
    assert dict(zip(ids.tolist(), values.tolist(), strict=True)) == pytest.approx({0: 0.5, 2: 0.5, 1: 0.0})


def test_hybrid_minmax_is_the_equal_mix_of_min_max_scores_over_the_union():
    dense_ids = np.array([0, 1, 2])  # dense 0.9, 0.8, 0.7
    lexical_ids, lexical_scores = np.array([2, 5]), np.array([10.0, 4.0])  # 5 only lexical (dense 0.4)
    ids, values, evidence = hybrid_rank(
        dense_ids, dense_of, lexical_ids, lexical_scores, options(k=10, fusion="minmax")
    )
    # dense min-max over {0.9, 0.8, 0.7, 0.4}: 1, 0.8, 0.6, 0; lexical: id 2 -> 1, id 5 -> 0, others missing -> 0
    expected = {0: 0.5, 1: 0.4, 2: 0.5 * 0.6 + 0.5, 5: 0.0}
    assert ids.tolist() == [2, 0, 1, 5]
    assert values.tolist() == pytest.approx([expected[i] for i in ids.tolist()])
    assert evidence.dense.tolist() == pytest.approx([0.7, 0.9, 0.8, 0.4])
    assert evidence.lexical[0] == 10.0 and np.isnan(evidence.lexical[1]) and evidence.lexical[3] == 4.0
    assert evidence.lexical_rank.tolist() == [1, 0, 0, 2]
    assert evidence.dense_rank.tolist() == [3, 1, 2, 4]


def test_dense_weight_moves_the_mix():
    dense_ids, lexical_ids, lexical_scores = np.array([0, 1]), np.array([1, 0]), np.array([5.0, 1.0])
    heavy_dense = hybrid_rank(dense_ids, dense_of, lexical_ids, lexical_scores, options(dense_weight=0.9))[0]
    heavy_lexical = hybrid_rank(dense_ids, dense_of, lexical_ids, lexical_scores, options(dense_weight=0.1))[0]
    assert heavy_dense.tolist() == [0, 1] and heavy_lexical.tolist() == [1, 0]


def test_hybrid_rrf_sums_reciprocal_ranks():
    dense_ids = np.array([0, 1, 2])
    lexical_ids, lexical_scores = np.array([2, 1, 7]), np.array([3.0, 2.0, 1.0])
    ids, values, _ = hybrid_rank(
        dense_ids, dense_of, lexical_ids, lexical_scores, options(fusion="rrf", rrf_k=60, k=10)
    )
    # dense ranks over the union {0, 1, 2, 7}: 1, 2, 3, 4; lexical ranks: 2 -> 1, 1 -> 2, 7 -> 3
    expected = {0: 1 / 61, 1: 1 / 62 + 1 / 62, 2: 1 / 63 + 1 / 61, 7: 1 / 64 + 1 / 63}
    assert ids.tolist() == sorted(expected, key=lambda i: -expected[i])
    assert values.tolist() == pytest.approx([expected[i] for i in ids.tolist()])


def test_mix_and_rrf_can_disagree():
    # a strong lexical-only hit: the mix keeps the score gap, RRF only the ranks
    dense_ids = np.array([0, 1])
    lexical_ids, lexical_scores = np.array([9, 1]), np.array([100.0, 1.0])
    mix = hybrid_rank(dense_ids, dense_of, lexical_ids, lexical_scores, options(k=3))[0]
    rrf = hybrid_rank(dense_ids, dense_of, lexical_ids, lexical_scores, options(k=3, fusion="rrf"))[0]
    # dense over {0: 0.9, 1: 0.8, 9: 0.1}: mix 0 -> 0.5, 1 -> 0.4375, 9 -> 0.5 (tie: the better dense score)
    assert mix.tolist() == [0, 9, 1]
    # RRF: 9 -> 1/63 + 1/61 just above 1 -> 2/62; 0 -> 1/61
    assert rrf.tolist() == [9, 1, 0]


def test_ties_break_by_dense_then_lexical_then_id():
    flat = np.zeros(10)
    minmax = options(k=5, fusion="minmax")
    ids, values, _ = hybrid_rank(np.array([4, 2, 3]), lambda ids: flat[ids], np.array([]), np.array([]), minmax)
    assert ids.tolist() == [2, 3, 4] and values.tolist() == [0.5, 0.5, 0.5]
    # equal fused scores: the better dense score first
    ids, _, _ = hybrid_rank(np.array([0, 1]), dense_of, np.array([1]), np.array([2.0]), minmax)
    assert ids.tolist() == [0, 1]  # both 0.5 (0: dense 1, lexical missing; 1: dense 0, lexical 1); 0 is denser
    # lexical-only ties: the smaller id
    ids, _, _ = hybrid_rank(np.array([]), dense_of, np.array([8, 6]), np.array([1.0, 1.0]), options(mode="lexical"))
    assert ids.tolist() == [6, 8]


def test_k_larger_than_the_candidates_returns_them_all():
    ids, values, evidence = hybrid_rank(
        np.array([0, 1]), dense_of, np.array([1, 3]), np.array([2.0, 1.0]), options(k=50)
    )
    assert sorted(ids.tolist()) == [0, 1, 3] and len(values) == len(evidence) == 3
    assert hybrid_rank(np.array([0, 1, 2]), dense_of, np.array([]), np.array([]), options(mode="dense"), k=2)[
        0
    ].tolist() == [0, 1]


def test_stop_word_query_has_no_lexical_side_and_falls_back_to_dense_order():
    empty_ids, empty_scores = np.full(5, -1), np.full(5, -np.inf)  # a padded, empty lexical row
    for fusion in ("mix", "rrf"):
        ids, _, evidence = hybrid_rank(np.array([2, 0, 1]), dense_of, empty_ids, empty_scores, options(fusion=fusion))
        assert ids.tolist() == [0, 1, 2]
        assert (evidence.lexical_rank == 0).all()
    ids, values, evidence = hybrid_rank(np.array([]), dense_of, empty_ids, empty_scores, options(mode="lexical"))
    assert len(ids) == len(values) == len(evidence) == 0


def test_padding_duplicates_and_shortlist_limit():
    dense_ids = np.array([0, 0, 1, 2, 3, -1])
    lexical_ids, lexical_scores = np.array([5, 5, 6, 7, -1]), np.array([3.0, 3.0, 2.0, 1.0, -np.inf])
    ids, _, _ = hybrid_rank(dense_ids, dense_of, lexical_ids, lexical_scores, options(shortlist=2, k=2), k=10)
    # shortlist = max(2, k=10) per side: every valid id, each once
    assert sorted(ids.tolist()) == [0, 1, 2, 3, 5, 6, 7]
    ids, _, _ = hybrid_rank(dense_ids, dense_of, lexical_ids, lexical_scores, options(shortlist=2, k=1), k=1)
    assert ids.tolist() == [5]  # candidates 0, 1, 5, 6: 5 is first on BM25 and above 6 on dense
    seen = []
    hybrid_rank(
        dense_ids, lambda i: seen.extend(i.tolist()) or DENSE[i], lexical_ids, lexical_scores, options(shortlist=2, k=1)
    )
    assert sorted(seen) == [0, 1, 5, 6]  # the first 2 distinct ids of each side


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="lexical scores"):
        hybrid_rank(np.array([0]), dense_of, np.array([1, 2]), np.array([1.0]), options())
    with pytest.raises(ValueError, match="dense_scores_of"):
        hybrid_rank(np.array([0, 1]), lambda ids: np.zeros(1), np.array([]), np.array([]), options())
    with pytest.raises(ValueError, match="k must be positive"):
        hybrid_rank(np.array([0]), dense_of, np.array([]), np.array([]), options(), k=0)
