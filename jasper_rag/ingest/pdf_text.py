"""PDF page text from two engines, pypdf and PDFium (pypdfium2), and the choice between them per page.

Typeset PDFs (XeTeX/LaTeX: Type0 fonts, Identity-H encoding, words separated only by kerning offsets
inside ``TJ`` arrays, no space character) can come out of an engine glued ("Whatisthisquestion?"):
each engine guesses the word gaps its own way. pypdf is the primary engine: on every case of
``reports/pdf.md`` it recovers as many words as PDFium or more. A page whose pypdf text is missing
(pypdf failed on it), empty or glued (``glue_share``) is read by PDFium, whose text replaces it when it
is better. Both engines' text is normalised the same way: ``\\n`` line breaks, typographic ligatures
(``ﬁ``, ``ﬂ``...) spelt out, no byte-order marks.

``load_pdf`` (loaders.py) checks the file with pypdf first (encryption, page count, decoded content
bytes), so PDFium only ever opens files that passed those bounds, and only when a page needs it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image
from pypdf import PdfReader

from jasper_rag.ingest.ocr import page_scale

log = logging.getLogger(__name__)

PRIMARY, FALLBACK = "pypdf", "pdfium"  # pypdf scores as well or better on every case of reports/pdf.md
LONG_TOKEN_CHARS = 20  # a whitespace-separated token this long is rare in prose ("internationalisation")
GLUED_SHARE = 0.3  # a page with more of its characters in long tokens than this reads as glued
LIGATURES = {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl", "\ufb05": "st"}
WORD_GAP_EM = 0.08  # glyph gaps inside a word are kerning (a few hundredths of an em); a word gap is wider
MAX_SPACED_CHARS = 2_000_000  # characters rebuilt glyph by glyph per file (~1-3 us each: a few seconds at most)
_NOT_PROSE = re.compile(r"[/_@\\=]")
_LIGATURE_RE = re.compile("[" + "".join(LIGATURES) + "]")


@dataclass(frozen=True)
class PageText:
    """One page's text and the engine it came from (``None``: neither engine could read the page)."""

    text: str
    engine: str | None


