"""Hardening of the Streamlit UI: hostile text is shown inert, errors are one masked line, uploads are bounded.

Each test feeds the UI what an attacker or a broken deployment would: FAQ entries, chunk text and file
names full of Markdown and HTML (remote images, links, headings, scripts, blank lines that would end the
card's HTML block), databases that cannot be reached, and uploads above the limits.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from jasper_rag.config import get_settings
from jasper_rag.search import FAQMatch, Hit
from jasper_rag.ui.cards import faq_card, hit_card, stats_html
from tests.app_support import APP, configure, ingest_corpus, save_tiny_model, write_corpus

TIMEOUT = 180
PAYLOAD = (
    "intro line\n\n![x](http://evil.example/x.png)\n\n[click](http://evil.example/phish)\n\n# heading\n\n"
    "<img src=http://evil.example/y.png>\n\n<script>alert(1)</script>\n\n"
    "www.evil.example and :red[colour] $x^2$ **bold** `code`\n\n---\nend"
)
HOSTILE_NAME = "evil ![x](x.png) [click](evil) # h <img src=x>.txt"
ALLOWED_TAGS = {"div", "span", "mark", "br", "b", "img"}
BAD_TOKENS = {"image", "link_open", "heading_open", "hr", "code_inline", "strong_open", "em_open", "fence"}


pytestmark = pytest.mark.usefixtures("one_torch_thread", "fresh_settings")


# ----------------------------------------------------------------- item 3: user text is never interpreted
class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def walk(tokens):
    for token in tokens:
        yield token
        yield from walk(token.children or [])


def assert_inert(markdown: str) -> None:
    """``markdown`` (a card drawn with unsafe_allow_html) is one HTML block of our own tags, nothing else."""
    for html_enabled in (True, False):
        tokens = list(walk(MarkdownIt("commonmark", {"html": html_enabled}).parse(markdown)))
        found = sorted({token.type for token in tokens} & BAD_TOKENS)
        assert not found, (found, markdown)
    blocks = MarkdownIt("commonmark").parse(markdown)
    assert [token.type for token in blocks] == ["html_block"], markdown  # no blank line ended the block
    tags = Tags()
    tags.feed(markdown)
    for tag, attrs in tags.tags:
        assert tag in ALLOWED_TAGS, (tag, markdown)
        assert tag != "img" or (attrs.get("src") or "").startswith("data:image/png;base64,"), markdown
        assert not any("evil" in (value or "") for name, value in attrs.items() if name != "alt"), markdown


def make_hit(**fields) -> Hit:
    values = {"id": 1, "kind": "chunk", "score": 0.5, "text": "text", "path": "/docs/a.txt", "file_type": "text"}
    return Hit(**{**values, "ordinal": 0, **fields})


@pytest.mark.parametrize(
    "card",
    [
        pytest.param(lambda: hit_card(make_hit(text=PAYLOAD), "click heading", 1), id="chunk-text"),
        pytest.param(lambda: hit_card(make_hit(path=f"/docs/{HOSTILE_NAME}"), "", 1), id="file-name"),
        pytest.param(
            lambda: hit_card(make_hit(kind="faq", text=PAYLOAD, answer=PAYLOAD), "click evil", 1), id="faq-hit"
        ),
        pytest.param(
            lambda: faq_card(FAQMatch(PAYLOAD, PAYLOAD, 0.9, f"/f/{HOSTILE_NAME}", 1), "evil click", "Answer"),
            id="faq-card",
        ),
        pytest.param(lambda: faq_card(FAQMatch(PAYLOAD, PAYLOAD, 0.9, "/f.csv", 1), "", PAYLOAD), id="faq-title"),
        pytest.param(lambda: stats_html(3, PAYLOAD, 0.1, 8, False), id="stats-query"),
        pytest.param(
            lambda: hit_card(make_hit(mode="hybrid", bm25=1.0, matched=(PAYLOAD, "evil")), PAYLOAD, 1), id="evidence"
        ),
    ],
)
def test_cards_show_hostile_text_inert(card) -> None:
    markdown = card()
    assert_inert(markdown)
    assert "evil" in markdown  # the text is shown (as text), not dropped


def test_image_card_alt_text_cannot_end_the_block(tmp_path: Path) -> None:
    from PIL import Image

    picture = tmp_path / "p.png"
    Image.new("RGB", (8, 8), "red").save(picture)
    assert_inert(hit_card(make_hit(kind="image", text=PAYLOAD, path=str(picture), file_type="image"), "", 1))


def run_app() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.run()
    assert not app.exception, app.exception
    return app


def test_app_shows_hostile_faq_entries_chunks_and_file_names_inert(tmp_path: Path, monkeypatch) -> None:
    model = save_tiny_model(tmp_path / "tiny")
    configure(monkeypatch, tmp_path, model)
    corpus = write_corpus(tmp_path / "docs")
    quoted = PAYLOAD.replace('"', '""')
    (corpus / "faq.csv").write_text(f'question,answer\n"what is evil {quoted}","answer {quoted}"\nis it safe,yes\n')
    (corpus / HOSTILE_NAME).write_text(PAYLOAD)
    ingest_corpus(model, corpus)
    app = run_app()
    app.text_input(key="query").input("evil click heading").run()
    assert not app.exception, app.exception
    cards = [element.value for element in app.markdown if element.value.startswith('<div class="jr-card')]
    assert len(cards) >= 3 and any("jr-answer" in card for card in cards) and any("evil" in card for card in cards)
    app.text_input(key="faq_question").input(f"what is evil {PAYLOAD}").run()
    assert not app.exception, app.exception
    faq_cards = [element.value for element in app.markdown if element.value.startswith('<div class="jr-card jr-faq')]
    assert faq_cards and any("click" in card for card in faq_cards)
    for markdown in cards + faq_cards:
        assert_inert(markdown)


# ----------------------------------------------------------------- item 7: errors are one line, passwords masked
SECRET = "S3cretPW"
SECRET_URL = f"postgresql+psycopg://jasper:{SECRET}@db.internal:5432/rag"


def operational_error() -> Exception:
    from sqlalchemy.exc import OperationalError

    driver = ConnectionError(f"connection to {SECRET_URL} failed: FATAL: password authentication failed\nDETAIL: x")
    return OperationalError("SELECT store_meta.key FROM store_meta\nWHERE x = ?", {"x": 1}, driver)


def page_text(app: AppTest) -> str:
    """Everything the page shows as text (messages, Markdown, code, captions, exceptions)."""
    parts = [
        el.value for kind in ("error", "warning", "info", "markdown", "caption", "code") for el in getattr(app, kind)
    ]
    parts += [str(el.value) + str(getattr(el, "stack_trace", "")) for el in app.exception]
    return "\n".join(str(part) for part in parts)


def assert_one_masked_line(app: AppTest, expected: str) -> None:
    assert not app.exception, app.exception
    assert len(app.error) == 1, [el.value for el in app.error]
    message = app.error[0].value
    assert expected in message and "\n" not in message, message
    shown = page_text(app)
    assert SECRET not in shown and "Traceback" not in shown and "SELECT" not in shown, shown
    assert all("\n" not in el.value for el in app.code), [el.value for el in app.code]


def test_error_line_keeps_one_masked_line_of_the_driver_message() -> None:
    from jasper_rag.ui.safe import error_line, mask_secrets, public_url

    line = error_line(operational_error())
    assert SECRET not in line and "\n" not in line and "jasper:***@db.internal" in line and "SELECT" not in line
    assert error_line(RuntimeError(f"cannot create the store id in {SECRET_URL}")).endswith(
        "jasper:***@db.internal:5432/rag"
    )
    assert mask_secrets(f"host=db user=u password={SECRET} dbname=x") == "host=db user=u password=*** dbname=x"
    assert mask_secrets("https://example.org/a:b@c") == "https://example.org/a:b@c"  # no credentials: untouched
    assert SECRET not in public_url(f"postgresql://u:{SECRET}@h:5432/db?x=1") and SECRET not in public_url(
        f"not a url postgresql://u:{SECRET}@h:x/db"
    )


def test_unreachable_database_is_one_line_without_traceback(tmp_path: Path, monkeypatch) -> None:
    model = save_tiny_model(tmp_path / "tiny")
    configure(
        monkeypatch,
        tmp_path,
        model,
        JASPER_DB_URL=f"postgresql+psycopg://jasper:{SECRET}@127.0.0.1:9/rag?connect_timeout=5",
    )
    app = run_app()
    assert_one_masked_line(app, "The database could not be opened")
    assert "127.0.0.1:9" in app.error[0].value and "jasper:***@" in app.error[0].value


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(operational_error, "The database could not be opened", id="operational-error"),
        pytest.param(
            lambda: RuntimeError(f"cannot create the store id in {SECRET_URL}"), "could not be opened", id="store-id"
        ),
    ],
)
def test_store_errors_naming_the_url_show_no_password(tmp_path: Path, monkeypatch, error, expected) -> None:
    model = save_tiny_model(tmp_path / "tiny")
    configure(monkeypatch, tmp_path, model)

    def failing_store(*args, **kwargs):
        raise error()

    monkeypatch.setattr("jasper_rag.ui.resources.Store", failing_store)
    app = run_app()
    assert_one_masked_line(app, expected)


def test_database_failing_after_the_page_opened_is_one_line(tmp_path: Path, monkeypatch) -> None:
    from jasper_rag.store import Store

    model = save_tiny_model(tmp_path / "tiny")
    configure(monkeypatch, tmp_path, model)
    ingest_corpus(model, write_corpus(tmp_path / "docs"))
    app = run_app()
    assert app.tabs

    def gone(self) -> None:
        raise operational_error()

    monkeypatch.setattr(Store, "refresh", gone)
    app.run()
    assert_one_masked_line(app, "The database stopped answering")


# ----------------------------------------------------------------- item 8: uploads are bounded on the server
def test_server_upload_limit_matches_the_ingest_file_limit() -> None:
    import tomllib

    from jasper_rag.config import Settings
    from tests.app_support import ROOT

    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert server["maxUploadSize"] == Settings.model_fields["ingest_max_file_mb"].default == 50


def noise_png(side: int) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_query_image_is_refused_above_the_size_limit_before_decoding(monkeypatch) -> None:
    from jasper_rag.ui import image_query
    from jasper_rag.vision.images import ImageLoadError

    data = noise_png(64)
    decoded: list[str] = []
    real = image_query.decode_image
    monkeypatch.setattr(image_query, "decode_image", lambda d, n: decoded.append(n) or real(d, n))
    with pytest.raises(ImageLoadError, match="too large"):
        image_query.read_query_image("big.png", data, max_mb=len(data) / 2**20 / 2)
    assert not decoded
    assert image_query.read_query_image("ok.png", data, max_mb=1).size == (64, 64)


def test_app_refuses_query_images_over_the_size_or_pixel_limit(tmp_path: Path, monkeypatch) -> None:
    model = save_tiny_model(tmp_path / "vision", vision=True)
    configure(monkeypatch, tmp_path, model)
    ingest_corpus(model, write_corpus(tmp_path / "docs"))
    monkeypatch.setenv("JASPER_INGEST_MAX_FILE_MB", "0.004")  # 4 KiB: the noise image is ~12 KiB
    get_settings.cache_clear()
    app = run_app()
    app.file_uploader(key="image_query").upload("noise.png", noise_png(64), "image/png").run()
    assert not app.exception, app.exception
    assert "too large" in app.error[0].value and not app.image
    assert not [el for el in app.markdown if 'class="jr-stats"' in el.value]
    monkeypatch.setenv("JASPER_INGEST_MAX_FILE_MB", "50")
    monkeypatch.setenv("JASPER_MAX_IMAGE_PIXELS", "1000")  # 64 x 64 = 4096 pixels
    get_settings.cache_clear()
    app.run()  # the uploader's own limit changed with the setting: a new widget, upload again
    app.file_uploader(key="image_query").upload("noise.png", noise_png(64), "image/png").run()
    assert "above the limit" in app.error[0].value and not app.image
    name = "![x](http://evil.example/x.png) [click](http://evil.example).png"
    app.file_uploader(key="image_query").clear().upload(name, b"not an image", "image/png").run()
    message = app.error[0].value
    assert "not a readable image" in message
    for html_enabled in (True, False):
        tokens = {token.type for token in walk(MarkdownIt("commonmark", {"html": html_enabled}).parse(message))}
        assert not tokens & BAD_TOKENS, (tokens, message)


def test_uploads_folder_keeps_only_what_the_store_uses(tmp_path: Path) -> None:
    import os
    import time

    from jasper_rag.ingest.summary import FileOutcome
    from jasper_rag.ui.uploads import SavedUpload, clean_uploads, discard_failed

    folder = tmp_path / "uploads"
    folder.mkdir()
    names = ("ingested.txt", "failed.pdf", "orphan.txt", "fresh-orphan.txt", ".upload-x.part", ".upload-new.part")
    paths = {name: folder / name for name in names}
    for path in paths.values():
        path.write_text("x")
    old = time.time() - 7200
    for name in ("ingested.txt", "failed.pdf", "orphan.txt", ".upload-x.part"):
        os.utime(paths[name], (old, old))
    saved = [SavedUpload("a.txt", paths["ingested.txt"]), SavedUpload("b.pdf", paths["failed.pdf"])]
    outcomes = [FileOutcome(str(paths["ingested.txt"]), "ingested"), FileOutcome(str(paths["failed.pdf"]), "failed")]
    assert discard_failed(saved, outcomes, keep={paths["ingested.txt"]}) == [paths["failed.pdf"]]
    removed = clean_uploads(folder, keep={paths["ingested.txt"]})
    assert sorted(path.name for path in removed) == [".upload-x.part", "orphan.txt"]
    assert sorted(path.name for path in folder.iterdir()) == [".upload-new.part", "fresh-orphan.txt", "ingested.txt"]


def test_uploads_folder_total_size_is_capped(tmp_path: Path) -> None:
    from jasper_rag.ui.uploads import UploadPolicy, save_uploads

    policy = UploadPolicy((".txt",), max_mb=1.0, folder=tmp_path / "uploads", max_total_mb=0.01)  # ~10 KiB
    saved, refused = save_uploads([("a.txt", b"a" * 6000), ("b.txt", b"b" * 6000), ("copy/a.txt", b"a" * 6000)], policy)
    assert [upload.name for upload in saved] == ["a.txt", "copy/a.txt"]  # the same content again takes no room
    assert [item.name for item in refused] == ["b.txt"] and "uploads folder is full" in refused[0].reason
    assert [path.name for path in policy.folder.iterdir()] == [saved[0].path.name]


def test_any_other_page_failure_is_one_masked_line(tmp_path: Path, monkeypatch) -> None:
    model = save_tiny_model(tmp_path / "tiny")
    configure(monkeypatch, tmp_path, model)
    ingest_corpus(model, write_corpus(tmp_path / "docs"))

    def broken(store):
        raise ValueError(f"index at {SECRET_URL} is corrupt\n  File 'x.py', line 1\nTraceback (most recent call last)")

    monkeypatch.setattr("jasper_rag.ui.page.store_overview", broken)
    app = run_app()
    assert_one_masked_line(app, "Something went wrong")
    shown = html.unescape(app.error[0].value)  # as the browser shows it
    assert "(ValueError: index at postgresql+psycopg://jasper:***@db.internal:5432/rag is corrupt)" in shown
