"""EPUB books, read as the zip they are (no EPUB library): ``META-INF/container.xml`` names the package
(OPF) document, whose spine lists the chapters in reading order; each chapter is XHTML, read by the
HTML loader (visible text, sections under its ``h1``-``h6`` headings, its ``<title>`` heading the text
before the first one). Pages are those sections, chapter after chapter.

Safety: the zip is checked first (``jasper_rag.ingest.archive``: members, inflated size, compression
ratio, no XML entity declarations); container and package XML are parsed by lxml without entities,
DTDs, network access or huge-tree mode; chapter paths are looked up as archive member names only
(nothing is ever written or opened outside the archive). A book whose chapters are encrypted
(``META-INF/encryption.xml``: DRM) is refused; obfuscated fonts do not matter. A chapter without text
(a cover image) or one that cannot be decoded is skipped; a book with no readable chapter is refused.
A chapter the spine lists again is read once (where it first appears), and the chapters read may unpack
to at most ``limits.max_archive_bytes`` together (``JASPER_INGEST_MAX_ARCHIVE_MB``).
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from pathlib import Path
from urllib.parse import unquote

from lxml import etree

from jasper_rag.ingest.archive import check_zip, parse_errors
from jasper_rag.ingest.loaders import LoadError, LoadLimits, Page, TextContent, load_html, require_text

CONTAINER = "META-INF/container.xml"
ENCRYPTION = "META-INF/encryption.xml"
CONTAINER_NS = "urn:oasis:names:tc:opendocument:xmlns:container"
OPF_NS = "http://www.idpf.org/2007/opf"
ENC_NS = "http://www.w3.org/2001/04/xmlenc#"
CHAPTER_TYPES = ("application/xhtml+xml", "text/html")
SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)


def load_epub(path: Path, data: bytes, limits: LoadLimits) -> TextContent:
    """An EPUB book: its spine's chapters in order, by section (see the module docstring)."""
    check_zip(data, limits, "EPUB")
    with parse_errors("EPUB"), zipfile.ZipFile(io.BytesIO(data)) as book:
        chapters = spine(book)
        locked = encrypted(book) & set(chapters)
        if locked:
            raise LoadError(f"encrypted EPUB (DRM): {len(locked)} of its {len(chapters)} chapters are encrypted")
        pages, read = [], 0
        for name in chapters:
            chapter = _chapter(book, name)
            read += len(chapter)
            if read > limits.max_archive_bytes:
                raise LoadError(
                    f"EPUB chapters too large: over {limits.max_archive_bytes / 2**20:,.1f} MiB read by {name!r} "
                    "(JASPER_INGEST_MAX_ARCHIVE_MB)"
                )
            pages += _chapter_pages(name, chapter)
    if not pages:
        raise LoadError(f"empty EPUB: none of its {len(chapters)} spine documents has text")
    return require_text(pages)


def _xml(book: zipfile.ZipFile, name: str) -> etree._Element:
    """Member ``name`` parsed safely (``SAFE_XML``); ``LoadError`` when the book has no such member."""
    try:
        return etree.fromstring(book.read(name), SAFE_XML)
    except KeyError as err:
        raise LoadError(f"not an EPUB: no {name}") from err


def spine(book: zipfile.ZipFile) -> list[str]:
    """The archive names of the spine's XHTML documents, in reading order, each once (where it first appears)."""
    rootfile = _xml(book, CONTAINER).find(f".//{{{CONTAINER_NS}}}rootfile")
    package_path = rootfile.get("full-path") if rootfile is not None else None
    if not package_path:
        raise LoadError(f"not an EPUB: {CONTAINER} names no package document")
    package = _xml(book, package_path)
    folder = posixpath.dirname(package_path)
    manifest = {
        item.get("id"): (item.get("href") or "", item.get("media-type") or "")
        for item in package.iterfind(f"{{{OPF_NS}}}manifest/{{{OPF_NS}}}item")
    }
    names = []
    for itemref in package.iterfind(f"{{{OPF_NS}}}spine/{{{OPF_NS}}}itemref"):
        href, media_type = manifest.get(itemref.get("idref"), ("", ""))
        if href and media_type in CHAPTER_TYPES:
            names.append(member_name(folder, href))
    return list(dict.fromkeys(names))


def member_name(folder: str, href: str) -> str:
    """The archive member an ``href`` of the package document names (relative to its folder)."""
    return posixpath.normpath(posixpath.join(folder, unquote(href.split("#", 1)[0]))).lstrip("/")


def encrypted(book: zipfile.ZipFile) -> set[str]:
    """Members ``META-INF/encryption.xml`` lists as encrypted (DRM, or obfuscated fonts)."""
    if ENCRYPTION not in book.namelist():
        return set()
    references = _xml(book, ENCRYPTION).iterfind(f".//{{{ENC_NS}}}CipherReference")
    return {member_name("", reference.get("URI") or "") for reference in references}


def _chapter(book: zipfile.ZipFile, name: str) -> bytes:
    """The bytes of chapter ``name``; empty when the book lacks it."""
    try:
        return book.read(name)
    except KeyError:
        return b""


def _chapter_pages(name: str, chapter: bytes) -> list[Page]:
    """One chapter's sections; none when it is missing, has no text or cannot be decoded."""
    try:
        return load_html(Path(name), chapter).pages
    except LoadError:
        return []
