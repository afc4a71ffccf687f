"""Searcher, funnel search, FAQ matcher and LangChain adapters over a small ingested corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest
from langchain_core.runnables import RunnableLambda

from jasper_rag.config import Settings
from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.search import EmptyStoreError, FAQMatcher, Searcher
from jasper_rag.search.faq import UncalibratedModelError, calibrate_faq_threshold
from jasper_rag.search.funnel import funnel_search
from jasper_rag.search.langchain import JasperEmbeddings, JasperRetriever
from jasper_rag.store import Store, StoreModelMismatchError, VectorIndex
from tests.conftest import make_tiny_encoder, stored_faq_cosine

DOCS = {
    "cats.txt": "the cat sat on the mat",
    "paris.md": "paris is the capital of france",
    "cells.txt": "protein cells and cancer risk",
    "fruit.html": "<html><body><p>apple and banana fruit</p></body></html>",
}


@pytest.fixture
def corpus(tmp_path, tiny_encoder, store_backend):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    (folder / "faq.csv").write_text("question,answer\nwhat is the capital of france,paris\nis the dog fast,yes\n")
    settings = Settings(indexes_dir=tmp_path / "idx")
    store = Store.open(settings)
    summary = ingest_paths([folder], tiny_encoder, store, settings, progress=False)
    assert summary.exit_code == 0
    return Searcher(store, tiny_encoder), folder


def test_exact_text_finds_its_own_chunk_with_citation(corpus) -> None:
    searcher, folder = corpus
    hits = searcher.search("protein cells and cancer risk", k=3, kinds=["chunk"])
    top = hits[0]
    assert top.path == str(folder / "cells.txt") and top.kind == "chunk" and top.chunk == 0
    assert top.score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert top.char_start == 0 and top.char_end == len(DOCS["cells.txt"])


def test_kinds_dims_and_file_type_filters(corpus) -> None:
    searcher, folder = corpus
    assert set(searcher.heads) == {"full", "d16", "d8"}
    faq = searcher.search("what is the capital of france", k=5, kinds=["faq"])
    assert {h.kind for h in faq} == {"faq"} and faq[0].answer == "paris"
    md_only = searcher.search("paris is the capital of france", k=5, file_types=["md"], kinds=["chunk"])
    assert [h.path for h in md_only] == [str(folder / "paris.md")]
    for dim in (48, 16, 8):
        assert len(searcher.search("apple", k=2, dim=dim)) == 2
    with pytest.raises(ValueError, match="no index of dimension 7"):
        searcher.search("apple", dim=7)
    batch = searcher.search_batch(["cat", "paris"], k=1)
    assert len(batch) == 2 and all(len(hits) == 1 for hits in batch)


def test_funnel_equals_exact_when_the_shortlist_covers_the_corpus(corpus) -> None:
    searcher, _ = corpus
    for query in DOCS.values():
        exact = searcher.search(query, k=3, kinds=["chunk"])
        funnel = searcher.search(query, k=3, kinds=["chunk"], funnel=True, shortlist=50, funnel_dim=8)
        assert [h.id for h in funnel] == [h.id for h in exact]
        np.testing.assert_allclose([h.score for h in funnel], [h.score for h in exact], atol=1e-5)


def test_empty_store_and_other_model_are_clear_errors(tmp_path, corpus) -> None:
    empty = Searcher(Store.open(Settings(indexes_dir=tmp_path / "empty")), make_tiny_encoder(tmp_path, {"full": 48}))
    with pytest.raises(EmptyStoreError, match="ingest documents first"):
        empty.search("anything")
    searcher, _ = corpus
    other = make_tiny_encoder(tmp_path, {"full": 48, "d16": 16, "d8": 8}, seed=7)
    with pytest.raises(StoreModelMismatchError, match="re-ingest"):
        Searcher(searcher.store, other)


def test_faq_matcher_answers_and_abstains(corpus) -> None:
    searcher, _ = corpus
    with pytest.raises(UncalibratedModelError, match="calibrate-faq"):
        FAQMatcher(searcher)
    question = "what is the capital of france"
    cosine = stored_faq_cosine(searcher.encoder, question, question, "paris")
    matcher = FAQMatcher(searcher, threshold=cosine - 1e-3)
    found = matcher.lookup("what is the capital of france")
    assert found.match is not None and found.match.answer == "paris"
    assert found.match.score == pytest.approx(cosine, abs=1e-4)  # the question and its answer, together
    abstained = matcher.lookup("banana")
    assert abstained.match is None and abstained.candidates and abstained.threshold == cosine - 1e-3


def test_calibration_learns_to_abstain(tiny_encoder) -> None:
    bank = ["the cat sat on the mat", "paris is the capital of france"]
    questions = ["the cat sat on the mat", "paris is the capital of france", "apple banana fruit"]
    calibration = calibrate_faq_threshold(tiny_encoder.at(48), bank, questions, [0, 1, None], target_precision=1.0)
    assert calibration.precision == 1.0 and calibration.coverage == pytest.approx(2 / 3)
    assert calibration.threshold > 0.99


def test_langchain_embeddings_and_retriever_in_an_lcel_chain(corpus) -> None:
    searcher, folder = corpus
    embeddings = JasperEmbeddings(searcher.encoder, dim=16)
    assert len(embeddings.embed_query("cat")) == 16
    assert np.array(embeddings.embed_documents(["cat", "dog"])).shape == (2, 16)
    retriever = JasperRetriever(searcher=searcher, k=2, search_options={"kinds": ["chunk"]})
    docs = retriever.invoke("the cat sat on the mat")
    assert docs[0].metadata["source"] == str(folder / "cats.txt")
    assert docs[0].metadata["score"] == pytest.approx(1.0, abs=1e-4)
    chain = retriever | RunnableLambda(lambda d: "\n\n".join(f"[{x.metadata['source']}] {x.page_content}" for x in d))
    assert "the cat sat on the mat" in chain.invoke("the cat sat on the mat")
    assert json.dumps(docs[0].metadata)  # plain JSON-able metadata


def test_funnel_search_on_raw_indexes_pads_missing() -> None:
    rng = np.random.default_rng(0)
    full = rng.normal(size=(5, 8)).astype(np.float32)
    full /= np.linalg.norm(full, axis=1, keepdims=True)
    small = full[:, :4] / np.linalg.norm(full[:, :4], axis=1, keepdims=True)
    full_index, small_index = VectorIndex.create(8), VectorIndex.create(4)
    ids = np.arange(10, 15)
    full_index.add(ids, full)
    small_index.add(ids, small)
    scores, found = funnel_search(small_index, full_index, small[:1], full[:1], k=7, shortlist=7)
    assert found[0, 0] == 10 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert list(found[0, 5:]) == [-1, -1]
