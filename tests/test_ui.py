"""The UI's pure helpers: highlighting, cards, safe uploads, the ingest summary and the About facts."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from PIL import Image

from jasper_rag.config import Settings
from jasper_rag.ingest.summary import FileOutcome, IngestSummary
from jasper_rag.search import FAQMatch, Hit
from jasper_rag.ui.cards import display_path, faq_card, hit_card, stats_html
from jasper_rag.ui.highlight import highlight, plain, query_terms, snippet
from jasper_rag.ui.ingest_run import summary_rows
from jasper_rag.ui.overview import eval_table
from jasper_rag.ui.safe import public_url
from jasper_rag.ui.uploads import RefusedUpload, SavedUpload, UploadPolicy, safe_name, save_uploads
from jasper_rag.vision.images import ImageLoadError, decode_image
from tests.ingest_support import png_bytes


def make_hit(**fields) -> Hit:
    values = {"id": 1, "kind": "chunk", "score": 0.8123, "text": "text", "path": "/docs/a.pdf", "file_type": "pdf"}
    return Hit(**{**values, "ordinal": 2, **fields})


# ----------------------------------------------------------------- highlighting
def test_query_terms_drop_stopwords_and_duplicates() -> None:
    assert query_terms("How are the Heads trained, heads?") == ["trained", "heads"]
    assert query_terms("is it a?") == []


def test_highlight_marks_whole_words_and_prefixes_and_escapes_the_rest() -> None:
    marked = highlight("<b>Training</b> the heads & a cathedral; cat!", "train cat heads")
    assert marked == (
        "&lt;b&gt;<mark>Training</mark>&lt;/b&gt; the <mark>heads</mark> &amp; a cathedral; <mark>cat</mark>&#33;"
    )
    assert highlight("<i>x</i>", "the") == "&lt;i&gt;x&lt;/i&gt;"


def test_plain_removes_markdown_and_rest_decoration() -> None:
    text = "Reduced heads\n=============\n\n## Stages\nThe **first** stage\n\n---\nend"
    assert plain(text) == "Reduced heads · Stages · The first stage end"


def test_snippet_is_a_window_around_the_first_term() -> None:
    text = "filler " * 100 + "the needle is here " + "tail " * 100
    cut = snippet(text, "needle", width=120)
    assert "needle" in cut and cut.startswith("…") and cut.endswith("…") and len(cut) <= 122
    assert snippet("short text", "needle") == "short text"
    assert snippet("word " * 200, "absent", width=50).startswith("word")


# ----------------------------------------------------------------- cards
def test_hit_card_shows_file_page_kind_score_location_and_escapes_text() -> None:
    hit = make_hit(text="<script>alert(1)</script> heads are trained", page=3, char_start=10, char_end=52)
    card = hit_card(hit, "trained heads", rank=1)
    assert "<script>" not in card and "&lt;script&gt;" in card
    assert "<mark>trained</mark>" in card and "a.pdf" in card and "p. 3" in card and "0.812" in card
    assert "page 3 · chunk 2 · chars 10–52" in card and 'class="jr-card' in card


def test_faq_and_image_cards(tmp_path: Path) -> None:
    faq = make_hit(kind="faq", text="what is k?", answer="the number of <results>", ordinal=0)
    assert "jr-answer" in hit_card(faq, "k", 1) and "&lt;results&gt;" in hit_card(faq, "k", 1)
    assert "row 1" in hit_card(faq, "k", 1)
    picture = tmp_path / "chart.png"
    Image.new("RGB", (400, 200), "blue").save(picture)
    card = hit_card(make_hit(kind="image", text="chart.png", path=str(picture), file_type="image"), "", 2)
    assert 'src="data:image/png;base64,' in card and "jr-thumb" in card and "400 × 200 px PNG image" in card
    missing = hit_card(make_hit(kind="image", text="gone.png", path=str(tmp_path / "gone.png")), "", 3)
    assert "<img" not in missing and "gone.png" in missing and "no longer readable" in missing
    match = FAQMatch(question="is it <fast>?", answer="yes", score=0.93, path="/f.csv", id=4)
    assert "Answer" in faq_card(match, "fast", "Answer") and "&lt;<mark>fast</mark>&gt;" in faq_card(match, "fast", "A")


def test_stats_line_and_paths(tmp_path: Path) -> None:
    assert stats_html(1, "<q>", 0.0234, 256, False) == (
        '<div class="jr-stats"><b>1 result</b> for “&lt;q&gt;” in 23 ms · dense (meaning) · 256-d head · '
        "exact search</div>"
    )
    assert "the uploaded image in 1.50 s · dense (meaning) · 64-d head · funnel search" in stats_html(
        3, None, 1.5, 64, True
    )
    assert "hybrid (words + meaning)" in stats_html(3, "q", 0.1, 64, False, "hybrid")
    assert display_path(str(tmp_path / "a" / "b.txt"), tmp_path) == "a/b.txt"
    assert display_path("/elsewhere/b.txt", tmp_path) == "/elsewhere/b.txt"


def test_hybrid_cards_show_their_evidence() -> None:
    hit = make_hit(score=0.75, mode="hybrid", cosine=0.61, bm25=7.25, dense_rank=4, lexical_rank=1, matched=("refund",))
    card = html.unescape(hit_card(hit, "refund", 1))  # safe_text escapes '#' and ':'
    assert "cosine 0.610 · #4 by meaning" in card and "BM25 7.25 · #1 by words" in card and "words: refund" in card
    assert 'title="fused score' in card
    unmatched = html.unescape(hit_card(make_hit(mode="hybrid", cosine=0.5, dense_rank=1), "x", 2))
    assert "no query word matched" in unmatched
    assert "jr-evidence" not in hit_card(make_hit(cosine=0.8123, dense_rank=1), "x", 3)  # dense: the score says it


# ----------------------------------------------------------------- uploads
def policy(tmp_path: Path, max_mb: float = 1.0) -> UploadPolicy:
    return UploadPolicy.from_settings(Settings(ingest_max_file_mb=max_mb, uploads_dir=tmp_path / "uploads"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd.txt", "passwd-"),
        ("C:\\Users\\me\\Q3 Report (final).PDF", "q3-report-final-"),
        ("..pdf", "upload-"),
        ("  .md", "upload-"),
        ("ünïcode—名前.html", "n-code-"),
    ],
)
def test_safe_names_keep_no_path_and_no_odd_characters(name: str, expected: str) -> None:
    safe = safe_name(name, b"data")
    assert safe.startswith(expected) and "/" not in safe and "\\" not in safe and not safe.startswith(".")
    assert safe.count(".") == 1 and safe.split(".")[-1] in {"txt", "pdf", "md", "html"}


def test_policy_refuses_unsupported_empty_and_large_files(tmp_path: Path) -> None:
    rules = policy(tmp_path, max_mb=0.001)
    assert "unsupported file type '.exe'" in rules.refusal("x.exe", b"MZ")
    assert "no extension" in rules.refusal("README", b"text")
    assert rules.refusal("a.txt", b"") == "empty file (0 bytes)"
    assert "too large" in rules.refusal("a.txt", b"x" * 2000)
    assert rules.refusal("A.TXT", b"fine") is None
    assert "pdf" in rules.describe() and "0.001 MB" in rules.describe()


def test_save_uploads_writes_accepted_files_once_under_generated_names(tmp_path: Path) -> None:
    rules = policy(tmp_path)
    saved, refused = save_uploads([("../a.txt", b"one"), ("b.exe", b"two"), ("a.txt", b"one")], rules)
    assert refused == [RefusedUpload("b.exe", refused[0].reason)]
    assert [upload.name for upload in saved] == ["../a.txt", "a.txt"] and saved[0].path == saved[1].path
    files = list(rules.folder.iterdir())
    assert files == [saved[0].path] and files[0].read_bytes() == b"one"


def test_summary_rows_name_files_as_uploaded(tmp_path: Path) -> None:
    saved = [SavedUpload("My File.txt", tmp_path / "my-file-1.txt")]
    summary = IngestSummary([FileOutcome(str(tmp_path / "my-file-1.txt"), "failed", "empty: no text")])
    rows = summary_rows(saved, [RefusedUpload("x.exe", "unsupported")], summary)
    assert [(row.file, row.status, row.reason) for row in rows] == [
        ("x.exe", "refused", "unsupported"),
        ("My File.txt", "failed", "empty: no text"),
    ]


# ----------------------------------------------------------------- about, image queries
def test_eval_table_takes_the_first_table(tmp_path: Path) -> None:
    assert eval_table(tmp_path) is None
    (tmp_path / "eval.md").write_text("# Evaluation\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n| other |\n")
    assert eval_table(tmp_path) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_database_urls_are_shown_without_passwords() -> None:
    assert public_url("postgresql://jasper:s3cret@db:5432/rag") == "postgresql://jasper:***@db:5432/rag"
    assert public_url("sqlite:///indexes/jasper.db") == "sqlite:///indexes/jasper.db"


def test_query_images_are_read_safely(monkeypatch: pytest.MonkeyPatch) -> None:
    assert decode_image(png_bytes((12, 8))).size == (12, 8)
    with pytest.raises(ImageLoadError, match="not a readable image"):
        decode_image(b"not an image", "q.png")
    monkeypatch.setenv("JASPER_MAX_IMAGE_PIXELS", "50")
    from jasper_rag.config import get_settings

    get_settings.cache_clear()
    try:
        with pytest.raises(ImageLoadError, match="above the limit"):
            decode_image(png_bytes((12, 8)), "big.png")
    finally:
        monkeypatch.delenv("JASPER_MAX_IMAGE_PIXELS")
        get_settings.cache_clear()
