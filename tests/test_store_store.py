"""Store: commits of rows + vectors, the model guard, generations and crash safety, doctor check/repair.

Tests that take ``store_backend`` run on FAISS and on Milvus Lite; the Milvus backend's own crash and
repair cases are in test_store_milvus.py."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text

from jasper_rag.embedding import normalize_rows
from jasper_rag.store import (
    Chunk,
    DocumentRecord,
    DocumentStatus,
    FaqEntry,
    ModelIdentity,
    Store,
    StoreModelMismatchError,
    VectorIndex,
)
from jasper_rag.store.doctor import check, repair
from tests.ingest_support import DATABASES, database_url

HEADS = {"full": 12, "d4": 4}
MODEL = ModelIdentity("fp-one", "tiny", HEADS)


@pytest.fixture(params=DATABASES)
def db_url(request, tmp_path):
    """Each test that takes it runs on SQLite and, when JASPER_TEST_PG_URL is set, on PostgreSQL."""
    with database_url(request.param, tmp_path) as url:
        yield url


def make_store(tmp_path, url: str | None = None) -> Store:
    store = Store(url or f"sqlite:///{tmp_path / 'meta.db'}", tmp_path / "indexes")
    store.bind_model(MODEL)
    return store


def record(path: str, texts: list[str], seed: int = 0, faq: bool = False) -> DocumentRecord:
    rng = np.random.default_rng(seed)
    if faq:
        entries = [FaqEntry(ordinal=i, text=t, answer=f"answer {i}", embedded=True) for i, t in enumerate(texts)]
    else:
        entries = [
            Chunk(ordinal=i, text=t, page=1, char_start=0, char_end=len(t), embedded=True) for i, t in enumerate(texts)
        ]
    vectors = {head: normalize_rows(rng.standard_normal((len(texts), dim))) for head, dim in HEADS.items()}
    return DocumentRecord(path, "text", DocumentStatus.INGESTED, "hash-" + path, entries=entries, vectors=vectors)


def ids_of(store: Store, kind: str = "chunk", head: str = "full") -> list[int]:
    return sorted(store.index(kind, head).ids().tolist())


def test_commit_writes_rows_and_one_index_per_kind_and_head(tmp_path, db_url, store_backend):
    store = make_store(tmp_path, db_url)
    with store.writer():
        store.commit([record("/a.txt", ["alpha", "beta"]), record("/q.csv", ["why?"], faq=True)])
    assert store.kinds() == ["chunk", "faq"]
    assert {key: state.dim for key, state in store.index_states().items()} == {
        ("chunk", "full"): 12,
        ("chunk", "d4"): 4,
        ("faq", "full"): 12,
        ("faq", "d4"): 4,
    }
    chunk_ids = ids_of(store)
    views = store.fetch([chunk_ids[1], 10_000, chunk_ids[0]])
    assert [v.text for v in views] == ["beta", "alpha"] and views[0].path == "/a.txt" and views[0].page == 1
    faq = store.fetch(ids_of(store, "faq"))[0]
    assert (faq.kind, faq.text, faq.answer) == ("faq", "why?", "answer 0")
    assert not set(chunk_ids) & set(ids_of(store, "faq"))  # one id space across kinds
    assert check(store).consistent


def test_sqlite_runs_in_wal_mode(tmp_path):
    store = make_store(tmp_path)
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_replacing_and_deleting_documents_changes_exactly_their_vectors(tmp_path, db_url, store_backend):
    store = make_store(tmp_path, db_url)
    with store.writer():
        store.commit([record("/a", ["a1", "a2"]), record("/b", ["b1"]), record("/c", ["c1", "c2"])])
        before = {view.path: view.id for view in store.fetch(ids_of(store))}
        store.commit([record("/a", ["a1 edited"], seed=1)], deleted_paths=["/b"])
    after = store.fetch(ids_of(store))
    assert sorted(v.text for v in after) == ["a1 edited", "c1", "c2"]
    c_ids = [v.id for v in after if v.path == "/c"]
    assert before["/c"] in c_ids  # untouched document keeps its ids
    assert [d.path for d in store.documents()] == ["/a", "/c"]
    assert ids_of(store, head="d4") == ids_of(store)
    assert check(store).consistent


def test_a_second_model_is_refused_while_vectors_exist(tmp_path, db_url, store_backend):
    store = make_store(tmp_path, db_url)
    with store.writer():
        store.commit([record("/a", ["x"])])
    other = ModelIdentity("fp-two", "other", {"full": 8})
    store.check_model(MODEL)
    for refuse in (store.check_model, store.bind_model):
        with pytest.raises(StoreModelMismatchError, match="--rebuild"):
            refuse(other)
    with store.writer():
        store.clear()
    store.bind_model(other)
    assert store.heads == {"full": 8} and store.kinds() == []


def test_readers_keep_the_old_generation_until_commit_and_then_see_the_new(tmp_path, db_url):
    store = make_store(tmp_path, db_url)
    reader = Store(store.url, store.index_dir)
    with store.writer():
        store.commit([record("/a", ["a"])])
        reader.refresh()
        old = reader.index("chunk", "full")
        store.commit([record("/b", ["b"])])
    assert old.ntotal == 1  # a loaded index never changes under a reader
    reader.refresh()
    assert reader.index("chunk", "full").ntotal == 2


def test_a_reader_sees_a_rebuilt_store_not_its_cached_index(tmp_path, store_backend):
    store = make_store(tmp_path)
    reader = Store(store.url, store.index_dir)
    with store.writer():
        store.commit([record("/a", ["a1", "a2"])])
    reader.refresh()
    assert len(ids_of(reader)) == 2
    with store.writer():  # `ingest --rebuild`: generations go on from where they were, never back
        store.clear()
        store.bind_model(MODEL)
        store.commit([record("/b", ["b1"])])
    reader.refresh()
    assert [v.text for v in reader.fetch(ids_of(reader))] == ["b1"]
    assert check(store).consistent


def test_a_crash_while_writing_indexes_leaves_the_committed_state(tmp_path, monkeypatch, db_url):
    store = make_store(tmp_path, db_url)
    with store.writer():
        store.commit([record("/a", ["a1", "a2"])])
    saves = []
    original = VectorIndex.save

    def save_then_die(self, path):
        saves.append(path)
        if len(saves) == 2:
            raise KeyboardInterrupt  # dies after one of the new index files was written
        original(self, path)

    monkeypatch.setattr(VectorIndex, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt), store.writer():
        store.commit([record("/a", ["changed"], seed=3), record("/b", ["b1"])])
    monkeypatch.undo()
    report = check(store)
    assert report.consistent and report.garbage  # the orphan new generation is garbage, not drift
    assert [v.text for v in store.fetch(ids_of(store))] == ["a1", "a2"]
    with store.writer():  # the next writer cleans up and succeeds
        store.commit([record("/a", ["changed"], seed=3), record("/b", ["b1"])])
    assert check(store).consistent and not check(store).garbage
    assert sorted(v.text for v in store.fetch(ids_of(store))) == ["b1", "changed"]


def test_doctor_finds_and_repairs_every_kind_of_drift(tmp_path, db_url):
    store = make_store(tmp_path, db_url)
    with store.writer():
        store.commit([record("/a", ["a1", "a2"]), record("/b", ["b1"]), record("/q", ["q?"], faq=True)])
    a_ids = [v.id for v in store.fetch(ids_of(store)) if v.path == "/a"]
    # drift 1: a vector of /a lost from one head; drift 2: a vector without a row; drift 3: a duplicate
    index = store.index("chunk", "d4")
    vectors = index.reconstruct(np.array(a_ids[:1]))
    index.remove(np.array(a_ids[:1]))
    index.add(np.array([999]), vectors)
    state = store.index_states()[("chunk", "d4")]
    index.save(store.index_path("chunk", "d4", state.generation))
    full = store.index("chunk", "full")
    full.add(np.array(a_ids[1:2]), full.reconstruct(np.array(a_ids[1:2])))
    full.save(store.index_path("chunk", "full", store.index_states()[("chunk", "full")].generation))
    # drift 4: an index file deleted
    store.index_path("faq", "d4", store.index_states()[("faq", "d4")].generation).unlink()
    store = Store(store.url, store.index_dir)  # a fresh process's view of the damaged files

    report = check(store)
    assert not report.consistent
    problems = {f"{c.kind}/{c.head}": c for c in report.checks if not c.ok}
    assert set(problems) == {"chunk/d4", "chunk/full", "faq/d4"}
    assert problems["chunk/d4"].missing.tolist() == a_ids[:1] and problems["chunk/d4"].extra.tolist() == [999]
    assert problems["chunk/full"].duplicates.tolist() == a_ids[1:2]
    assert "unreadable" in problems["faq/d4"].error

    fixed = repair(store)
    assert fixed.consistent, fixed.render()
    statuses = {d.path: d.status for d in store.documents()}
    assert statuses == {"/a": DocumentStatus.STALE, "/b": DocumentStatus.INGESTED, "/q": DocumentStatus.STALE}
    assert [v.text for v in store.fetch(ids_of(store))] == ["b1"]
    assert ids_of(store, head="d4") == ids_of(store)


def test_two_databases_can_share_an_index_folder(tmp_path, db_url):
    first = make_store(tmp_path, db_url)
    second = Store(f"sqlite:///{tmp_path / 'second.db'}", tmp_path / "indexes")
    second.bind_model(MODEL)
    assert first.store_id != second.store_id
    with first.writer():
        first.commit([record("/a", ["a"])])
    with second.writer():  # its garbage collection must leave the first store's files alone
        second.commit([record("/b", ["b1", "b2"])])
    assert check(first).consistent and check(second).consistent
    assert [v.text for v in Store(first.url, first.index_dir).fetch(ids_of(first))] == ["a"]


def test_an_hnsw_store_replaces_documents_too(tmp_path, db_url):
    store = Store(db_url, tmp_path / "indexes", factory="HNSW16")
    store.bind_model(MODEL)
    with store.writer():
        store.commit([record("/a", ["a1", "a2"]), record("/b", ["b1"])])
        store.commit([record("/a", ["a3"], seed=2)])  # HNSW cannot remove: rebuilt without /a's old ids
    assert store.index_states()[("chunk", "full")].factory == "HNSW16"
    assert sorted(v.text for v in store.fetch(ids_of(store))) == ["a3", "b1"]
    assert check(store).consistent


def test_repair_falls_back_to_the_previous_generation_when_the_newest_file_is_unreadable(tmp_path, db_url):
    store = make_store(tmp_path, db_url)
    with store.writer():
        store.commit([record("/a", ["a1", "a2"]), record("/b", ["b1"])])
        store.commit([record("/c", ["c1"], seed=2)], deleted_paths=["/b"])
    newest = store.index_path("chunk", "full", store.index_states()[("chunk", "full")].generation)
    newest.write_bytes(newest.read_bytes()[:-40])  # e.g. a full disk cut the file short
    store = Store(store.url, store.index_dir)

    report = check(store)
    problem = next(c for c in report.checks if not c.ok)
    assert (problem.kind, problem.head) == ("chunk", "full") and "unreadable" in problem.error
    assert "repair rebuilds from it" in problem.error and len(problem.missing) == 1  # /c is not in the older one

    fixed = repair(store)
    assert fixed.consistent, fixed.render()
    statuses = {d.path: d.status for d in store.documents()}
    assert statuses == {"/a": DocumentStatus.INGESTED, "/c": DocumentStatus.STALE}  # /a kept, /b's vector dropped
    assert [v.text for v in store.fetch(ids_of(store))] == ["a1", "a2"]
    assert ids_of(store, head="d4") == ids_of(store)


def test_file_filters_match_the_same_entries_on_every_database(tmp_path, db_url):
    from jasper_rag.store.vectors import EntryFilter

    store = make_store(tmp_path, db_url)
    paths = ["/docs/a.md", "/docs/sub/b.MD", "/docs-old/c.md", "/DOCS/d.txt", "/docs/e_f.txt", "/x/m%d.pdf"]
    with store.writer():
        store.commit([record(path, [f"text of {path}"], seed=i) for i, path in enumerate(paths)])
    by_path = {view.path: view.id for view in store.fetch(ids_of(store))}

    def matched(file_types=None, folder=None) -> set[str]:
        found = set(store.entry_ids(EntryFilter.of(file_types, folder)).tolist())
        return {path for path, entry in by_path.items() if entry in found}

    assert matched(folder="/docs") == {"/docs/a.md", "/docs/sub/b.MD", "/docs/e_f.txt"}  # exact case, no siblings
    assert matched(folder="/docs/") == matched(folder="/docs")
    assert matched(["md"]) == {"/docs/a.md", "/docs/sub/b.MD", "/docs-old/c.md"}  # extensions ignore case
    assert matched(["md"], "/docs/sub") == {"/docs/sub/b.MD"}
    assert matched(["m_"]) == set() and matched(["%"]) == set()  # `_` and `%` are no wildcards
    assert matched(["pdf"]) == {"/x/m%d.pdf"}
