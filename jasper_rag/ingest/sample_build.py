"""Rebuild the binary files of the sample corpus (PDFs, images, office files, e-book, mailbox):
``python -m jasper_rag.ingest.sample_build``.

The text of every file is written by the project (Apache-2.0): here, in ``sample_office`` and in
``mail.sample_mail``. Output is deterministic. ``text_pdf`` and ``image_pdf`` also serve the tests
(text PDFs and a scanned, text-less PDF).
"""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

from jasper_rag.ingest import SAMPLE_DIR
from jasper_rag.ingest.mail import sample_mail
from jasper_rag.ingest.sample_office import sample_files

FIXED_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)

OVERVIEW_PAGES = [
    "Jasper and Stella: an overview\n\n"
    "Jasper is a 2-billion-parameter embedding model distilled from several larger teachers. It reached third "
    "place on the MTEB leaderboard while being much smaller than the models it learned from. The student is a "
    "Stella encoder with a vision tower; its vectors are trained to match the concatenated, normalised vectors "
    "of the teachers.",
    "Stages one to three\n\n"
    "In the first stage only the projection layer from the hidden state to the teacher dimension learns. "
    "In the second stage the last three encoder layers are unfrozen. In the third stage every parameter trains "
    "and new heads produce reduced vectors of 1024, 512 and 256 dimensions. The reduced heads are trained with "
    "the similarity and relative similarity losses only, because their size differs from the teacher's.",
    "Stage four: images\n\n"
    "The fourth stage trains the vision encoder alone. Each image is paired with its caption; the caption's "
    "text vector serves as the teacher and the image vector as the student. Afterwards one index can hold text "
    "chunks and images, and a text query finds both.",
]

GUIDE_PAGES = [
    "Ingestion guide\n\n"
    "Point the ingestion at files or folders. Every PDF page, text file, Markdown, reStructuredText and HTML "
    "page is split into chunks that fit the model, with a small overlap between neighbours. Each chunk keeps its "
    "file, page and character span so that answers can cite their source.",
    "When something goes wrong\n\n"
    "A damaged, encrypted or empty PDF, a scanned PDF without a text layer, a text file in an unknown encoding, "
    "an unsupported file type, a file over the size limit or an unreadable file is recorded with its reason and "
    "listed in the summary. The other files are ingested anyway, and the exit status tells whether every file "
    "went in.",
]


def text_pdf(pages: list[str]) -> bytes:
    """A PDF with one page per string, with a real text layer (Helvetica)."""
    pdf = FPDF()
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 7, text)
    return bytes(pdf.output())


def image_pdf(image: Image.Image, pages: int = 1) -> bytes:
    """A PDF whose pages are only a picture: what a scanner produces (no text layer)."""
    pdf = FPDF()
    pdf.set_creation_date(FIXED_DATE)
    for _ in range(pages):
        pdf.add_page()
        pdf.image(image, x=10, y=10, w=150)
    return bytes(pdf.output())


def pipeline_image() -> Image.Image:
    """A diagram of the ingestion pipeline: boxes joined by arrows."""
    image = Image.new("RGB", (640, 160), "white")
    draw = ImageDraw.Draw(image)
    steps = ["files", "loaders", "chunks", "encoder", "FAISS + SQL"]
    for i, label in enumerate(steps):
        left = 10 + i * 126
        draw.rectangle((left, 50, left + 100, 110), outline="navy", width=3, fill="lightsteelblue")
        draw.text((left + 12, 72), label, fill="black")
        if i < len(steps) - 1:
            draw.line((left + 100, 80, left + 126, 80), fill="navy", width=3)
    return image


MEMO_LINES = [
    "Memo: scanned documents",
    "",
    "This page is a picture of printed text,",
    "as a scanner or a phone camera makes it.",
    "It has no text layer, so the ingestion",
    "reads it with optical character",
    "recognition, and every chunk it gives",
    "says that its text came from OCR.",
]


def scanned_memo() -> Image.Image:
    """A page of printed text as a picture (DejaVu Sans from matplotlib's package data, Bitstream Vera
    licence), for the scanned, text-less sample PDF that OCR reads."""
    import matplotlib

    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), 40)
    image = Image.new("L", (1240, 900), 255)
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(MEMO_LINES):
        draw.text((80, 80 + number * 90), line, fill=0, font=font)
    return image


def heads_chart() -> bytes:
    """A bar chart of the head sizes of the in-house model, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    heads = {"full": 1152, "d256": 256, "d128": 128, "d64": 64}
    fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
    ax.bar(list(heads), list(heads.values()), color="steelblue")
    ax.set_ylabel("dimensions")
    ax.set_title("Vector size per head")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def build(folder: Path = SAMPLE_DIR) -> list[Path]:
    """Write the sample's binary files into ``folder``; returns the paths written."""
    outputs = {
        folder / "jasper-overview.pdf": text_pdf(OVERVIEW_PAGES),
        folder / "ingestion-guide.pdf": text_pdf(GUIDE_PAGES),
        folder / "scanned-memo.pdf": image_pdf(scanned_memo()),
        folder / "images" / "heads-chart.png": heads_chart(),
        **{folder / name: data for name, data in {**sample_files(), **sample_mail()}.items()},
    }
    buffer = io.BytesIO()
    pipeline_image().save(buffer, format="PNG")
    outputs[folder / "images" / "pipeline.png"] = buffer.getvalue()
    for path, data in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return list(outputs)


if __name__ == "__main__":
    for written in build():
        print(written)
