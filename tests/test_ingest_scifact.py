"""Integration: SciFact abstracts as .txt files (the ones 100 queries need, plus distractors), ingested with
all-MiniLM-L6-v2 in 128-token chunks, then searched with the queries."""

from __future__ import annotations

import csv
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from jasper_rag.config import Settings
from jasper_rag.encoder import load_encoder
from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.store import POOLED
from jasper_rag.store.doctor import check
from tests.ingest_support import make_store

pytestmark = pytest.mark.integration

QUERIES = 100  # the first queries of the qrels, with every document relevant to them
EXTRA_DOCS = 50  # documents no query asks for, as distractors


def write_scifact(eval_dir: Path, folder: Path) -> dict[str, set[str]]:
    """The qrels' documents (plus distractors) as ``<id>.txt``; returns query text -> relevant doc ids."""
    scifact = eval_dir / "scifact"
    with (scifact / "qrels" / "test.tsv").open() as handle:
        qrels = [(row["query-id"], row["corpus-id"]) for row in csv.DictReader(handle, delimiter="\t")]
    kept = list(dict.fromkeys(query for query, _ in qrels))[:QUERIES]
    qrels = [(query, doc) for query, doc in qrels if query in kept]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (scifact / "queries.jsonl").read_text().splitlines())}
    wanted = {doc for _, doc in qrels}
    folder.mkdir()
    extra = 0
    for line in (scifact / "corpus.jsonl").read_text().splitlines():
        doc = json.loads(line)
        if doc["_id"] in wanted or extra < EXTRA_DOCS:
            extra += doc["_id"] not in wanted
            (folder / f"{doc['_id']}.txt").write_text(f"{doc['title']}\n\n{doc['text']}".strip())
    relevant: dict[str, set[str]] = defaultdict(set)
    for query_id, doc in qrels:
        relevant[queries[query_id]].add(doc)
    return relevant


def test_scifact_subset_ingests_and_is_searchable(tmp_path, eval_dir):
    relevant = write_scifact(eval_dir, tmp_path / "scifact")
    encoder = load_encoder("minilm-l6", device="cpu")
    store = make_store(tmp_path)
    settings = Settings(chunk_tokens=128, chunk_overlap=16)
    summary = ingest_paths([tmp_path / "scifact"], encoder, store, settings, progress=False)
    print(summary.render())
    assert summary.exit_code == 0
    assert check(store).consistent and store.heads == {POOLED: 384}

    started = time.perf_counter()
    queries = list(relevant)
    vectors = encoder.encode(queries, dim=None)
    _, ids = store.index("chunk", POOLED).search(vectors, 50)
    hits = 0
    for query, row in zip(queries, ids, strict=True):
        ranked = list(dict.fromkeys(Path(view.path).stem for view in store.fetch(row[row >= 0])))[:10]
        hits += bool(relevant[query] & set(ranked))
    recall = hits / len(queries)
    print(f"{len(queries)} queries: any-relevant@10 = {recall:.3f} in {time.perf_counter() - started:.1f} s")
    assert recall >= 0.75
    assert np.unique(store.index("chunk", POOLED).ids()).size == store.index("chunk", POOLED).ntotal
