"""``make bench-pdf`` (``python -m jasper_rag.bench.pdf_text``): PDF text engines and OCR, measured.

Test set: synthetic PDFs built here (words positioned without space characters: ``TJ`` kerning in a
Type0/Identity-H embedded TrueType font, as XeTeX writes them, and in a core font; words placed one by
one with ``Td``; two columns; ligatures and line-end hyphens; headers and footers on every page), plus
real typeset PDFs fetched by ``make pdf-testset`` into ``.cache/pdf-testset`` (Debian documentation
packages, each with its copyright file; see ``REAL_PDFS``).

Per engine (pypdf, PDFium, every page rebuilt from PDFium's glyph gaps, and ``load_pdf``'s choice) and
per case: the share of extracted words that are dictionary words, the share of the reference words
recovered (synthetic cases), glued pages and time per page. Then OCR (RapidOCR) on rendered pages: words
recovered and seconds per page, the engine's start and first page apart, and a scanned PDF through the
parsing worker under the default limits (seconds, peak address space). The dictionary is the whole-word
entries of the BERT uncased WordPiece vocabulary shipped with the packaged all-MiniLM-L6-v2 model
(``vocab.txt``, Apache-2.0). Reports: ``reports/pdf.json`` and ``reports/pdf.md`` (from the JSON).
"""

from __future__ import annotations

import io
import random
import re
import statistics
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

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
        lines: list[list[re.Match]] = []
        for match in _PLACED_WORD.finditer(raw):  # a line: consecutive words on one baseline (one column)
            if lines and lines[-1][-1].group(2) == match.group(2) and lines[-1][-1].end() == match.start():
                lines[-1].append(match)
            else:
                lines.append([match])
        pieces, position = [], 0
        for matches in lines:
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


# --------------------------------------------------------------------------- real PDFs
@dataclass(frozen=True)
class RealPdf:
    """A typeset PDF inside a Debian package: fetched by ``make pdf-testset``, never committed."""

    package: str
    member: str  # path inside the package
    licence: str
    producer: str


REAL_PDFS = (
    RealPdf("libtasn1-doc", "usr/share/doc/libtasn1-doc/libtasn1.pdf", "GFDL-1.3", "pdfTeX (Texinfo), Type1 fonts"),
    RealPdf(
        "shared-mime-info",
        "usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf",
        "GPL-2.0-or-later",
        "pdfTeX (LaTeX, DocBook), Type1 fonts",
    ),
)
TESTSET_DIR = Path(".cache/pdf-testset")


def fetch_testset(folder: Path = TESTSET_DIR) -> list[Path]:
    """Download the ``REAL_PDFS`` packages (``apt-get download``), unpack each PDF and its Debian copyright
    file into ``folder/<package>/``; packages already there are kept. Returns the PDFs present."""
    found = []
    for pdf in REAL_PDFS:
        target = folder / pdf.package
        if not (target / Path(pdf.member).name).exists():
            _unpack(pdf, target)
        if (target / Path(pdf.member).name).exists():
            found.append(target / Path(pdf.member).name)
    return found


def _unpack(pdf: RealPdf, target: Path) -> None:
    import shutil
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        try:
            subprocess.run(["apt-get", "download", pdf.package], cwd=scratch, check=True, capture_output=True)
            [deb] = Path(scratch).glob("*.deb")
            subprocess.run(["dpkg-deb", "-x", str(deb), f"{scratch}/root"], check=True, capture_output=True)
        except (OSError, ValueError, subprocess.CalledProcessError) as err:
            print(f"{pdf.package}: not fetched ({err})")
            return
        root = Path(scratch) / "root"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / pdf.member, target / Path(pdf.member).name)
        shutil.copy(root / "usr/share/doc" / pdf.package / "copyright", target / "copyright")
        (target / "SOURCE").write_text(f"Debian package {deb.name} ({pdf.licence}; see copyright)\n")


def real_cases(folder: Path = TESTSET_DIR) -> list[Case]:
    """The fetched real PDFs (none before ``make pdf-testset``); no reference text, so dictionary share only."""
    cases = []
    for pdf in REAL_PDFS:
        path = folder / pdf.package / Path(pdf.member).name
        if path.exists():
            origin = f"Debian package {pdf.package}, {pdf.licence}; {pdf.producer}"
            cases.append(Case(path.stem, path.read_bytes(), None, origin))
    return cases


# --------------------------------------------------------------------------- text engines
def pypdf_pages(data: bytes) -> list[str]:
    from pypdf import PdfReader

    from jasper_rag.ingest.pdf_text import pypdf_text

    return [pypdf_text(page) or "" for page in PdfReader(io.BytesIO(data)).pages]


