"""File loaders: one function per file type, each ``(path, data, limits) -> loaded content`` or ``LoadError``.

``LoadError`` carries the reason a user reads in the summary ("encrypted PDF: ...", "no text layer
..."); loaders never return an empty result silently. ``LoadLimits`` bounds what a hostile file can
cost (PDF pages, image pixels); every text they return is storable in any SQL database (no NUL
characters, no lone surrogates).

Markdown, reStructuredText and HTML come as plain text without markup, one ``Page`` per section
(``jasper_rag.ingest.markup``): its ``heading`` is the path of headings it sits under ("Distillation >
Losses"), and its text begins with that line, so the section's first chunk shows and embeds it. A
chunk's character span is then a span of its section's text. Plain text and PDFs are taken as they are.
"""

from __future__ import annotations

import csv
import io
import logging
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bs4 import UnicodeDammit
from PIL import Image, UnidentifiedImageError
from pypdf import PdfReader
from pypdf.errors import DependencyError, PyPdfError

from jasper_rag.config import Settings, get_settings
from jasper_rag.ingest import ocr
from jasper_rag.ingest.markup import Section, VisibleText, markdown_sections, rst_sections
from jasper_rag.ingest.pdf_text import PdfiumPages, outline_headings, page_texts
from jasper_rag.jsonl import json_objects

logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about damaged files become our reasons
log = logging.getLogger(__name__)

FAQ_FIELDS = ("question", "answer")


class LoadError(Exception):
    """A file that cannot be ingested; the message is the reason shown to the user."""


OCR_CPU_SHARE = 0.6  # OCR starts no new page past this share of the parsing CPU allowance: the page it is on
# (~7-12 s of CPU for a full A4 page, reports/pdf.md) must still end before the worker's limit stops the file


def _default(setting: str):
    """The default of one setting (``jasper_rag.config.Settings``): the limits below have no other source."""
    return Settings.model_fields[setting].default


def _mib(megabytes: float) -> int:
    return int(megabytes * 2**20)


@dataclass(frozen=True)
class LoadLimits:
    """What one file may cost: PDF pages (``JASPER_INGEST_MAX_PDF_PAGES``), PDF page content decoded for
    text extraction (``JASPER_INGEST_MAX_PDF_CONTENT_MB``, see ``pdf_content_bytes``) and image pixels
    (``JASPER_MAX_IMAGE_PIXELS``, the decompression-bomb guard); ``max_ocr_pages``: pages (or images) of one
    file whose text OCR may recognise (0: OCR off; ``JASPER_INGEST_OCR``, ``JASPER_INGEST_OCR_MAX_PAGES``) and
    ``ocr_cpu_seconds``: CPU of the file's parsing after which OCR starts no new page (0: no such bound);
    messages per mailbox and bytes per e-mail message (``JASPER_INGEST_MAX_MAIL_MESSAGES``,
    ``JASPER_INGEST_MAX_MAIL_MESSAGE_MB``); zip-based files (``jasper_rag.ingest.archive``): members, inflated
    bytes, compression ratio of a large member (``JASPER_INGEST_MAX_ARCHIVE_MEMBERS``, ``_MB``, ``_RATIO``);
    cells and characters of text per table file (``JASPER_INGEST_MAX_TABLE_CELLS``, ``_CHARS``)."""

    max_pdf_pages: int
    max_image_pixels: int
    max_pdf_content_bytes: int = _mib(_default("ingest_max_pdf_content_mb"))
    max_ocr_pages: int = 0
    ocr_cpu_seconds: float = 0.0
    max_mail_messages: int = _default("ingest_max_mail_messages")
    max_mail_message_bytes: int = _mib(_default("ingest_max_mail_message_mb"))
    max_archive_members: int = _default("ingest_max_archive_members")
    max_archive_bytes: int = _mib(_default("ingest_max_archive_mb"))
    max_archive_ratio: float = _default("ingest_max_archive_ratio")
    max_table_cells: int = _default("ingest_max_table_cells")
    max_table_chars: int = _default("ingest_max_table_chars")

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> LoadLimits:
        settings = settings or get_settings()
        content = _mib(settings.ingest_max_pdf_content_mb)
        ocr_pages = settings.ingest_ocr_max_pages if settings.ingest_ocr else 0
        return cls(
            settings.ingest_max_pdf_pages,
            settings.max_image_pixels,
            content,
            max_ocr_pages=ocr_pages,
            ocr_cpu_seconds=settings.ingest_parse_cpu_s * OCR_CPU_SHARE,
            max_mail_messages=settings.ingest_max_mail_messages,
            max_mail_message_bytes=_mib(settings.ingest_max_mail_message_mb),
            max_archive_members=settings.ingest_max_archive_members,
            max_archive_bytes=_mib(settings.ingest_max_archive_mb),
            max_archive_ratio=settings.ingest_max_archive_ratio,
            max_table_cells=settings.ingest_max_table_cells,
            max_table_chars=settings.ingest_max_table_chars,
        )


