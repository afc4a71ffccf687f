"""The retriever section: dense / lexical / hybrid / funnel rankings on a hand-made corpus, and the reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jasper_rag.eval.candidates import Candidate
from jasper_rag.eval.data import BeirSet
from jasper_rag.eval.report import retriever_section
from jasper_rag.eval.retriever import (
    HALF_B,
    LEXICAL_MODEL,
    MODES,
    TUNED_MODE,
    TaskRetrieval,
    funnel_pairs,
)
from jasper_rag.eval.run import run_eval
from jasper_rag.eval.tasks import RetrievalTask
from tests.test_eval_report import _tiny_setup

DOCS = {
    "d0": "zorblax enzyme",
    "d1": "protein folding study",
    "d2": "protein structure",
    "d3": "car engine",
    "d4": "river water",
    "d5": "music notes",
}
QUERIES = {"q0": "zorblax protein", "q1": "automobile", "q2": "the of and", "q9": "not judged"}
QRELS = {"q0": {"d0": 1}, "q1": {"d3": 1}, "q2": {"d4": 2}}
# the "encoder": documents are one-hot, so a query's vector is its dense score for each document
DOC_VECTORS = np.eye(6)
QUERY_VECTORS = np.array(
    [
        [0.8, 0.9, 0.7, 0.1, 0.1, 0.1],  # q0: dense ranks d1, d0, d2 (the rare word is lexical evidence)
        [0.1, 0.1, 0.1, 0.9, 0.3, 0.2],  # q1: a synonym only the encoder knows; BM25 finds nothing
        [0.1, 0.1, 0.1, 0.2, 0.9, 0.2],  # q2: only stop words, BM25 finds nothing
    ]
)
DCG_2 = 1 / np.log2(3)


def task(top_k: int = 100) -> RetrievalTask:
    return RetrievalTask("hand-made", BeirSet(dict(DOCS), dict(QUERIES), {q: dict(r) for q, r in QRELS.items()}), top_k)


def test_lexical_shortlists_come_from_bm25_once():
    run = TaskRetrieval(task())
    assert run.shortlist == 100 and run.k == 6  # k = top_k cut to the corpus
    assert run.lexical_ids[0][0] == 0  # the rare word wins BM25
    assert set(run.lexical_ids[0][:3]) == {0, 1, 2}
    assert (run.lexical_ids[1] == -1).all() and (run.lexical_ids[2] == -1).all()
    row = run.lexical_row()
    assert (row.model, row.head_dim, row.mode) == (LEXICAL_MODEL, 0, "lexical")
    assert row.ndcg_at_10 == pytest.approx(100 / 3) and row.recall_at_100 == pytest.approx(100 / 3)


def test_each_mode_scores_as_worked_out_by_hand():
    run = TaskRetrieval(task())
    scoring = (DOC_VECTORS, QUERY_VECTORS)
    found = {}
    for mode, options in MODES.items():
        rankings, cost = run.rank(scoring, options)
        found[mode] = run.score(rankings)
        assert cost is not None and cost >= 6 * 6 / 1e6
    assert found["dense"] == pytest.approx((100 * (DCG_2 + 2) / 3, 100.0))
    # q0: mix d0 = 0.5 * 0.875 + 0.5 * 1 beats d1 = 0.5 * 1 + 0.5 * 0; RRF d0 = 1/62 + 1/61 beats d1 = 1/61 + 1/63
    # q1, q2: no lexical side, the dense order stands
    assert found["hybrid-mix"] == pytest.approx((100.0, 100.0))
    assert found["hybrid-rrf"] == pytest.approx((100.0, 100.0))
    rankings, _ = run.rank(scoring, MODES["hybrid-minmax"])
    # d1 is the bottom of the lexical scale (longer than d2, so less BM25 for 'protein'): 0.5 * 1 + 0;
    # d2 = 0.5 * 0.75 + 0.5 * its normalised BM25, which decides whether it passes d1
    bm25 = dict(zip(run.lexical_ids[0].tolist(), run.lexical_scores[0].tolist(), strict=True))
    d2 = 0.5 * 0.75 + 0.5 * (bm25[2] - bm25[1]) / (bm25[0] - bm25[1])
    assert rankings[0][:3].tolist() == ([0, 2, 1] if d2 > 0.5 else [0, 1, 2])
    assert rankings[1][0] == 3 and rankings[2][0] == 4


def test_rows_halves_and_the_tuned_weight():
    run = TaskRetrieval(task())
    rows = run.mode_rows("m", 6, (DOC_VECTORS, QUERY_VECTORS))
    assert [row.mode for row in rows] == list(MODES)
    assert all(row.queries == "all" and row.task == "hand-made" for row in rows)
    assert sorted(np.concatenate([run.half_a, run.half_b]).tolist()) == [0, 1, 2]
    tuned = run.tuned_rows("m", 6, (DOC_VECTORS, QUERY_VECTORS))
    assert [row.mode for row in tuned] == ["hybrid-minmax", "hybrid-mix", TUNED_MODE]
    assert all(row.queries == HALF_B for row in tuned)
    assert tuned[0].settings.startswith("minmax w=0.5") and tuned[1].settings.startswith("mix w=0.5")
    assert "grid 0.3, 0.4, 0.5, 0.6, 0.7" in tuned[2].settings


def test_no_tuned_rows_without_two_halves():
    one = RetrievalTask("one", BeirSet(dict(DOCS), {"q0": QUERIES["q0"]}, {"q0": QRELS["q0"]}))
    run = TaskRetrieval(one)
    assert run.tuned_rows("m", 6, (DOC_VECTORS, QUERY_VECTORS[:1])) == []
    assert run.mode_rows("m", 6, (DOC_VECTORS, QUERY_VECTORS[:1]))[1].ndcg_at_10 == 100.0


def test_funnel_shortlists_with_the_small_head_and_scores_with_the_large():
    run = TaskRetrieval(task(top_k=2), shortlist=2)  # 2 candidates per side
    assert run.shortlist == 2
    small_docs = np.eye(6)[:, :2]  # the small head only sees documents d0 and d1
    small = (small_docs, QUERY_VECTORS[:, :2])
    rankings, cost = run.rank((DOC_VECTORS, QUERY_VECTORS), MODES["dense"], shortlisting=small)
    assert sorted(rankings[0].tolist()) == [0, 1] and rankings[0].tolist() == [1, 0]  # re-scored: d1 0.9 > d0 0.8
    assert cost == pytest.approx((6 * 2 + 2 * 6) / 1e6)  # small scan + both candidates re-scored
    rankings, cost = run.rank((DOC_VECTORS, QUERY_VECTORS), MODES["dense"])
    assert rankings[1].tolist() == [3, 4] and cost == pytest.approx(6 * 6 / 1e6)  # no funnel: the scan scores


def _candidate(model: str, dim: int, family: str = "") -> Candidate:
    return Candidate(model, dim, None, (), (), family=family)  # type: ignore[arg-type]


def test_funnel_pairs_join_the_heads_of_one_model_only():
    candidates = [
        _candidate("q", 64, "q"),
        _candidate("q", 8, "q"),
        _candidate("q", 16, "q"),
        _candidate("truncate: s", 8),
        _candidate("truncate: s", 4),
        _candidate("one-head", 32, "one-head"),
    ]
    assert funnel_pairs(candidates) == {0: 1}


def test_report_section_lists_every_mode_and_the_half_b_table():
    run = TaskRetrieval(task())
    rows = [run.lexical_row(), *run.mode_rows("m", 6, (DOC_VECTORS, QUERY_VECTORS))]
    rows += run.tuned_rows("m", 6, (DOC_VECTORS, QUERY_VECTORS))
    text = "\n".join(retriever_section(rows, ["a note"]))
    assert text.startswith("## Retriever") and "- Note: a note" in text
    assert f"| {LEXICAL_MODEL} | – | lexical | 33.33 | 33.33 | – | BM25 top 100 |" in text
    assert "| m | 6 | hybrid-mix | 100.00 | 100.00 |" in text
    assert f"{HALF_B} only" in text and f"| m | 6 | {TUNED_MODE} |" in text
    assert retriever_section([]) == []


def test_run_eval_writes_the_retriever_section(tmp_path: Path) -> None:
    settings, eval_dir = _tiny_setup(tmp_path)
    options = dict(
        models=["inhouse", "start", "truncate"],
        eval_dir=eval_dir,
        output_dir=tmp_path / "reports",
        baseline_dims=[4],
        settings=settings,
    )
    outcome = run_eval(tasks=["tiny", "stsbenchmark"], **options)
    rows = outcome.retriever
    assert [row.model for row in rows].count(LEXICAL_MODEL) == 1 and {row.task for row in rows} == {"tiny"}
    modes = {
        (row.model, row.head_dim): [r.mode for r in rows if (r.model, r.head_dim) == (row.model, row.head_dim)]
        for row in rows
    }
    half_b = ["hybrid-minmax", "hybrid-mix", TUNED_MODE]
    assert modes[("tiny", 48)] == [*MODES, *(f"funnel 8->48 {mode}" for mode in MODES), *half_b]
    assert modes[("tiny", 8)] == [*MODES, *half_b]
    assert ("truncate: tiny", 4) in modes and ("start: tiny", 32) in modes
    dense = {(row.model, row.head_dim): row.score for row in outcome.rows if row.metric == "ndcg_at_10"}
    for row in rows:
        if row.mode == "dense":  # the dense mode is the dense table's ranking
            assert row.ndcg_at_10 == pytest.approx(dense[(row.model, row.head_dim)])
    payload = json.loads((tmp_path / "reports" / "eval.json").read_text())
    assert len(payload["retriever"]) == len(rows) and "BM25 answered" in payload["retriever_notes"][0]
    assert set(payload["retriever"][0]) >= {
        "model",
        "head_dim",
        "task",
        "mode",
        "ndcg_at_10",
        "recall_at_100",
        "queries",
    }
    markdown = (tmp_path / "reports" / "eval.md").read_text()
    assert "## Retriever" in markdown and "| tiny | 48 | funnel 8->48 hybrid-mix |" in markdown

    no_retrieval = run_eval(tasks=["stsbenchmark"], **options)
    assert no_retrieval.retriever == [] and "## Retriever" not in (tmp_path / "reports" / "eval.md").read_text()


def test_cached_only_leaves_out_uncached_candidates(tmp_path: Path) -> None:
    settings, eval_dir = _tiny_setup(tmp_path)
    options = dict(eval_dir=eval_dir, output_dir=tmp_path / "reports", settings=settings, tasks=["tiny"])
    run_eval(models=["start"], **options)
    outcome = run_eval(models=["start", "inhouse"], cached_only=True, **options)
    assert {row.model for row in outcome.retriever} == {LEXICAL_MODEL, "start: tiny"}
