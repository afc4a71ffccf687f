"""Chunking by the model's tokenizer: size limits, overlap, exact character spans, sentence-friendly cuts."""

from __future__ import annotations

import random
from itertools import pairwise
from pathlib import Path

import pytest

from jasper_rag.ingest.chunking import SLICE_CHARS, Chunker, PageTooLong
from jasper_rag.ingest.loaders import LoadError
from tests.conftest import make_tiny_encoder

SENTENCES = " ".join(f"the cat sat on the mat number {i} and the dog ran to the road." for i in range(30))


def count_tokens(chunker: Chunker, text: str) -> int:
    return len(chunker.tokenizer(text, add_special_tokens=False)["input_ids"])


def test_chunks_fit_overlap_and_keep_exact_spans(tmp_path):
    encoder = make_tiny_encoder(tmp_path)
    chunker = Chunker.for_encoder(encoder, chunk_tokens=40, overlap=8)
    assert chunker.max_tokens == 38  # [CLS] and [SEP] leave room
    spans = chunker.split(SENTENCES)
    assert len(spans) > 5
    for span in spans:
        assert span.text == SENTENCES[span.char_start : span.char_end]
        assert count_tokens(chunker, span.text) <= chunker.max_tokens
    for before, after in pairwise(spans):
        assert before.char_start < after.char_start < before.char_end  # they overlap and move forward
    assert spans[0].char_start == 0 and spans[-1].char_end == len(SENTENCES)


def test_cuts_prefer_sentence_ends(tmp_path):
    chunker = Chunker.for_encoder(make_tiny_encoder(tmp_path), chunk_tokens=40, overlap=0)
    spans = chunker.split(SENTENCES)
    assert all(span.text.endswith(".") for span in spans)


def test_chunk_size_is_capped_by_the_model_and_blank_text_gives_nothing(tmp_path):
    encoder = make_tiny_encoder(tmp_path)  # max_length 64
    chunker = Chunker.for_encoder(encoder, chunk_tokens=10_000, overlap=500)
    assert chunker.max_tokens == 62 and chunker.overlap == 31
    assert chunker.split(" \n\t ") == []
    assert [s.text for s in chunker.split("  the cat  ")] == ["the cat"]


def test_a_sections_first_chunk_begins_with_its_heading_and_spans_stay_exact(tmp_path):
    from jasper_rag.ingest.loaders import load_markdown

    source = "# Distillation\n\n## Losses\n\n" + SENTENCES + "\n\n## Heads\n\nShort **text**.\n"
    pages = load_markdown(Path("a.md"), source.encode()).pages
    assert [page.heading for page in pages] == ["Distillation > Losses", "Distillation > Heads"]
    chunker = Chunker.for_encoder(make_tiny_encoder(tmp_path), chunk_tokens=40, overlap=8)
    spans = [chunker.split(page.text) for page in pages]
    assert spans[0][0].text.startswith("Distillation > Losses\n\nthe cat sat") and len(spans[0]) > 5
    assert [span.text for span in spans[1]] == ["Distillation > Heads\n\nShort text."]
    for page, page_spans in zip(pages, spans, strict=True):
        for span in page_spans:
            assert span.text == page.text[span.char_start : span.char_end]


def reference_split(chunker: Chunker, text: str) -> list[tuple[str, int, int]]:
    """The chunker before it tokenized by slices (commit c4f1b4e): the whole page tokenized at once."""
    offsets = chunker.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = [(start, end) for start, end in offsets["offset_mapping"] if end > start]
    region_size = int(chunker.max_tokens * 0.4)

    def cut(start: int) -> int:
        end = min(start + chunker.max_tokens, len(offsets))
        if end == len(offsets):
            return end
        region = range(end - 1, max(start, end - region_size) - 1, -1)
        for i in region:
            if text[offsets[i][0] : offsets[i][1]] in (".", "!", "?") and offsets[i + 1][0] > offsets[i][1]:
                return i + 1
        for i in region:
            if offsets[i + 1][0] > offsets[i][1]:
                return i + 1
        return end

    spans, start = [], 0
    while start < len(offsets):
        end = cut(start)
        spans.append((text[offsets[start][0] : offsets[end - 1][1]], offsets[start][0], offsets[end - 1][1]))
        if end == len(offsets):
            break
        start = max(end - chunker.overlap, start + 1)
        while start < end and offsets[start][0] == offsets[start - 1][1]:
            start += 1
    return spans


@pytest.fixture(scope="module")
def minilm_tokenizer():
    """The tokenizer of the packaged start model (WordPiece, as in real ingestion)."""
    from transformers import AutoTokenizer

    from jasper_rag.weights import model_path

    return AutoTokenizer.from_pretrained(model_path("minilm-l6"))


