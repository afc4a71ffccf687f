"""The ingestion pipeline end to end with a tiny encoder: file types, bad input, incremental runs, CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jasper_rag.cli import app
from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.store import DocumentStatus, StoreModelMismatchError
from jasper_rag.store.doctor import check, repair
from tests.ingest_support import (
    TINY_HEADS,
    RandomTower,
    copy_sample,
    load_tiny,
    make_store,
    save_tiny_model,
    small_settings,
    write_bad_files,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def encoder(model_dir):
    return load_tiny(model_dir)


def entry_ids_by_path(store) -> dict[str, set[int]]:
    ids: dict[str, set[int]] = {}
    for kind in store.kinds():
        for view in store.fetch(store.index(kind, "full").ids()):
            ids.setdefault(view.path, set()).add(view.id)
    return ids


def all_index_ids(store) -> dict[tuple[str, str], list[int]]:
    return {key: sorted(store.index(*key).ids().tolist()) for key in store.index_states()}


def test_sample_corpus_every_type_goes_in(tmp_path, encoder):
    corpus = copy_sample(tmp_path / "sample")
    store = make_store(tmp_path)
    summary = ingest_paths([corpus], encoder, store, small_settings(), progress=False)
    assert summary.exit_code == 0, summary.render()
    statuses = {Path(o.path).name: o.status for o in summary.outcomes}
    assert statuses.pop("pipeline.png") == statuses.pop("heads-chart.png") == DocumentStatus.NOT_EMBEDDED
    assert set(statuses.values()) == {DocumentStatus.INGESTED} and len(statuses) == 17
    types = {Path(d.path).name: d.file_type for d in store.documents()}
    assert {types[name] for name in ("benchmarks.csv", "model-sizes.xlsx")} == {"table", "xlsx"}
    assert types["faq.csv"] == "faq" and types["support-thread.mbox"] == "email"
    assert store.kinds() == ["chunk", "faq"]
    assert set(store.heads) == set(TINY_HEADS)
    assert check(store).consistent
    views = store.fetch(store.index("chunk", "d8").ids())
    pdf_pages = {v.page for v in views if v.path.endswith("jasper-overview.pdf")}
    assert pdf_pages == {1, 2, 3}
    assert {v.heading for v in views if v.path.endswith("release-slides.pptx")} >= {"Release 2.0"}
    scanned = [v for v in views if v.path.endswith("scanned-memo.pdf")]
    assert scanned and all(v.ocr and v.page == 1 for v in scanned)
    assert "recognition" in " ".join(v.text for v in scanned)
    assert all(v.page is None for v in views if v.path.endswith(".txt"))
    faq = store.fetch(store.index("faq", "full").ids())
    assert len(faq) == 11 and all(v.answer for v in faq)
    images = [d for d in store.documents() if d.file_type == "image"]
    # not embedded (no image encoder), but the text OCR reads in them is stored as chunks beside them
    assert [d.status for d in images] == [DocumentStatus.NOT_EMBEDDED] * 2 and all(d.entries > 1 for d in images)
    assert any("loaders" in v.text and v.ocr for v in views if v.path.endswith("pipeline.png"))
    assert summary.embedded["chunk"] == len(views) and "chunks" in summary.render()

    query = encoder.encode(["funnel search shortlist"], dim=48)
    scores, ids = store.index("chunk", "full").search(query, 1)
    assert store.fetch(ids[0])[0].kind == "chunk" and -1.0 <= scores[0, 0] <= 1.0001


def test_bad_inputs_are_recorded_with_reasons_and_the_rest_goes_in(tmp_path, encoder):
    folder = tmp_path / "docs"
    reasons = write_bad_files(folder)
    (folder / "good.txt").write_text("the cat sat on the mat.")
    (folder / "huge.txt").write_text("the dog " * 20_000)
    reasons["huge.txt"] = "too large"
    os.mkfifo(folder / "pipe.txt")
    reasons["pipe.txt"] = "not a regular file"
    store = make_store(tmp_path)
    summary = ingest_paths(
        [folder, tmp_path / "missing"], encoder, store, small_settings(ingest_max_file_mb=0.1), progress=False
    )
    assert summary.exit_code == 3
    failed = {Path(o.path).name: o.reason for o in summary.failed()}
    assert failed.pop("missing") == "not found"
    assert set(failed) == set(reasons)
    for name, reason in reasons.items():
        assert reason in failed[name], (name, failed[name])
    recorded = {Path(d.path).name: d for d in store.documents()}
    assert recorded["good.txt"].status == DocumentStatus.INGESTED
    assert recorded["scanned.pdf"].status == DocumentStatus.FAILED and "no text layer" in recorded["scanned.pdf"].error
    assert "scanned.pdf" in summary.render() and check(store).consistent


def test_reingesting_unchanged_files_changes_nothing(tmp_path, encoder):
    corpus = copy_sample(tmp_path / "sample")
    store = make_store(tmp_path)
    ingest_paths([corpus], encoder, store, small_settings(), progress=False)
    documents, generations = store.documents(), {k: s.generation for k, s in store.index_states().items()}
    ids = all_index_ids(store)
    again = ingest_paths([corpus], encoder, store, small_settings(), progress=False)
    assert {o.status for o in again.outcomes} == {"unchanged"} and sum(again.embedded.values()) == 0
    assert store.documents() == documents
    assert {k: s.generation for k, s in store.index_states().items()} == generations
    assert all_index_ids(store) == ids


def test_files_read_by_an_earlier_version_of_the_readers_are_ingested_again(tmp_path, encoder, monkeypatch):
    from jasper_rag.ingest import pipeline

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\nThe **cat** sat on the mat.\n")
    store = make_store(tmp_path)
    monkeypatch.setattr(pipeline, "READER_VERSION", b"an earlier reader\n")
    ingest_paths([tmp_path / "docs"], encoder, store, small_settings(), progress=False)
    monkeypatch.undo()
    again = ingest_paths([tmp_path / "docs"], encoder, store, small_settings(), progress=False)
    assert [o.status for o in again.outcomes] == ["ingested"]
    third = ingest_paths([tmp_path / "docs"], encoder, store, small_settings(), progress=False)
    assert [o.status for o in third.outcomes] == ["unchanged"]


def test_edit_one_delete_another_changes_exactly_their_rows_and_vectors(tmp_path, encoder):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, body in {"a.txt": "the cat sat.", "b.txt": "the dog ran.", "c.md": "# fruit\napple banana."}.items():
        (folder / name).write_text(body * 5)
    store = make_store(tmp_path)
    ingest_paths([folder], encoder, store, small_settings(), progress=False)
    before = entry_ids_by_path(store)
    a, b, c = (str(folder / name) for name in ("a.txt", "b.txt", "c.md"))

    (folder / "a.txt").write_text("the red car is fast. " * 4)
    (folder / "b.txt").unlink()
    summary = ingest_paths([folder], encoder, store, small_settings(), progress=False)
    assert {o.path: o.status for o in summary.outcomes} == {a: "ingested", b: "removed", c: "unchanged"}
    after = entry_ids_by_path(store)
    assert after[c] == before[c]
    assert b not in after and not after[a] & before[a]
    assert next(v.text for v in store.fetch(sorted(after[a]))).startswith("the red car")
    for key, ids in all_index_ids(store).items():
        assert ids == sorted(after[a] | after[c]), key
    assert [d.path for d in store.documents()] == [a, c]
    assert check(store).consistent


def test_a_file_that_turns_bad_loses_its_old_vectors(tmp_path, encoder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("the cat sat on the mat.")
    (folder / "b.txt").write_text("the dog sat on the sofa.")
    store = make_store(tmp_path)
    ingest_paths([folder], encoder, store, small_settings(), progress=False)
    (folder / "a.txt").write_bytes(b"\xfa\xfb broken")
    summary = ingest_paths([folder], encoder, store, small_settings(), progress=False)
    assert summary.exit_code == 3
    assert {v.path for v in store.fetch(store.index("chunk", "full").ids())} == {str(folder / "b.txt")}
    assert check(store).consistent


def test_another_model_is_refused_until_rebuild(tmp_path, encoder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("the cat sat.")
    store = make_store(tmp_path)
    ingest_paths([folder], encoder, store, small_settings(), progress=False)
    other = load_tiny(save_tiny_model(tmp_path / "other", {"full": 24}, seed=1))
    with pytest.raises(StoreModelMismatchError):
        ingest_paths([folder], other, store, small_settings(), progress=False)
    summary = ingest_paths([folder], other, store, small_settings(), rebuild=True, progress=False)
    assert summary.exit_code == 0 and store.heads == {"full": 24}
    assert check(store).consistent


def test_images_are_embedded_once_the_encoder_can(tmp_path, encoder):
    corpus = copy_sample(tmp_path / "sample")
    store = make_store(tmp_path)
    ingest_paths([corpus], encoder, store, small_settings(), progress=False)
    encoder.vision = RandomTower(encoder.hidden_size)
    summary = ingest_paths([corpus], encoder, store, small_settings(), progress=False)
    assert {Path(o.path).name for o in summary.outcomes if o.status == "ingested"} == {
        "pipeline.png",
        "heads-chart.png",
    }
    assert summary.embedded["image"] == 2
    assert store.kinds() == ["chunk", "faq", "image"]
    hits = store.fetch(store.index("image", "d16").ids())
    assert sorted((h.text, h.kind) for h in hits) == [("heads-chart.png", "image"), ("pipeline.png", "image")]
    assert hits[0].width and check(store).consistent


def test_cli_ingest_and_doctor_exit_codes(tmp_path, model_dir):
    folder = copy_sample(tmp_path / "sample")
    db, index_dir = f"sqlite:///{tmp_path / 'cli.db'}", str(tmp_path / "cli-indexes")
    runner = CliRunner()
    common = ["--db", db, "--index-dir", index_dir]
    result = runner.invoke(app, ["ingest", str(folder), "--model", str(model_dir), "--quiet", *common])
    assert result.exit_code == 0, result.output
    assert "ingested" in result.output and "not embedded" in result.output
    (folder / "bad.pdf").write_bytes(b"not a pdf at all")
    result = runner.invoke(app, ["ingest", str(folder), "--model", str(model_dir), "-q", *common])
    assert result.exit_code == 3 and "bad.pdf" in result.output and "unchanged" in result.output
    result = runner.invoke(app, ["doctor", *common])
    assert result.exit_code == 0 and "consistent" in result.output
    result = runner.invoke(app, ["ingest", str(folder), "--model", str(tmp_path / "nope"), "-q", *common])
    assert result.exit_code == 1 and "cannot load the model" in result.output
    unreachable = ["--db", "postgresql+psycopg://user:secret@localhost:1/none", "--index-dir", index_dir]
    result = runner.invoke(app, ["doctor", *unreachable])
    assert result.exit_code == 1 and "cannot open the store" in result.output and "secret" not in result.output


def test_documents_whose_vectors_were_lost_are_embedded_again(tmp_path, encoder):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("a.txt", "b.txt"):
        (folder / name).write_text(f"the cat sat on the mat in {name}.")
    store = make_store(tmp_path)
    ingest_paths([folder], encoder, store, small_settings(), progress=False)
    state = store.index_states()[("chunk", "d16")]
    store.index_path("chunk", "d16", state.generation).unlink()  # a lost index file
    assert not check(store).consistent
    assert repair(store).consistent
    assert {d.status for d in store.documents()} == {DocumentStatus.STALE}
    summary = ingest_paths([folder], encoder, store, small_settings(), progress=False)
    assert {o.status for o in summary.outcomes} == {DocumentStatus.INGESTED}
    assert check(store).consistent and store.index("chunk", "d16").ntotal == 2


def test_a_named_folder_that_is_missing_keeps_its_documents(tmp_path, encoder):
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "notes.txt").write_text("Exact inner-product search with FAISS.")
    store = make_store(tmp_path)
    ingest_paths([folder], encoder, store, small_settings(), progress=False)
    (folder / "notes.txt").unlink()
    folder.rmdir()  # an unmounted share, a typo: unknown is not gone
    summary = ingest_paths([folder], encoder, store, small_settings(), progress=False)
    assert [(o.status, o.reason) for o in summary.outcomes] == [(DocumentStatus.FAILED, "not found")]
    assert [Path(d.path).name for d in store.documents()] == ["notes.txt"] and check(store).consistent


def test_failed_files_are_retried_unless_told_to_wait_for_a_change(tmp_path, encoder):
    from jasper_rag.ingest.pipeline import Ingestor
    from jasper_rag.ingest.summary import UNCHANGED

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "bad.txt").write_bytes(b"cat\x00dog")
    store = make_store(tmp_path)

    def outcome(retry_failed: bool) -> str:
        summary = Ingestor(store, encoder, small_settings(), progress=False).run([folder], retry_failed=retry_failed)
        return summary.outcomes[0].status

    assert outcome(True) == DocumentStatus.FAILED
    assert outcome(True) == DocumentStatus.FAILED  # a plain ingest reads it again
    assert outcome(False) == UNCHANGED  # a watcher's later syncs do not
    (folder / "bad.txt").write_text("cat and dog")
    assert outcome(False) == DocumentStatus.INGESTED