def pdfium_pages(data: bytes) -> list[str]:
    """PDFium's own text (no repair of glued pages)."""
    import pypdfium2 as pdfium

    from jasper_rag.ingest.pdf_text import PdfiumPages

    with pdfium.PdfDocument(data) as document:
        count = len(document)
    pages = PdfiumPages(data, count)
    try:
        return [pages.text(index, repair=False) or "" for index in range(count)]
    finally:
        pages.close()


def glyph_gap_pages(data: bytes) -> list[str]:
    """Every page rebuilt from PDFium's glyph boxes (``pdf_text.spaced``; ``load_pdf`` does it for glued pages)."""
    import pypdfium2 as pdfium

    from jasper_rag.ingest.pdf_text import normalise, spaced

    with pdfium.PdfDocument(data) as document:
        texts = []
        for page in document:
            textpage = page.get_textpage()
            texts.append(normalise(spaced(textpage)))
            textpage.close()
            page.close()
        return texts


def chosen_pages(data: bytes) -> list[str]:
    """``load_pdf``'s text (OCR off), one string per page."""
    from jasper_rag.ingest.loaders import LoadLimits, load_pdf

    limits = LoadLimits(max_pdf_pages=10_000, max_image_pixels=40_000_000, max_pdf_content_bytes=2**30)
    return [page.text for page in load_pdf(Path("case.pdf"), data, limits).pages]


ENGINES = {"pypdf": pypdf_pages, "pdfium": pdfium_pages, "pdfium glyph gaps": glyph_gap_pages, "load_pdf": chosen_pages}


def fallback_pages(data: bytes) -> int:
    """Pages whose text ``load_pdf`` takes from the fallback engine."""
    from pypdf import PdfReader

    from jasper_rag.ingest.pdf_text import FALLBACK, PdfiumPages, page_texts

    reader = PdfReader(io.BytesIO(data))
    pages = PdfiumPages(data, len(reader.pages))
    try:
        return sum(text.engine == FALLBACK for text in page_texts(list(reader.pages), pages))
    finally:
        pages.close()


def timed(function: Callable[[], object], repeats: int) -> tuple[object, float]:
    """``function()``'s result and its best wall time over ``repeats`` runs."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return result, best


def engine_row(case: Case, engine: str, repeats: int) -> dict:
    from jasper_rag.ingest.pdf_text import glued

    texts, seconds = timed(lambda: ENGINES[engine](case.data), repeats)
    row = {
        "engine": engine,
        "dictionary_share": dictionary_share("\n".join(texts), dictionary()),
        "ms_per_page": 1000 * seconds / len(texts),
        "glued_pages": sum(glued(text) for text in texts),
    }
    if case.reference is not None:
        row["reference_recall"] = recall("\n".join(texts), "\n".join(case.reference))
    return row


def text_results(cases: list[Case], repeats: int = 3) -> list[dict]:
    return [
        {
            "case": case.name,
            "origin": case.origin,
            "pages": len(pypdf_pages(case.data)),
            "fallback_pages": fallback_pages(case.data),
            "engines": [engine_row(case, engine, repeats) for engine in ENGINES],
        }
        for case in cases
    ]


# --------------------------------------------------------------------------- OCR
POINTS_PER_INCH = 72


def scanned_page(text: str, font_pt: float = 11, dpi: int = 300) -> Image.Image:
    """An A4 page image at ``dpi`` with ``text`` set in DejaVu Sans at ``font_pt``, as a scanner gives it."""
    from PIL import Image, ImageDraw, ImageFont

    scale = dpi / POINTS_PER_INCH
    page = Image.new("RGB", (round(595 * scale), round(842 * scale)), "white")
    draw, font = ImageDraw.Draw(page), ImageFont.truetype(str(dejavu_path()), round(font_pt * scale))
    margin, line_height = round(56 * scale), round(font_pt * 1.5 * scale)
    for row, line in enumerate(wrap(text, 85)):
        draw.text((margin, margin + row * line_height), line, fill="black", font=font)
    return page


def scanned_pdf(pages: list[Image.Image]) -> bytes:
    """A PDF of full-page pictures (no text layer)."""
    from fpdf import FPDF

    pdf = FPDF()
    for page in pages:
        pdf.add_page()
        pdf.image(page, x=0, y=0, w=210, h=297)
    return bytes(pdf.output())


def ocr_cases() -> list[tuple[str, str]]:
    """(name, reference text) of the scanned pages: full pages of prose (the first pays the engine's first
    inference), then a short page."""
    full = " ".join([PROSE] * 4)
    return [(f"full page {n}", full) for n in (1, 2, 3)] + [("short page (6 sentences)", PROSE)]


def ocr_results() -> dict:
    """Model load, then each scanned page rendered by PDFium (300 dpi) and recognised: wall and CPU seconds,
    words recovered; the first page pays the engine's first inference."""
    from jasper_rag.ingest import ocr
    from jasper_rag.ingest.pdf_text import PdfiumPages

    start = time.perf_counter()
    if not ocr.available():
        return {"available": False}
    load_s = time.perf_counter() - start
    cases = ocr_cases()
    data = scanned_pdf([scanned_page(text) for _name, text in cases])
    pdfium_pages = PdfiumPages(data, len(cases))
    rows = []
    try:
        for index, (name, text) in enumerate(cases):
            render_start = time.perf_counter()
            image = pdfium_pages.image(index)
            render_s = time.perf_counter() - render_start
            wall, cpu = time.perf_counter(), time.process_time()
            found = ocr.recognise(image)
            rows.append(
                {
                    "page": name,
                    "pixels": list(image.size),
                    "render_s": render_s,
                    "ocr_s": time.perf_counter() - wall,
                    "ocr_cpu_s": time.process_time() - cpu,
                    "reference_recall": recall(found, text),
                    "lines": len(found.splitlines()),
                }
            )
    finally:
        pdfium_pages.close()
    return {"available": True, "model_load_s": load_s, "pages": rows, "worker": worker_check(data)}


