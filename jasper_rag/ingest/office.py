"""Office documents: Word ``.docx`` (python-docx), PowerPoint ``.pptx`` (python-pptx), OpenDocument ``.odt`` (odfpy).

Each file is checked as a zip first (``jasper_rag.ingest.archive``: members, inflated size, compression
ratio, no XML entity declarations); the libraries parse XML without resolving entities (python-docx and
python-pptx: lxml with ``resolve_entities=False``; odfpy: defusedxml's SAX parser, external entities off).

- DOCX: the body in order; paragraphs in the ``Title`` and ``Heading 1``-``Heading 9`` styles start
  sections (``Page(None, text, heading)`` with the heading path, as for Markdown and HTML), tables are
  rows naming their columns (``jasper_rag.ingest.tables``); content controls are read through. Headers,
  footers, comments, footnotes and text boxes are not read.
- PPTX: one page per slide (``number`` = slide number, ``heading`` = the slide title, which begins its
  text): the text of every shape (groups included, in slide order), tables as rows, then the speaker
  notes ("Notes: ...").
- ODT: the body in order; ``text:h`` headings (by ``outline-level``) start sections, paragraphs, lists
  and tables as for DOCX (repeated rows and cells are read once).

Table cells and text of one file count against ``JASPER_INGEST_MAX_TABLE_CELLS`` and
``JASPER_INGEST_MAX_TABLE_CHARS`` (``tables.CellBudget``).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax import ContentHandler, SAXParseException

import docx
from defusedxml.sax import parseString
from docx.opc.exceptions import PackageNotFoundError as DocxPackageError
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph
from odf import teletype
from odf.namespaces import TABLENS, TEXTNS
from odf.opendocument import load as load_odf
from pptx import Presentation
from pptx.exc import PackageNotFoundError as PptxPackageError
from pptx.shapes.group import GroupShape

from jasper_rag.ingest.archive import check_zip, parse_errors
from jasper_rag.ingest.loaders import LoadError, LoadLimits, Page, TextContent, require_text, section_pages
from jasper_rag.ingest.markup import Outline, Section
from jasper_rag.ingest.tables import CellBudget, table_lines

if TYPE_CHECKING:
    from docx.document import Document as DocxDocument
    from lxml import etree
    from odf.element import Element
    from pptx.shapes.base import BaseShape
    from pptx.shapes.shapetree import GroupShapes, SlideShapes
    from pptx.slide import Slide
    from pptx.table import Table as PptxTable

HEADING_STYLE = re.compile(r"heading ([1-9])", re.IGNORECASE)
ODT_CONTENT = "content.xml"


# ----------------------------------------------------------------- DOCX
def load_docx(path: Path, data: bytes, limits: LoadLimits) -> TextContent:
    """A Word document by section under its heading styles (see the module docstring)."""
    check_zip(data, limits, "DOCX")
    with parse_errors("DOCX", DocxPackageError):
        document = docx.Document(io.BytesIO(data))
        styles = {style.style_id: style.name or "" for style in document.styles}
        outline, budget = Outline(), CellBudget(limits)
        for block in _docx_blocks(document.element.body, document):
            if isinstance(block, Paragraph):
                _docx_paragraph(outline, block, styles)
            else:
                _table(outline, _docx_rows(block, budget), budget)
        return section_pages(outline.sections())


def _docx_blocks(parent: etree._Element, document: DocxDocument) -> Iterator[Paragraph | Table]:
    """Paragraphs and tables of the body in order, through content controls (``w:sdt``)."""
    for child in parent.iterchildren():
        if child.tag == qn("w:p"):
            yield Paragraph(child, document)
        elif child.tag == qn("w:tbl"):
            yield Table(child, document)
        elif child.tag == qn("w:sdt"):
            for content in child.iterchildren(qn("w:sdtContent")):
                yield from _docx_blocks(content, document)


def _docx_paragraph(outline: Outline, paragraph: Paragraph, styles: dict[str, str]) -> None:
    """A paragraph into ``outline``: a heading when its style is one, else a block of text."""
    level = _heading_level(styles.get(paragraph._p.style or "", ""))
    if level is None:
        outline.block(paragraph.text)
    else:
        outline.heading(level, paragraph.text)


def _heading_level(style: str) -> int | None:
    """``Title`` is level 1, ``Heading n`` level n + 1; None for other styles."""
    if style.lower() == "title":
        return 1
    match = HEADING_STYLE.fullmatch(style.strip())
    return int(match[1]) + 1 if match else None


def _docx_rows(table: Table, budget: CellBudget) -> Iterator[list[str]]:
    """Each row's cells (a merged cell once), nested tables' text inside their cell."""
    for tr in table._tbl.tr_lst:
        cells = tr.tc_lst
        budget.take(len(cells), "a DOCX table")
        yield budget.texts((_docx_cell_text(cell) for cell in cells), "a DOCX table")


def _docx_cell_text(cell: etree._Element) -> str:
    """A cell's paragraphs (nested tables' included) on one line; field codes and deletions left out."""
    paragraphs = ("".join(paragraph.itertext(qn("w:t"))) for paragraph in cell.iter(qn("w:p")))
    return " ".join(" ".join(paragraphs).split())


def _table(outline: Outline, rows: Iterator[list[str]], budget: CellBudget) -> None:
    """A table's lines into ``outline`` as one group of blocks (kept together when chunked)."""
    group = object()
    for line in table_lines(rows, budget):
        outline.block(line, group)
    outline.end_group()