def storable(text: str) -> str:
    """``text`` without NUL characters and lone surrogates, which SQL databases refuse."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True)
class Page:
    """Text of one page (``number`` is 1-based; None for files without pages), or of one section of a
    marked-up file (``heading``: its path of headings, which also begins its text; None before any).
    ``ocr``: the text was recognised from an image of the page, not read from a text layer."""

    number: int | None
    text: str
    heading: str | None = None
    ocr: bool = False


@dataclass(frozen=True)
class TextContent:
    pages: list[Page]


@dataclass(frozen=True)
class FaqContent:
    pairs: list[tuple[str, str]]


@dataclass(frozen=True)
class ImageContent:
    """An image file; ``text``: the text recognised in it (OCR), stored as chunks beside the image."""

    width: int
    height: int
    image_format: str
    text: tuple[Page, ...] = ()


Content = TextContent | FaqContent | ImageContent


def decode_text(data: bytes) -> str:
    """UTF-8 (optionally with BOM) or UTF-16 with BOM; anything else is refused with the offending byte."""
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        bad = data[err.start]
        raise LoadError(f"undecodable text: not {encoding.upper()} (byte 0x{bad:02x} at offset {err.start})") from err
    if "\x00" in text:
        raise LoadError("binary content (NUL bytes), not text")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def require_text(pages: list[Page], *, message: str = "empty: no text") -> TextContent:
    """``pages`` with storable text (``storable``); ``LoadError(message)`` when none has any text."""
    pages = [
        Page(page.number, storable(page.text), page.heading and storable(page.heading), page.ocr) for page in pages
    ]
    if not any(page.text.strip() for page in pages):
        raise LoadError(message)
    return TextContent(pages)


def section_pages(sections: list[Section]) -> TextContent:
    """One page per section (its heading path kept), through ``require_text``."""
    return require_text([Page(None, section.text, section.heading) for section in sections])


def load_text(path: Path, data: bytes, limits: LoadLimits | None = None) -> TextContent:
    """Plain text: the decoded file as one page, as it is."""
    return require_text([Page(None, decode_text(data))])


def load_markdown(path: Path, data: bytes, limits: LoadLimits | None = None) -> TextContent:
    """Markdown: plain text (no markup) by section, headings as structure (see the module docstring)."""
    return section_pages(markdown_sections(decode_text(data)))


def load_rst(path: Path, data: bytes, limits: LoadLimits | None = None) -> TextContent:
    """reStructuredText: plain text (no markup) by section, titles as structure (see the module docstring)."""
    return section_pages(rst_sections(decode_text(data)))


def load_html(path: Path, data: bytes, limits: LoadLimits | None = None) -> TextContent:
    """HTML: the visible text (scripts and styles dropped), blocks on their own lines, by section under
    its ``h1``-``h6`` headings; the encoding comes from the BOM or ``<meta charset>`` (BeautifulSoup's
    detection)."""
    markup = UnicodeDammit(data, is_html=True).unicode_markup
    if markup is None:
        raise LoadError("undecodable HTML: no encoding fits")
    parser = VisibleText()
    parser.feed(markup)
    if parser.rawdata:  # an unfinished tag, comment or declaration: close it here, or close() rescans the
        parser.feed(">")  # rest of the file once per '<' in it (quadratic time, CVE-2025-6069)
    parser.close()
    return section_pages(parser.sections())


def load_pdf(path: Path, data: bytes, limits: LoadLimits | None = None) -> TextContent:
    """PDF, page by page (pypdf, PDFium for the pages pypdf reads glued or not at all: ``pdf_text``; pages
    without text by OCR, at most ``limits.max_ocr_pages``); encrypted, empty, damaged, text-less and too long
    PDFs are refused."""
    limits = limits or LoadLimits.from_settings()
    started = time.process_time()
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _unlock(reader):
            raise LoadError("encrypted PDF: it needs a password")
        declared = _declared_pages(reader)
        if declared > limits.max_pdf_pages:  # refused before the page tree is walked
            raise LoadError(_too_many_pages(declared, limits))
        count = len(reader.pages)
    except LoadError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as err:
        raise LoadError(f"corrupt PDF: {err or type(err).__name__}") from err
    if count == 0:
        raise LoadError("empty PDF: no pages")
    if count > limits.max_pdf_pages:  # the tree held more pages than it declared
        raise LoadError(_too_many_pages(count, limits))
    content = pdf_content_bytes(reader, limits.max_pdf_content_bytes)
    if content > limits.max_pdf_content_bytes:  # refused before any page is parsed for text
        raise LoadError(
            f"too much page content: over {content / 2**20:.0f} MiB decoded across its {count} page(s) > limit "
            f"{limits.max_pdf_content_bytes / 2**20:.0f} MiB (JASPER_INGEST_MAX_PDF_CONTENT_MB)"
        )
    pdfium_pages = PdfiumPages(data, count)
    try:
        texts = page_texts(list(reader.pages), pdfium_pages)
        headings = outline_headings(reader, count)
        pages = [Page(number, text.text, headings[number - 1]) for number, text in enumerate(texts, start=1)]
        tried = _recognise_pages(pages, pdfium_pages, limits, started)
    finally:
        pdfium_pages.close()
    if not any(page.text.strip() for page in pages):
        broken = sum(text.engine is None for text in texts)
        detail = f"; {broken} pages unreadable" if broken else ""
        raise LoadError(
            f"no text layer: none of its {count} pages has extractable text ({_ocr_note(tried, limits)}){detail}"
        )
    return require_text(pages)


def _recognise_pages(pages: list[Page], pdfium_pages: PdfiumPages, limits: LoadLimits, started: float) -> int:
    """OCR in place the pages without text (the first ``limits.max_ocr_pages`` of them that draw something, while
    the CPU used since ``started`` stays under ``limits.ocr_cpu_seconds``); the number tried."""
    if limits.max_ocr_pages <= 0 or not ocr.available():
        return 0
    tried = 0
    for index, page in enumerate(pages):
        spent = time.process_time() - started
        if tried >= limits.max_ocr_pages or 0 < limits.ocr_cpu_seconds < spent:
            break
        if page.text.strip():
            continue
        image = pdfium_pages.image(index)
        if image is None:
            continue
        tried += 1
        text = ocr.recognise(image)
        if text:
            pages[index] = Page(page.number, text, page.heading, ocr=True)
    return tried


def _ocr_note(tried: int, limits: LoadLimits) -> str:
    """Why OCR gave no text, for the "no text layer" reason."""
    if limits.max_ocr_pages <= 0:
        return "scanned? OCR is off: JASPER_INGEST_OCR"
    if not ocr.available():
        return "scanned? OCR unavailable: rapidocr-onnxruntime is not installed"
    if tried == 0:
        return "its pages draw nothing for OCR to read"
    limit = f" (JASPER_INGEST_OCR_MAX_PAGES={limits.max_ocr_pages})" if tried >= limits.max_ocr_pages else ""
    return f"OCR found no text on the {tried} page(s) it read{limit}"


FLATE = ("/FlateDecode", "/Fl")
MAX_FORM_DEPTH = 8


def pdf_content_bytes(reader: PdfReader, cap: int) -> int:
    """The bytes text extraction would decode: every page's ``/Contents`` streams and the form XObjects
    they draw, decoded, summed over the pages (a stream shared by many pages counts once per page: it is
    decoded once per page). Each distinct stream is decoded once here, incrementally and only as far as
    ``cap``, and the count stops as soon as it passes ``cap``, so the check costs at most about ``cap``
    bytes of decompression whatever the file claims. A damaged stream counts what decodes of it."""
    sizes: dict[object, int] = {}
    total = 0
    for page in reader.pages:
        try:
            total += _page_content_bytes(page, sizes, cap)
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError):
            continue  # the page is damaged: extraction will fail on it and say so
        if total > cap:
            break
    return total


def _page_content_bytes(page, sizes: dict[object, int], cap: int) -> int:
    streams = _as_list(page.get("/Contents"))
    total = sum(_stream_bytes(ref, sizes, cap) for ref in streams)
    seen: set[object] = set()
    pending = [(page.get("/Resources"), 0)]
    while pending and total <= cap:
        resources, depth = pending.pop()
        resources = _resolve(resources)
        if depth >= MAX_FORM_DEPTH or not hasattr(resources, "get"):
            continue
        xobjects = _resolve(resources.get("/XObject"))
        if not hasattr(xobjects, "values"):
            continue
        for ref in xobjects.values():
            key = _key(ref)
            form = _resolve(ref)
            if key in seen or not hasattr(form, "get") or form.get("/Subtype") != "/Form":
                continue
            seen.add(key)
            total += _stream_bytes(ref, sizes, cap)
            pending.append((form.get("/Resources"), depth + 1))
    return total


def _as_list(value) -> list:
    value = _resolve(value)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _resolve(value):
    return value.get_object() if hasattr(value, "get_object") else value


def _key(ref) -> object:
    return (ref.idnum, ref.generation) if hasattr(ref, "idnum") else id(ref)


def _stream_bytes(ref, sizes: dict[object, int], cap: int) -> int:
    """One stream's decoded length (at most a little over ``cap``), decoded once per file."""
    key = _key(ref)
    if key not in sizes:
        sizes[key] = _decoded_length(_resolve(ref), cap)
    return sizes[key]


