"""Chunking by the model's tokenizer: size limits, overlap, exact character spans, sentence-friendly cuts."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from jasper_rag.ingest.chunking import Chunker
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
