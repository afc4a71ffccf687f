"""Readers for the evaluation formats: BEIR folders (retrieval) and STS Benchmark pair files.

Every reader fails with an ``EvalDataError`` naming the file and line, never a bare traceback. A
missing file of the eval folder's layout (``EVAL_FILES``, what ``jasper-rag eval-data`` provides)
names the folder and says how to fill it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jasper_rag.jsonl import json_objects

BEIR_FILES = ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")
STS_FILES = ("sts-test.csv", "sts-dev.csv", "LICENSE.txt")
# The eval folder's layout (relative paths): SciFact (BEIR, test split) and the STS Benchmark.
EVAL_FILES = (*(f"scifact/{name}" for name in BEIR_FILES), *(f"stsbenchmark/{name}" for name in STS_FILES))
EVAL_DATA_HINT = "run jasper-rag eval-data (or set JASPER_EVAL_DIR)"


class EvalDataError(ValueError):
    """An evaluation file is missing or malformed."""


def missing_eval_files(eval_dir: str | Path) -> list[str]:
    """The files of ``EVAL_FILES`` that ``eval_dir`` lacks."""
    return [name for name in EVAL_FILES if not (Path(eval_dir) / name).is_file()]


def no_eval_data(eval_dir: str | Path, missing: str) -> EvalDataError:
    """The error for an eval folder without the expected data: names the folder and the way to fill it."""
    return EvalDataError(f"no eval data in {eval_dir} ({missing} not found): {EVAL_DATA_HINT}")


def _not_found(path: Path) -> EvalDataError:
    """``path`` is missing: when it is one of the eval folder's files, say which folder and how to fill it."""
    for name in EVAL_FILES:
        parts = Path(name).parts
        if path.parts[-len(parts) :] == parts:
            folder = Path(*path.parts[: -len(parts)]) if len(path.parts) > len(parts) else Path(".")
            return no_eval_data(folder, name)
    return EvalDataError(f"{path}: file not found")


@dataclass(frozen=True)
class BeirSet:
    """A BEIR retrieval set: document texts (MTEB's ``f"{title} {text}".strip()``), queries, qrels."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass(frozen=True)
class ScoredPair:
    """Two sentences and their gold similarity (STS Benchmark: 0 to 5)."""

    first: str
    second: str
    gold: float


def is_beir_folder(folder: Path) -> bool:
    """Whether ``folder`` holds the three BEIR files."""
    return all((folder / name).is_file() for name in BEIR_FILES)


def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    if not path.is_file():
        raise _not_found(path)
    with path.open(encoding="utf-8") as handle:
        for number, record in json_objects(handle, EvalDataError, str(path)):
            if "_id" not in record:
                raise EvalDataError(f"{path}, line {number}: expected an object with an '_id' field")
            yield number, record


def _text_field(path: Path, number: int, record: dict, field: str) -> str:
    value = record.get(field) or ""
    if not isinstance(value, str):
        raise EvalDataError(f"{path}, line {number}: field '{field}' must be a string")
    return value


def load_beir(folder: str | Path, split: str = "test") -> BeirSet:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` from a BEIR folder."""
    folder = Path(folder)
    corpus_path, queries_path, qrels_path = folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels"
    corpus = {
        str(record["_id"]): (
            f"{_text_field(corpus_path, n, record, 'title')} {_text_field(corpus_path, n, record, 'text')}".strip()
        )
        for n, record in _jsonl(corpus_path)
    }
    queries = {str(record["_id"]): _text_field(queries_path, n, record, "text") for n, record in _jsonl(queries_path)}
    qrels = _load_qrels(qrels_path / f"{split}.tsv")
    unknown = sorted(set(qrels) - set(queries))
    if unknown:
        raise EvalDataError(f"{qrels_path / f'{split}.tsv'}: query ids missing from {queries_path}: {unknown[:5]}")
    return BeirSet(corpus=corpus, queries=queries, qrels=qrels)


def _load_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        raise _not_found(path)
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or (number == 1 and row[0] == "query-id"):
                continue
            try:
                query_id, doc_id, grade = row[0], row[1], int(float(row[2]))
            except (IndexError, ValueError):
                raise EvalDataError(f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>score'") from None
            qrels.setdefault(query_id, {})[doc_id] = grade
    if not qrels:
        raise EvalDataError(f"{path}: no relevance judgements")
    return qrels


def load_sts_pairs(path: str | Path) -> list[ScoredPair]:
    """Read an STS Benchmark file: tab-separated genre, file, year, id, score, sentence1, sentence2.

    Split on tabs only (the sentences contain quotes, so no CSV quoting); extra trailing columns
    that some lines carry are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise _not_found(path)
    pairs = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            columns = line.rstrip("\n\r").split("\t")
            if len(columns) < 7:
                raise EvalDataError(f"{path}:{number}: expected at least 7 tab-separated columns, got {len(columns)}")
            try:
                gold = float(columns[4])
            except ValueError:
                raise EvalDataError(f"{path}:{number}: score column '{columns[4]}' is not a number") from None
            pairs.append(ScoredPair(first=columns[5], second=columns[6], gold=gold))
    if not pairs:
        raise EvalDataError(f"{path}: no sentence pairs")
    return pairs