def worker_check(data: bytes) -> dict:
    """A scanned PDF through the parsing worker under the default limits: seconds and peak address space."""
    from jasper_rag.config import Settings
    from jasper_rag.ingest.loaders import LoadLimits, load_pdf
    from jasper_rag.ingest.worker import ParseLimits, ParseWorker

    settings = Settings()
    limits = LoadLimits.from_settings(settings)
    with ParseWorker(ParseLimits.from_settings(settings)) as worker:
        start = time.perf_counter()
        pages = worker.load(load_pdf, Path("scan.pdf"), data, limits).pages
        seconds = time.perf_counter() - start
        status = Path(f"/proc/{worker.process.pid}/status").read_text()
    peak_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmPeak"))
    return {
        "pages": len(pages),
        "ocr_pages": sum(page.ocr for page in pages),
        "seconds": seconds,
        "vm_peak_mib": peak_kib / 1024,
        "memory_limit_mib": settings.ingest_parse_memory_mb,
        "cpu_limit_s": settings.ingest_parse_cpu_s,
        "max_ocr_pages": settings.ingest_ocr_max_pages,
    }


# --------------------------------------------------------------------------- report
VERSIONED = ("pypdf", "pypdfium2", "rapidocr-onnxruntime", "onnxruntime", "opencv-python", "fpdf2", "pillow")
DICTIONARY_SOURCE = (
    "whole-word entries of the BERT uncased WordPiece vocabulary (vocab.txt of the packaged all-MiniLM-L6-v2, "
    "Apache-2.0)"
)


