"""Hostile and broken inputs for the hardening tests: hand-built PDFs, image bombs and odd files.

Every builder is deterministic and small on disk; what makes a file hostile is what it claims or
nests (5,000 pages, 100,000 levels of brackets, 10 billion pixels, 100 MB of zeros in 100 kB).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

from jasper_rag.ingest.sample_build import SAMPLE_DIR, text_pdf
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
    ]