def _decoded_length(stream, cap: int) -> int:
    raw = getattr(stream, "_data", None)
    if not isinstance(raw, bytes):
        return 0
    filters = _resolve(stream.get("/Filter"))
    filters = [str(_resolve(name)) for name in filters] if isinstance(filters, list) else [str(filters or "")]
    if filters == [""]:
        return len(raw)
    if filters == [FLATE[0]] or filters == [FLATE[1]]:
        return _inflated_length(raw, cap)
    try:  # other filters (ASCII85, LZW, chains) expand little or are rare: pypdf decodes them
        return len(stream.get_data())
    except Exception:
        return 0


def _inflated_length(raw: bytes, cap: int, step: int = 2**20) -> int:
    """The inflated length of ``raw``, counted in ``step`` slices and stopped once over ``cap``."""
    inflater, total, pending = zlib.decompressobj(), 0, raw
    try:
        while pending and total <= cap:
            total += len(inflater.decompress(pending, step))
            pending = inflater.unconsumed_tail
            if inflater.eof:
                break
    except zlib.error:
        pass
    return total


def _declared_pages(reader: PdfReader) -> int:
    """The page count the PDF's page tree claims (0 when it has none; a damaged tree is found when walked)."""
    try:
        return int(reader.root_object["/Pages"]["/Count"])
    except Exception:
        return 0