# ----------------------------------------------------------------- PPTX
def load_pptx(path: Path, data: bytes, limits: LoadLimits) -> TextContent:
    """A PowerPoint deck, one page per slide (see the module docstring)."""
    check_zip(data, limits, "PPTX")
    with parse_errors("PPTX", PptxPackageError):
        deck = Presentation(io.BytesIO(data))
        budget = CellBudget(limits)
        pages = [_slide_page(number, slide, budget) for number, slide in enumerate(deck.slides, start=1)]
    if not pages:
        raise LoadError("empty PPTX: no slides")
    return require_text(pages)


def _slide_page(number: int, slide: Slide, budget: CellBudget) -> Page:
    """Slide ``number`` as a page headed by its title: its shapes' text, then its speaker notes."""
    title_shape = slide.shapes.title
    title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
    parts = [text for text in _shape_texts(slide.shapes, title_shape, budget) if text.strip()]
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        notes = slide.notes_slide.notes_text_frame.text.strip()
        if notes:
            parts.append(f"Notes: {notes}")
    section = Section((title,) if title else (), "\n\n".join(parts))
    return Page(number, section.text, section.heading)


def _shape_texts(shapes: SlideShapes | GroupShapes, title_shape: BaseShape | None, budget: CellBudget) -> Iterator[str]:
    """The text of each shape but the title, in slide order: groups read through, tables as rows."""
    for shape in shapes:
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        if isinstance(shape, GroupShape):
            yield from _shape_texts(shape.shapes, None, budget)
        elif shape.has_text_frame:
            yield shape.text_frame.text
        elif shape.has_table:
            yield "\n".join(table_lines(_pptx_rows(shape.table, budget), budget))


def _pptx_rows(table: PptxTable, budget: CellBudget) -> Iterator[list[str]]:
    """Each row's cell texts, counted against ``budget``."""
    for row in table.rows:
        cells = list(row.cells)
        budget.take(len(cells), "a PPTX table")
        yield budget.texts((" ".join(cell.text.split()) for cell in cells), "a PPTX table")


# ----------------------------------------------------------------- ODT
def load_odt(path: Path, data: bytes, limits: LoadLimits) -> TextContent:
    """An OpenDocument text by section under its headings (see the module docstring)."""
    check_zip(data, limits, "ODT")
    with parse_errors("ODT"):
        _check_well_formed(data, ODT_CONTENT)
        with open(os.devnull, "w") as discard, contextlib.redirect_stdout(discard):
            document = load_odf(io.BytesIO(data))  # it prints a part it cannot parse, whole, to stdout
        if getattr(document, "text", None) is None:  # a spreadsheet, drawing or presentation
            raise LoadError("not an ODT text document: no office:text body")
        outline = Outline()
        _odt_blocks(outline, document.text, CellBudget(limits))
        return section_pages(outline.sections())


def _check_well_formed(data: bytes, name: str) -> None:
    """Parse one member with expat (no entities, no namespaces) so a damaged part is refused: odfpy only
    prints such a part and goes on with what it read of it."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        try:
            part = archive.read(name)
        except KeyError as err:
            raise LoadError(f"not an ODT text document: no {name}") from err
    try:
        parseString(part, ContentHandler())
    except SAXParseException as err:
        raise LoadError(f"corrupt ODT: {name}: {err.getMessage()} (line {err.getLineNumber()})") from err


def _odt_blocks(outline: Outline, element: Element, budget: CellBudget, group: object = None) -> None:
    """The headings, paragraphs and tables under ``element`` in order; a list's items one per line."""
    for child in element.childNodes:
        name = getattr(child, "qname", None)
        if name == (TEXTNS, "h"):
            outline.heading(_odt_level(child), teletype.extractText(child))
        elif name == (TEXTNS, "p"):
            outline.block(teletype.extractText(child), group)
        elif name == (TABLENS, "table"):
            _table(outline, _odt_rows(child, budget), budget)
        elif name == (TEXTNS, "list"):
            _odt_blocks(outline, child, budget, group or child)
            if group is None:
                outline.end_group()
        elif name is not None:
            _odt_blocks(outline, child, budget, group)  # sections, frames, list items: their text in order


def _odt_level(heading: Element) -> int:
    """A ``text:h`` heading's ``outline-level`` (1 when missing or not a number)."""
    try:
        return max(1, int(heading.getAttrNS(TEXTNS, "outline-level") or 1))
    except ValueError:
        return 1


def _odt_rows(table: Element, budget: CellBudget) -> Iterator[list[str]]:
    """Each row's cell texts (a repeated row or cell once), counted against ``budget``."""
    for row in _odt_elements(table, (TABLENS, "table-row")):
        cells = [child for child in row.childNodes if getattr(child, "qname", None) == (TABLENS, "table-cell")]
        budget.take(len(cells), "an ODT table")
        yield budget.texts((" ".join(teletype.extractText(cell).split()) for cell in cells), "an ODT table")


def _odt_elements(element: Element, name: tuple[str, str]) -> Iterator[Element]:
    """Descendants named ``name``, not looking inside them (a nested table's rows stay in their cell)."""
    for child in element.childNodes:
        qname = getattr(child, "qname", None)
        if qname == name:
            yield child
        elif qname is not None and qname != (TABLENS, "table"):
            yield from _odt_elements(child, name)
