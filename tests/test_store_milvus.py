"""The Milvus vector backend on Milvus Lite: same top-10 as FAISS, crash safety of its write order, doctor,
the LangChain retriever, and clear errors for bad settings. The shared store / search / FAQ suites run on it
too (the ``store_backend`` fixture)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from typer.testing import CliRunner

from jasper_rag.config import Settings
from jasper_rag.embedding import normalize_rows
from jasper_rag.store import Chunk, DocumentRecord, DocumentStatus, ModelIdentity, Store, StoreBackendError
from jasper_rag.store.doctor import check, repair
from jasper_rag.store.milvus_vectors import MilvusVectors, collection_name
from jasper_rag.store.models import PendingVectorDelete
from jasper_rag.store.vectors import EntryFilter

pytest.importorskip("milvus_lite", reason="pip install 'jasper-rag[milvus]'")

HEADS = {"full": 64, "d8": 8}
MODEL = ModelIdentity("fp-milvus", "tiny", HEADS)


@pytest.fixture(autouse=True)
def stop_milvus_lite():
    """Stop the Milvus Lite servers a test started (they run as threads of this process)."""
    from milvus_lite import server_manager_instance

    yield
    server_manager_instance.release_all()


def document(path: str, file_type: str, count: int, seed: int = 0, first: int = 0) -> DocumentRecord:
    """One file of ``count`` chunks (texts ``chunk <first>``...) with random unit vectors for every head."""
    rng = np.random.default_rng(seed)
    return DocumentRecord(
        path,
        file_type,
        DocumentStatus.INGESTED,
        f"h{seed}.{first}",
        entries=[Chunk(ordinal=i, text=f"chunk {first + i}", embedded=True) for i in range(count)],
        vectors={head: normalize_rows(rng.standard_normal((count, dim))) for head, dim in HEADS.items()},
    )


def records(count: int, seed: int = 0, per_file: int = 50) -> list[DocumentRecord]:
    """``count`` chunks of random unit vectors, ``per_file`` per file, alternating .txt and .md files."""
    out = []
    for start in range(0, count, per_file):
        file_type = "md" if (start // per_file) % 2 else "txt"
        path = f"/docs/f{start // per_file:03d}.{file_type}"
        out.append(document(path, file_type, min(per_file, count - start), seed * 100_000 + start, start))
    return out


def open_store(root, store: str, **settings) -> Store:
    """A store of ``MODEL`` on its own SQLite database, with the vectors in ``store`` (more ``settings``)."""
    built = Store(f"sqlite:///{root / store}.db", root / store, settings=Settings(store=store, **settings))
    built.bind_model(MODEL)
    return built


def reopen(store: Store, **settings) -> Store:
    """Another process's view of ``store``, with these Milvus settings."""
    return Store(store.url, store.index_dir, settings=Settings(store="milvus", **settings))


def index_now(store: Store) -> None:
    """Make Milvus Lite index every row now: it searches unflushed rows exhaustively and indexes flushed ones
    in the background; loading the collection builds the indexes at once (once the background has written
    the files it was writing: a load that reads one half-written fails, and is tried again)."""
    from pymilvus import MilvusException

    client, name = store.vectors.client, collection_name(store.store_id, MODEL)
    client.flush(name)
    client.release_collection(name)
    for _ in range(50):
        try:
            client.load_collection(name)
            return
        except MilvusException:
            time.sleep(0.2)
    client.load_collection(name)


def recall_at_10(store: Store, queries: np.ndarray) -> float:
    """The share of the exact top-10 (inner products over the stored vectors) that the index finds."""
    index = store.index("chunk", "full")
    ids = np.sort(index.ids())
    truth = ids[np.argsort(-(queries @ index.reconstruct(ids).T), axis=1)[:, :10]]
    found = index.search(queries, 10)[1]
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)]))


def texts(store: Store) -> list[str]:
    return sorted(v.text for v in store.fetch(store.index("chunk", "full").ids()))


