"""Result cards as HTML: snippet with the query's terms marked, source file, page, kind, score and evidence.

Every piece of stored or uploaded text (file names, paths, chunk text, FAQ questions and answers, the
query) goes through ``safe_text`` (or ``highlight``, which uses it): nothing in it is interpreted as
HTML or Markdown, and no line break in it can end the card's HTML block. Image hits carry a thumbnail
as a data URI.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from jasper_rag.search import FAQMatch, Hit
from jasper_rag.ui.highlight import highlight, snippet
from jasper_rag.ui.safe import safe_text

THUMBNAIL_PX = 160
KIND_LABELS = {"chunk": "text", "faq": "FAQ", "image": "image"}

STYLE = """
<style>
.jr-card {border: 1px solid #e3e6ee; border-radius: 12px; padding: 14px 18px; margin: 0 0 12px 0;
  background: #ffffff; box-shadow: 0 1px 2px rgba(16, 24, 40, 0.04);}
.jr-card:hover {border-color: #b9c3dd;}
.jr-head {display: flex; align-items: center; gap: 8px; margin-bottom: 6px;}
.jr-rank {color: #98a2b3; font-size: 0.85rem; min-width: 1.4rem;}
.jr-title {font-weight: 600; color: #1d2939; font-size: 1.02rem; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap;}
.jr-badge {font-size: 0.72rem; padding: 1px 8px; border-radius: 999px; background: #f2f4f7; color: #475467;
  white-space: nowrap;}
.jr-kind-faq {background: #ecfdf3; color: #027a48;}
.jr-kind-image {background: #fdf2fa; color: #c11574;}
.jr-kind-chunk {background: #eff8ff; color: #175cd3;}
.jr-score {margin-left: auto; display: flex; align-items: center; gap: 6px; font-variant-numeric: tabular-nums;
  color: #344054; font-size: 0.85rem; white-space: nowrap;}
.jr-bar {width: 64px; height: 6px; border-radius: 3px; background: #eaecf0; overflow: hidden;}
.jr-bar > span {display: block; height: 100%; background: #4f6bed;}
.jr-snippet {color: #344054; line-height: 1.55; font-size: 0.95rem;}
.jr-snippet mark {background: #fff1b8; color: inherit; padding: 0 2px; border-radius: 3px;}
.jr-answer {margin-top: 8px; padding: 8px 12px; border-left: 3px solid #12b76a; background: #f6fef9;
  color: #1d2939; border-radius: 0 8px 8px 0;}
.jr-reason {margin-top: 6px; color: #475467; font-size: 0.8rem;}
.jr-meta {margin-top: 8px; color: #667085; font-size: 0.78rem; overflow-wrap: anywhere;}
.jr-evidence {margin-top: 6px; color: #475467; font-size: 0.78rem; display: flex; gap: 6px; flex-wrap: wrap;}
.jr-evidence span {background: #f9fafb; border: 1px solid #eaecf0; border-radius: 6px; padding: 0 6px;}
.jr-body {display: flex; gap: 14px; align-items: flex-start;}
.jr-thumb {width: 120px; height: 120px; object-fit: contain; border-radius: 8px; border: 1px solid #eaecf0;
  background: #f9fafb;}
.jr-stats {color: #667085; font-size: 0.85rem; margin: 4px 0 12px 0;}
.jr-hero {padding: 6px 0 2px 0;}
.jr-hero h1 {font-size: 1.9rem; margin: 0; padding: 0; display: flex; align-items: center; gap: 10px;}
.jr-logo {width: 34px; height: 34px; border-radius: 9px; background: #4f6bed; display: inline-flex;
  align-items: center; justify-content: center; margin-right: 4px; flex: none;}
.jr-hero p {color: #667085; margin: 2px 0 0 0;}
</style>
"""


HERO = (
    '<div class="jr-hero"><h1><span class="jr-logo"><svg width="20" height="20" viewBox="0 0 24 24" fill="none" '
    'stroke="white" stroke-width="2.6" stroke-linecap="round"><circle cx="10.5" cy="10.5" r="6.5"/>'
    '<line x1="15.5" y1="15.5" x2="21" y2="21"/></svg></span>jasper_rag</h1>'
    "<p>Search your documents by their words and their meaning, with a distilled Jasper &amp; Stella encoder.</p></div>"
)


def display_path(path: str, root: Path | None = None) -> str:
    """``path`` relative to ``root`` (default: the working directory) when it lies inside it."""
    root = (root or Path.cwd()).resolve()
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return path


SCORE_TITLES = {"dense": "cosine similarity", "lexical": "BM25 score", "hybrid": "fused score (0..1 for mix)"}


def score_html(score: float, mode: str = "dense") -> str:
    """The hit's ranking score as a number and a small bar (clipped to 0..1 for the bar only)."""
    width = max(0.0, min(1.0, score)) * 100
    return (
        f'<span class="jr-score" title="{SCORE_TITLES.get(mode, "score")}">'
        f'<span class="jr-bar"><span style="width:{width:.0f}%"></span></span>{score:.3f}</span>'
    )


def image_preview(path: str | Path, size: int = THUMBNAIL_PX) -> tuple[str, tuple[int, int]] | None:
    """A small PNG of the image at ``path`` as a data URI, and the image's full size (None: unreadable)."""
    from jasper_rag.vision.images import ImageLoadError, load_image

    try:
        image = load_image(path)
    except ImageLoadError:
        return None
    full_size = image.size
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), full_size


def duration_text(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


MODE_NAMES = {"dense": "dense (meaning)", "lexical": "lexical (words)", "hybrid": "hybrid (words + meaning)"}


def stats_html(count: int, query: str | None, seconds: float, dim: int, funnel: bool, mode: str = "dense") -> str:
    """The line above the results: how many, for what (None: an image), how fast, which head and mode."""
    subject = "the uploaded image" if query is None else f"“{safe_text(query.strip(), breaks=False)}”"
    search = "funnel search" if funnel else "exact search"
    return (
        f'<div class="jr-stats"><b>{count} result{"" if count == 1 else "s"}</b> for {subject} in '
        f"{duration_text(seconds)} · {MODE_NAMES.get(mode, 'search')} · {dim}-d head · "
        f"{search}</div>"
    )


def evidence_html(hit: Hit) -> str:
    """Why the hit is here: its dense cosine and rank, its BM25 score and rank, the query words it contains."""
    parts = []
    if hit.cosine is not None:
        rank = f" · #{hit.dense_rank} by meaning" if hit.dense_rank else ""
        parts.append(f"cosine {hit.cosine:.3f}{rank}")
    if hit.bm25 is not None:
        rank = f" · #{hit.lexical_rank} by words" if hit.lexical_rank else ""
        parts.append(f"BM25 {hit.bm25:.2f}{rank}")
    elif hit.mode != "dense":
        parts.append("no query word matched")
    if hit.matched:
        parts.append("words: " + ", ".join(hit.matched))
    if not parts or (hit.mode == "dense" and len(parts) == 1):
        return ""
    return '<div class="jr-evidence">' + "".join(f"<span>{safe_text(p, breaks=False)}</span>" for p in parts) + "</div>"


def hit_location(hit: Hit) -> str:
    """Where the hit is inside its file: section heading, page, chunk number and character span, and
    whether its text was recognised from an image (OCR)."""
    parts = [f"§ {hit.heading}"] if hit.heading else []
    if hit.page is not None:
        parts.append(f"page {hit.page}")
    if hit.kind == "faq":
        parts.append(f"row {hit.chunk + 1}")
    elif hit.kind == "chunk":
        parts.append(f"chunk {hit.chunk}")
        if hit.char_start is not None and hit.char_end is not None:
            parts.append(f"chars {hit.char_start}–{hit.char_end}")
    if hit.ocr:
        parts.append("text recognised by OCR")
    return " · ".join(parts)


def hit_card(hit: Hit, query: str, rank: int) -> str:
    """One search hit as a card."""
    kind = safe_text(hit.kind, breaks=False)
    label = safe_text(KIND_LABELS.get(hit.kind, hit.kind), breaks=False)
    badges = [f'<span class="jr-badge jr-kind-{kind}">{label}</span>']
    if hit.page is not None:
        badges.append(f'<span class="jr-badge">p. {hit.page}</span>')
    head = (
        f'<div class="jr-head"><span class="jr-rank">{rank}</span>'
        f'<span class="jr-title">{safe_text(Path(hit.path).name, breaks=False)}</span>{"".join(badges)}'
        f"{score_html(hit.score, hit.mode)}</div>"
    )
    if hit.kind == "image":
        preview = image_preview(hit.path)
        if preview is None:
            body = '<div class="jr-snippet">image file no longer readable</div>'
        else:
            (uri, (width, height)), suffix = preview, safe_text(Path(hit.path).suffix.lstrip(".").upper(), breaks=False)
            thumb = f'<img class="jr-thumb" src="{uri}" alt="{safe_text(hit.text, breaks=False)}"/>'
            body = (
                f'<div class="jr-body">{thumb}<div class="jr-snippet">{width} × {height} px {suffix} image</div></div>'
            )
    else:
        body = f'<div class="jr-snippet">{highlight(snippet(hit.text, query), query)}</div>'
        if hit.kind == "faq" and hit.answer:
            body += f'<div class="jr-answer">{highlight(hit.answer, query)}</div>'
    location = hit_location(hit)
    meta = safe_text(display_path(hit.path) + (f" · {location}" if location else ""), breaks=False)
    evidence = evidence_html(hit)
    return f'<div class="jr-card jr-kind-card-{kind}">{head}{body}{evidence}<div class="jr-meta">{meta}</div></div>'


def faq_card(match: FAQMatch, question: str, title: str, reason: str | None = None) -> str:
    """An FAQ entry: its question (terms of the asked ``question`` marked), its answer and its score;
    with ``reason``, why the matcher answered with it (``FAQLookup.reason``), as plain text."""
    head = (
        f'<div class="jr-head"><span class="jr-title">{safe_text(title, breaks=False)}</span>'
        f'<span class="jr-badge jr-kind-faq">FAQ</span>{score_html(match.score)}</div>'
    )
    body = (
        f'<div class="jr-snippet">{highlight(match.question, question)}</div>'
        f'<div class="jr-answer">{safe_text(match.answer)}</div>'
    )
    if reason:
        body += f'<div class="jr-reason">{safe_text(reason, breaks=False)}</div>'
    meta = safe_text(display_path(match.path), breaks=False)
    return f'<div class="jr-card jr-faq-card">{head}{body}<div class="jr-meta">{meta}</div></div>'