def _too_many_pages(count: int, limits: LoadLimits) -> str:
    return f"too many pages: {count} > limit {limits.max_pdf_pages} (JASPER_INGEST_MAX_PDF_PAGES)"


def _unlock(reader: PdfReader) -> bool:
    """Open PDFs encrypted with an empty user password (owner-only restrictions)."""
    try:
        return bool(reader.decrypt(""))
    except DependencyError:
        return False  # AES without the optional crypto package: cannot be opened either way


def load_image(path: Path, data: bytes, limits: LoadLimits | None = None) -> ImageContent:
    """An image: checked to decode, with its size and the text OCR recognises in it (``_image_text``);
    decompression bombs are refused before any pixel is decoded."""
    limits = limits or LoadLimits.from_settings()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                pixels = image.width * image.height
                if pixels > limits.max_image_pixels:
                    raise Image.DecompressionBombError(
                        f"{image.width}x{image.height} = {pixels:,} pixels > limit {limits.max_image_pixels:,} "
                        "(JASPER_MAX_IMAGE_PIXELS)"
                    )
                image.verify()
                size, image_format = image.size, image.format or path.suffix.lstrip(".")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise LoadError(f"image too large (decompression bomb guard): {err}") from err
    except UnidentifiedImageError as err:
        raise LoadError("unreadable image: not a format Pillow recognises") from err
    except Exception as err:
        raise LoadError(f"unreadable image: {err}") from err
    return ImageContent(*size, image_format, _image_text(path, data, limits))