def normalise(text: str) -> str:
    """Engine output in one form: ``\\n`` line breaks, ligatures spelt out, no BOM / NUL / PDFium hyphen marks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "").replace("\x00", "")
    text = text.replace("\x02", "-").replace("\ufffe", "-")  # PDFium marks a line-end hyphen with these
    return _LIGATURE_RE.sub(lambda match: LIGATURES[match.group()], text)


def glue_share(text: str) -> float:
    """Share of the page's non-space characters that sit in tokens of ``LONG_TOKEN_CHARS`` or more (0: none);
    URLs, paths and identifiers (tokens with ``/ _ @ \\ =``) are long by nature and not counted as glue."""
    tokens = text.split()
    total = sum(len(token) for token in tokens)
    if not total:
        return 0.0
    long = [token for token in tokens if len(token) >= LONG_TOKEN_CHARS and not _NOT_PROSE.search(token)]
    return sum(len(token) for token in long) / total


def glued(text: str) -> bool:
    """Whether the text reads as words run together (see ``GLUED_SHARE``)."""
    return glue_share(text) > GLUED_SHARE


def better(primary: str, fallback: str) -> bool:
    """Whether ``fallback`` should replace ``primary``: primary is empty or glued, and fallback is neither
    empty nor more glued."""
    if not fallback.strip():
        return False
    if not primary.strip():
        return True
    return glued(primary) and glue_share(fallback) < glue_share(primary)


def spaced(textpage: pdfium.PdfTextPage) -> str:
    """The page's characters with a space wherever a glyph starts more than ``WORD_GAP_EM`` of the font size
    after the previous one on the same line ends (loose boxes: the glyphs' advance widths), so words set
    apart only by kerning or positioning come apart whatever gap the engines' own heuristics expect."""
    out: list[str] = []
    previous: tuple[float, float] | None = None  # right edge and baseline of the last visible glyph
    for index in range(textpage.count_chars()):
        char = chr(pdfium_c.FPDFText_GetUnicode(textpage, index))
        if not char.strip():
            out.append(char)
            continue
        left, bottom, right, _top = textpage.get_charbox(index, loose=True)
        size = pdfium_c.FPDFText_GetFontSize(textpage, index) or 1.0
        if previous is not None and out and not out[-1].isspace():
            same_line = abs(bottom - previous[1]) < 0.5 * size
            if same_line and left - previous[0] > WORD_GAP_EM * size:
                out.append(" ")
        out.append(char)
        previous = (right, bottom)
    return "".join(out)


class PdfiumPages:
    """The PDF's pages by PDFium, opened on first use (most PDFs never need it) and closed by ``close``.
    PDFium is not used when it cannot open the file or counts other than ``pages`` pages: page numbers
    must agree with pypdf's, which checked the file."""

    def __init__(self, data: bytes, pages: int) -> None:
        self.data, self.pages = data, pages
        self.document: pdfium.PdfDocument | None = None
        self.failed = False
        self.spaced_left = MAX_SPACED_CHARS

    def open(self) -> pdfium.PdfDocument | None:
        """The document (opened once), or None when PDFium cannot be used on it."""
        if self.document is None and not self.failed:
            try:
                self.document = pdfium.PdfDocument(self.data)
            except (pdfium.PdfiumError, ValueError, OSError) as err:
                log.debug("PDFium cannot open the PDF: %s", err)
            self.failed = self.document is None or len(self.document) != self.pages
        return None if self.failed else self.document

    def text(self, index: int, repair: bool = True) -> str | None:
        """Page ``index`` (0-based) by PDFium; None when PDFium fails on it. ``repair``: when PDFium's text is
        glued, the page's text rebuilt from its glyph boxes (``spaced``) if that is less glued."""
        document = self.open()
        if document is None:
            return None
        page = textpage = None
        try:
            page = document[index]
            textpage = page.get_textpage()
            text = normalise(textpage.get_text_range())
            chars = textpage.count_chars()
            if repair and glued(text) and chars <= self.spaced_left:
                self.spaced_left -= chars
                rebuilt = normalise(spaced(textpage))
                return rebuilt if glue_share(rebuilt) < glue_share(text) else text
            return text
        except (pdfium.PdfiumError, ValueError, OSError):
            return None
        finally:
            for handle in (textpage, page):
                if handle is not None:
                    handle.close()

    def image(self, index: int) -> Image.Image | None:
        """Page ``index`` (0-based) rendered for OCR (``ocr.page_scale``); None when PDFium fails on it or the
        page draws nothing (a blank page needs no OCR)."""
        document = self.open()
        if document is None:
            return None
        page = bitmap = None
        try:
            page = document[index]
            if next(iter(page.get_objects(max_depth=1)), None) is None:
                return None
            bitmap = page.render(scale=page_scale(*page.get_size()))
            return bitmap.to_pil().copy()
        except (pdfium.PdfiumError, ValueError, OSError):
            return None
        finally:
            for handle in (bitmap, page):
                if handle is not None:
                    handle.close()

    def close(self) -> None:
        """Release the PDFium document (pages and text pages are closed as soon as read)."""
        if self.document is not None:
            self.document.close()
            self.document = None


def pypdf_text(page) -> str | None:
    """A pypdf page's text; None when pypdf fails on it (one damaged page must not sink the others)."""
    try:
        return normalise(page.extract_text() or "")
    except Exception:
        return None


def choose(primary: str | None, fallback: Callable[[], str | None]) -> PageText:
    """The page's text: the primary engine's, or the fallback's (computed only when needed) where the
    primary's is missing, empty or glued and the fallback's is better."""
    if primary is not None and primary.strip() and not glued(primary):
        return PageText(primary, PRIMARY)
    other = fallback()
    if other is not None and (primary is None or better(primary, other)):
        return PageText(other, FALLBACK)
    if primary is not None:
        return PageText(primary, PRIMARY)
    return PageText("", None)


def page_texts(pypdf_pages: list, pdfium_pages: PdfiumPages) -> list[PageText]:
    """Every page's text, in order: one entry per page of ``pypdf_pages`` (the checked pypdf page list),
    PDFium (``pdfium_pages``, the same file; the caller closes it) asked only for the pages that need it."""
    return [
        choose(pypdf_text(page), lambda index=index: pdfium_pages.text(index)) for index, page in enumerate(pypdf_pages)
    ]


MAX_OUTLINE_ENTRIES = 10_000
MAX_OUTLINE_DEPTH = 8


def outline_headings(reader: PdfReader, count: int) -> list[str | None]:
    """Each page's heading from the PDF outline (bookmarks), where the PDF has one: the path ("Chapter >
    Section") of the outline entry starting on the latest page at or before it (of several on one page,
    the last in outline order); None before the first entry or without an outline. Bounded
    (``MAX_OUTLINE_ENTRIES`` entries, ``MAX_OUTLINE_DEPTH`` levels); a damaged outline gives no headings,
    never an error."""
    starts: list[tuple[int, str]] = []

    def walk(items: list, path: tuple[str, ...]) -> None:
        title = path
        for item in items:
            if len(starts) >= MAX_OUTLINE_ENTRIES:
                return
            if isinstance(item, list):
                if len(title) < MAX_OUTLINE_DEPTH:
                    walk(item, title)
                continue
            title = (*path, " ".join(str(item.title).split())[:200])
            page = reader.get_destination_page_number(item)
            if page is not None and 0 <= page < count:
                starts.append((page, " > ".join(title)))

    try:
        walk(reader.outline, ())
    except Exception:  # an outline is optional: a damaged one must not cost the text
        log.debug("unreadable PDF outline", exc_info=True)
        return [None] * count
    first = {}
    for page, heading in sorted(starts, key=lambda start: start[0]):  # stable: outline order within a page
        first[page] = heading
    headings: list[str | None] = []
    current = None
    for page in range(count):
        current = first.get(page, current)
        headings.append(current)
    return headings
