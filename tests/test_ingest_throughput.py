"""Ingestion throughput: parsing ahead in a thread, small files embedded together in shared batches, the
store the same as when each file is embedded on its own."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from jasper_rag.ingest import pipeline
from jasper_rag.ingest.prefetch import Prefetch
from jasper_rag.store import DocumentStatus
from jasper_rag.store.doctor import check
from tests.ingest_support import make_store, small_settings

WORDS = "the cat sat on the mat a dog on the sofa protein cells and cancer risk in a study of genes".split()


def write_small_files(folder: Path, count: int) -> list[Path]:
    """``count`` .txt files of a few words to a few chunks each (lengths vary, so sorting matters)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for number in range(count):
        path = folder / f"note-{number:03d}.txt"
        path.write_text(" ".join(rng.choice(WORDS, size=int(rng.integers(3, 60)))) + "\n")
        paths.append(path)
    return paths


def stored(store) -> dict[tuple[str, int], tuple[str, dict[str, np.ndarray]]]:
    """(path, ordinal) -> (text, head -> vector) of every chunk in the store."""
    views = store.fetch(store.embedded_ids("chunk"))
    ids = np.array([view.id for view in views], dtype=np.int64)
    vectors = {head: store.index("chunk", head).reconstruct(ids) for head in store.heads}
    return {
        (view.path, view.ordinal): (view.text, {head: rows[i] for head, rows in vectors.items()})
        for i, view in enumerate(views)
    }


def test_small_files_share_batches_and_store_what_one_file_at_a_time_does(tmp_path, tiny_encoder, monkeypatch):
    paths = write_small_files(tmp_path / "notes", 40)
    settings = small_settings(batch_size=2)
    calls: list[int] = []
    embed = pipeline.embed_entry_heads

    def watched(encoder, entries, *args, **kwargs):
        calls.append(len(entries))
        return embed(encoder, entries, *args, **kwargs)

    monkeypatch.setattr(pipeline, "embed_entry_heads", watched)
    together = make_store(tmp_path / "together")
    summary = pipeline.ingest_paths([tmp_path / "notes"], tiny_encoder, together, settings, progress=False)
    assert summary.exit_code == 0, summary.render()
    chunks = summary.embedded["chunk"]
    assert sum(calls) == chunks and len(calls) < len(paths) / 4  # a call embeds many files' chunks
    assert max(calls) >= pipeline.EMBED_BATCHES * settings.batch_size

    calls.clear()
    alone = make_store(tmp_path / "alone")
    for path in paths:  # one run per file: each file's chunks embedded on their own
        pipeline.ingest_paths([path], tiny_encoder, alone, settings, progress=False)
    assert len(calls) == len(paths)

    shared, single = stored(together), stored(alone)
    assert sorted(shared) == sorted(single) and len(shared) == chunks
    for key, (text, vectors) in shared.items():
        assert text == single[key][0]
        for head, vector in vectors.items():
            np.testing.assert_allclose(vector, single[key][1][head], atol=1e-5)
    assert check(together).consistent


def test_parsing_continues_while_a_batch_embeds(tmp_path, tiny_encoder, monkeypatch):
    write_small_files(tmp_path / "notes", 30)
    settings = small_settings(batch_size=2)
    parsed: list[Path] = []
    prepare, embed = pipeline.Ingestor._prepare, pipeline.embed_entry_heads
    ahead: list[int] = []

    def slow_prepare(self, path, *args):  # parsing is the slow side: the queue never runs far ahead
        time.sleep(0.02)
        parsed.append(path)
        return prepare(self, path, *args)

    def slow_embed(encoder, entries, *args, **kwargs):
        before = len(parsed)
        deadline = time.monotonic() + 10
        while len(parsed) == before and time.monotonic() < deadline:  # wait for the parser to move on
            time.sleep(0.01)
        ahead.append(len(parsed) - before)
        return embed(encoder, entries, *args, **kwargs)

    monkeypatch.setattr(pipeline.Ingestor, "_prepare", slow_prepare)
    monkeypatch.setattr(pipeline, "embed_entry_heads", slow_embed)
    summary = pipeline.ingest_paths([tmp_path / "notes"], tiny_encoder, make_store(tmp_path), settings, progress=False)
    assert summary.exit_code == 0, summary.render()
    assert len(ahead) > 1 and ahead[0] > 0  # files were parsed while the first batch was being embedded


def test_a_failing_file_is_still_reported_between_files_parsed_ahead(tmp_path, tiny_encoder):
    paths = write_small_files(tmp_path / "notes", 12)
    paths[5].write_bytes(b"")  # empty: refused, the others go in
    store = make_store(tmp_path)
    summary = pipeline.ingest_paths([tmp_path / "notes"], tiny_encoder, store, small_settings(), progress=False)
    statuses = {Path(outcome.path).name: outcome.status for outcome in summary.outcomes}
    assert statuses.pop("note-005.txt") == DocumentStatus.FAILED
    assert set(statuses.values()) == {DocumentStatus.INGESTED}
    assert len(statuses) == 11


def test_prefetch_yields_in_order_and_raises_the_producers_error():
    with Prefetch(iter(range(100)), budget=3) as ahead:
        assert list(ahead) == list(range(100))

    def broken():
        yield 1
        raise RuntimeError("parser bug")

    with Prefetch(broken(), budget=2) as ahead, pytest.raises(RuntimeError, match="parser bug"):
        list(ahead)


def test_prefetch_holds_at_most_its_budget_of_weight_except_one_heavy_item():
    produced: list[int] = []

    def sizes():
        for size in (1, 2, 9, 1, 1):
            produced.append(size)
            yield size

    with Prefetch(sizes(), budget=4, weight=lambda size: size) as ahead:
        seen = iter(ahead)
        assert next(seen) == 1
        time.sleep(0.2)  # the producer runs ahead until the heavy item would exceed the budget
        assert produced == [1, 2, 9]
        assert list(seen) == [2, 9, 1, 1]


def test_prefetch_stops_its_thread_when_the_consumer_leaves_early():
    produced: list[int] = []

    def endless():
        number = 0
        while True:
            produced.append(number)
            yield number
            number += 1

    before = threading.active_count()
    with Prefetch(endless(), budget=2) as ahead:
        for item in ahead:
            if item == 3:
                break
    assert threading.active_count() == before
    assert len(produced) <= 4 + 2 + 1  # at most ``budget`` items (and the one being put) ahead
    with pytest.raises(ValueError, match="positive"):
        Prefetch(iter(()), budget=0)
