"""PDF text you can trust: typeset PDFs (words apart only by kerning or positioning), glue detection and the
per-page choice between pypdf and PDFium in ``load_pdf``, page numbers kept. The PDFs are generated
(``jasper_rag.bench.pdf_text.synthetic_cases``)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfReader

from jasper_rag.bench.pdf_text import Case, recall, synthetic_cases
from jasper_rag.ingest import pdf_text
from jasper_rag.ingest.loaders import LoadLimits, load_pdf
from jasper_rag.ingest.pdf_text import PdfiumPages, choose, glue_share, glued, normalise, pypdf_text

LIMITS = LoadLimits(max_pdf_pages=100, max_image_pixels=16_000_000)
GLUED = "Whatisthisquestionabout?Theingestionreadseverypageofadocument andkeepsthewordsintheirorder."
PROSE = "What is this question about? The ingestion reads every page of a document and keeps the words."


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    return {case.name: case for case in synthetic_cases()}


def engine_recall(case: Case, read) -> float:
    texts = [read(index) or "" for index in range(len(case.reference))]
    return min(recall(text, reference) for text, reference in zip(texts, case.reference, strict=True))


def test_glue_share_tells_glued_text_from_prose() -> None:
    assert glue_share(PROSE) == 0.0 and not glued(PROSE)
    assert glue_share(GLUED) > 0.9 and glued(GLUED)
    assert glue_share("") == 0.0
    # a URL or a long identifier in prose is not glue
    assert not glued(PROSE + " See https://www.freedesktop.org/standards/shared-mime-info for the spec.")


def test_normalise_spells_out_ligatures_and_line_breaks() -> None:
    assert normalise("\ufeffa \ufb01ne \ufb02ow\r\nof \ufb03ces\r") == "a fine flow\nof ffices\n"


def test_choose_keeps_good_primary_without_asking_the_fallback() -> None:
    def fallback() -> str:
        raise AssertionError("the fallback engine must not run")

    assert choose(PROSE, fallback) == pdf_text.PageText(PROSE, pdf_text.PRIMARY)


@pytest.mark.parametrize(
    ("primary", "fallback", "engine"),
    [
        (GLUED, PROSE, pdf_text.FALLBACK),  # glued: the better fallback wins
        ("", PROSE, pdf_text.FALLBACK),  # empty page
        (None, PROSE, pdf_text.FALLBACK),  # the primary engine failed on the page
        (GLUED, GLUED + "x", pdf_text.PRIMARY),  # the fallback is no better
        (GLUED, None, pdf_text.PRIMARY),  # the fallback failed
        ("", "  ", pdf_text.PRIMARY),  # both empty: the page stays empty
        (None, None, None),  # both failed: unreadable
    ],
)
def test_choose_falls_back_only_when_it_helps(primary, fallback, engine) -> None:
    assert choose(primary, lambda: fallback).engine == engine


@pytest.mark.parametrize(
    "name",
    [
        "tj-kerned-type0",
        "tj-tight-type0",  # glued by both engines' own heuristics: rebuilt from PDFium's glyph gaps
        "tj-tight-core-font",
        "td-placed-words-type0",
        "two-columns-kerned-type0",
        "ligatures-hyphens-type0",
    ],
)
def test_typeset_pdfs_come_out_as_words(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    content = load_pdf(Path(f"{name}.pdf"), case.data, LIMITS)
    assert [page.number for page in content.pages] == list(range(1, len(case.reference) + 1))
    for page, reference in zip(content.pages, case.reference, strict=True):
        assert recall(page.text, reference) >= 0.95
        assert not page.ocr and "\ufb01" not in page.text


def test_ligatures_are_spelt_out(cases: dict[str, Case]) -> None:
    text = load_pdf(Path("l.pdf"), cases["ligatures-hyphens-type0"].data, LIMITS).pages[0].text
    for word in ("affluent", "fine", "flow", "office"):
        assert word in text


def test_glyph_gaps_split_what_pdfium_glues(cases: dict[str, Case]) -> None:
    case = cases["tj-tight-type0"]
    pages = PdfiumPages(case.data, 1)
    try:
        plain, repaired = pages.text(0, repair=False), pages.text(0)
    finally:
        pages.close()
    assert glued(plain) and recall(plain, case.reference[0]) < 0.1
    assert not glued(repaired) and recall(repaired, case.reference[0]) == 1.0


def test_glyph_gap_rebuild_is_bounded_per_file(cases: dict[str, Case]) -> None:
    pages = PdfiumPages(cases["tj-tight-type0"].data, 1)
    pages.spaced_left = 10  # fewer characters left than the page holds: PDFium's own text is kept
    try:
        assert glued(pages.text(0))
    finally:
        pages.close()


def test_tight_kerning_the_choice_is_never_worse_than_either_engine(cases: dict[str, Case]) -> None:
    for name in ("tj-tight-type0", "tj-tight-core-font"):
        case = cases[name]
        reader = PdfReader(io.BytesIO(case.data))
        pdfium_pages = PdfiumPages(case.data, len(reader.pages))
        try:
            pypdf_score = engine_recall(case, lambda index, reader=reader: pypdf_text(reader.pages[index]))
            pdfium_score = engine_recall(case, pdfium_pages.text)
        finally:
            pdfium_pages.close()
        content = load_pdf(Path(f"{name}.pdf"), case.data, LIMITS)
        chosen = min(recall(p.text, r) for p, r in zip(content.pages, case.reference, strict=True))
        assert chosen >= max(pypdf_score, pdfium_score) - 1e-9, name


def test_headers_and_footers_stay_on_their_pages(cases: dict[str, Case]) -> None:
    content = load_pdf(Path("h.pdf"), cases["headers-footers-type0"].data, LIMITS)
    assert [page.number for page in content.pages] == [1, 2, 3]
    for number, page in enumerate(content.pages, start=1):
        assert "Jasper annual report" in page.text and f"Page {number} of 3" in page.text


def test_a_glued_pypdf_page_is_read_by_pdfium(cases: dict[str, Case], monkeypatch) -> None:
    """The fallback per page: page 1's pypdf text glued, page 2's lost; the others keep pypdf's."""
    case = cases["headers-footers-type0"]
    real = pdf_text.pypdf_text
    calls = iter(range(10))

    def flaky(page):
        call = next(calls)
        return {0: GLUED, 1: None}.get(call, real(page))

    monkeypatch.setattr(pdf_text, "pypdf_text", flaky)
    content = load_pdf(Path("h.pdf"), case.data, LIMITS)
    assert [page.number for page in content.pages] == [1, 2, 3]
    for page, reference in zip(content.pages, case.reference, strict=True):
        assert recall(page.text, reference) == 1.0
    assert "Page 2 of 3" in content.pages[1].text


