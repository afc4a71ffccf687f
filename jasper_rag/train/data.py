"""Training texts: read unlabelled documents, cut part of them into sentence pieces, de-duplicate.

As in the paper, a fraction of the documents (30% by default) is cut into pieces of 1 to 10
consecutive sentences, so the student sees short texts (query-like) as well as passages.

Accepted inputs: a ``.txt`` file (documents separated by blank lines), a ``.jsonl`` file (one object
per line with a ``text`` field), or a folder holding such files (read recursively, in name order).
"""

from __future__ import annotations

import json
import os
import random
import re
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from jasper_rag.jsonl import json_objects

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]*\s+(?=[\"'“‘(]*[A-Z0-9])")


class CorpusFormatError(ValueError):
    """A corpus file could not be read as training text."""


def split_sentences(text: str) -> list[str]:
    """Split on sentence-final punctuation followed by a capitalised word (fast and good enough)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _read_jsonl(path: Path, source: str | None = None) -> list[str]:
    texts = []
    with path.open(encoding="utf-8") as handle:
        for number, record in json_objects(handle, CorpusFormatError, str(path)):
            text = record.get("text")
            if not isinstance(text, str):
                raise CorpusFormatError(f"{path}, line {number}: expected an object with a string 'text' field")
            if source is None or record.get("source") == source:
                texts.append(text)
    return texts


def load_documents(path: str | Path, source: str | None = None) -> list[str]:
    """Every document in a .txt / .jsonl file or a folder of them (whitespace-normalised, non-empty).

    ``source`` keeps only the JSONL records whose ``source`` field equals it (as ``make corpus`` writes
    them); .txt files have no source and give nothing then.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in {".txt", ".jsonl"} and p.is_file())
        if not files:
            raise CorpusFormatError(f"{path}: no .txt or .jsonl files inside")
        return [doc for file in files for doc in load_documents(file, source)]
    if not path.is_file():
        raise CorpusFormatError(f"{path}: no such corpus file or folder (build the default one with `make corpus`)")
    if path.suffix == ".jsonl":
        raw = _read_jsonl(path, source)
    elif path.suffix == ".txt":
        raw = [] if source is not None else re.split(r"\n\s*\n", path.read_text(encoding="utf-8"))
    else:
        raise CorpusFormatError(f"{path}: unsupported corpus file type (use .txt or .jsonl)")
    return [doc for doc in (" ".join(text.split()) for text in raw) if doc]


def cut_documents(
    documents: Sequence[str], cut_fraction: float = 0.3, max_sentences: int = 10, seed: int = 0
) -> list[str]:
    """Cut a random ``cut_fraction`` of the documents into pieces of 1..``max_sentences`` sentences."""
    rng = random.Random(seed)
    texts: list[str] = []
    for document in documents:
        if rng.random() >= cut_fraction:
            texts.append(document)
            continue
        sentences = split_sentences(document)
        start = 0
        while start < len(sentences):
            size = rng.randint(1, max_sentences)
            texts.append(" ".join(sentences[start : start + size]))
            start += size
    return texts


def first_words(text: str, max_words: int) -> str:
    """The first ``max_words`` words of ``text``, joined by single spaces."""
    return " ".join(text.split()[:max_words])


def deduplicate(texts: Iterable[str]) -> list[str]:
    """Drop repeated texts (compared case- and whitespace-insensitively), keeping the first."""
    seen: set[str] = set()
    unique = []
    for text in texts:
        key = " ".join(text.lower().split())
        if key and key not in seen:
            seen.add(key)
            unique.append(text)
    return unique


def training_texts(
    path: str | Path,
    max_texts: int | None = None,
    cut_fraction: float = 0.3,
    max_sentences: int = 10,
    max_words: int | None = None,
    seed: int = 0,
) -> list[str]:
    """Documents from ``path``, cut, shortened to ``max_words`` words and de-duplicated, then a seeded
    random sample of ``max_texts`` (teacher cost grows with text length: long texts are truncated by
    the models anyway)."""
    texts = cut_documents(load_documents(path), cut_fraction, max_sentences, seed)
    if max_words is not None:
        texts = [first_words(text, max_words) for text in texts]
    texts = deduplicate(texts)
    if max_texts is not None and len(texts) > max_texts:
        texts = random.Random(seed).sample(texts, max_texts)
    return texts


def write_jsonl(path: Path, records: Iterable[dict[str, object]]) -> None:
    """Write records as JSON lines atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