def test_exact_search_gives_the_faiss_top_10(tmp_path) -> None:
    faiss_store, milvus_store = open_store(tmp_path, "faiss"), open_store(tmp_path, "milvus")
    for store in (faiss_store, milvus_store):
        with store.writer():
            store.commit(records(2000))
            store.commit(records(100, seed=1)[:1], deleted_paths=["/docs/f003.md"])
    queries = {head: normalize_rows(np.random.default_rng(7).standard_normal((50, dim))) for head, dim in HEADS.items()}
    md = EntryFilter.of(["md"])
    assert np.array_equal(faiss_store.entry_ids(md), milvus_store.entry_ids(md))  # same rows, same ids
    for head in HEADS:
        for where in (None, md):
            want_scores, want = faiss_store.index("chunk", head).search(queries[head], 10, faiss_store.scope(where))
            got_scores, got = milvus_store.index("chunk", head).search(queries[head], 10, milvus_store.scope(where))
            assert np.array_equal(got, want), head  # all 50 x 10 ids, in order
            np.testing.assert_allclose(got_scores, want_scores, atol=1e-5)
    assert milvus_store.index("chunk", "full").ntotal == 2000 - 50  # f000 replaced, f003 deleted
    ids = milvus_store.index("chunk", "d8").ids()[:5]
    np.testing.assert_allclose(
        milvus_store.index("chunk", "d8").reconstruct(ids), faiss_store.index("chunk", "d8").reconstruct(ids), atol=1e-6
    )
    assert check(milvus_store).consistent


def test_a_filtered_search_returns_k_whenever_k_match(tmp_path) -> None:
    store = open_store(tmp_path, "milvus")
    with store.writer():
        store.commit(records(300))
        store.commit([document("/few/a.txt", "txt", 3, seed=5)])
    index, query = store.index("chunk", "full"), normalize_rows(np.ones((1, 64)))
    few = store.scope(EntryFilter.of(path_prefix="/few"))
    scores, ids = index.search(query, 5, few)
    assert sorted(ids[0, :3].tolist()) == few.ids.tolist() and ids[0, 3:].tolist() == [-1, -1]
    assert np.isinf(scores[0, 3:]).all()
    many = store.scope(EntryFilter.of(["md"]))
    _, ids = index.search(query, 40, many)
    assert (ids >= 0).all() and np.isin(ids, many.ids).all()  # 40 of the 150 .md chunks
    _, none = index.search(query, 5, store.scope(EntryFilter.of(["pdf"])))
    assert none.tolist() == [[-1] * 5]
    with pytest.raises(KeyError):
        index.reconstruct(np.array([10**9]))


TRICKY_FILES = {  # path -> stored file type
    "/data/docs/a.md": "markdown",
    "/data/docs/B.MD": "markdown",
    "/data/docs/sub/c.txt": "txt",
    "/data/docs-old/d.md": "markdown",
    "/data/docs_x/e.txt": "txt",
    "/data/d%s/f.txt": "txt",
    '/data/q"uote/g.txt': "txt",
    "/data/back\\slash/h.txt": "txt",
    "/data/new\nline/i.txt": "txt",
    "/data/j.tar.gz": "archive",
    "/data/k.m_": "Text",
    "/data/report": "txt",
    "/Data/docs/l.txt": "txt",
}
HOSTILE = ['" or 1==1', '/data" or path != "', "%", "_", "\\", "/data/%", "/data/_ocs", "/data/docs\\", "x\ny"]
FILTERS = {
    "md extension and type": (["md"], None, 3),
    "upper-case extension": (["MD"], None, 3),
    "dotted extension": ([".md"], None, 3),
    "stored type": (["markdown"], None, 3),
    "stored type, any case": (["TEXT"], None, 1),
    "two extensions": (["txt", "md"], None, 12),
    "double extension": (["tar.gz"], None, 1),
    "last extension": (["gz"], None, 1),
    "underscore is no wildcard": (["m_"], None, 1),
    "percent is no wildcard": (["m%"], None, 0),
    "folder": (None, "/data/docs", 3),
    "folder with a slash": (None, "/data/docs/", 3),
    "no sibling folder": (None, "/data/docs_", 0),
    "folder is case-sensitive": (None, "/data/DOCS", 0),
    "a file is its own folder": (None, "/data/report", 1),
    "percent in a folder": (None, "/data/d%s", 1),
    "quote in a folder": (None, '/data/q"uote', 1),
    "backslash in a folder": (None, "/data/back\\slash", 1),
    "line break in a folder": (None, "/data/new\nline", 1),
    "relative folder": (None, "rel", 1),
    "type and folder": (["txt"], "/data/docs", 1),
    **{f"hostile folder {text!r}": (None, text, 0) for text in HOSTILE},
    **{f"hostile type {text!r}": ([text], None, 0) for text in HOSTILE},
}