def run(output_dir: Path, repeats: int = 3) -> list[Path]:
    """Measure everything and write ``pdf.json`` and ``pdf.md`` into ``output_dir``."""
    import datetime
    import os

    from jasper_rag.bench.machine import host_facts
    from jasper_rag.bench.report import render_markdown, write_json

    started, clock = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
    load_before = os.getloadavg()
    real = real_cases()
    payload = {
        "generated_at": started.isoformat(timespec="seconds"),
        "machine": host_facts(VERSIONED, load_before),
        "dictionary": {"source": DICTIONARY_SOURCE, "words": len(dictionary())},
        "real_pdfs": len(real),
        "text": text_results(synthetic_cases() + real, repeats),
        "ocr": ocr_results(),
    }
    payload["seconds"] = time.perf_counter() - clock
    payload["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    return render_markdown(write_json(payload, output_dir / "pdf.json"), full_markdown)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def text_table(payload: dict) -> str:
    from jasper_rag.bench.report import _table

    rows = []
    for result in payload["text"]:
        for row in result["engines"]:
            fallback = f" ({result['fallback_pages']} from PDFium)" if row["engine"] == "load_pdf" else ""
            rows.append(
                [
                    result["case"],
                    row["engine"] + fallback,
                    str(result["pages"]),
                    _pct(row["dictionary_share"]),
                    _pct(row.get("reference_recall")),
                    str(row["glued_pages"]),
                    f"{row['ms_per_page']:.1f}",
                ]
            )
    header = ["case", "engine", "pages", "dictionary words", "reference words recovered", "glued pages", "ms/page"]
    return _table(header, rows, text_columns=2)


def ocr_table(payload: dict) -> str:
    from jasper_rag.bench.report import _table

    rows = [
        [
            row["page"],
            f"{row['pixels'][0]} x {row['pixels'][1]}",
            str(row["lines"]),
            f"{row['render_s']:.2f}",
            f"{row['ocr_s']:.2f}",
            f"{row['ocr_cpu_s']:.2f}",
            _pct(row["reference_recall"]),
        ]
        for row in payload["ocr"]["pages"]
    ]
    header = ["scanned page (in order)", "pixels", "lines", "render s", "OCR s", "OCR CPU s", "words recovered"]
    return _table(header, rows)


def ocr_summary(ocr: dict) -> str:
    pages = ocr["pages"]
    later = sorted(row["ocr_s"] for row in pages[1:] if row["page"].startswith("full"))
    worker = ocr["worker"]
    return (
        f"Engine start (import + model load): {ocr['model_load_s']:.2f} s. First full page (first inference): "
        f"{pages[0]['ocr_s']:.2f} s; later full pages: median {statistics.median(later):.2f} s "
        f"({later[0]:.2f}–{later[-1]:.2f}). Through the parsing worker under the default limits "
        f"({worker['memory_limit_mib']} MiB address space, {worker['cpu_limit_s']} s CPU, at most "
        f"{worker['max_ocr_pages']} OCR pages per file): {worker['ocr_pages']} of {worker['pages']} scanned pages "
        f"recognised in {worker['seconds']:.1f} s including the worker's start and model load; peak address space "
        f"{worker['vm_peak_mib']:.0f} MiB."
    )


def full_markdown(payload: dict) -> str:
    """``pdf.md`` from the payload (and the glue detector's constants)."""
    from jasper_rag.ingest.pdf_text import GLUED_SHARE, LONG_TOKEN_CHARS, WORD_GAP_EM

    machine = payload["machine"]
    versions = ", ".join(f"{name} {value}" for name, value in machine["versions"].items())
    ocr = payload["ocr"]
    parts = [
        "# PDF text engines and OCR",
        "",
        f"Generated {payload['generated_at']} by `make bench-pdf` (`python -m jasper_rag.bench.pdf_text`) in "
        f"{payload['seconds']:.0f} s. Machine: {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB; load average {machine['load_average'][0]:.1f} at start, "
        f"{payload['load_average_after'][0]:.1f} at the end (the machine is shared: times are indicative). "
        f"Versions: {versions}.",
        "",
        "## Text layer: pypdf, PDFium and `load_pdf`'s choice",
        "",
        "Dictionary words: share of the extracted alphabetic tokens found in the dictionary, "
        f"{payload['dictionary']['source']}, {payload['dictionary']['words']:,} words; glued text "
        '("whatisthisquestion") is not in it. Reference words recovered: share of the words of the text the '
        "synthetic PDF was made from (with their counts) found among the extracted words. ms/page: best of the "
        "repeats, whole file (opening included) divided by its pages. Glued pages: pages the detector of "
        f"`jasper_rag/ingest/pdf_text.py` flags (over {GLUED_SHARE:.0%} of the characters in tokens of "
        f"{LONG_TOKEN_CHARS} or more). pdfium glyph gaps: every page rebuilt from PDFium's "
        f"glyph boxes, a space wherever a glyph starts more than {WORD_GAP_EM:g} em after the previous one ends. "
        "`load_pdf`: "
        "pypdf, with the pages it reads glued, empty or not at all taken from PDFium (rebuilt from glyph gaps when "
        "PDFium's own text is glued too) when that is better (OCR off here). Synthetic "
        "cases: generated by `jasper_rag/bench/pdf_text.py` (TJ kerning: words apart only by kerning offsets in "
        "one `TJ` array per line, no space character: -333/1000 em is TeX's natural interword space, 'tight' "
        "draws -110 to -160 per line, as in shrunk justified or condensed lines). Real PDFs: "
        f"{payload['real_pdfs']} fetched by `make pdf-testset` (Debian documentation packages; licence per row).",
        "",
        text_table(payload),
        "",
        "## OCR (RapidOCR, PP-OCRv4 ONNX models, one thread)",
        "",
    ]
    if not ocr.get("available"):
        parts.append("rapidocr-onnxruntime is not installed: OCR not measured.")
    else:
        parts += [
            "Scanned pages: A4 pictures at 300 dpi of DejaVu Sans 11 pt prose, in a PDF without text layer; each "
            "page rendered by PDFium at 300 dpi (render s) and recognised (OCR s, wall; OCR CPU s, this process).",
            "",
            ocr_table(payload),
            "",
            ocr_summary(ocr),
        ]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    """``python -m jasper_rag.bench.pdf_text [--fetch] [--out reports]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fetch", action="store_true", help="only fetch the real PDFs (make pdf-testset)")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    if args.fetch:
        for path in fetch_testset():
            print(path)
        return
    for path in run(args.out):
        print(path)


if __name__ == "__main__":
    main()
