"""Sample office files about embeddings and retrieval, built with the libraries the loaders read them with.

``sample_files()`` returns ``{file name: bytes}`` for one file of each zip-based or table format (DOCX,
PPTX, XLSX, a CSV table, ODT, EPUB). The bytes are deterministic: document properties carry a fixed
date and every zip is rewritten with fixed member timestamps, so a rebuild changes nothing.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable
from html import escape

import docx
import openpyxl
from pptx import Presentation

FIXED_DATE = dt.datetime(2024, 1, 1)
ZIP_DATE = (2024, 1, 1, 0, 0, 0)
CORE_PROPERTIES = "docProps/core.xml"
MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*")
ODF_TEXT = "application/vnd.oasis.opendocument.text"

HANDBOOK = [
    ("Title", "Team handbook"),
    ("Heading 1", "Embedding models"),
    (
        None,
        "We embed every document with one sentence encoder, so a query and a passage land in the same vector "
        "space. The encoder is small enough to run on a laptop CPU.",
    ),
    ("Heading 2", "When to retrain"),
    (
        None,
        "Retrain the encoder when recall on our own evaluation set drops by more than two points after the "
        "corpus changes.",
    ),
    ("Heading 1", "Retrieval"),
    (
        None,
        "Hybrid search adds BM25 scores to the dense ones; exact terms such as error codes are found by the "
        "lexical side.",
    ),
]
SLIDES = [
    ("Release 2.0", "Faster ingestion and hybrid search", "Thank the search team."),
    ("What changed", "Chunks carry their heading path, so a hit shows where it comes from.", ""),
]
MODEL_SIZES = [
    ("Model", "Dimensions", "Parameters (M)", "Recall@10"),
    ("jasper-quick", 256, 22.7, 0.71),
    ("jasper-base", 768, 109.5, 0.78),
]
BENCHMARKS = (
    "system,queries per second,nDCG@10\nBM25 only,850,0.61\ndense only,420,0.66\nhybrid (BM25 + dense),390,0.70\n"
)
STYLE_GUIDE = [
    (1, "Style guide"),
    (None, "Write queries and answers the way users ask: short sentences, one idea each."),
    (2, "Naming"),
    (None, "Call the vector of a passage its embedding, and the nearest passages its neighbours."),
]
GLOSSARY = ("embedding: the vector of a passage", "neighbours: the nearest passages")
TERMS = (("Term", "Use"), ("recall@10", "share of relevant passages in the top ten"))
ODF_NAMESPACES = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
)
CHAPTERS = [
    (
        "Search notes",
        "Why vectors",
        "Cosine similarity between embeddings ranks passages by meaning rather than by shared words.",
    ),
    (
        "Search notes",
        "Approximate search",
        "An HNSW graph finds near neighbours in milliseconds at a small cost in recall; a flat index is exact.",
    ),
]


def sample_files() -> dict[str, bytes]:
    """One sample file per office or table format, ``{file name: bytes}``."""
    builders: dict[str, Callable[[], bytes]] = {
        "team-handbook.docx": handbook_docx,
        "release-slides.pptx": release_pptx,
        "model-sizes.xlsx": model_sizes_xlsx,
        "style-guide.odt": style_guide_odt,
        "search-notes.epub": search_notes_epub,
    }
    files = {name: fixed_zip(build()) for name, build in builders.items()}
    files["benchmarks.csv"] = BENCHMARKS.encode()
    return files


def fixed_zip(data: bytes) -> bytes:
    """``data`` (a zip) rewritten with every member's timestamp and the document's modification date fixed."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            member = zipfile.ZipInfo(info.filename, ZIP_DATE)
            member.compress_type = info.compress_type
            body = source.read(info)
            if info.filename == CORE_PROPERTIES:  # openpyxl stamps the time of saving
                body = MODIFIED.sub(rb"\g<1>2024-01-01T00:00:00Z", body)
            target.writestr(member, body)
    return out.getvalue()


def handbook_docx() -> bytes:
    document = docx.Document()
    document.core_properties.created = document.core_properties.modified = FIXED_DATE
    for style, text in HANDBOOK:
        document.add_paragraph(text, style)
    table = document.add_table(rows=0, cols=2)
    for cells in (("Setting", "Default"), ("chunk tokens", "256"), ("chunk overlap", "32")):
        row = table.add_row()
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    return _saved(document.save)


def release_pptx() -> bytes:
    deck = Presentation()
    deck.core_properties.created = deck.core_properties.modified = FIXED_DATE
    for title, body, notes in SLIDES:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    return _saved(deck.save)


def model_sizes_xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    workbook.properties.created = workbook.properties.modified = FIXED_DATE
    sheet = workbook.active
    sheet.title = "Encoders"
    for row in MODEL_SIZES:
        sheet.append(row)
    return _saved(workbook.save)


def style_guide_odt() -> bytes:
    """A minimal ODT written directly (odfpy's output orders namespace declarations by process history)."""
    body = "".join(
        f'<text:h text:outline-level="{level}">{escape(text)}</text:h>' if level else f"<text:p>{escape(text)}</text:p>"
        for level, text in STYLE_GUIDE
    )
    items = "".join(f"<text:list-item><text:p>{escape(text)}</text:p></text:list-item>" for text in GLOSSARY)
    rows = "".join(
        "<table:table-row>"
        + "".join(f"<table:table-cell><text:p>{escape(cell)}</text:p></table:table-cell>" for cell in cells)
        + "</table:table-row>"
        for cells in TERMS
    )
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<office:document-content {ODF_NAMESPACES} office:version="1.2"><office:body><office:text>{body}'
        f'<text:list>{items}</text:list><table:table table:name="Terms">'
        f'<table:table-column table:number-columns-repeated="2"/>{rows}</table:table>'
        "</office:text></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{ODF_TEXT}"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as document:
        document.writestr(zipfile.ZipInfo("mimetype", ZIP_DATE), ODF_TEXT)
        document.writestr("META-INF/manifest.xml", manifest)
        document.writestr("content.xml", content)
    return out.getvalue()


def search_notes_epub() -> bytes:
    """A minimal EPUB 3: container, package document, one XHTML file per chapter."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr(zipfile.ZipInfo("mimetype", ZIP_DATE), "application/epub+zip")
        book.writestr("META-INF/container.xml", epub_container("OEBPS/content.opf"))
        names = [f"chapter-{number}.xhtml" for number in range(1, len(CHAPTERS) + 1)]
        book.writestr("OEBPS/content.opf", epub_package(names))
        for name, (title, heading, text) in zip(names, CHAPTERS, strict=True):
            book.writestr(f"OEBPS/{name}", epub_chapter(title, heading, text))
    return out.getvalue()


def epub_container(package_path: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
        f'<rootfile full-path="{package_path}" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>"
    )


def epub_package(chapters: list[str]) -> str:
    items = "".join(
        f'<item id="c{n}" href="{name}" media-type="application/xhtml+xml"/>' for n, name in enumerate(chapters)
    )
    spine = "".join(f'<itemref idref="c{n}"/>' for n in range(len(chapters)))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">search-notes</dc:identifier>'
        "<dc:title>Search notes</dc:title><dc:language>en</dc:language></metadata>"
        f"<manifest>{items}</manifest><spine>{spine}</spine></package>"
    )


def epub_chapter(title: str, heading: str, text: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
        f'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>{title}</title></head>'
        f"<body><h1>{heading}</h1><p>{text}</p></body></html>"
    )


def _saved(save: Callable[[io.BytesIO], None]) -> bytes:
    buffer = io.BytesIO()
    save(buffer)
    return buffer.getvalue()
