"""The store on a client-server database: the sample corpus into PostgreSQL, searched, checked, re-ingested.

Runs when ``JASPER_TEST_PG_URL`` names a PostgreSQL server whose role may create databases (``.ci/run``
starts one); the store tests (``tests/test_store_store.py``) and the hostile-folder test run there too.
"""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import text

from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.ingest.summary import UNCHANGED
from jasper_rag.search import Searcher
from jasper_rag.store.doctor import check
from tests.ingest_support import PG_URL_ENV, copy_sample, database_url, make_store, small_settings
from tests.reliability_report import record

pytestmark = pytest.mark.skipif(not os.environ.get(PG_URL_ENV), reason=f"{PG_URL_ENV} is not set (no PostgreSQL)")


def test_the_sample_corpus_round_trips_through_postgresql(tmp_path, tiny_encoder):
    corpus = copy_sample(tmp_path / "sample")
    with database_url("postgresql", tmp_path) as url:
        store = make_store(tmp_path, url)
        with store.engine.connect() as connection:
            version = connection.execute(text("SHOW server_version")).scalar()
        started = time.perf_counter()
        first = ingest_paths([corpus], tiny_encoder, store, small_settings(), progress=False)
        seconds = time.perf_counter() - started
        hits = Searcher(make_store(tmp_path, url), tiny_encoder).search("the cat sat on the mat", k=5)
        report = check(store)
        again = ingest_paths([corpus], tiny_encoder, store, small_settings(), progress=False)
        store.close()
    assert first.exit_code == 0, first.render()
    assert len(hits) == 5 and all(hit.path.startswith(str(corpus)) for hit in hits)
    assert report.consistent, report.render()
    assert {outcome.status for outcome in again.outcomes} == {UNCHANGED}
    record(
        "postgres",
        "PostgreSQL (SQLAlchemy + psycopg)",
        {
            "server": f"PostgreSQL {version}",
            "sample corpus": f"{len(first.outcomes)} files ingested in {seconds:.1f} s, searched, doctor consistent, "
            "re-ingest: all unchanged",
            "also run on it": "tests/test_store_store.py (every store test) and the hostile-folder pipeline test",
        },
    )
