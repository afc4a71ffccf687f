"""Hardening: what each loader costs in memory (and time) on a file at the ingestion size limit.

Each loader reads one generated file of ``JASPER_TEST_LOADER_MEMORY_MB`` MiB (default 5, so the test
stays near a minute on 2 cores; the ledger's table was written with 50, ``JASPER_INGEST_MAX_FILE_MB``)
in a fresh subprocess, as the parsing worker runs it; the figure is the process's peak RSS
(``VmHWM``, reset just before the call through ``/proc/self/clear_refs``) less its RSS with the
file's bytes already in memory. PDFs are bounded by pages and
decoded content rather than bytes, so the PDF row reads a text PDF at the page limit
(``JASPER_INGEST_MAX_PDF_PAGES``, scaled down with the size), and the image row an image at the pixel
limit, twice: with OCR off (the loader reads the header only; decoding happens when the image is
embedded) and on (``png-ocr``: the image is decoded and its text recognised, which the worker's own
memory limit bounds, ``JASPER_INGEST_PARSE_MEMORY_MB``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.reliability_report import record

SIZE_MIB = float(os.environ.get("JASPER_TEST_LOADER_MEMORY_MB", "5"))
FIXED_MIB = 96  # interpreter, parsers, one decoded copy of a small file
PER_FILE_MIB = 12  # allowed per MiB of file: decoded text, the parser's tokens, the pages returned
OCR_SHARE = 0.75  # OCR of an image at the pixel limit: within this share of the parsing worker's memory limit

MEASURE = r"""
import io, json, random, sys, time
from pathlib import Path

from jasper_rag.ingest import loaders

mode, file, kind = sys.argv[1], Path(sys.argv[2]), sys.argv[3].removesuffix("-ocr")
size_mib, pdf_pages = float(sys.argv[4]), int(sys.argv[5])
size = int(size_mib * 2**20)
rng = random.Random(0)
words = ("the student model distils teacher vectors into smaller heads while search ranks chunks of pages by "
         "cosine similarity").split()

def prose(n):
    out, length = [], 0
    while length < n:
        sentence = " ".join(rng.choice(words) for _ in range(12)) + ". "
        out.append(sentence)
        length += len(sentence)
    return "".join(out)[:n]

paragraph = prose(4096)
def make(size):
    if kind == "txt":
        data = (paragraph * (size // len(paragraph) + 1))[:size].encode()
    elif kind == "md":
        block = "## Section\n\n" + paragraph[:2000] + "\n\n- a **bold** item with a [link](http://x)\n\n"
        data = (block * (size // len(block) + 1))[:size].encode()
    elif kind == "rst":
        block = "Section\n=======\n\n" + paragraph[:2000] + "\n\n* a **bold** item with ``code``\n\n"
        data = (block * (size // len(block) + 1))[:size].encode()
    elif kind == "html":
        block = "<h2>Section</h2><p>" + paragraph[:2000] + "</p><ul><li>an <b>item</b></li></ul>\n"
        data = ("<html><body>" + block * (size // len(block) + 1))[:size].encode()
    elif kind == "csv":
        row = '"How do I ' + paragraph[:60] + '?","' + paragraph[:400] + '"\n'
        data = ("question,answer\n" + row * (size // len(row) + 1))[:size].rsplit("\n", 1)[0].encode() + b"\n"
    elif kind == "jsonl":
        row = json.dumps({"question": "How do I " + paragraph[:60] + "?", "answer": paragraph[:400]}) + "\n"
        data = (row * (size // len(row) + 1))[:size].rsplit("\n", 1)[0].encode() + b"\n"
    elif kind == "pdf":
        from fpdf import FPDF
        pdf = FPDF()
        pdf.set_font("Helvetica", size=10)
        for _ in range(pdf_pages if size > 8192 else 1):
            pdf.add_page()
            pdf.multi_cell(0, 5, paragraph[:2500])
        data = bytes(pdf.output())
    elif kind == "png":
        from PIL import Image
        limits = loaders.LoadLimits.from_settings()
        side = int(limits.max_image_pixels ** 0.5) if size > 8192 else 64
        buffer = io.BytesIO()
        Image.new("RGB", (side, side), (200, 30, 30)).save(buffer, "PNG")
        data = buffer.getvalue()
    return data

loader = loaders.file_type(Path(f"file.{kind}")).load
limits = loaders.LoadLimits.from_settings()

def status_kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

if mode == "make":  # generating a file can cost more than reading it: another process does it
    file.write_bytes(make(size))
    raise SystemExit(0)
loader(Path(f"warm.{kind}"), make(8192), limits)  # imports and first-call set-up are not the file's cost
data = file.read_bytes()
with open("/proc/self/clear_refs", "w") as clear:  # peak RSS (VmHWM) starts again from here
    clear.write("5")
before = status_kib("VmRSS")
started = time.perf_counter()
content = loader(Path(f"file.{kind}"), data, limits)
seconds = time.perf_counter() - started
peak = status_kib("VmHWM")
print(json.dumps({"kind": sys.argv[3], "file_mib": len(data) / 2**20, "increment_mib": max(0, peak - before) / 1024,
                  "seconds": seconds, "loaded": type(content).__name__}))
"""

KINDS = ("txt", "md", "rst", "html", "csv", "jsonl", "pdf", "png", "png-ocr")


def _measure(kind: str, pdf_pages: int, folder: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JASPER_INGEST_OCR": str(kind == "png-ocr").lower()}
    file = folder / f"big.{kind.removesuffix('-ocr')}"
    for mode in ("make", "measure"):
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, mode, str(file), kind, str(SIZE_MIB), str(pdf_pages)],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    file.unlink()
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_every_loader_costs_bounded_memory_on_a_file_at_the_size_limit(tmp_path: Path) -> None:
    from jasper_rag.config import get_settings

    settings = get_settings()
    pdf_pages = max(10, int(settings.ingest_max_pdf_pages * min(1.0, SIZE_MIB / settings.ingest_max_file_mb)))
    rows = [_measure(kind, pdf_pages, tmp_path) for kind in KINDS]
    record(
        "loader_memory",
        "Peak memory per loader on a file at the size limit",
        {
            "file size": f"{SIZE_MIB:g} MiB of generated text per text-like type (limit: "
            f"JASPER_INGEST_MAX_FILE_MB = {settings.ingest_max_file_mb:g})",
            "PDF": f"{pdf_pages} pages of text (page limit {settings.ingest_max_pdf_pages})",
            "image": f"a PNG at the pixel limit ({settings.max_image_pixels:,} pixels), OCR off and on (png-ocr)",
            "measured as": "peak RSS of a fresh process less its RSS with the file's bytes in memory",
            "bound asserted": f"{FIXED_MIB} MiB + {PER_FILE_MIB} x the file's MiB; png-ocr: {OCR_SHARE:.0%} of "
            f"the parsing worker's limit (JASPER_INGEST_PARSE_MEMORY_MB = {settings.ingest_parse_memory_mb})",
        },
        (
            ["type", "file MiB", "peak increment MiB", "seconds", "loaded as"],
            [
                [r["kind"], f"{r['file_mib']:.1f}", f"{r['increment_mib']:.0f}", f"{r['seconds']:.2f}", r["loaded"]]
                for r in rows
            ],
        ),
    )
    for row in rows:
        bound = FIXED_MIB + PER_FILE_MIB * row["file_mib"]
        if row["kind"] == "png-ocr":
            bound = OCR_SHARE * settings.ingest_parse_memory_mb
        assert row["increment_mib"] < bound, f"{row['kind']}: +{row['increment_mib']:.0f} MiB > {bound:.0f} MiB"
