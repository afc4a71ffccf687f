"""Search modes (dense / lexical / hybrid), filters inside the search, and the store's lexical index lifecycle.

Tests that take ``corpus`` run on FAISS + tantivy and on Milvus (whose lexical side is its own BM25, in the
rows of its vectors); ``tantivy_corpus`` tests are about tantivy's generation folders."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from sqlalchemy import delete

from jasper_rag.config import Settings
from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.search import EmptyStoreError, Searcher
from jasper_rag.store import Store
from jasper_rag.store.doctor import check, repair
from jasper_rag.store.lexical_index import LexicalIndex
from jasper_rag.store.models import StoreMeta
from jasper_rag.store.store import LEXICAL_KEY

FILLER = "notes about weather gardens rivers and mountains in spring"


def _ingest(folder, encoder, settings) -> None:
    store = Store.open(settings)
    try:
        summary = ingest_paths([folder], encoder, store, settings, progress=False)
        assert summary.exit_code == 0
    finally:
        store.close()


@pytest.fixture
def corpus(tmp_path, tiny_encoder, store_backend):
    return _corpus(tmp_path, tiny_encoder)


@pytest.fixture
def tantivy_corpus(tmp_path, tiny_encoder):
    return _corpus(tmp_path, tiny_encoder)


def _corpus(tmp_path, tiny_encoder) -> tuple[Searcher, object, Settings]:
    folder = tmp_path / "docs"
    (folder / "many").mkdir(parents=True)
    (folder / "few").mkdir()
    for number in range(24):
        (folder / "many" / f"note{number:02d}.txt").write_text(f"{FILLER} number {number}")
    for number in range(3):
        page = f"# Page {number}\n\nthe release notes mention part XJ-4471 {number}"
        (folder / "few" / f"page{number}.md").write_text(page)
    (folder / "faq.csv").write_text("question,answer\nhow do I reset my password,use the reset link\n")
    settings = Settings(indexes_dir=tmp_path / "idx")
    _ingest(folder, tiny_encoder, settings)
    return Searcher(Store.open(settings), tiny_encoder), folder, settings


def test_lexical_finds_a_rare_identifier_with_evidence(corpus) -> None:
    searcher, folder, _ = corpus
    hits = searcher.search("where is XJ-4471 mentioned", k=3, mode="lexical")
    assert len(hits) == 3 and all(hit.path.startswith(str(folder / "few")) for hit in hits)
    top = hits[0]
    assert top.mode == "lexical" and top.bm25 == top.score and top.bm25 > 0
    assert top.lexical_rank == 1 and top.cosine is None and top.dense_rank is None
    assert top.matched == ("XJ-4471", "mentioned")  # stems match ("mention"); stop words never do


def test_hybrid_scores_every_candidate_on_both_sides(corpus) -> None:
    searcher, _, _ = corpus
    for fusion in ("mix", "rrf"):
        hits = searcher.search("release notes XJ-4471", k=5, fusion=fusion)
        assert len(hits) == 5 and all(hit.mode == "hybrid" for hit in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert all(hit.cosine is not None and hit.dense_rank for hit in hits)
        assert hits[0].bm25 is not None and hits[0].lexical_rank is not None
    # all weight on the dense side: the cosines of dense search (the tiny model has ties, so not the ids)
    dense = searcher.search("release notes XJ-4471", k=5, mode="dense")
    weighted = searcher.search("release notes XJ-4471", k=5, dense_weight=1.0)
    assert [h.cosine for h in weighted] == pytest.approx([h.score for h in dense], abs=1e-5)


def test_filters_are_applied_inside_the_search_and_return_k(corpus) -> None:
    searcher, folder, _ = corpus
    for mode in ("dense", "lexical", "hybrid"):
        query = "notes about weather" if mode != "lexical" else "release notes"
        by_type = searcher.search(query, k=3, mode=mode, file_types=["md"], kinds=["chunk"])
        assert len(by_type) == 3 and {h.path.rsplit(".", 1)[1] for h in by_type} == {"md"}, mode
        by_folder = searcher.search(query, k=3, mode=mode, path_prefix=str(folder / "few") + "/")
        assert len(by_folder) == 3 and all(h.path.startswith(str(folder / "few") + "/") for h in by_folder), mode
    assert searcher.search("notes", k=3, path_prefix=str(folder / "fe")) == []  # a prefix is a folder, not a string
    assert searcher.search("notes", k=3, file_types=["pdf"]) == []


def test_options_are_validated_by_name(corpus) -> None:
    searcher, _, _ = corpus
    with pytest.raises(ValueError, match=r"unknown search option.*colour"):
        searcher.search("notes", colour="red")
    with pytest.raises(ValueError, match="'mode' must be one of dense, lexical, hybrid"):
        searcher.search("notes", mode="fuzzy")
    with pytest.raises(ValueError, match="'dense_weight'"):
        searcher.search("notes", dense_weight=2.0)


@pytest.mark.parametrize("query", ['title:x AND (NOT "open', "the and of", "***", "ünïcödé ✓ 4471"])
def test_any_query_text_is_words_never_syntax(corpus, query) -> None:
    searcher, _, _ = corpus
    lexical = searcher.search(query, k=3, mode="lexical")
    hybrid = searcher.search(query, k=3)
    assert len(hybrid) == 3  # the dense side always has candidates
    assert all(hit.bm25 is not None for hit in lexical)


def test_lexical_index_follows_changes_and_deletions(corpus, tiny_encoder) -> None:
    searcher, folder, settings = corpus
    (folder / "few" / "page0.md").write_text("# Page 0\n\nnow about zygomorphic flowers")
    (folder / "few" / "page1.md").unlink()
    _ingest(folder, tiny_encoder, settings)
    found = searcher.search("zygomorphic", k=5, mode="lexical")
    assert [h.path for h in found] == [str(folder / "few" / "page0.md")]
    assert {h.path for h in searcher.search("XJ-4471", k=5, mode="lexical")} == {str(folder / "few" / "page2.md")}
    store = searcher.store
    folders = sorted(p.name for p in store.index_dir.iterdir() if ".lexical." in p.name)
    assert len(folders) <= 2  # the current generation and the previous one, for readers still on it
    assert check(store).lexical.ok


def test_a_failed_commit_leaves_the_lexical_index_as_it_was(corpus, tiny_encoder, monkeypatch, store_backend) -> None:
    searcher, folder, settings = corpus
    before = searcher.store.lexical_generation

    def fail(self, *args):
        raise OSError(28, "No space left on device")

    if store_backend == "milvus":  # the lexical side is written with the vectors: fail right after that upsert
        from jasper_rag.store.milvus_vectors import MilvusVectors

        upsert = MilvusVectors.write

        def upsert_and_fail(self, *args) -> None:
            upsert(self, *args)
            fail(self)

        monkeypatch.setattr(MilvusVectors, "write", upsert_and_fail)
    else:
        monkeypatch.setattr(LexicalIndex, "commit", fail)
    (folder / "few" / "page2.md").write_text("# Page 2\n\nquokka")
    store = Store.open(settings)
    with pytest.raises(OSError, match="No space left"):
        ingest_paths([folder], tiny_encoder, store, settings, progress=False)
    store.close()
    monkeypatch.undo()
    assert searcher.search("quokka", k=3, mode="lexical") == []
    assert searcher.store.lexical_generation == before
    report = check(searcher.store)
    assert report.consistent, report.render()


def test_doctor_reports_and_rebuilds_a_lost_lexical_index(tantivy_corpus) -> None:
    searcher, _, _ = tantivy_corpus
    store = searcher.store
    shutil.rmtree(store.lexical_path(store.lexical_generation))
    report = check(store)
    assert not report.consistent and "lexical" in report.render()
    fixed = repair(store)
    assert fixed.consistent, fixed.render()
    assert len(searcher.search("XJ-4471", k=3, mode="lexical")) == 3


def test_store_without_lexical_index_searches_dense_until_a_writer_builds_it(tantivy_corpus, caplog) -> None:
    searcher, _, _ = tantivy_corpus
    store = searcher.store
    with store.sessions() as session, session.begin():
        session.execute(delete(StoreMeta).where(StoreMeta.key == LEXICAL_KEY))
    for path in store.index_dir.iterdir():
        if ".lexical." in path.name:
            shutil.rmtree(path)
    with caplog.at_level(logging.WARNING):
        hits = searcher.search("release notes", k=3)
    assert hits and all(hit.mode == "dense" for hit in hits)
    assert "no lexical index" in caplog.text
    with pytest.raises(EmptyStoreError, match="no lexical index"):
        searcher.search("release notes", k=3, mode="lexical")
    with store.writer():
        pass  # opening a writer builds it from the stored texts
    assert len(searcher.search("XJ-4471", k=3, mode="lexical")) == 3
    assert check(store).consistent


def test_cli_search_modes_evidence_and_clear_errors(tmp_path, monkeypatch, fresh_settings) -> None:
    from typer.testing import CliRunner

    from jasper_rag.cli import app
    from jasper_rag.config import get_settings
    from tests.ingest_support import save_tiny_model

    model = save_tiny_model(tmp_path / "model")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "parts.txt").write_text("the release notes mention part XJ-4471")
    (folder / "other.txt").write_text(FILLER)
    monkeypatch.setenv("JASPER_INDEXES_DIR", str(tmp_path / "idx"))
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(folder), "--model", str(model), "-q"]).exit_code == 0
    result = runner.invoke(app, ["search", "XJ-4471", "--model", str(model), "--mode", "lexical", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert len(hits) == 1 and hits[0]["path"].endswith("parts.txt") and hits[0]["matched"] == ["XJ-4471"]
    result = runner.invoke(app, ["search", "XJ-4471 notes", "--model", str(model), "--folder", str(folder)])
    assert result.exit_code == 0 and "hybrid" in result.output and "bm25" in result.output
    result = runner.invoke(app, ["search", "x", "--model", str(model), "--mode", "fuzzy"])
    assert result.exit_code == 1 and "search failed" in result.output and "'mode' must be one of" in result.output


def test_a_pasted_page_as_query_is_bounded(corpus) -> None:
    from jasper_rag.store.lexical_index import MAX_QUERY_TERMS, QueryWords

    searcher, _, _ = corpus
    page = " ".join(f"word{number} XJ-4471" for number in range(5000))
    assert len(QueryWords(page).words) == MAX_QUERY_TERMS
    hits = searcher.search(page, k=3, mode="lexical")
    assert len(hits) <= 3 and len(hits[0].matched) <= MAX_QUERY_TERMS
