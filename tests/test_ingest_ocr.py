"""OCR (RapidOCR): scanned PDF pages and pictures of text get their text, marked ``ocr``; charts and noise get
none; OCR off, unavailable or bounded per file; and it runs inside the parsing worker's default limits.
Images are drawn here with DejaVu Sans (matplotlib's package data); assertions are on recognised words."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import pytest
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

from jasper_rag.bench.pdf_text import dejavu_path, recall
from jasper_rag.config import Settings
from jasper_rag.ingest import ocr
from jasper_rag.ingest.loaders import LoadError, LoadLimits, load_image, load_pdf
from jasper_rag.ingest.sample_build import image_pdf
from jasper_rag.ingest.worker import ParseLimits, ParseWorker

pytest.importorskip("rapidocr_onnxruntime")

LINES = ["The quick brown fox jumps over", "the lazy dog near the river bank", "while seven wizards read books"]
TEXT = " ".join(LINES)
OCR = LoadLimits(max_pdf_pages=100, max_image_pixels=16_000_000, max_ocr_pages=1)
NO_OCR = LoadLimits(max_pdf_pages=100, max_image_pixels=16_000_000)


def text_image(lines: list[str] = LINES) -> Image.Image:
    image = Image.new("RGB", (900, 60 + 56 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(dejavu_path()), 36)
    for row, line in enumerate(lines):
        draw.text((30, 30 + 56 * row), line, fill="black", font=font)
    return image


def chart_image() -> Image.Image:
    """Bars and axes, no words."""
    image = Image.new("RGB", (640, 400), "white")
    draw = ImageDraw.Draw(image)
    draw.line((40, 360, 620, 360), fill="black", width=3)
    draw.line((40, 20, 40, 360), fill="black", width=3)
    for number, height in enumerate((120, 260, 190, 310, 80)):
        draw.rectangle((70 + number * 110, 360 - height, 140 + number * 110, 358), fill="steelblue")
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def mixed_pdf(scans: list[Image.Image]) -> bytes:
    """Page 1 with a text layer, then one scanned page (only a picture) per image."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 7, "A page with a real text layer about distillation.")
    for scan in scans:
        pdf.add_page()
        pdf.image(scan, x=10, y=10, w=190)
    return bytes(pdf.output())


def scan_only(image: Image.Image) -> bytes:
    """A one-page PDF that is only a picture (no text layer)."""
    return image_pdf(image)


def test_a_picture_of_text_gets_its_words() -> None:
    content = load_image(Path("note.png"), png(text_image()), OCR)
    assert (content.width, content.height) == text_image().size
    [page] = content.text
    assert page.ocr and page.number is None
    assert recall(page.text, TEXT) >= 0.8, page.text


def test_a_chart_without_words_gets_no_text() -> None:
    assert load_image(Path("chart.png"), png(chart_image()), OCR).text == ()


def test_ocr_off_reads_no_image() -> None:
    assert load_image(Path("note.png"), png(text_image()), NO_OCR).text == ()


def test_scanned_pages_are_recognised_within_the_page_bound() -> None:
    """Text page kept as it is; the first scanned page OCR'd; the second over ``max_ocr_pages`` left empty."""
    data = mixed_pdf([text_image(), text_image(LINES[::-1])])
    pages = load_pdf(Path("mixed.pdf"), data, OCR).pages
    assert [page.number for page in pages] == [1, 2, 3]
    assert [page.ocr for page in pages] == [False, True, False]
    assert "distillation" in pages[0].text
    assert recall(pages[1].text, TEXT) >= 0.8, pages[1].text
    assert pages[2].text == ""


def test_ocr_starts_no_page_past_its_cpu_budget() -> None:
    budget = LoadLimits(max_pdf_pages=100, max_image_pixels=16_000_000, max_ocr_pages=5, ocr_cpu_seconds=1e-6)
    pages = load_pdf(Path("mixed.pdf"), mixed_pdf([text_image(), text_image()]), budget).pages
    assert [page.ocr for page in pages] == [False, False, False]
    assert "distillation" in pages[0].text and pages[1].text == pages[2].text == ""


def test_a_scan_without_text_is_refused_naming_ocr() -> None:
    data = scan_only(Image.new("RGB", (400, 300), "gray"))
    with pytest.raises(LoadError, match=r"no text layer.*OCR found no text on the 1 page"):
        load_pdf(Path("grey.pdf"), data, OCR)
    with pytest.raises(LoadError, match=r"no text layer.*OCR is off: JASPER_INGEST_OCR"):
        load_pdf(Path("grey.pdf"), data, NO_OCR)


def test_without_rapidocr_ocr_is_off_with_one_log_line(monkeypatch, caplog) -> None:
    ocr._engine.cache_clear()
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # import fails as on Python >= 3.13
    try:
        with caplog.at_level(logging.WARNING, logger=ocr.__name__):
            assert not ocr.available() and not ocr.available()
            with pytest.raises(LoadError, match="OCR unavailable: rapidocr-onnxruntime is not installed"):
                load_pdf(Path("scan.pdf"), scan_only(text_image()), OCR)
            assert load_image(Path("note.png"), png(text_image()), OCR).text == ()
        assert len([r for r in caplog.records if "OCR is off" in r.getMessage()]) == 1
    finally:
        ocr._engine.cache_clear()


def test_limits_from_settings() -> None:
    settings = Settings(ingest_ocr=True, ingest_ocr_max_pages=3)
    assert LoadLimits.from_settings(settings).max_ocr_pages == 3
    assert LoadLimits.from_settings(settings).ocr_cpu_seconds == pytest.approx(0.6 * settings.ingest_parse_cpu_s)
    assert LoadLimits.from_settings(Settings(ingest_ocr=False)).max_ocr_pages == 0


def test_ocr_fits_the_parsing_workers_default_limits() -> None:
    """Model load and a scanned page inside the default memory (address space) and CPU limits."""
    settings = Settings()
    with ParseWorker(ParseLimits.from_settings(settings)) as worker:
        pages = worker.load(load_pdf, Path("scan.pdf"), scan_only(text_image()), OCR).pages
    assert pages[0].ocr and recall(pages[0].text, TEXT) >= 0.8
