"""Hardening of the Streamlit UI: hostile text is shown inert, errors are one masked line, uploads are bounded.

Each test feeds the UI what an attacker or a broken deployment would: FAQ entries, chunk text and file
names full of Markdown and HTML (remote images, links, headings, scripts, blank lines that would end the
card's HTML block), databases that cannot be reached, and uploads above the limits.
"""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
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


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    yield
    get_settings.cache_clear()


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
    app.text_input(key="faq_question").input("what is evil").run()
    assert not app.exception, app.exception
    faq_cards = [element.value for element in app.markdown if element.value.startswith('<div class="jr-card jr-faq')]
    assert faq_cards and any("click" in card for card in faq_cards)
    for markdown in cards + faq_cards:
        assert_inert(markdown)
