"""``make bench-pdf`` (``python -m jasper_rag.bench.pdf_text``): PDF text engines and OCR, measured.

Test set: synthetic PDFs built here (words positioned without space characters: ``TJ`` kerning in a
Type0/Identity-H embedded TrueType font, as XeTeX writes them, and in a core font; words placed one by
one with ``Td``; two columns; ligatures and line-end hyphens; headers and footers on every page), plus
real typeset PDFs fetched by ``make pdf-testset`` into ``.cache/pdf-testset`` (Debian documentation
packages, each with its copyright file; see ``REAL_PDFS``). Per engine (PDFium, pypdf, and ``load_pdf``'s
choice between them) and per case: the share of extracted words that are dictionary words, the share of
the reference words recovered (synthetic cases), and time per page. Then OCR (RapidOCR) on rendered
pages: words recovered and seconds per page, the first call (model load) apart. The dictionary is the
whole-word entries of the BERT uncased WordPiece vocabulary shipped with the packaged all-MiniLM-L6-v2
model (``vocab.txt``, Apache-2.0). Reports: ``reports/pdf.json`` and ``reports/pdf.md`` (from the JSON).
"""

from __future__ import annotations

import io
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PROSE = (
    "What is this question about? The ingestion reads every page of a document and keeps the words in their order. "
    "A search engine finds the passages that answer a question, and the answer cites the file and the page. "
    "Typeset documents place each word where it belongs on the line, and the reader must find the spaces again. "
    "The office staff were affluent enough to find a fine flow of coffee in the official offices. "
    "Scanned pages hold only pictures of the text, so the characters are recognised from the image itself. "
    "Numbers such as chapter seven or table three matter less than the plain words around them."
)
FONT_SIZE = 11
LINE_MM = 6
TIGHT_KERNS = (-160, -110)  # thousandths of an em: interword gaps of shrunk (justified) or condensed lines


@dataclass(frozen=True)
class Case:
    """One test PDF: its bytes, the reference text of each page (None: real PDF, no reference) and origin."""

    name: str
    data: bytes
    reference: tuple[str, ...] | None
    origin: str


# --------------------------------------------------------------------------- synthetic PDFs
def dejavu_path() -> Path:
    """DejaVu Sans from matplotlib's package data (Bitstream Vera / DejaVu licence)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def wrap(text: str, width: int = 70) -> list[str]:
    """``text`` as lines of at most ``width`` characters, broken between words."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def _fpdf(unicode_font: bool):
    from fpdf import FPDF

    from jasper_rag.ingest.sample_build import FIXED_DATE

    pdf = FPDF()
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_compression(False)  # the content streams are rewritten below
    if unicode_font:
        pdf.add_font("dejavu", fname=str(dejavu_path()))
        pdf.set_font("dejavu", size=FONT_SIZE)
    else:
        pdf.set_font("Helvetica", size=FONT_SIZE)
    return pdf


def _lines_pdf(pages: list[list[str]], unicode_font: bool, words_apart: bool = False, columns: int = 1):
    """An fpdf2 document with ``pages`` of lines written one ``Tj`` per line (``words_apart``: one ``Td``
    + ``Tj`` per word, no space character); ``columns``: lines dealt into side-by-side columns."""
    pdf = _fpdf(unicode_font)
    for lines in pages:
        pdf.add_page()
        per_column = -(-len(lines) // columns)
        for number, line in enumerate(lines):
            column, row = divmod(number, per_column)
            x, y = 20 + column * 95, 25 + row * LINE_MM
            if not words_apart:
                pdf.text(x, y, line)
                continue
            for word in line.split():
                pdf.text(x, y, word)
                x += pdf.get_string_width(word + " ")
    return pdf


_PLACED_WORD = re.compile(rb"BT ([\d.]+) ([\d.]+) Td \(((?:\\.|[^\\()])*)\) Tj ET\n", re.S)
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape(literal: bytes) -> bytes:
    return re.sub(rb"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), literal, flags=re.S)


def _as_tj(x: bytes, y: bytes, codes: list[bytes], kerns: tuple[int, int], rng: random.Random) -> bytes:
    """One line as ``BT x y Td [<word> -k <word> ...] TJ ET``, ``k`` drawn once per line from ``kerns``."""
    kern = f" {rng.randint(*kerns)} ".encode()
    return b"BT " + x + b" " + y + b" Td [" + kern.join(b"<" + c.hex().encode() + b">" for c in codes) + b"] TJ ET\n"


def kerned(pdf_bytes: bytes, kerns: tuple[int, int] = (-333, -333), seed: int = 0) -> bytes:
    """A PDF written one word per ``Td``/``Tj`` (``_lines_pdf(words_apart=True)``) rewritten the way TeX
    engines write lines: each line one ``TJ`` array of words separated only by kerning offsets (thousandths
    of an em, drawn per line from ``kerns``: -333 is TeX's natural interword space, less is a shrunk,
    justified line), no space character."""
    from pypdf import PdfReader, PdfWriter

    rng = random.Random(seed)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes)))
    for page in writer.pages:
        contents = page.get_contents()
        raw = contents.get_data()
        lines: dict[bytes, list[re.Match]] = {}
        for match in _PLACED_WORD.finditer(raw):
            lines.setdefault(match.group(2), []).append(match)
        pieces, position = [], 0
        for matches in lines.values():
            first = matches[0]
            codes = [_unescape(match.group(3)) for match in matches]
            pieces += [raw[position : first.start()], _as_tj(first.group(1), first.group(2), codes, kerns, rng)]
            position = matches[-1].end()
        contents.set_data(b"".join([*pieces, raw[position:]]))
        page.replace_contents(contents)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _paged(text: str, per_page: int = 12) -> list[list[str]]:
    lines = wrap(text)
    return [lines[start : start + per_page] for start in range(0, len(lines), per_page)]