def test_pdfium_is_not_used_when_it_counts_other_pages(cases: dict[str, Case]) -> None:
    pages = PdfiumPages(cases["headers-footers-type0"].data, 5)  # pypdf said 5: page numbers would disagree
    try:
        assert pages.text(0) is None
    finally:
        pages.close()
    assert PdfiumPages(b"%PDF-1.7\nnot a pdf", 1).text(0) is None


def _with_outline(pages: list[str], outline: list[tuple[str, int, str | None]]) -> bytes:
    """A text PDF with bookmarks: (title, 0-based page, parent title or None), parents first."""
    from pypdf import PdfWriter

    from jasper_rag.ingest.sample_build import text_pdf

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf(pages))))
    made = {}
    for title, page, parent in outline:
        made[title] = writer.add_outline_item(title, page, parent=made.get(parent))
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_pdf_pages_carry_the_heading_of_the_outline_entry_they_sit_under() -> None:
    pages = ["Preface text.", "Install steps.", "More install steps.", "Offline use.", "Appendix text."]
    outline = [("Guide", 1, None), ("Install", 1, "Guide"), ("Offline", 3, "Guide"), ("Appendix", 4, None)]
    loaded = load_pdf(Path("guide.pdf"), _with_outline(pages, outline), LoadLimits(100, 10**6))
    assert [page.heading for page in loaded.pages] == [
        None,
        "Guide > Install",
        "Guide > Install",
        "Guide > Offline",
        "Appendix",
    ]
    assert [page.number for page in loaded.pages] == [1, 2, 3, 4, 5]


def test_a_damaged_outline_costs_the_headings_not_the_text() -> None:
    class Broken:
        @property
        def outline(self):
            raise KeyError("/First")

    assert pdf_text.outline_headings(Broken(), 3) == [None, None, None]
    data = _with_outline(["Only page."], [])
    assert load_pdf(Path("plain.pdf"), data, LoadLimits(100, 10**6)).pages[0].heading is None