def test_milvus_filters_match_exactly_what_sql_matches(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the relative folder "rel" resolves to <tmp_path>/rel
    files = {**TRICKY_FILES, str(tmp_path / "rel" / "m.txt"): "txt"}
    stores = open_store(tmp_path, "faiss"), open_store(tmp_path, "milvus")
    for store in stores:
        with store.writer():
            store.commit([document(path, kind, 1, seed=n, first=n) for n, (path, kind) in enumerate(files.items())])
    query = normalize_rows(np.random.default_rng(3).standard_normal((2, 64)))
    for name, (types, folder, count) in FILTERS.items():
        where = EntryFilter.of(types, folder)
        found = []
        for store in stores:
            scope = store.scope(where)
            scores, ids = store.index("chunk", "full").search(query, len(files), scope)
            assert len(scope.ids) == count, (name, store.vectors.name)  # what SQL matches
            assert sorted(ids[0][ids[0] >= 0].tolist()) == scope.ids.tolist(), (name, store.vectors.name)
            found.append((ids, scores))
        (faiss_ids, faiss_scores), (milvus_ids, milvus_scores) = found
        assert np.array_equal(faiss_ids, milvus_ids), name  # the same hits, in the same order
        np.testing.assert_allclose(faiss_scores[faiss_ids >= 0], milvus_scores[milvus_ids >= 0], atol=1e-5)
        for store in stores:  # tantivy through the SQL ids, Milvus BM25 through the expression
            _, ids = store.lexical().search(["chunk"], len(files), ["chunk"], store.scope(where))
            assert sorted(ids[0][ids[0] >= 0].tolist()) == store.scope(where).ids.tolist(), (name, store.vectors.name)


def test_milvus_bm25_ranks_as_tantivy_does(tmp_path) -> None:
    rng = np.random.default_rng(0)
    words = "river rivers mountain running runs runner garden flowering cats dog paris france the and of in".split()
    texts = [" ".join(rng.choice(words, rng.integers(3, 30))) for _ in range(300)]
    stores = open_store(tmp_path, "faiss"), open_store(tmp_path, "milvus")
    for store in stores:
        files = [document(f"/d/{n:03d}.txt", "txt", 30, seed=n, first=n) for n in range(0, 300, 30)]
        for entry, text in zip((e for f in files for e in f.entries), texts, strict=True):
            entry.text = text
        with store.writer():
            store.commit(files)
    queries = ["running cats", "mountains flowering in Paris", "the river", "gardens of France", "the and of", ""]
    (tantivy_scores, tantivy_ids), (milvus_scores, milvus_ids) = (s.lexical().search(queries, 10) for s in stores)
    assert np.array_equal(milvus_ids, tantivy_ids)  # the same stems, stop words and BM25 (k1 1.2, b 0.75)
    np.testing.assert_allclose(milvus_scores, tantivy_scores, rtol=1e-4)
    assert (milvus_scores[:4] > 0).all() and (milvus_ids[4:] == -1).all()  # stop words and nothing find nothing
    assert np.array_equal(stores[1].lexical().ids(), np.sort(stores[1].index("chunk", "full").ids()))


def test_a_crash_between_the_upsert_and_the_sql_commit_leaves_the_committed_state(tmp_path, monkeypatch):
    store = open_store(tmp_path, "milvus")
    with store.writer():
        store.commit(records(100))

    upsert = MilvusVectors.write

    def upsert_and_die(self, *args) -> None:
        upsert(self, *args)
        raise KeyboardInterrupt  # the process dies after the upsert, before SQL commits

    monkeypatch.setattr(MilvusVectors, "write", upsert_and_die)
    monkeypatch.setattr(MilvusVectors, "discard", lambda self: None)  # a dead process cleans nothing up
    with pytest.raises(KeyboardInterrupt), store.writer():
        store.commit(records(60, seed=3, per_file=30), deleted_paths=["/docs/f000.txt"])
    monkeypatch.undo()
    reopened = Store(store.url, store.index_dir, settings=Settings(store="milvus"))
    assert texts(reopened) == sorted(f"chunk {i}" for i in range(100))  # SQL decides what a search shows
    report = check(reopened)
    assert not report.consistent and "vectors without rows" in report.render()  # the orphan upserts
    with reopened.writer():  # the next writer removes them before anything else
        pass
    assert check(reopened).consistent
    assert reopened.index("chunk", "full").ntotal == 100


def test_a_crash_after_the_sql_commit_leaves_deletes_for_the_next_writer(tmp_path, monkeypatch):
    store = open_store(tmp_path, "milvus")
    with store.writer():
        store.commit(records(100))
    monkeypatch.setattr(MilvusVectors, "committed", lambda self: None)  # dies right after the SQL commit
    monkeypatch.setattr(MilvusVectors, "discard", lambda self: None)
    with store.writer():
        store.commit([], deleted_paths=["/docs/f000.txt"])
    monkeypatch.undo()
    with store.sessions() as session:
        assert session.query(PendingVectorDelete).count() == 50
    assert texts(store) == sorted(f"chunk {i}" for i in range(50, 100))  # rows without SQL rows are not shown
    with store.writer():
        pass
    assert check(store).consistent and store.index("chunk", "full").ntotal == 50
    with store.sessions() as session:
        assert session.query(PendingVectorDelete).count() == 0


def test_doctor_repairs_milvus_drift(tmp_path) -> None:
    store = open_store(tmp_path, "milvus")
    with store.writer():
        store.commit(records(100))
        store.commit([], deleted_paths=["/docs/f000.txt"])
    client, name = store.vectors.client, collection_name(store.store_id, MODEL)
    lost = int(store.entry_ids(EntryFilter.of(["md"]))[0])
    client.delete(name, ids=[lost])  # a vector lost
    fields = ["kind", "file_type", "path", "reversed_path", "terms", "v_full", "v_d8"]
    row = client.get(name, ids=[lost + 1], output_fields=fields)[0]
    client.upsert(name, [{**{f: row[f] for f in fields}, "id": 3}])  # a vector without a row (a deleted entry's id)
    report = check(store)
    assert (report.lexical.missing, report.lexical.extra) == (1, 1)  # the BM25 side is the same rows
    problems = {f"{c.kind}/{c.head}": c for c in report.checks if not c.ok}
    assert set(problems) == {"chunk/full", "chunk/d8"}
    assert problems["chunk/full"].missing.tolist() == [lost] and problems["chunk/full"].extra.tolist() == [3]
    fixed = repair(store)
    assert fixed.consistent, fixed.render()
    assert {d.path: d.status for d in store.documents()} == {"/docs/f001.md": DocumentStatus.STALE}
    assert store.index("chunk", "full").ntotal == 0


def test_a_collection_made_by_an_older_version_is_one_clear_error_until_rebuilt(tmp_path) -> None:
    from pymilvus import DataType, MilvusClient

    store = open_store(tmp_path, "milvus")
    with store.writer():
        store.commit(records(10))
    client, name = store.vectors.client, collection_name(store.store_id, MODEL)
    client.drop_collection(name)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    for field in ("kind", "file_type", "path"):
        schema.add_field(field, DataType.VARCHAR, max_length=64)
    index_params = client.prepare_index_params()
    for head, dim in HEADS.items():
        schema.add_field(f"v_{head}", DataType.FLOAT_VECTOR, dim=dim)
        index_params.add_index(f"v_{head}", index_type="FLAT", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index_params)
    reopened = Store(store.url, store.index_dir, settings=Settings(store="milvus"))
    with pytest.raises(
        StoreBackendError, match=r"older jasper-rag \(no field reversed_path, terms, bm25\).*ingest --rebuild"
    ):
        reopened.index("chunk", "full")
    with reopened.writer():  # what `jasper-rag ingest --rebuild` does
        reopened.clear()
        reopened.bind_model(MODEL)
        reopened.commit(records(10))
    assert reopened.index("chunk", "full").ntotal == 10 and check(reopened).consistent


@pytest.mark.parametrize(
    ("index", "built", "few", "many"),
    [
        ("HNSW", {"milvus_hnsw_m": 16}, {"milvus_hnsw_ef": 10}, {"milvus_hnsw_ef": 400}),
        ("IVF_FLAT", {"milvus_ivf_nlist": 64}, {"milvus_ivf_nprobe": 1}, {"milvus_ivf_nprobe": 64}),
    ],
)
def test_an_ann_index_is_built_and_searched_with_its_parameters(tmp_path, index, built, few, many) -> None:
    store = open_store(tmp_path, "milvus", milvus_index=index, **built, **many)
    with store.writer():
        store.commit(records(3000))
    index_now(store)
    queries = normalize_rows(np.random.default_rng(11).standard_normal((50, 64)))
    assert store.index("chunk", "full").index_type == index
    assert store.index_states()[("chunk", "full")].factory == f"milvus {index}"
    assert recall_at_10(store, queries) >= 0.97  # nearly exhaustive: every cluster, a wide beam
    assert recall_at_10(reopen(store, milvus_index=index, **built, **few), queries) < 0.9  # the index is real
    assert check(store).consistent


def test_a_collection_with_another_index_says_so_and_doctor_rebuilds_it(tmp_path, caplog) -> None:
    store = open_store(tmp_path, "milvus", milvus_index="HNSW")
    with store.writer():
        store.commit(records(200))
    wider = reopen(store, milvus_index="HNSW", milvus_hnsw_m=32)  # build parameters count too
    assert (
        "as HNSW M=16 efConstruction=200, not as configured (JASPER_MILVUS_INDEX: HNSW M=32 efConstruction=200)"
        in (wider.vectors.index_problems(MODEL)[0])
    )
    flat = reopen(store)  # configured: FLAT
    with caplog.at_level("WARNING"):
        assert flat.index("chunk", "full").index_type == "HNSW"  # searched with the index it has
    assert "indexes v_full as HNSW, not as configured (JASPER_MILVUS_INDEX: FLAT)" in caplog.text
    report = check(flat)
    assert not report.consistent and "v_d8 as HNSW" in report.render()
    assert repair(flat).consistent
    assert flat.index("chunk", "full").index_type == "FLAT" and flat.index("chunk", "d8").index_type == "FLAT"
    assert "bm25" in flat.vectors.client.list_indexes(collection_name(flat.store_id, MODEL))  # Lite dropped it too
    assert (flat.lexical().search(["chunk 7"], 3)[1] >= 0).all()
    query = normalize_rows(np.ones((1, 64)))
    assert (
        flat.index("chunk", "full").search(query, 5)[1].tolist()
        == store.index("chunk", "full").search(query, 5)[1].tolist()
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"milvus_index": "IVF_PQ"}, "JASPER_MILVUS_INDEX must be one of FLAT, HNSW, IVF_FLAT"),
        ({"milvus_ivf_nlist": 8, "milvus_ivf_nprobe": 9}, "more than JASPER_MILVUS_IVF_NLIST=8"),
        ({"milvus_hnsw_m": 1}, "greater than or equal to 2"),
    ],
)
def test_bad_milvus_index_settings_are_refused(settings, message) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(store="milvus", **settings)
    assert Settings(milvus_index="hnsw").milvus_index == "HNSW"