def _image_text(path: Path, data: bytes, limits: LoadLimits) -> tuple[Page, ...]:
    """The text OCR recognises in an image (checked by ``load_image``) as one page; none when OCR is off or
    unavailable or finds no real text (charts, photos), or fails on it (logged: the image itself is fine)."""
    if limits.max_ocr_pages <= 0 or not ocr.available():
        return ()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (ocr.MAX_SIDE, ocr.MAX_SIDE))  # JPEG: decoded at a reduced size
            text = ocr.recognise(image)
    except Exception as err:  # an OCR engine error, a truncated image's pixels: keep the image, without its text
        log.warning("OCR failed on %s, stored without its text: %s", path.name, err)
        return ()
    return (Page(None, storable(text), ocr=True),) if text else ()


FAQ_MAX_FIELD_CHARS = 131_072  # Python csv's default field limit


def load_faq_csv(path: Path, data: bytes, limits: LoadLimits | None = None) -> FaqContent:
    """FAQ table with ``question`` and ``answer`` columns (header names are case-insensitive)."""
    text = decode_text(data)
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as err:
        raise LoadError(f"malformed CSV: {err}") from err
    # csv's own field limit is process-global (and other code may raise it): check ours explicitly.
    for number, row in enumerate(rows, start=1):
        if any(len(cell) > FAQ_MAX_FIELD_CHARS for cell in row):
            raise LoadError(f"malformed CSV: row {number} has a field over {FAQ_MAX_FIELD_CHARS} characters")
    if not rows:
        raise LoadError("empty: no header row")
    header = [name.strip().lower() for name in rows[0]]
    if not all(name in header for name in FAQ_FIELDS):
        raise LoadError(f"FAQ CSV needs columns {list(FAQ_FIELDS)}; found {rows[0]}")
    q_col, a_col = header.index("question"), header.index("answer")
    records = [{"question": _cell(row, q_col), "answer": _cell(row, a_col)} for row in rows[1:] if any(row)]
    return _faq_pairs(records, first_line=2)


def _cell(row: list[str], column: int) -> str:
    return row[column] if column < len(row) else ""


def load_faq_jsonl(path: Path, data: bytes, limits: LoadLimits | None = None) -> FaqContent:
    """FAQ as JSON lines, one ``{"question": ..., "answer": ...}`` object per line."""
    records = [
        {key.lower(): value for key, value in record.items()}
        for _number, record in json_objects(decode_text(data).splitlines(), LoadError)
    ]
    return _faq_pairs(records, first_line=1)


def _faq_pairs(records: list[dict], first_line: int) -> FaqContent:
    pairs = []
    for number, record in enumerate(records, start=first_line):
        question, answer = (storable(str(record.get(name) or "")).strip() for name in FAQ_FIELDS)
        if not question or not answer:
            raise LoadError(f"row {number}: needs a non-empty question and answer")
        pairs.append((question, answer))
    if not pairs:
        raise LoadError("empty: no question/answer rows")
    return FaqContent(pairs)


