"""Office, table and e-book loaders: DOCX, PPTX, XLSX, CSV tables, ODT, EPUB, and the zip guard before them.

Every file is generated here with the library a user's file would come from (python-docx, python-pptx,
openpyxl, odfpy; zipfile for EPUB); the hostile ones are in ``tests/hostile_files.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import zipfile
from pathlib import Path

import docx
import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from odf.opendocument import OpenDocumentSpreadsheet, OpenDocumentText
from odf.table import Table, TableCell, TableRow
from odf.text import H, List, ListItem, P
from pptx import Presentation
from pptx.util import Inches

from jasper_rag.config import Settings
from jasper_rag.ingest import epub
from jasper_rag.ingest.archive import check_zip
from jasper_rag.ingest.loaders import FILE_TYPES, FaqContent, LoadError, LoadLimits, TextContent, file_type
from jasper_rag.ingest.sample_office import epub_container, epub_package, sample_files
from jasper_rag.ingest.tables import MAX_COLUMN_NAME_CHARS, ROWS_PER_PAGE
from jasper_rag.ingest.worker import ParseLimits, ParseWorker
from tests.hostile_files import (
    deflated,
    long_header_csv,
    named,
    raw_zip,
    repeated,
    repeated_spine_epub,
    shared_string_xlsx,
)
from tests.test_hardening_files import mutations

LIMITS = LoadLimits(max_pdf_pages=50, max_image_pixels=4_000_000)


def load(name: str, data: bytes, limits: LoadLimits = LIMITS):
    return file_type(Path(name)).load(Path(name), data, limits)


def headings(content: TextContent) -> list[str | None]:
    return [page.heading for page in content.pages]


def saved(save) -> bytes:
    buffer = io.BytesIO()
    save(buffer)
    return buffer.getvalue()


# ----------------------------------------------------------------- DOCX
def test_docx_sections_follow_heading_styles_and_tables_become_rows():
    document = docx.Document()
    document.add_paragraph("Before any heading.")
    document.add_paragraph("Guide", "Title")
    document.add_paragraph("Install", "Heading 1")
    document.add_paragraph("Run pip install.")
    document.add_paragraph("GPU", "Heading 2")
    table = document.add_table(rows=3, cols=3)
    for row, cells in zip(table.rows, (("Model", "", "Dim"), ("quick", "cpu", "256"), ("base", "", "")), strict=True):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    document.add_paragraph("Search", "Heading 1")
    document.add_paragraph("Hybrid by default.")
    content = load("guide.docx", saved(document.save))
    assert headings(content) == [None, "Guide > Install", "Guide > Install > GPU", "Guide > Search"]
    assert content.pages[0].text == "Before any heading."
    assert content.pages[1].text == "Guide > Install\n\nRun pip install."
    assert content.pages[2].text == "Guide > Install > GPU\n\nModel: quick; Column B: cpu; Dim: 256\nModel: base"


def test_docx_without_text_is_refused():
    with pytest.raises(LoadError, match="empty: no text"):
        load("blank.docx", saved(docx.Document().save))


def test_docx_tables_count_against_the_cell_limit():
    document = docx.Document()
    document.add_table(rows=4, cols=3)
    with pytest.raises(LoadError, match="too many table cells: over 10 by a DOCX table"):
        load("wide.docx", saved(document.save), dataclasses.replace(LIMITS, max_table_cells=10))


# ----------------------------------------------------------------- PPTX
def test_pptx_one_page_per_slide_headed_by_its_title_with_tables_groups_and_notes():
    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Release 2"
    first.placeholders[1].text = "Faster search"
    first.notes_slide.notes_text_frame.text = "Thank the team."
    group = first.shapes.add_group_shape()
    group.shapes.add_textbox(0, 0, Inches(1), Inches(1)).text_frame.text = "grouped text"
    second = deck.slides.add_slide(deck.slide_layouts[6])  # blank: no title
    table = second.shapes.add_table(2, 2, 0, 0, Inches(4), Inches(1)).table
    for (row, column), text in {(0, 0): "Model", (0, 1): "Dim", (1, 0): "quick", (1, 1): "256"}.items():
        table.cell(row, column).text = text
    deck.slides.add_slide(deck.slide_layouts[6])  # empty slide
    content = load("deck.pptx", saved(deck.save))
    assert [page.number for page in content.pages] == [1, 2, 3]
    assert headings(content) == ["Release 2", None, None]
    assert content.pages[0].text == "Release 2\n\nFaster search\n\ngrouped text\n\nNotes: Thank the team."
    assert content.pages[1].text == "Model: quick; Dim: 256"


def test_pptx_without_slides_is_refused():
    with pytest.raises(LoadError, match="empty PPTX: no slides"):
        load("empty.pptx", saved(Presentation().save))


# ----------------------------------------------------------------- XLSX
def workbook_bytes(sheets: dict[str, list[tuple]]) -> bytes:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    return saved(workbook.save)


def test_xlsx_sheets_become_rows_naming_their_columns_under_the_sheet_name():
    rows = [("Model", None, "Size", "Released", "Double"), ("quick", "cpu", 90.0, dt.date(2024, 5, 1), "=C2*2")]
    data = workbook_bytes({"Models": rows, "Notes": [("only one row", "of text")], "Empty": []})
    content = load("book.xlsx", data)
    assert headings(content) == ["Models", "Notes"]
    assert content.pages[0].text == "Models\n\nModel: quick; Column B: cpu; Size: 90; Released: 2024-05-01"
    assert content.pages[1].text == "Notes\n\nonly one row | of text"  # formulas: cached values only (none here)


def test_xlsx_long_sheets_are_paged_and_every_page_names_its_sheet():
    data = workbook_bytes({"Runs": [("run", "score"), *((n, n / 10) for n in range(60))]})
    content = load("runs.xlsx", data)
    assert [len(page.text.splitlines()) - 2 for page in content.pages] == [ROWS_PER_PAGE, ROWS_PER_PAGE, 10]
    assert all(page.heading == "Runs" and page.text.startswith("Runs\n\nrun: ") for page in content.pages)


def test_xlsx_cells_are_bounded_and_empty_books_refused():
    data = workbook_bytes({"Big": [tuple(range(10))] * 5})
    with pytest.raises(
        LoadError, match=r"too many table cells: over 30 by sheet 'Big' \(JASPER_INGEST_MAX_TABLE_CELLS\)"
    ):
        load("big.xlsx", data, dataclasses.replace(LIMITS, max_table_cells=30))
    with pytest.raises(LoadError, match="empty XLSX"):
        load("empty.xlsx", workbook_bytes({"Sheet": []}))


# ----------------------------------------------------------------- CSV
def test_csv_with_question_and_answer_is_an_faq_as_before():
    content = load("faq.csv", b"Question,Answer,Tag\nWhat is BM25?,A lexical ranking.,search\n")
    assert content == FaqContent([("What is BM25?", "A lexical ranking.")])
    assert FILE_TYPES[".csv"].stored_name(content) == "faq"
    with pytest.raises(LoadError, match="FAQ CSV needs columns"):
        load("half.csv", b"question,reply\nwhy,because\n")


def test_other_csv_files_are_tables_stored_as_table():
    content = load("bench.csv", b"system,nDCG@10\nBM25,0.61\n,\ndense, 0.66 \n")
    assert isinstance(content, TextContent)
    assert content.pages[0].heading == "bench.csv"
    assert content.pages[0].text == "bench.csv\n\nsystem: BM25; nDCG@10: 0.61\nsystem: dense; nDCG@10: 0.66"
    assert FILE_TYPES[".csv"].stored_name(content) == "table"
    assert FILE_TYPES[".docx"].stored_name(content) == "docx"


def test_csv_tables_are_bounded_and_checked():
    with pytest.raises(LoadError, match="too many table cells: over 5 by CSV line 2"):
        load("wide.csv", b"a,b,c\n1,2,3\n4,5,6\n", dataclasses.replace(LIMITS, max_table_cells=5))
    wide = load("wide.csv", b"a\n" + b",".join([b"x"] * 20_000) + b"\n")  # past Excel's column letters
    assert wide.pages[0].text.endswith("Column ACOF: x")
    with pytest.raises(LoadError, match="empty CSV"):
        load("blank.csv", b",,\n,,\n")
    with pytest.raises(LoadError, match="malformed CSV"):
        load("long.csv", b"a,b\n" + b"x" * 200_000 + b",y\n")


def test_table_text_is_bounded_by_its_own_setting():
    assert LoadLimits.from_settings(Settings(ingest_max_table_chars=1234)).max_table_chars == 1234
    assert LIMITS.max_table_chars == Settings().ingest_max_table_chars == 20_000_000
    tight = dataclasses.replace(LIMITS, max_table_chars=20)
    with pytest.raises(LoadError, match=r"too much table text: over 20 characters by CSV line 2 \(JASPER_INGEST_MAX"):
        load("cells.csv", b"a,b\n" + b"x" * 30 + b",y\n", tight)
    with pytest.raises(LoadError, match="over 20 characters by the column names repeated in each row"):
        load("names.csv", b"name,size\nab,1\ncd,2\nef,3\n", tight)  # 14 characters of cells, 21 of names


def test_xlsx_cells_that_all_show_one_long_shared_string_are_refused_past_the_text_limit():
    xlsx = sample_files()["model-sizes.xlsx"]
    content = load("shared.xlsx", shared_string_xlsx(xlsx, b"x" * 1000, 300))
    assert sum(len(page.text) for page in content.pages) < 300_000  # 300 cells: 1000 + the name cut to 100 each
    with pytest.raises(LoadError, match=r"too much table text: over 150,000 characters by sheet 'Encoders'"):
        load(
            "shared.xlsx",
            shared_string_xlsx(xlsx, b"x" * 1000, 300),
            dataclasses.replace(LIMITS, max_table_chars=150_000),
        )
    with pytest.raises(LoadError, match=r"over 20,000,000 characters .*\(JASPER_INGEST_MAX_TABLE_CHARS\)"):
        load("shared.xlsx", shared_string_xlsx(xlsx, b"x" * 32_000, 11_300))  # 360 M characters of cells


def test_long_column_names_are_cut_before_every_value_in_csv_and_docx_tables():
    content = load("long.csv", long_header_csv(2, 5000, 3))
    name = "0" + "h" * (MAX_COLUMN_NAME_CHARS - 1)
    assert content.pages[0].text.splitlines()[2] == f"{name}: 1; 1{'h' * (MAX_COLUMN_NAME_CHARS - 1)}: 1"
    assert sum(len(page.text) for page in content.pages) < 12_000  # the header row itself, then ~200 per row
    document = docx.Document()
    table = document.add_table(rows=2, cols=1)
    table.cell(0, 0).text, table.cell(1, 0).text = "n" * 500, "value"
    assert load("long.docx", saved(document.save)).pages[0].text == f"{'n' * MAX_COLUMN_NAME_CHARS}: value"


# ----------------------------------------------------------------- ODT
def test_odt_sections_by_text_headings_with_lists_and_tables():
    document = OpenDocumentText()
    document.text.addElement(P(text="Preface."))
    document.text.addElement(H(outlinelevel=1, text="Style guide"))
    document.text.addElement(H(outlinelevel=2, text="Naming"))
    document.text.addElement(P(text="Use nouns."))
    items = List()
    for text in ("first", "second"):
        item = ListItem()
        item.addElement(P(text=text))
        items.addElement(item)
    document.text.addElement(items)
    table = Table(name="Terms")
    for cells in (("Term", "Meaning"), ("kNN", "nearest neighbours")):
        row = TableRow()
        for text in cells:
            cell = TableCell()
            cell.addElement(P(text=text))
            row.addElement(cell)
        table.addElement(row)
    document.text.addElement(table)
    document.text.addElement(H(outlinelevel=1, text="Retrieval"))
    document.text.addElement(P(text="Hybrid."))
    content = load("guide.odt", saved(document.write))
    assert headings(content) == [None, "Style guide > Naming", "Retrieval"]
    assert content.pages[1].text == (
        "Style guide > Naming\n\nUse nouns.\n\nfirst\nsecond\n\nTerm: kNN; Meaning: nearest neighbours"
    )


def test_odt_that_is_not_a_text_document_or_is_damaged_is_refused(capsys):
    with pytest.raises(LoadError, match="not an ODT text document"):
        load("sheet.odt", saved(OpenDocumentSpreadsheet().write))
    data = sample_files()["style-guide.odt"]
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        members = [named(name, deflated(source.read(name))) for name in source.namelist() if name != "content.xml"]
        members.append(named("content.xml", deflated(source.read("content.xml")[:200])))
    with pytest.raises(LoadError, match=r"corrupt ODT: content.xml"):
        load("cut.odt", raw_zip(members))
    assert capsys.readouterr().out == ""  # odfpy's print of the damaged part is silenced


# ----------------------------------------------------------------- EPUB
def epub_bytes(files: dict[str, str | bytes], package: str = "OEBPS/content.opf") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("mimetype", "application/epub+zip")
        book.writestr("META-INF/container.xml", epub_container(package))
        for name, body in files.items():
            book.writestr(name, body)
    return out.getvalue()


def chapter(body: str, title: str = "") -> str:
    head = f"<head><title>{title}</title></head>" if title else ""
    return f'<?xml version="1.0"?><!DOCTYPE html><html xmlns="http://www.w3.org/1999/xhtml">{head}<body>{body}</body></html>'


def test_epub_chapters_in_spine_order_with_their_headings():
    package = (
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0"><manifest>'
        '<item id="two" href="text/chapter%202.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="one" href="one.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="gone" href="missing.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="cover" href="cover.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="img" href="cover.png" media-type="image/png"/>'
        '</manifest><spine><itemref idref="cover"/><itemref idref="one"/><itemref idref="gone"/>'
        '<itemref idref="img"/><itemref idref="two"/></spine></package>'
    )
    files = {
        "OEBPS/content.opf": package,
        "OEBPS/cover.xhtml": chapter('<img src="cover.png"/>'),
        "OEBPS/one.xhtml": chapter("<p>Intro.</p><h1>Vectors</h1><p>Cosine.</p><h2>Norms</h2><p>Unit.</p>", "Book"),
        "OEBPS/text/chapter 2.xhtml": chapter("<h1>Indexes</h1><p>HNSW &amp; flat.</p>"),
        "OEBPS/cover.png": b"\x89PNG",
    }
    content = load("book.epub", epub_bytes(files))
    assert headings(content) == ["Book", "Vectors", "Vectors > Norms", "Indexes"]
    assert content.pages[3].text == "Indexes\n\nHNSW & flat."


def test_epub_errors_name_the_problem():
    with pytest.raises(LoadError, match=r"not an EPUB: no META-INF/container.xml"):
        load("bare.epub", raw_zip([named("mimetype", deflated(b"application/epub+zip"))]))
    with pytest.raises(LoadError, match=r"not an EPUB: no OEBPS/content.opf"):
        load("nopackage.epub", epub_bytes({}))
    with pytest.raises(LoadError, match="corrupt EPUB: XMLSyntaxError"):
        load("badpackage.epub", epub_bytes({"OEBPS/content.opf": "<package"}))
    blank = epub_bytes({"OEBPS/content.opf": epub_package(["a.xhtml"]), "OEBPS/a.xhtml": chapter("")})
    with pytest.raises(LoadError, match="empty EPUB: none of its 1 spine documents has text"):
        load("blank.epub", blank)


def test_epub_chapters_the_spine_repeats_are_read_once_in_first_order():
    content = load("repeated.epub", repeated_spine_epub(10_000, 200))
    assert len(content.pages) == 1 and len(content.pages[0].text) < 10_100
    files = {
        "OEBPS/content.opf": epub_package(["a.xhtml", "b.xhtml", "a.xhtml"]),
        "OEBPS/a.xhtml": chapter("<h1>A</h1><p>first</p>"),
        "OEBPS/b.xhtml": chapter("<h1>B</h1><p>second</p>"),
    }
    assert headings(load("aba.epub", epub_bytes(files))) == ["A", "B"]


def test_epub_chapters_read_are_bounded_by_the_archive_limit(monkeypatch):
    monkeypatch.setattr(epub, "check_zip", lambda data, limits, kind: None)  # the zip guard would refuse first
    book = epub_bytes({"OEBPS/content.opf": epub_package(["a.xhtml"]), "OEBPS/a.xhtml": chapter("<p>" + "x" * 5000)})
    with pytest.raises(
        LoadError, match=r"EPUB chapters too large: .* by 'OEBPS/a.xhtml' \(JASPER_INGEST_MAX_ARCHIVE_MB\)"
    ):
        load("big.epub", book, dataclasses.replace(LIMITS, max_archive_bytes=4096))


# ----------------------------------------------------------------- the zip guard
def test_the_zip_guard_counts_members_and_bytes_and_refuses_bombs_liars_and_entities():
    data = sample_files()["team-handbook.docx"]
    facts = check_zip(data, LIMITS, "DOCX")
    assert facts.members == 17 and facts.inflated_bytes == facts.declared_bytes > len(data)
    with pytest.raises(LoadError, match="too many archive members: 17 > limit 16"):
        check_zip(data, dataclasses.replace(LIMITS, max_archive_members=16), "DOCX")
    with pytest.raises(LoadError, match=r"members declare 0\.8 MiB > limit 0\.4 MiB \(JASPER_INGEST_MAX_ARCHIVE_MB"):
        check_zip(data, dataclasses.replace(LIMITS, max_archive_bytes=facts.declared_bytes // 2), "DOCX")
    bomb = raw_zip([named("x.xml", repeated(bytes(2**20), 8))])  # 8 MiB of zeros: about 1000 times
    with pytest.raises(LoadError, match=r"inflates 1,0[0-9][0-9] times > limit 500"):
        check_zip(bomb, LIMITS, "DOCX")
    check_zip(bomb, dataclasses.replace(LIMITS, max_archive_ratio=2000), "DOCX")  # the ratio is a setting
    liar = raw_zip([named("x.xml", repeated(bytes(2**20), 8), size=100)])
    with pytest.raises(LoadError, match=r"corrupt DOCX: Bad CRC-32 for file 'x.xml'"):
        check_zip(liar, LIMITS, "DOCX")
    straddling = b" " * (2**20 - 4) + b"<!ENTITY x 'y'>"  # across two 1 MiB read steps
    with pytest.raises(LoadError, match=r"'x.xml' declares XML entities"):
        check_zip(
            raw_zip([named("x.xml", deflated(straddling))]), dataclasses.replace(LIMITS, max_archive_ratio=2000), "EPUB"
        )


# ----------------------------------------------------------------- samples and the parsing worker
def test_samples_are_deterministic_and_load_through_the_parsing_worker():
    files = sample_files()
    assert files == sample_files()
    assert sorted(Path(name).suffix for name in files) == [".csv", ".docx", ".epub", ".odt", ".pptx", ".xlsx"]
    with ParseWorker(ParseLimits(60, 2048 * 2**20, 120.0)) as worker:
        for name, data in files.items():
            kind = file_type(Path(name))
            content = worker.load(kind.load, Path(name), data, LIMITS)
            assert content == kind.load(Path(name), data, LIMITS)
            assert isinstance(content, TextContent) and all(page.text.strip() for page in content.pages), name
            assert kind.stored_name(content) == {".csv": "table"}.get(Path(name).suffix, Path(name).suffix[1:])


# ----------------------------------------------------------------- errors shared by the zip formats
@pytest.mark.parametrize("suffix", [".docx", ".pptx", ".xlsx", ".odt", ".epub"])
def test_zip_formats_refuse_what_is_not_a_zip(suffix):
    kind = suffix[1:].upper()
    with pytest.raises(LoadError, match=f"not a valid {kind} file: not a zip archive"):
        load(f"x{suffix}", b"just some text")
    with pytest.raises(LoadError, match=f"encrypted or legacy {kind}"):
        load(f"x{suffix}", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512))
    with pytest.raises(LoadError, match=f"corrupt {kind}|not a valid {kind} file"):
        load(f"x{suffix}", sample_files()["team-handbook.docx"][:5000])  # truncated


# ----------------------------------------------------------------- fuzzing
@st.composite
def member_mutations(draw, seed: bytes) -> bytes:
    """A zip whose one member's content is mutated, rezipped with a valid CRC (reaching the XML parsers)."""
    with zipfile.ZipFile(io.BytesIO(seed)) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    target = draw(st.sampled_from(sorted(name for name, body in contents.items() if body)))
    contents[target] = draw(mutations(contents[target]))
    return raw_zip([named(name, deflated(body)) for name, body in contents.items()])


@pytest.mark.parametrize("name", sorted(sample_files()))
def test_fuzzed_office_files_load_or_are_refused(name):
    """Mutated samples (bytes of the file or of one member overwritten, inserted, truncated) never fail
    other than by ``LoadError``, and what loads is storable text."""
    seed = sample_files()[name]
    strategy = mutations(seed) if name.endswith(".csv") else st.one_of(mutations(seed), member_mutations(seed))

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(data=strategy)
    def loads_or_refuses(data: bytes) -> None:
        with contextlib.suppress(LoadError):
            content = load(name, data)
            assert all("\x00" not in page.text for page in content.pages)

    loads_or_refuses()