def test_a_store_opens_only_with_the_backend_that_built_it(tmp_path) -> None:
    store = open_store(tmp_path, "faiss")
    with store.writer():
        store.commit(records(10))
    with pytest.raises(StoreBackendError, match="JASPER_STORE=faiss"):
        Store(store.url, store.index_dir, settings=Settings(store="milvus"))


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("foo://x", "JASPER_MILVUS_URI='foo://x' is neither a Milvus Lite file"),
        ("http://127.0.0.1:9", "cannot open Milvus at JASPER_MILVUS_URI='http://127.0.0.1:9'"),
        ("/no/such/folder/milvus.db", "cannot open Milvus at JASPER_MILVUS_URI='/no/such/folder/milvus.db'"),
    ],
)
def test_bad_milvus_settings_are_one_clear_error(tmp_path, uri, message) -> None:
    settings = Settings(store="milvus", milvus_uri=uri, milvus_timeout_s=1)
    with pytest.raises(StoreBackendError) as raised:
        Store(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "idx", settings=settings)
    assert message in str(raised.value)


def test_a_milvus_lite_file_held_by_another_process_is_one_clear_error(tmp_path, capfd) -> None:
    from milvus_lite import MilvusLite

    held = MilvusLite(str(tmp_path / "idx" / "milvus.db"))  # holds the file's lock, as another process would
    with held, pytest.raises(StoreBackendError, match=r"another process holds the lock.*milvus-lite server"):
        Store(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "idx", settings=Settings(store="milvus"))
    assert "Traceback" not in capfd.readouterr().err


