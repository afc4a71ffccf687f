"""Writers of one database: a database belongs to one index folder, and writers exclude each other.

Two writers given one database but different index folders used to take two different file locks and commit
generations in turn, each over the other's files. The first open now binds the database to its folder (an id
in the database and in a marker file in the folder) and any other folder is refused with a clear error; on
PostgreSQL a writer also holds a session-level advisory lock. Runs on SQLite, and on PostgreSQL when
``JASPER_TEST_PG_URL`` is set.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sqlalchemy import func, select

from jasper_rag.embedding import normalize_rows
from jasper_rag.store import Chunk, DocumentRecord, DocumentStatus, ModelIdentity, Store, StoreFolderMismatchError
from jasper_rag.store.doctor import check
from tests.ingest_support import DATABASES, PG_URL_ENV, database_url

HEADS = {"full": 8}
MODEL = ModelIdentity("fp-writers", "tiny", HEADS)


@pytest.fixture(params=DATABASES)
def db_url(request, tmp_path):
    with database_url(request.param, tmp_path) as url:
        yield url


def make_record(path: str, texts: list[str]) -> DocumentRecord:
    entries = [Chunk(ordinal=i, text=t, page=1, char_start=0, char_end=len(t)) for i, t in enumerate(texts)]
    vectors = {"full": normalize_rows(np.random.default_rng(len(path)).standard_normal((len(texts), 8)))}
    return DocumentRecord(path, "text", DocumentStatus.INGESTED, "h", entries=entries, vectors=vectors)


def texts(store: Store) -> list[str]:
    return sorted(view.text for view in store.fetch(store.index("chunk", "full").ids()))


def test_a_database_bound_to_one_index_folder_refuses_another(tmp_path, db_url):
    first = Store(db_url, tmp_path / "one")
    first.bind_model(MODEL)
    with first.writer():
        first.commit([make_record("/a", ["a1", "a2"])])
    with pytest.raises(StoreFolderMismatchError) as refused:
        Store(db_url, tmp_path / "two")
    message = str(refused.value)
    assert f"belongs to the index folder {(tmp_path / 'one').resolve()}" in message
    assert f"--index-dir {(tmp_path / 'one').resolve()}" in message
    assert "jasper:jasper@" not in message  # no password in the message
    assert not list((tmp_path / "two").glob("*.faiss"))
    with first.writer():  # the first folder's writer goes on undisturbed
        first.commit([make_record("/b", ["b1"])])
    reader = Store(db_url, tmp_path / "one")
    assert check(reader).consistent and texts(reader) == ["a1", "a2", "b1"]
    for store in (first, reader):
        store.close()


def test_two_folders_opening_one_new_database_at_once_bind_exactly_one(tmp_path, db_url):
    def open_store(name: str) -> str:
        try:
            Store(db_url, tmp_path / name).close()
            return "opened"
        except StoreFolderMismatchError:
            return "refused"

    for attempt in range(3):
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(open_store, [f"x{attempt}", f"y{attempt}"]))
        assert sorted(outcomes) == ["opened", "refused"] if attempt == 0 else outcomes == ["refused", "refused"]


def test_a_folder_moved_with_its_sqlite_database_still_opens(tmp_path):
    old = tmp_path / "old"
    store = Store(f"sqlite:///{old / 'meta.db'}", old / "indexes")
    store.bind_model(MODEL)
    with store.writer():
        store.commit([make_record("/a", ["a1"])])
    store.close()
    new = tmp_path / "new"
    shutil.move(old, new)
    moved = Store(f"sqlite:///{new / 'meta.db'}", new / "indexes")
    assert texts(moved) == ["a1"] and check(moved).consistent
    os.symlink(new / "indexes", tmp_path / "link")  # the same folder by another path
    linked = Store(moved.url, tmp_path / "link")
    with linked.writer():
        linked.commit([make_record("/b", ["b1"])])
    assert texts(Store(moved.url, new / "indexes")) == ["a1", "b1"]
    (new / "indexes" / f".{moved.store_id}.folder").unlink()  # its own folder, at the recorded path, lost the marker
    assert texts(Store(moved.url, new / "indexes")) == ["a1", "b1"]
    for opened in (moved, linked):
        opened.close()


@pytest.mark.skipif(not os.environ.get(PG_URL_ENV), reason=f"{PG_URL_ENV} is not set (no PostgreSQL)")
def test_a_postgresql_writer_holds_a_database_lock_for_its_whole_duration(tmp_path):
    with database_url("postgresql", tmp_path) as url:
        store = Store(url, tmp_path / "indexes")
        store.bind_model(MODEL)
        key = store.advisory_lock_key()
        other = Store(url, tmp_path / "indexes")

        def can_lock() -> bool:
            with other.engine.connect() as connection:
                got = connection.scalar(select(func.pg_try_advisory_lock(key)))
                if got:
                    connection.scalar(select(func.pg_advisory_unlock(key)))
                return got

        assert can_lock()
        with store.writer():
            store.commit([make_record("/a", ["a1"])])
            assert not can_lock()  # held between commits too, not only inside one
            store.commit([make_record("/b", ["b1"])])
            assert not can_lock()
        assert can_lock()
        for opened in (store, other):
            opened.close()


def test_cli_reports_a_database_bound_to_another_folder_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from jasper_rag.cli import app

    db = f"sqlite:///{tmp_path / 'meta.db'}"
    Store(db, tmp_path / "one").close()
    result = CliRunner().invoke(app, ["doctor", "--db", db, "--index-dir", str(tmp_path / "two")])
    assert result.exit_code == 1, result.output
    assert "doctor failed: " in result.output and "--index-dir" in result.output
    assert "Traceback" not in result.output
