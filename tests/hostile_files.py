"""Hostile and broken inputs for the hardening tests: hand-built PDFs, image bombs, zip bombs and odd files.

Every builder is deterministic and small on disk; what makes a file hostile is what it claims or
nests (5,000 pages, 100,000 levels of brackets, 10 billion pixels, 100 MB of zeros in 100 kB, a zip
member of 2 GiB in 2 MB, 100,000 zip members, XML entities that expand a billion times).
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zipfile
import zlib
from dataclasses import dataclass

from jasper_rag.ingest.sample_build import SAMPLE_DIR, text_pdf
from jasper_rag.ingest.sample_office import epub_chapter, epub_container, epub_package, sample_files
from tests.ingest_support import encrypted_pdf

PAGE_TEXT = b"BT /F1 12 Tf 72 712 Td (hello cat on the mat) Tj ET"
FONT = b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>"
PAGE = b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R/Resources<</Font<</F1 5 0 R>>>>%s>>"


@dataclass(frozen=True)
class Hostile:
    """One hostile input: its file name, bytes, and a fragment of the reason it must be refused with
    (None: it must load, its text cleaned)."""

    name: str
    data: bytes
    reason: str | None


def pdf_from_objects(objects: list[bytes]) -> bytes:
    """A PDF whose object ``i + 1`` is ``objects[i]`` (object 1 is the catalog), with a correct xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    out.write(b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def stream(data: bytes, compressed: bool = False) -> bytes:
    flate = b"/Filter/FlateDecode" if compressed else b""
    return b"<</Length %d%s>>stream\n%s\nendstream" % (len(data), flate, data)


def one_page_pdf(page_extra: bytes = b"", catalog_extra: bytes = b"", content: bytes | None = None) -> bytes:
    return pdf_from_objects(
        [
            b"<</Type/Catalog/Pages 2 0 R%s>>" % catalog_extra,
            b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
            PAGE % page_extra,
            content if content is not None else stream(PAGE_TEXT),
            FONT,
        ]
    )


def many_pages_pdf(kids: int, declared: int | None = None) -> bytes:
    """A page tree listing one page ``kids`` times; ``declared`` is its /Count (a liar when it differs)."""
    return pdf_from_objects(
        [
            b"<</Type/Catalog/Pages 2 0 R>>",
            b"<</Type/Pages/Kids[%s]/Count %d>>" % (b" ".join([b"3 0 R"] * kids), declared or kids),
            PAGE % b"",
            stream(PAGE_TEXT),
            FONT,
        ]
    )


def shared_content_pdf(pages: int, content_bytes: int) -> bytes:
    """``pages`` pages that all draw one Flate stream of ``content_bytes`` of text operators: a few kB on
    disk, decoded once per page by text extraction (20 pages of 4 MB took 170 s before the content cap)."""
    operators = b"BT /F1 12 Tf 72 712 Td (hello cat on the mat) Tj ET\n"
    content = zlib.compress(operators * (content_bytes // len(operators)), 9)
    kids = b" ".join(b"%d 0 R" % (5 + n) for n in range(pages))
    return pdf_from_objects(
        [
            b"<</Type/Catalog/Pages 2 0 R>>",
            b"<</Type/Pages/Kids[%s]/Count %d>>" % (kids, pages),
            stream(content, compressed=True),
            FONT,
            *[PAGE.replace(b"4 0 R", b"3 0 R").replace(b"F1 5 0 R", b"F1 4 0 R") % b"" for _ in range(pages)],
        ]
    )


def shared_form_pdf(pages: int, content_bytes: int) -> bytes:
    """The same through a form XObject: every page's tiny content stream draws one big Flate form."""
    operators = b"BT /F1 12 Tf 72 712 Td (hello cat on the mat) Tj ET\n"
    body = zlib.compress(operators * (content_bytes // len(operators)), 9)
    form_dict = b"<</Type/XObject/Subtype/Form/BBox[0 0 612 792]/Resources<</Font<</F1 4 0 R>>>>"
    form = form_dict + b"/Length %d/Filter/FlateDecode>>stream\n%s\nendstream" % (len(body), body)
    page = b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 5 0 R/Resources<</XObject<</X1 3 0 R>>>>>>"
    kids = b" ".join(b"%d 0 R" % (6 + n) for n in range(pages))
    return pdf_from_objects(
        [
            b"<</Type/Catalog/Pages 2 0 R>>",
            b"<</Type/Pages/Kids[%s]/Count %d>>" % (kids, pages),
            form,
            FONT,
            stream(b"/X1 Do"),
            *[page for _ in range(pages)],
        ]
    )


def cyclic_pages_pdf() -> bytes:
    """A page tree that contains itself."""
    return pdf_from_objects(
        [
            b"<</Type/Catalog/Pages 2 0 R>>",
            b"<</Type/Pages/Kids[2 0 R 3 0 R]/Count 2>>",
            PAGE % b"",
            stream(PAGE_TEXT),
            FONT,
        ]
    )


def zeros_deflated(size: int) -> bytes:
    """``size`` zero bytes, deflated without ever holding them in memory."""
    packer, block = zlib.compressobj(6), bytes(2**20)
    parts = [packer.compress(block) for _ in range(size // len(block))]
    return b"".join(parts) + packer.flush()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` pixels: a decompression bomb as far as a decoder can tell."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


# ----------------------------------------------------------------- zip-based files (DOCX, PPTX, XLSX, ODT, EPUB)
@dataclass(frozen=True)
class RawMember:
    """A zip member as stored: its name, raw deflated bytes, CRC-32 and the sizes its headers declare."""

    name: str
    deflated: bytes
    crc: int
    size: int
    flags: int = 0


def deflated(data: bytes) -> RawMember:
    """Raw deflate of ``data`` (no name yet)."""
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    return RawMember("", packer.compress(data) + packer.flush(), zlib.crc32(data), len(data))


def repeated(block: bytes, times: int) -> RawMember:
    """``block`` repeated ``times`` times, deflated without ever being held whole: a full flush resets the
    compressor, so one compressed block repeats as it is (a 2 GiB member costs 2 MB and a second)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    once = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(times):
        crc = zlib.crc32(block, crc)
    return RawMember("", once * times + packer.flush(), crc, len(block) * times)


@functools.cache
def two_gib_of_zeros() -> RawMember:
    return repeated(bytes(16 * 2**20), 128)


def named(name: str, member: RawMember, size: int | None = None, flags: int = 0) -> RawMember:
    """``member`` under ``name``; ``size``: the uncompressed size its headers declare (a liar when it differs)."""
    return RawMember(name, member.deflated, member.crc, member.size if size is None else size, flags)


def raw_zip(members: list[RawMember], declared_count: int | None = None) -> bytes:
    """A zip written field by field, so headers can lie; ``declared_count``: the end record's member count."""
    out, central = io.BytesIO(), io.BytesIO()
    for member in members:
        offset, name = out.tell(), member.name.encode()
        sizes = (member.crc, len(member.deflated), member.size)
        out.write(struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, member.flags, 8, 0, 33, *sizes, len(name), 0))
        out.write(name + member.deflated)
        entry = struct.pack(
            "<4s6H3I5H2I", b"PK\x01\x02", 20, 20, member.flags, 8, 0, 33, *sizes, len(name), 0, 0, 0, 0, 0, offset
        )
        central.write(entry + name)
    count = len(members) if declared_count is None else declared_count
    directory = central.getvalue()
    end = struct.pack(
        "<4s4H2IH", b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF), len(directory), out.tell(), 0
    )
    return out.getvalue() + directory + end


def zip_members(data: bytes, replace: dict[str, bytes] | None = None) -> list[RawMember]:
    """The members of a zip, re-deflated, with some replaced by new contents."""
    replace = replace or {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [named(name, deflated(replace.get(name) or archive.read(name))) for name in archive.namelist()]


def with_members(data: bytes, replace: dict[str, bytes] | None = None, extra: tuple[RawMember, ...] = ()) -> bytes:
    return raw_zip([*zip_members(data, replace), *extra])


def billion_laughs(root: bytes) -> bytes:
    """An XML document whose entity ``lol9`` expands to 10^9 "lol"s, used inside ``root``."""
    entities = b'<!ENTITY lol0 "lol">' + b"".join(
        b'<!ENTITY lol%d "%s">' % (n, b"&lol%d;" % (n - 1) * 10) for n in range(1, 10)
    )
    return b'<?xml version="1.0"?>\n<!DOCTYPE root [' + entities + b"]>\n" + root


def sheet_xml(rows: bytes, dimension: bytes = b"A1") -> bytes:
    ns = b"http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    return b'<worksheet xmlns="%s"><dimension ref="%s"/><sheetData>%s</sheetData></worksheet>' % (ns, dimension, rows)


def many_cells_sheet(rows: int, columns: int) -> bytes:
    cells = b"".join(b'<c t="n"><v>%d</v></c>' % column for column in range(columns))
    return sheet_xml(b"".join(b'<row r="%d">%s</row>' % (row, cells) for row in range(1, rows + 1)))


def shared_string_xlsx(xlsx: bytes, text: bytes, cells: int) -> bytes:
    """``xlsx`` with one sheet of ``cells`` cells (100 a row) that all show shared string 0, ``text``."""
    types_name, strings_name = "[Content_Types].xml", "xl/sharedStrings.xml"
    with zipfile.ZipFile(io.BytesIO(xlsx)) as archive:
        types = archive.read(types_name)
    override = (
        b'<Override PartName="/%s" ContentType="application/'
        b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>' % strings_name.encode()
    )
    ns = b"http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    strings = b'<sst xmlns="%s" count="1" uniqueCount="1"><si><t>%s</t></si></sst>' % (ns, text)
    row = b'<c t="s"><v>0</v></c>' * 100
    rows = b"".join(b'<row r="%d">%s</row>' % (number, row) for number in range(1, cells // 100 + 1))
    replace = {types_name: types.replace(b"</Types>", override), "xl/worksheets/sheet1.xml": sheet_xml(rows)}
    return with_members(xlsx, replace, extra=(named(strings_name, deflated(strings)),))


def epub(container: bytes, files: dict[str, bytes]) -> bytes:
    """An EPUB of a container document and other files, as given."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("mimetype", "application/epub+zip")
        book.writestr("META-INF/container.xml", container)
        for name, body in files.items():
            book.writestr(name, body)
    return out.getvalue()


def drm_epub() -> bytes:
    """An EPUB whose only chapter ``META-INF/encryption.xml`` lists as encrypted."""
    encryption = (
        b'<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        b'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
        b'<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
        b'<enc:CipherData><enc:CipherReference URI="OEBPS/chapter-1.xhtml"/></enc:CipherData>'
        b"</enc:EncryptedData></encryption>"
    )
    return epub(
        epub_container("OEBPS/content.opf").encode(),
        {
            "OEBPS/content.opf": epub_package(["chapter-1.xhtml"]).encode(),
            "OEBPS/chapter-1.xhtml": bytes(range(256)) * 8,
            "META-INF/encryption.xml": encryption,
        },
    )


def repeated_spine_epub(chapter_chars: int, times: int) -> bytes:
    """An EPUB whose spine lists its one chapter (``chapter_chars`` of text) ``times`` times."""
    text = "the cat sat on the mat. " * (chapter_chars // 24)
    return epub(
        epub_container("OEBPS/content.opf").encode(),
        {
            "OEBPS/content.opf": epub_package(["chapter-1.xhtml"] * times).encode(),
            "OEBPS/chapter-1.xhtml": epub_chapter("Cats", "Cats", text).encode(),
        },
    )


def long_header_csv(columns: int, name_chars: int, rows: int) -> bytes:
    """A CSV table whose ``columns`` header names are ``name_chars`` long each, over ``rows`` short rows."""
    header = b",".join(b"%d" % column + b"h" * name_chars for column in range(columns))
    return header + b"\n" + (b",".join([b"1"] * columns) + b"\n") * rows


def mime_parts(parts: int) -> bytes:
    """A message of ``parts`` sibling text parts."""
    body = b"".join(b"--b\nContent-Type: text/plain\n\npart\n" for _ in range(parts))
    return b"Subject: parts\nContent-Type: multipart/mixed; boundary=b\n\n" + body + b"--b--\n"


def nested_parts(depth: int) -> bytes:
    """A message of multiparts nested ``depth`` deep around one text part."""
    heads = b"".join(b"Content-Type: multipart/mixed; boundary=n%d\n\n--n%d\n" % (i, i) for i in range(depth))
    return b"Subject: nested\n" + heads + b"Content-Type: text/plain\n\ndeep text\n"


def mail_catalogue() -> list[Hostile]:
    """Hostile e-mail: MIME part floods, deep nesting, giant headers."""
    giant_subject = b"Subject: " + b"=?utf-8?q?abc?= " * 300_000 + b"\nFrom: " + b"a@b, " * 300_000 + b"\n\nbody\n"
    params = b"Subject: x\nContent-Type: multipart/mixed; " + b"a=b; " * 200_000 + b"boundary=x\n\nbody\n"
    return [
        Hostile("100k-parts.eml", mime_parts(100_000), "too many MIME parts"),
        Hostile("100k-deep.eml", nested_parts(100_000), "too many MIME parts"),
        Hostile("giant-subject.eml", giant_subject, None),
        Hostile("giant-content-type.eml", params, "a Content-* header of"),
        Hostile("100k-parts.mbox", b"From a@b Mon Nov  2 09:12:00 2026\n" + mime_parts(100_000), "no readable message"),
    ]


def office_catalogue() -> list[Hostile]:
    """Hostile DOCX, PPTX, XLSX, ODT, EPUB and CSV tables (the production archive and table limits)."""
    samples = sample_files()
    docx, xlsx, epub_ = samples["team-handbook.docx"], samples["model-sizes.xlsx"], samples["search-notes.epub"]
    sheet = "xl/worksheets/sheet1.xml"
    empty = deflated(b"")
    many = [named(f"m/{n:06d}", empty) for n in range(100_000)]
    lol = billion_laughs(b"<root>&lol9;</root>")
    xxe = b'<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]><c>&x;</c>'
    noisy = random.Random(0).randbytes(8192) + bytes(2**20 - 8192)  # inflates ~110 times: under the ratio limit
    return [
        Hostile(
            "zip-bomb.docx", with_members(docx, extra=(named("word/media/x.bin", two_gib_of_zeros()),)), "zip bomb"
        ),
        Hostile("zip-bomb.xlsx", with_members(xlsx, extra=(named("xl/media/x.bin", two_gib_of_zeros()),)), "zip bomb"),
        Hostile(
            "zip-bomb.epub",
            with_members(epub_, extra=tuple(named(f"OEBPS/x{n}.bin", repeated(noisy, 100)) for n in range(2))),
            "archive too large when unpacked",
        ),
        Hostile(
            "lying-size.docx",
            with_members(docx, extra=(named("word/media/x.bin", repeated(bytes(2**20), 64), size=1000),)),
            "corrupt DOCX",
        ),
        Hostile("100k-members.epub", raw_zip(many), "too many archive members"),
        Hostile("lying-count.epub", raw_zip(many, declared_count=1), "too many archive members"),
        Hostile("billion-laughs.docx", with_members(docx, {"word/document.xml": lol}), "declares XML entities"),
        Hostile("billion-laughs.xlsx", with_members(xlsx, {sheet: lol}), "declares XML entities"),
        Hostile("xxe.epub", epub(xxe, {}), "declares XML entities"),
        Hostile(
            "malformed.docx", with_members(docx, {"word/document.xml": b"<w:document><w:body><w:p>"}), "corrupt DOCX"
        ),
        Hostile(
            "malformed.pptx",
            with_members(samples["release-slides.pptx"], {"ppt/slides/slide1.xml": b"<p:sld"}),
            "corrupt PPTX",
        ),
        Hostile("malformed.odt", with_members(samples["style-guide.odt"], {"content.xml": b"<x>"}), "corrupt ODT"),
        Hostile("no-package.epub", epub(epub_container("missing.opf").encode(), {}), "not an EPUB"),
        Hostile("drm.epub", drm_epub(), "encrypted EPUB"),
        Hostile(
            "chapter-lol.epub",
            with_members(epub_, {"OEBPS/chapter-1.xhtml": epub_chapter("t", "h", "&lol9;").encode()}),
            None,
        ),
        Hostile("not-a-zip.docx", b"PK\x03\x04 but nothing else", "not a valid DOCX file"),
        Hostile("encrypted.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4096), "encrypted or legacy DOCX"),
        Hostile(
            "password-member.docx", raw_zip([named(m.name, m, flags=1) for m in zip_members(docx)]), "encrypted DOCX"
        ),
        Hostile("huge-table.xlsx", with_members(xlsx, {sheet: many_cells_sheet(20_001, 10)}), "too many table cells"),
        Hostile(
            "far-row.xlsx",
            with_members(
                xlsx, {sheet: sheet_xml(b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>', b"A1:XFD1048576")}
            ),
            "too many table cells",
        ),
        Hostile("empty-sheet.xlsx", with_members(xlsx, {sheet: sheet_xml(b"")}), "empty XLSX"),
        Hostile("huge-table.csv", b"a,b,c\n" + b"1,2,3\n" * 100_000, "too many table cells"),
        Hostile("one-column.csv", b"question\nwhy?\n", "FAQ CSV needs columns"),
        Hostile("repeated-spine.epub", repeated_spine_epub(20_000, 5_000), None),  # was 100 M characters, now 20 k
        Hostile("shared-string.xlsx", shared_string_xlsx(xlsx, b"x" * 32_000, 11_300), "too much table text"),
        Hostile("long-header.csv", long_header_csv(18, 32_000, 20), None),  # was 11.5 M characters, now 38 k
    ]


def catalogue(max_pdf_pages: int) -> list[Hostile]:
    """Every hostile input the loaders must survive (``max_pdf_pages``: the limit in force; the image pixel
    limit in force must be under 16 million)."""
    sample_pdf = (SAMPLE_DIR / "jasper-overview.pdf").read_bytes()
    deep = 100_000
    return [
        Hostile("truncated.pdf", sample_pdf[: len(sample_pdf) // 3], "PDF"),
        Hostile("header-only.pdf", b"%PDF-1.7\n", "corrupt PDF"),
        Hostile("password.pdf", encrypted_pdf(), "encrypted PDF"),
        Hostile("5000-pages.pdf", many_pages_pdf(5000), "too many pages"),
        Hostile("lying-page-count.pdf", many_pages_pdf(max_pdf_pages + 1, declared=1), "too many pages"),
        Hostile("cyclic-pages.pdf", cyclic_pages_pdf(), "corrupt PDF"),
        Hostile("nested-arrays.pdf", one_page_pdf(catalog_extra=b"/Deep " + b"[" * deep + b"]" * deep), "PDF"),
        Hostile("nested-dicts.pdf", one_page_pdf(page_extra=b"/X " + b"<</A " * 20_000 + b"1" + b">>" * 20_000), None),
        Hostile(
            "zip-bomb.pdf",
            one_page_pdf(content=stream(zeros_deflated(100 * 2**20), compressed=True)),
            "too much page content",
        ),
        Hostile("shared-content.pdf", shared_content_pdf(20, 4 * 2**20), "too much page content"),
        Hostile("shared-form.pdf", shared_form_pdf(20, 4 * 2**20), "too much page content"),
        Hostile("pixel-bomb.png", png_header_only(100_000, 100_000), "decompression bomb"),
        Hostile("wide-bomb.png", png_header_only(2**31 - 1, 1), "image"),
        Hostile("over-the-limit.png", png_header_only(4000, 4000), "JASPER_MAX_IMAGE_PIXELS"),
        Hostile("not-an-image.jpg", text_pdf(["a PDF named .jpg"]), "unreadable image"),
        Hostile("long-line.txt", b"the cat sat on the mat " * 5_000, None),
        Hostile("one-huge-word.md", b"x" * 5 * 2**20, None),
        Hostile("nul-in-text.txt", b"cat\x00dog", "binary content"),
        Hostile("latin1.rst", "caf\xe9".encode("latin-1"), "undecodable text"),
        Hostile("nested.html", b"<div>" * deep + b"deep cat" + b"</div>" * deep, None),
        Hostile("unfinished-end-tags.html", b"</" * 200_000, "empty"),  # quadratic in html.parser's close()
        Hostile("unfinished-start-tags.htm", b"<a " * 200_000, "empty"),
        Hostile("only-script.html", b"<script>" + b"alert(1);" * 10_000 + b"</script>", "empty"),
        Hostile("huge-field.csv", b"question,answer\nwhy," + b"a" * 200_000 + b"\n", "malformed CSV"),
        Hostile("nested.jsonl", b'{"question": ' + b"[" * deep + b"]" * deep + b"}\n", "nested too deeply"),
        Hostile("nul-and-surrogate.jsonl", b'{"question": "cat\\u0000 dog", "answer": "lone \\ud800 half"}\n', None),
        Hostile("not-objects.jsonl", b"[1, 2]\n", "expected an object"),
        *office_catalogue(),
        *mail_catalogue(),
    ]