def test_missing_pymilvus_and_an_unknown_store_name_the_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pymilvus", None)
    with pytest.raises(StoreBackendError, match=r"pip install 'jasper-rag\[milvus\]'"):
        Store(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "idx", settings=Settings(store="milvus"))
    with pytest.raises(ValueError, match="JASPER_STORE must be one of faiss, milvus"):
        Settings(store="qdrant")


def test_cli_reports_an_unreachable_milvus_in_one_line(tmp_path, monkeypatch, fresh_settings) -> None:
    from jasper_rag.cli import app
    from jasper_rag.config import get_settings
    from tests.ingest_support import save_tiny_model

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("the cat sat")
    monkeypatch.setenv("JASPER_INDEXES_DIR", str(tmp_path / "idx"))
    monkeypatch.setenv("JASPER_STORE", "milvus")
    monkeypatch.setenv("JASPER_MILVUS_URI", "http://127.0.0.1:9")
    get_settings.cache_clear()
    model = save_tiny_model(tmp_path / "model")
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "docs"), "--model", str(model), "-q"])
    assert result.exit_code == 1 and "JASPER_MILVUS_URI" in result.output and "Traceback" not in result.output


def test_the_langchain_retriever_searches_milvus(tmp_path, tiny_encoder) -> None:
    from jasper_rag.ingest.pipeline import ingest_paths
    from jasper_rag.search import Searcher
    from jasper_rag.search.langchain import JasperRetriever

    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in {"cats.txt": "the cat sat on the mat", "paris.md": "paris is the capital of france"}.items():
        (folder / name).write_text(text)
    settings = Settings(indexes_dir=tmp_path / "idx", store="milvus")
    store = Store.open(settings)
    assert ingest_paths([folder], tiny_encoder, store, settings, progress=False).exit_code == 0
    retriever = JasperRetriever(searcher=Searcher(store, tiny_encoder), k=2, mode="hybrid", kinds=["chunk"])
    found = retriever.invoke("the cat sat on the mat")
    assert len(found) == 2 and found[0].metadata["source"] == str(folder / "cats.txt")
    assert found[0].metadata["cosine"] == pytest.approx(1.0, abs=1e-4)
