"""Text recognised in images: scanned PDF pages and pictures of text (RapidOCR, offline).

``rapidocr-onnxruntime`` ships its ONNX models (PaddleOCR PP-OCRv4 detection and recognition, Chinese +
English, Apache-2.0) inside the package: nothing is downloaded. It installs only on Python < 3.13;
without it OCR is off (logged once) and scanned PDFs are refused as before. The engine loads once per
process (the parsing worker keeps it for the next file).

What counts as text: lines recognised with a confidence of ``MIN_LINE_SCORE`` or more, and together at
least ``MIN_WORDS`` words of two letters or more, so that charts, photos and noise give no text. Inputs
are bounded: images are shrunk to ``MAX_SIDE`` pixels on their longer side before recognition, PDF pages
are rendered at ``PDF_DPI`` (less when the page is large) to at most ``MAX_PAGE_PIXELS``; text is detected
on the image shrunk to ``DETECT_SIDE`` and read from full-size crops (small text keeps its spaces).
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from PIL import Image

log = logging.getLogger(__name__)

MIN_LINE_SCORE = 0.8
MIN_WORDS = 3
MAX_SIDE = 4000
PDF_DPI = 300  # a scanner's resolution; at 150 dpi the recogniser drops the spaces of small text ("Whatisthis")
MAX_PAGE_PIXELS = 3000 * 3000  # A4 at 300 dpi is 2481 x 3508
DETECT_SIDE = 2000  # text is found on the image shrunk to this side, then read from the full-size crops
_WORD = re.compile(r"[^\W\d_]{2,}")


@lru_cache(maxsize=1)
def _engine():
    """The RapidOCR engine (models loaded once), or None when the package is not installed (logged once)."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as err:
        log.warning(
            "OCR is off: rapidocr-onnxruntime is not importable (%s; it installs on Python < 3.13 only); "
            "scanned PDFs and pictures of text get no text",
            err,
        )
        return None
    # one thread: as fast as two on a busy 2-core machine, and CPU time (the worker's limit) = wall time
    # no angle classifier: it turned upright lines of a scanned page upside down (a fifth of the words lost, and
    # slower); upright text is what scanners and screenshots give
    return RapidOCR(
        use_cls=False,
        max_side_len=MAX_SIDE,
        det_limit_type="max",
        det_limit_side_len=DETECT_SIDE,
        intra_op_num_threads=1,
        inter_op_num_threads=1,
    )


def available() -> bool:
    """Whether OCR can run here (the first call loads the models)."""
    return _engine() is not None


def shrunk(image: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """``image`` scaled down in place (never up) so its longer side is at most ``max_side``, then as RGB
    (transparency on white: text drawn on a transparent background stays readable)."""
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, "white")
        image.paste(rgba, mask=rgba.getchannel("A"))
    return image.convert("RGB")


def recognise(image: Image.Image) -> str:
    """The text in ``image``, one recognised line per line, top to bottom; "" when OCR is unavailable or finds
    no trustworthy text (see the module docstring)."""
    import numpy as np

    engine = _engine()
    if engine is None or min(image.size) < 8:
        return ""
    result, _ = engine(np.asarray(shrunk(image)))
    lines = [str(text).strip() for _box, text, score in result or [] if float(score) >= MIN_LINE_SCORE]
    text = "\n".join(line for line in lines if line)
    return text if len(_WORD.findall(text)) >= MIN_WORDS else ""


def page_scale(width_pt: float, height_pt: float) -> float:
    """The render scale (pixels per PDF point) of a page: ``PDF_DPI``, lowered so the page has at most
    ``MAX_PAGE_PIXELS`` pixels whatever size it declares."""
    scale = PDF_DPI / 72
    area = max(width_pt, 1.0) * max(height_pt, 1.0) * scale * scale
    if area > MAX_PAGE_PIXELS:
        scale *= (MAX_PAGE_PIXELS / area) ** 0.5
    return scale
