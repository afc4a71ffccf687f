"""The search-modes bench (``jasper_rag.bench.hybrid``): vectors, the store it builds, the timings, the reports.

Fast: a tiny SciFact-like eval folder, the tiny random encoder, 300 chunks.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from jasper_rag.bench.hybrid import (
    MODES,
    HybridBenchConfig,
    chunk_vectors,
    passage_vectors,
    render_from_json,
    run_hybrid_bench,
)
from jasper_rag.config import Settings
from tests.conftest import TINY_WORDS, make_tiny_encoder


def write_scifact(folder: Path, documents: int = 40, queries: int = 8) -> None:
    """A tiny BEIR folder of words the tiny encoder knows: 12-sentence documents, queries with test qrels."""
    rng = random.Random(3)

    def sentence() -> str:
        return " ".join(rng.choice(TINY_WORDS) for _ in range(rng.randint(6, 12))) + "."

    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as handle:
        for number in range(documents):
            text = " ".join(sentence() for _ in range(12))
            handle.write(json.dumps({"_id": f"d{number}", "title": "", "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as handle:
        for number in range(queries):
            handle.write(json.dumps({"_id": f"q{number}", "text": sentence()}) + "\n")
    rows = "".join(f"q{number}\td{number}\t1\n" for number in range(queries))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)


@pytest.fixture
def eval_dir(tmp_path: Path) -> Path:
    write_scifact(tmp_path / "eval" / "scifact")
    return tmp_path / "eval"


def test_chunk_vectors_keep_real_ones_and_perturb_the_drawn() -> None:
    rng = np.random.default_rng(0)
    base = {
        "full": rng.standard_normal((4, 16)).astype(np.float32),
        "d4": rng.standard_normal((4, 4)).astype(np.float32),
    }
    base = {head: v / np.linalg.norm(v, axis=1, keepdims=True) for head, v in base.items()}
    texts = ["a", "b", "c", "d"]
    chunks = ["c", "a", "x", "y", "z"]
    found, own = chunk_vectors(chunks, texts, base, noise=0.1, seed=0)
    again, _ = chunk_vectors(chunks, texts, base, noise=0.1, seed=0)
    assert own == 2
    for head in base:
        assert found[head].shape == (5, base[head].shape[1]) and found[head].dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(found[head], axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(found[head], again[head])  # seeded
        np.testing.assert_allclose(found[head][:2], base[head][[2, 0]], atol=1e-6)  # real chunks: own vectors
        best = (found[head][2:] @ base[head].T).max(axis=1)
        assert np.all(best > 0.9) and np.all(best < 1.0)  # near one real passage, not equal to it


def test_passage_vectors_are_cached(tmp_path: Path) -> None:
    encoder = make_tiny_encoder(tmp_path, {"full": 12, "d4": 4})
    texts = ["the cat sat on the mat", "protein cell gene"]
    first, _, cached = passage_vectors(encoder, texts, tmp_path / "cache", 8)
    second, seconds, again = passage_vectors(encoder, texts, tmp_path / "cache", 8)
    assert not cached and again and seconds == 0.0
    assert set(first) == {"full", "d4"}
    for head in first:
        np.testing.assert_array_equal(first[head], second[head])


def test_the_suite_builds_a_store_times_every_mode_and_writes_the_reports(tmp_path: Path, eval_dir: Path) -> None:
    from jasper_rag.search import searcher as searcher_module
    from jasper_rag.search.searcher import Hit
    from jasper_rag.store.lexical_index import QueryWords

    before = (searcher_module.hybrid_rank, QueryWords.__dict__["found_in"], Hit.__dict__["from_entry"])
    encoder = make_tiny_encoder(tmp_path, {"full": 48, "d16": 16, "d8": 8})
    config = HybridBenchConfig(
        sizes=(300,),
        queries=6,
        warmup=1,
        profile_queries=3,
        chunks_per_document=20,
        commit_chunks=100,
        measure_peak=False,
        embedded_passages=25,
    )
    settings = Settings(cache_dir=tmp_path / "cache", indexes_dir=tmp_path / "unused")
    files = run_hybrid_bench(
        config,
        eval_dir,
        tmp_path / "reports",
        settings=settings,
        encoder=encoder,
        encoder_label="tiny",
        work_dir=tmp_path,
    )
    assert [path.name for path in files] == ["hybrid.json", "hybrid.md"]
    payload = json.loads(files[0].read_text())
    assert payload["model"] == "tiny" and payload["heads"] == {"full": 48, "d16": 16, "d8": 8}
    (row,) = payload["sizes"]
    assert row["size"] == 300 and 0 < row["real_passages"] < 300
    assert payload["real_passages"]["embedded"] == 25 and 0 < row["own_vectors"] <= 25
    build = row["build"]
    assert build["commits"] == 3 and build["documents"] == 15
    assert {"tantivy", "sqlite"} <= set(build["sizes_mib"]) and len(build["sizes_mib"]) == 5  # + 3 FAISS heads
    assert set(row["latency"]) == set(MODES)
    for variants in row["latency"].values():
        for variant in ("with_embedding", "search_only"):
            figures = variants[variant]
            assert figures["queries"] == 6 and 0 < figures["p50_ms"] <= figures["p95_ms"]
    assert row["ratios"]["hybrid mix / dense"]["search_only p50"] > 0
    profile = row["profile"]
    assert set(profile) == set(MODES)
    assert profile["hybrid mix"]["lexical: tantivy search"] > 0 and profile["dense"]["dense: FAISS shortlist"] > 0
    assert "lexical: tantivy search" not in profile["dense"]
    total = sum(
        value
        for stage, value in profile["hybrid rrf"].items()
        if stage not in ("total search only", "query embedding (separately)")
    )
    assert total == pytest.approx(profile["hybrid rrf"]["total search only"])
    markdown = files[1].read_text()
    assert "## 300 chunks" in markdown and "hybrid mix / dense" in markdown and "stored-id loads" in markdown
    files[1].unlink()
    assert render_from_json(files[0])[1].read_text() == markdown
    assert not list(tmp_path.glob("hybrid-bench-*"))  # the store was removed
    # the profile's wrappers are gone
    assert (searcher_module.hybrid_rank, QueryWords.__dict__["found_in"], Hit.__dict__["from_entry"]) == before
