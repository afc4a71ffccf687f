"""JasperRetriever's search options: at construction, per call (that call only), validation; document metadata."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from jasper_rag.search.langchain import JasperRetriever, hit_to_document
from jasper_rag.search.options import SearchOptions
from jasper_rag.search.searcher import Searcher


def fake_hit(i: int, **extra: Any) -> SimpleNamespace:
    fields = {
        "id": i,
        "kind": "chunk",
        "text": f"text {i}",
        "path": f"/docs/{i}.pdf",
        "file_type": "pdf",
        "page": 1,
        "chunk": i,
        "answer": None,
        "ocr": False,
        "score": 1.0 - i / 10,
    }
    return SimpleNamespace(**{**fields, **extra})


class FakeSearcher(Searcher):
    """The searcher's contract (its own default ``options``; ``search(query, k=None, *, options=None,
    **changes)``) without a store or a model: records the options of each call."""

    def __init__(self, options: SearchOptions | None = None) -> None:
        self.options = options or SearchOptions()
        self.calls: list[SearchOptions] = []

    def search(self, query: str, k: int | None = None, *, options: SearchOptions | None = None, **changes: Any):
        resolved = (options or self.options).with_changes(**changes, **({} if k is None else {"k": k}))
        self.calls.append(resolved)
        return [fake_hit(i, mode=resolved.mode) for i in range(resolved.k)]


@pytest.fixture
def searcher() -> FakeSearcher:
    return FakeSearcher()


def test_flat_construction_options_are_used(searcher) -> None:
    retriever = JasperRetriever(searcher=searcher, k=2, mode="dense", dim=128, file_types=["pdf"])
    assert retriever.k == 2 and retriever.search_kwargs == {"mode": "dense", "dim": 128, "file_types": ["pdf"]}
    assert retriever.options == SearchOptions(k=2, mode="dense", dim=128, file_types=("pdf",))
    docs = retriever.invoke("query")
    assert len(docs) == 2 and searcher.calls[-1] == retriever.options


def test_options_record_search_kwargs_and_the_old_search_options_name(searcher) -> None:
    record = SearchOptions(k=3, mode="lexical", kinds=("chunk",))
    from_record = JasperRetriever(searcher=searcher, options=record)
    assert from_record.k == 3 and from_record.options == record
    assert len(from_record.invoke("query")) == 3 and searcher.calls[-1] == record
    kwargs = JasperRetriever(searcher=searcher, search_kwargs={"k": 1, "fusion": "rrf"})
    assert kwargs.k == 1 and kwargs.search_kwargs == {"fusion": "rrf"}
    old = JasperRetriever(searcher=searcher, k=2, search_options={"kinds": ["chunk"]})
    assert old.search_kwargs == {"kinds": ["chunk"]} and old.options.kinds == ("chunk",)
    default = JasperRetriever(searcher=searcher)
    assert default.k == 4 and default.search_kwargs == {} and len(default.invoke("query")) == 4


def test_options_not_given_are_the_searchers(searcher) -> None:
    searcher = FakeSearcher(SearchOptions(mode="lexical", fusion="rrf", k=7))
    retriever = JasperRetriever(searcher=searcher, k=2, dim=16)
    assert retriever.options == SearchOptions(mode="lexical", fusion="rrf", k=2, dim=16)
    retriever.invoke("query")
    assert searcher.calls[-1] == retriever.options


def test_per_call_options_apply_to_that_call_only(searcher) -> None:
    retriever = JasperRetriever(searcher=searcher, k=3, mode="dense", kinds=["chunk"])
    docs = retriever.invoke("query", k=1, mode="lexical", funnel=True)
    assert len(docs) == 1 and docs[0].metadata["mode"] == "lexical"
    assert searcher.calls[-1] == SearchOptions(k=1, mode="lexical", kinds=("chunk",), funnel=True)
    again = retriever.invoke("query")
    assert len(again) == 3 and searcher.calls[-1] == SearchOptions(k=3, mode="dense", kinds=("chunk",))
    assert retriever.k == 3 and retriever.search_kwargs == {"mode": "dense", "kinds": ["chunk"]}
    assert len(retriever.invoke("query", None, verbose=True)) == 3  # a LangChain run keyword, not an option


def test_per_call_options_in_ainvoke_and_batch(searcher) -> None:
    retriever = JasperRetriever(searcher=searcher, k=3)
    docs = asyncio.run(retriever.ainvoke("query", k=1, mode="dense"))
    assert len(docs) == 1 and searcher.calls[-1] == SearchOptions(k=1, mode="dense")
    assert len(asyncio.run(retriever.ainvoke("query"))) == 3
    assert [len(d) for d in retriever.batch(["a", "b"])] == [3, 3]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"k": 0}, "'k'"),
        ({"mode": "fuzzy"}, "'mode'"),
        ({"fusion": "max"}, "'fusion'"),
        ({"dense_weight": 1.5}, "'dense_weight'"),
        ({"dense_weight": "half"}, "'dense_weight'"),
        ({"dim": 0}, "'dim'"),
        ({"shortlist": 0}, "'shortlist'"),
        ({"modee": "dense"}, "modee"),
    ],
)
def test_invalid_options_raise_value_error_naming_the_option(searcher, options, named) -> None:
    with pytest.raises(ValueError, match=named):
        JasperRetriever(searcher=searcher, **options)
    with pytest.raises(ValueError, match=named):
        JasperRetriever(searcher=searcher, search_kwargs=options)
    retriever = JasperRetriever(searcher=searcher, k=2)
    with pytest.raises(ValueError, match=named):
        retriever.invoke("query", **options)
    with pytest.raises(ValueError, match=named):
        asyncio.run(retriever.ainvoke("query", **options))
    assert searcher.calls == []  # nothing reached the searcher


def test_one_option_from_two_sources_is_an_error(searcher) -> None:
    with pytest.raises(ValueError, match="'k' given twice"):
        JasperRetriever(searcher=searcher, k=2, search_kwargs={"k": 3})
    with pytest.raises(ValueError, match="'mode' given twice"):
        JasperRetriever(searcher=searcher, options=SearchOptions(mode="dense"), mode="lexical")
    with pytest.raises(ValueError, match="search_kwargs or search_options"):
        JasperRetriever(searcher=searcher, search_kwargs={}, search_options={})
    with pytest.raises(ValueError, match="SearchOptions"):
        JasperRetriever(searcher=searcher, options={"k": 2})
    same = JasperRetriever(searcher=searcher, options=SearchOptions(k=2, file_types=("pdf",)), file_types=["pdf"])
    assert same.options == SearchOptions(k=2, file_types=("pdf",))


def test_metadata_keeps_raw_scores_and_hybrid_fields() -> None:
    hit = fake_hit(
        0,
        score=0.031,
        cosine=0.83,
        bm25=7.25,
        dense_rank=2,
        lexical_rank=1,
        matched=("cat", "mat"),
        mode="hybrid",
        answer="yes",
    )
    metadata = hit_to_document(hit).metadata
    assert metadata == {
        "source": "/docs/0.pdf",
        "page": 1,
        "chunk": 0,
        "id": 0,
        "kind": "chunk",
        "file_type": "pdf",
        "score": 0.031,
        "ocr": False,
        "cosine": 0.83,
        "bm25": 7.25,
        "dense_rank": 2,
        "lexical_rank": 1,
        "matched_terms": ["cat", "mat"],
        "mode": "hybrid",
        "answer": "yes",
    }
    assert json.loads(json.dumps(metadata)) == metadata
    dense_only = hit_to_document(fake_hit(1, cosine=0.5, bm25=None, lexical_rank=None, matched=(), mode="dense"))
    assert dense_only.metadata["cosine"] == 0.5 and dense_only.metadata["mode"] == "dense"
    assert not {"bm25", "lexical_rank", "matched_terms", "answer"} & set(dense_only.metadata)


def test_real_searcher_per_call_mode_and_k(tmp_path, tiny_encoder, one_torch_thread) -> None:
    from jasper_rag.config import Settings
    from jasper_rag.ingest.pipeline import ingest_paths
    from jasper_rag.store import Store

    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in {"cats.txt": "the cat sat on the mat", "paris.md": "paris is the capital of france"}.items():
        (folder / name).write_text(text)
    settings = Settings(indexes_dir=tmp_path / "idx")
    store = Store.open(settings)
    assert ingest_paths([folder], tiny_encoder, store, settings, progress=False).exit_code == 0
    retriever = JasperRetriever(searcher=Searcher(store, tiny_encoder), k=2, mode="dense", kinds=["chunk"])
    dense = retriever.invoke("the cat sat on the mat")
    assert len(dense) == 2 and dense[0].metadata["source"] == str(folder / "cats.txt")
    assert dense[0].metadata["mode"] == "dense" and dense[0].metadata["score"] == dense[0].metadata["cosine"]
    assert dense[0].metadata["cosine"] == pytest.approx(1.0, abs=1e-4)  # raw cosine
    lexical = retriever.invoke("cat on a mat", k=1, mode="lexical")
    assert len(lexical) == 1 and lexical[0].metadata["mode"] == "lexical"
    assert lexical[0].metadata["source"] == str(folder / "cats.txt") and lexical[0].metadata["bm25"] > 0
    assert {"cat", "mat"} <= set(lexical[0].metadata["matched_terms"])
    assert json.dumps(lexical[0].metadata)
    again = asyncio.run(retriever.ainvoke("the cat sat on the mat"))
    assert len(again) == 2 and {d.metadata["mode"] for d in again} == {"dense"}
