"""The lexical engines bench (``jasper_rag.bench.lexical``): chunks, the three engines, quality, reports.

Fast: a tiny synthetic BEIR folder, corpus sizes of 200 and 400 chunks.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from jasper_rag.bench.lexical import (
    CANDIDATES,
    ENGINES,
    LexicalBenchConfig,
    fts5_match,
    fts5_stopwords,
    load_scifact,
    make_chunks,
    passages,
    render_from_json,
    run_lexical_bench,
    score_quality,
)

SUBJECTS = "protein gene cell tumour virus enzyme membrane receptor antibody neuron".split()
VERBS = "binds activates inhibits regulates cleaves modifies".split()
OBJECTS = "kinase pathway mitochondria insulin collagen hormone plasma ribosome".split()
PLACES = "liver kidney brain muscle bone skin lung heart".split()


def sentence(rng: random.Random) -> str:
    return (
        f"The {rng.choice(SUBJECTS)} {rng.choice(VERBS)} the {rng.choice(OBJECTS)} "
        f"in the {rng.choice(PLACES)} of older patients."
    )


def write_beir(folder: Path) -> None:
    """A tiny SciFact-like folder: 60 documents; q1 and q2 with hand-made qrels."""
    rng = random.Random(7)
    docs = {f"d{i}": " ".join(sentence(rng) for _ in range(12)) for i in range(60)}
    docs["d1"] = "Zebrafish fins regrow. " + docs["d1"]
    docs["d2"] = "Axolotl limbs regenerate after injury. " + docs["d2"]
    docs["d3"] = "Unrelated words only here. " + docs["d3"]
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as handle:
        for doc_id, text in docs.items():
            handle.write(json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n")
    queries = {"q1": "zebrafish fins", "q2": "axolotl limbs or quokka tails"}
    with (folder / "queries.jsonl").open("w") as handle:
        for query_id, text in queries.items():
            handle.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    # q1: its one relevant document ranks first (nDCG 1, recall 1). q2: d2 ranks first, d3 shares no
    # word with the query and is never retrieved: nDCG = 1 / (1 + 1/log2(3)), recall 0.5.
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq2\td3\t1\n")


@pytest.fixture
def eval_dir(tmp_path: Path) -> Path:
    write_beir(tmp_path / "eval" / "scifact")
    return tmp_path / "eval"


def test_passages_slice_and_merge_a_short_tail() -> None:
    text = " ".join(f"w{i}" for i in range(230))
    found = passages([text], 100)
    assert [len(piece.split()) for piece in found] == [100, 130]
    assert passages(["a b c"], 100) == ["a b c"]


def test_chunks_are_seeded_and_topped_up_from_sentences(eval_dir: Path) -> None:
    documents = list(load_scifact(eval_dir).corpus.values())
    first, real = make_chunks(documents, 400, 50, seed=0)
    again, _ = make_chunks(documents, 400, 50, seed=0)
    assert first == again and len(first) == 400
    assert 0 < real < 400
    assert all(len(chunk.split()) >= 50 for chunk in first[real:])
    assert make_chunks(documents, 400, 50, seed=1)[0] != first


def test_fts5_match_is_an_or_of_words_without_stop_words() -> None:
    assert fts5_match("Is the role of p53 in cancer?", fts5_stopwords()) == '"role" OR "p53" OR "cancer"'
    assert fts5_match("the of", fts5_stopwords()) is None


@pytest.mark.parametrize("name", CANDIDATES)
def test_quality_on_hand_made_qrels(name: str, eval_dir: Path, tmp_path: Path) -> None:
    engine = ENGINES[name](tmp_path / name, None)
    try:
        scores = score_quality(engine, load_scifact(eval_dir))
    finally:
        engine.close()
    expected_ndcg = 100 * (1 + 1 / (1 + 1 / math.log2(3))) / 2
    assert scores["ndcg_at_10"] == pytest.approx(expected_ndcg)
    assert scores["recall_at_100"] == pytest.approx(75.0)
    assert scores["queries"] == 2 and scores["documents"] == 60


@pytest.mark.parametrize("name", CANDIDATES)
def test_update_adds_and_deletes_like_a_fresh_build(name: str, tmp_path: Path) -> None:
    rng = random.Random(3)
    texts = [" ".join(sentence(rng) for _ in range(4)) for _ in range(50)]
    texts[10] = "Quokka tails curl. " + texts[10]
    new = ["Quokka tails are short and quokka ears are round. " + texts[0], texts[1]]
    engine = ENGINES[name](tmp_path / "updated", None)
    fresh = ENGINES[name](tmp_path / "fresh", None)
    try:
        engine.build(list(range(50)), texts)
        engine.update([50, 51], new, [10, 11], [texts[10], texts[11]])
        kept = [i for i in range(50) if i not in (10, 11)]
        fresh.build([*kept, 50, 51], [texts[i] for i in kept] + new)
        for query in ("quokka tails", "kinase in the liver", "insulin receptor"):
            found, expected = engine.search(query, 20), fresh.search(query, 20)
            assert [doc_id for doc_id, _ in found] == [doc_id for doc_id, _ in expected]
            if name != "tantivy":  # tantivy keeps deleted documents in its BM25 statistics until a merge
                assert [score for _, score in found] == pytest.approx([score for _, score in expected], rel=1e-5)
            assert not {10, 11} & {doc_id for doc_id, _ in found}
        assert engine.search("quokka tails", 5)[0][0] == 50
    finally:
        engine.close()
        fresh.close()


def test_run_writes_both_reports_for_every_engine(eval_dir: Path, tmp_path: Path) -> None:
    config = LexicalBenchConfig(sizes=(400, 200), update=20, latency_queries=2, passage_words=30)
    files = run_lexical_bench(config, eval_dir, tmp_path / "reports", work_dir=tmp_path)
    json_path, md_path = files
    payload = json.loads(json_path.read_text())
    assert payload["failures"] == []
    assert {row["engine"] for row in payload["quality"]} == set(CANDIDATES)
    assert sorted((row["size"], row["engine"]) for row in payload["scale"]) == sorted(
        (size, name) for size in (200, 400) for name in CANDIDATES
    )
    for row in payload["scale"]:
        assert row["build_s"] > 0 and row["update_s"] > 0 and row["index_mib"] > 0
        assert row["latency"]["queries"] == 2 and row["latency"]["p95_ms"] >= row["latency"]["p50_ms"] > 0
    assert [workload["size"] for workload in payload["workloads"]] == [200, 400]
    markdown = md_path.read_text()
    assert "### 200 chunks" in markdown and "### 400 chunks" in markdown
    for name in CANDIDATES:
        assert f"| {name} |" in markdown
    assert [path.name for path in tmp_path.glob("lexical-bench-*")] == []  # the engines' folders are gone
    md_path.unlink()
    render_from_json(json_path)
    assert md_path.read_text() == markdown


def test_config_rejects_unknown_engines_and_tiny_sizes() -> None:
    with pytest.raises(ValueError, match="unknown lexical engines"):
        LexicalBenchConfig(candidates=("lucene",))
    with pytest.raises(ValueError, match="exceed the update"):
        LexicalBenchConfig(sizes=(500,), update=1_000)