def random_page(rng: random.Random, words: int) -> str:
    """Prose with what pages hold: punctuation, newlines, runs of spaces, accents, CJK, emoji, long tokens."""
    vocab = [*"the cat sat on a mat while distillation ranks vectors by cosine similarity".split()]
    vocab += ["Ünïcödé", "naïve", "cafe\u0301", "日本語の文章です", "😀👍", "x" * 130, "e.g.", "3.14", "'quoted'", "\t"]
    parts = []
    for _ in range(words):
        parts.append(rng.choice(vocab))
        parts.append(rng.choice([" ", " ", " ", ". ", ", ", "\n", "\n\n", "  ", "! ", "? ", "-", "\u3000"]))
    return "".join(parts)


def spans_of(chunker: Chunker, text: str) -> list[tuple[str, int, int]]:
    return [(span.text, span.char_start, span.char_end) for span in chunker.split(text)]


@pytest.mark.parametrize("slice_chars", [300, 4_096, SLICE_CHARS])
def test_sliced_tokenization_gives_the_chunks_of_the_whole_page(minilm_tokenizer, slice_chars):
    rng = random.Random(slice_chars)
    pages = [random_page(rng, rng.choice([5, 200, 2_000, 6_000])) for _ in range(8)]
    pages += [page.text for page in sample_pages()]  # ordinary pages: shorter than a default slice
    if slice_chars == SLICE_CHARS:
        pages.append(random_page(rng, 10_000))  # ~115,000 characters: 2 default slices
    for max_tokens, overlap in ((254, 32), (40, 8), (16, 0)):
        chunker = Chunker(minilm_tokenizer, max_tokens, overlap, max_page_chars=10**7, slice_chars=slice_chars)
        for page in pages:
            assert spans_of(chunker, page) == reference_split(chunker, page)


def sample_pages():
    """Every text page of the packaged sample corpus, as ingestion loads it."""
    from jasper_rag.ingest.loaders import TextContent, file_type
    from jasper_rag.ingest.sample_build import SAMPLE_DIR

    pages = []
    for path in sorted(SAMPLE_DIR.rglob("*")):
        kind = file_type(path)
        if kind is not None and path.is_file():
            content = kind.load(path, path.read_bytes(), None)
            if isinstance(content, TextContent):
                pages += content.pages
    assert len(pages) > 10
    return pages


def test_a_page_over_the_character_limit_is_refused_with_a_reason(tmp_path):
    chunker = Chunker.for_encoder(make_tiny_encoder(tmp_path), chunk_tokens=40, overlap=8, max_page_chars=1_000)
    assert chunker.split("the cat " * 125)  # exactly 1,000 characters: accepted
    with pytest.raises(
        LoadError, match=r"page too long: 1,008 characters > limit 1,000 \(JASPER_INGEST_MAX_PAGE_CHARS\)"
    ):
        chunker.split("the cat " * 126)
    assert issubclass(PageTooLong, LoadError)  # the pipeline records it as the file's reason


def test_the_page_limit_defaults_to_the_setting(tmp_path, monkeypatch):
    from jasper_rag.config import Settings, get_settings

    assert Settings().ingest_max_page_chars == 10_000_000
    monkeypatch.setenv("JASPER_INGEST_MAX_PAGE_CHARS", "123")
    get_settings.cache_clear()
    try:
        assert Chunker.for_encoder(make_tiny_encoder(tmp_path), 40, 8).max_page_chars == 123
    finally:
        get_settings.cache_clear()


def test_ingestion_fails_a_file_with_a_page_over_the_limit_and_keeps_the_rest(tmp_path, monkeypatch):
    from jasper_rag.config import get_settings
    from jasper_rag.ingest.pipeline import ingest_paths
    from jasper_rag.store import DocumentStatus
    from tests.ingest_support import load_tiny, make_store, save_tiny_model, small_settings

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "short.txt").write_text(SENTENCES[:1_500])
    (folder / "long.txt").write_text(SENTENCES * 2)
    encoder = load_tiny(save_tiny_model(tmp_path / "tiny"))
    store = make_store(tmp_path)
    monkeypatch.setenv("JASPER_INGEST_MAX_PAGE_CHARS", "2000")
    get_settings.cache_clear()
    try:
        summary = ingest_paths([folder], encoder, store, small_settings(), progress=False)
    finally:
        get_settings.cache_clear()
    reasons = {Path(outcome.path).name: outcome.reason for outcome in summary.failed()}
    assert reasons == {
        "long.txt": f"page too long: {len(SENTENCES) * 2:,} characters > limit 2,000 (JASPER_INGEST_MAX_PAGE_CHARS)"
    }
    assert {Path(d.path).name: d.status for d in store.documents()}["short.txt"] == DocumentStatus.INGESTED


def test_a_run_without_whitespace_longer_than_a_slice_is_cut_between_tokens(minilm_tokenizer):
    chunker = Chunker(minilm_tokenizer, 40, 8, max_page_chars=10**7, slice_chars=300)
    for page in ("日本語の文章です" * 200, "cosine-similarity/" * 100, "start " + "文" * 1_000 + " end."):
        spans = chunker.split(page)
        assert [(s.text, s.char_start, s.char_end) for s in spans] == reference_split(chunker, page)
        assert all(span.text == page[span.char_start : span.char_end] for span in spans)