def load_eml(path: Path, data: bytes, limits: LoadLimits | None = None) -> TextContent:
    """One e-mail message: subject, sender, date, body text, attachments by name (``jasper_rag.ingest.mail``)."""
    from jasper_rag.ingest import mail  # it builds on this module

    return mail.load_eml(path, data, limits or LoadLimits.from_settings())


def load_mbox(path: Path, data: bytes, limits: LoadLimits | None = None) -> TextContent:
    """A mailbox: one page per message (``jasper_rag.ingest.mail``)."""
    from jasper_rag.ingest import mail

    return mail.load_mbox(path, data, limits or LoadLimits.from_settings())


def load_docx(path: Path, data: bytes, limits: LoadLimits | None = None) -> TextContent:
    """Word: sections under the heading styles, tables as rows (``jasper_rag.ingest.office``)."""
    from jasper_rag.ingest import office  # it builds on this module

    return office.load_docx(path, data, limits or LoadLimits.from_settings())


def load_pptx(path: Path, data: bytes, limits: LoadLimits | None = None) -> TextContent:
    """PowerPoint: one page per slide, headed by its title (``jasper_rag.ingest.office``)."""
    from jasper_rag.ingest import office

    return office.load_pptx(path, data, limits or LoadLimits.from_settings())


def load_odt(path: Path, data: bytes, limits: LoadLimits | None = None) -> TextContent:
    """OpenDocument text: sections under its headings (``jasper_rag.ingest.office``)."""
    from jasper_rag.ingest import office

    return office.load_odt(path, data, limits or LoadLimits.from_settings())


def load_xlsx(path: Path, data: bytes, limits: LoadLimits | None = None) -> TextContent:
    """Excel: each sheet's rows as text naming their columns (``jasper_rag.ingest.tables``)."""
    from jasper_rag.ingest import tables

    return tables.load_xlsx(path, data, limits or LoadLimits.from_settings())


def load_csv(path: Path, data: bytes, limits: LoadLimits | None = None) -> FaqContent | TextContent:
    """CSV: an FAQ when the header names question and answer, else a table (``jasper_rag.ingest.tables``)."""
    from jasper_rag.ingest import tables

    return tables.load_csv(path, data, limits or LoadLimits.from_settings())


def load_epub(path: Path, data: bytes, limits: LoadLimits | None = None) -> TextContent:
    """EPUB: the spine's chapters in order, by section (``jasper_rag.ingest.epub``)."""
    from jasper_rag.ingest import epub

    return epub.load_epub(path, data, limits or LoadLimits.from_settings())


@dataclass(frozen=True)
class FileType:
    """A loader and the file type stored for what it loads (``Document.file_type``, which search filters
    by): ``name``, or ``text_name`` when a loader that returns either FAQ pairs or text (``.csv``: an FAQ
    or a table) returns text."""

    name: str
    load: Callable[[Path, bytes, LoadLimits | None], Content]
    text_name: str | None = None

    def stored_name(self, content: Content) -> str:
        """The file type to store for ``content`` loaded by ``load``."""
        return self.text_name if self.text_name and isinstance(content, TextContent) else self.name


FILE_TYPES: dict[str, FileType] = {
    ".pdf": FileType("pdf", load_pdf),
    ".txt": FileType("text", load_text),
    ".md": FileType("markdown", load_markdown),
    ".rst": FileType("rst", load_rst),
    ".html": FileType("html", load_html),
    ".htm": FileType("html", load_html),
    ".csv": FileType("faq", load_csv, text_name="table"),
    ".jsonl": FileType("faq", load_faq_jsonl),
    ".eml": FileType("email", load_eml),
    ".mbox": FileType("email", load_mbox),
    ".docx": FileType("docx", load_docx),
    ".pptx": FileType("pptx", load_pptx),
    ".odt": FileType("odt", load_odt),
    ".xlsx": FileType("xlsx", load_xlsx),
    ".epub": FileType("epub", load_epub),
    **{ext: FileType("image", load_image) for ext in (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")},
}


def file_type(path: Path) -> FileType | None:
    """The loader for ``path`` by its extension (None: unsupported)."""
    return FILE_TYPES.get(path.suffix.lower())
