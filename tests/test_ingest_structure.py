"""Where a hit sits in its document: chunks keep their section heading and whether their text was
recognised by OCR, through the store (old stores gain the columns), the searcher, the CLI and LangChain."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import create_engine, inspect, text

from jasper_rag.ingest.loaders import ImageContent, Page
from jasper_rag.ingest.pipeline import Ingestor, ingest_paths
from jasper_rag.search.cli import _source
from jasper_rag.search.langchain import hit_to_document
from jasper_rag.search.searcher import Searcher
from jasper_rag.store import DocumentRecord, DocumentStatus
from jasper_rag.store.database import make_engine
from jasper_rag.store.doctor import check
from tests.ingest_support import RandomTower, load_tiny, make_store, save_tiny_model, small_settings

GUIDE = "# Install\n\nRun make demo on a fresh machine.\n\n## Offline\n\nSet HF_HUB_OFFLINE so nothing downloads.\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def encoder(model_dir):
    return load_tiny(model_dir)


def test_chunks_carry_their_section_heading_to_every_hit_surface(tmp_path, encoder) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text(GUIDE)
    store = make_store(tmp_path)
    ingest_paths([tmp_path / "docs"], encoder, store, small_settings(), progress=False)
    headings = {view.heading for view in store.fetch(store.index("chunk", "full").ids())}
    assert headings == {"Install", "Install > Offline"}

    hit = next(h for h in Searcher(store, encoder).search("HF_HUB_OFFLINE", k=3) if h.heading == "Install > Offline")
    assert not hit.ocr
    assert _source(hit).endswith("§ Install > Offline")
    assert hit_to_document(hit).metadata["heading"] == "Install > Offline"
    assert hit_to_document(hit).metadata["ocr"] is False


def test_a_store_written_before_headings_gains_the_columns_and_keeps_its_rows(tmp_path, encoder) -> None:
    (tmp_path / "notes.txt").write_text("Exact inner-product search with FAISS.")
    store = make_store(tmp_path)
    ingest_paths([tmp_path / "notes.txt"], encoder, store, small_settings(), progress=False)
    store.close()
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    old = create_engine(url)
    with old.begin() as connection:  # what the schema looked like before the columns existed
        connection.execute(text("ALTER TABLE entries DROP COLUMN heading"))
        connection.execute(text("ALTER TABLE entries DROP COLUMN ocr"))
    old.dispose()

    engine = make_engine(url)
    assert {"heading", "ocr"} <= {column["name"] for column in inspect(engine).get_columns("entries")}
    engine.dispose()
    reopened = make_store(tmp_path)
    (view,) = reopened.fetch(reopened.index("chunk", "full").ids())
    assert view.heading is None and view.ocr is False and "FAISS" in view.text
    assert check(reopened).consistent


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "white").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("embed_images", [False, True])
def test_text_recognised_in_an_image_is_stored_as_ocr_chunks_beside_it(tmp_path, encoder, embed_images) -> None:
    if embed_images:
        encoder.vision = RandomTower(encoder.hidden_size)
    store = make_store(tmp_path)
    ingestor = Ingestor(store, encoder, small_settings(), progress=False)
    path = tmp_path / "whiteboard.png"
    record = DocumentRecord(str(path), "image", DocumentStatus.FAILED)
    recognised = (Page(None, "Quarterly search latency review", ocr=True),)
    ingestor._fill(record, ImageContent(16, 16, "PNG", recognised), _png())
    ingestor.pending.append(record)
    ingestor._flush()

    chunks = store.fetch(store.index("chunk", "full").ids())
    assert [(c.text, c.ocr, c.path) for c in chunks] == [("Quarterly search latency review", True, str(path))]
    assert ("image" in store.kinds()) is embed_images
    assert embed_images or "the text OCR read in it is" in record.error
    assert check(store).consistent
    hit = Searcher(store, encoder).search("latency review", k=1, kinds=["chunk"])[0]
    assert hit.ocr and _source(hit).endswith("(OCR)") and Path(hit.path).name == "whiteboard.png"


def test_an_ocr_failure_keeps_the_image_without_its_text(tmp_path, monkeypatch, caplog) -> None:
    from jasper_rag.ingest import loaders, ocr

    def broken(image):
        raise RuntimeError("onnxruntime: bad allocation")

    monkeypatch.setattr(ocr, "available", lambda: True)
    monkeypatch.setattr(ocr, "recognise", broken)
    with caplog.at_level(logging.WARNING, logger=loaders.__name__):
        content = loaders.load_image(Path("board.png"), _png(), loaders.LoadLimits(10, 10**6, max_ocr_pages=1))
    assert (content.width, content.text) == (16, ()) and "OCR failed on board.png" in caplog.text