def _hyphenated(text: str, width: int = 60) -> list[str]:
    """Lines of ``text`` where a long word at the end of a full line is split with a hyphen."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            if len(word) >= 8 and word.isalpha():
                cut = len(word) // 2
                lines.append(f"{line} {word[:cut]}-")
                line = word[cut:]
                continue
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def with_ligatures(text: str) -> str:
    """``text`` with fi/fl/ffi/ff written as the typographic ligature characters."""
    for plain, ligature in (("ffi", "\ufb03"), ("ffl", "\ufb04"), ("ff", "\ufb00"), ("fi", "\ufb01"), ("fl", "\ufb02")):
        text = text.replace(plain, ligature)
    return text


def _headers_footers(pages: int = 3) -> tuple[bytes, tuple[str, ...]]:
    pdf = _fpdf(unicode_font=True)
    bodies = _paged(PROSE, per_page=4)[:pages]
    references = []
    for number, lines in enumerate(bodies, start=1):
        pdf.add_page()
        header, footer = "Jasper annual report", f"Page {number} of {len(bodies)}"
        pdf.text(20, 12, header)
        for row, line in enumerate(lines):
            pdf.text(20, 30 + row * LINE_MM, line)
        pdf.text(20, 285, footer)
        references.append(" ".join([header, *lines, footer]))
    return bytes(pdf.output()), tuple(references)


def synthetic_cases() -> list[Case]:
    """The generated test PDFs (no external file), each with its reference text per page."""
    pages = _paged(PROSE)
    reference = tuple(" ".join(lines) for lines in pages)
    origin = "synthetic (jasper_rag.bench.pdf_text; DejaVu Sans from matplotlib's package data)"

    def placed(unicode_font: bool = True, columns: int = 1) -> bytes:
        return bytes(_lines_pdf(pages, unicode_font, words_apart=True, columns=columns).output())

    header_pdf, header_reference = _headers_footers()
    return [
        Case("tj-kerned-type0", kerned(placed()), reference, origin),
        Case("tj-tight-type0", kerned(placed(), TIGHT_KERNS), reference, origin),
        Case("tj-tight-core-font", kerned(placed(unicode_font=False), TIGHT_KERNS), reference, origin),
        Case("td-placed-words-type0", placed(), reference, origin),
        Case("two-columns-kerned-type0", kerned(placed(columns=2)), reference, origin),
        Case(
            "ligatures-hyphens-type0",
            bytes(_lines_pdf([_hyphenated(with_ligatures(PROSE))], True).output()),
            (PROSE,),
            origin,
        ),
        Case("headers-footers-type0", header_pdf, header_reference, origin),
    ]


# --------------------------------------------------------------------------- scoring
_WORD = re.compile(r"[^\W\d_]+")


def words(text: str) -> list[str]:
    """Lower-cased alphabetic tokens (NFKC: ligatures spelt out)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


@lru_cache(maxsize=1)
def dictionary() -> frozenset[str]:
    """Whole-word entries of the packaged all-MiniLM-L6-v2's BERT uncased vocabulary (no ``##`` pieces,
    no ``[...]`` specials, letters only)."""
    from jasper_rag.weights import model_path

    vocab = (model_path("minilm-l6") / "vocab.txt").read_text(encoding="utf-8").split("\n")
    return frozenset(entry for entry in vocab if entry.isalpha() and not entry.startswith("##"))


def dictionary_share(text: str, vocabulary: frozenset[str]) -> float | None:
    """Share of the text's words that are dictionary words (None: no words)."""
    found = words(text)
    return sum(word in vocabulary for word in found) / len(found) if found else None


def recall(text: str, reference: str) -> float:
    """Share of the reference's words (with their counts) found among the text's words."""
    wanted, found = Counter(words(reference)), Counter(words(text))
    total = sum(wanted.values())
    return sum(min(count, found[word]) for word, count in wanted.items()) / total if total else 1.0


Engine = Callable[[bytes], list[str]]
