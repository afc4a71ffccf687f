"""``jasper-rag bench --suite lexical`` / ``make bench-lexical``: three BM25 engines side by side.

Candidates: tantivy (our ``LexicalIndex``, as the store uses it), bm25s (+ PyStemmer) and SQLite FTS5
(stdlib ``sqlite3``, ``porter unicode61``). Measured for each:

- quality: SciFact test (whole abstracts, ``title + " " + text``), nDCG@10 and Recall@100 (x100);
- at each corpus size: build (index every chunk and commit / persist it), update (add 1,000 new chunks,
  delete 1,000, then commit / persist), single-query latency (p50 / p95 over SciFact queries), index
  size on disk and peak extra memory of each step.

Chunks are realistic English: SciFact abstracts sliced into ~100-word passages, topped up beyond that
with passages made of sentences drawn (seeded) from the whole corpus, so from different documents. No
query text ever enters a chunk. Only the eval folder is read. Reports: ``lexical.json`` (every figure)
and ``lexical.md`` (rendered from the JSON only), rewritten after every size so an interrupted run
keeps what it measured.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import random
import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

from jasper_rag.bench.machine import cpu_model, memory_gib, package_versions
from jasper_rag.bench.report import _table, render_markdown, write_json
from jasper_rag.eval.data import BeirSet, load_beir
from jasper_rag.eval.metrics import ndcg_at_k, rank_documents, recall_at_k

log = logging.getLogger(__name__)

CANDIDATES = ("tantivy", "bm25s", "sqlite-fts5")
VERSIONED = ("tantivy", "bm25s", "PyStemmer", "numpy", "scipy")
BATCH = 10_000  # documents per add / insert call (progress granularity)
WORD = re.compile(r"\w+")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class LexicalBenchConfig:
    """What to measure (defaults: about 20 minutes on an idle 2-core machine)."""

    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    candidates: tuple[str, ...] = CANDIDATES
    update: int = 1_000  # chunks added and chunks deleted by the update
    latency_queries: int = 200
    latency_budget_s: float = 60.0  # per engine and size: fewer queries are timed past this
    k: int = 100  # results per query (the depth hybrid fusion and Recall@100 need)
    passage_words: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.candidates) - set(CANDIDATES))
        if unknown:
            raise ValueError(f"unknown lexical engines {unknown}: choose from {list(CANDIDATES)}")
        if not self.sizes or min(self.sizes) <= self.update:
            raise ValueError(f"every size must exceed the update ({self.update:,} chunks), got {self.sizes}")


# --------------------------------------------------------------------------- chunks
def sentences(text: str) -> list[str]:
    """``text`` split after ``.``, ``!`` or ``?`` followed by white space (empty pieces dropped)."""
    return [piece.strip() for piece in SENTENCE_END.split(text) if piece.strip()]


def passages(documents: Sequence[str], words: int) -> list[str]:
    """Each document sliced into consecutive ``words``-word passages; a last piece under half that joins
    the passage before it."""
    found = []
    for document in documents:
        tokens = document.split()
        pieces = [tokens[start : start + words] for start in range(0, len(tokens), words)]
        if len(pieces) > 1 and len(pieces[-1]) < words // 2:
            last = pieces.pop()
            pieces[-1] += last
        found += [" ".join(piece) for piece in pieces if piece]
    return found


class SentencePool:
    """Every sentence of a corpus, drawn (seeded) into passages of about ``words`` words."""

    def __init__(self, documents: Sequence[str]) -> None:
        self.sentences = [sentence for document in documents for sentence in sentences(document)]
        if not self.sentences:
            raise ValueError("no sentences to build chunks from")
        self.lengths = [len(sentence.split()) for sentence in self.sentences]

    def draw(self, count: int, words: int, seed: int, desc: str | None = None) -> list[str]:
        """``count`` passages, each sentences drawn at random until it holds ``words`` words or more."""
        rng = random.Random(seed)
        total = len(self.sentences)
        found = []
        for _ in tqdm(range(count), desc=desc, disable=desc is None, mininterval=1.0):
            picked, length = [], 0
            while length < words:
                index = rng.randrange(total)
                picked.append(self.sentences[index])
                length += self.lengths[index]
            found.append(" ".join(picked))
        return found


def make_chunks(documents: Sequence[str], size: int, words: int, seed: int) -> tuple[list[str], int]:
    """``size`` chunks and how many are real passages: the documents' passages (shuffled, seeded), topped
    up with drawn ones beyond them."""
    real = passages(documents, words)
    random.Random(seed).shuffle(real)
    if size <= len(real):
        return real[:size], size
    drawn = SentencePool(documents).draw(size - len(real), words, seed, desc=f"chunks {size:,}")
    return real + drawn, len(real)


# --------------------------------------------------------------------------- memory and disk
def _status(field_name: str) -> int | None:
    """A ``/proc/self/status`` figure in bytes (None off Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the process's peak RSS (Linux ``clear_refs``); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


@dataclass
class Step:
    """One timed step: wall seconds, CPU seconds of the whole process (every thread; what other load on the
    machine does not inflate) and peak extra resident memory (MiB, None where unknown)."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_mib: float | None = None


@contextmanager
def measured() -> Iterator[Step]:
    """Time the block and its peak resident memory above the resident memory at its start."""
    step = Step()
    resettable = _reset_peak()
    start_rss = _status("VmRSS")
    start, cpu_start = time.perf_counter(), time.process_time()
    yield step
    step.seconds = time.perf_counter() - start
    step.cpu_seconds = time.process_time() - cpu_start
    peak = _status("VmHWM")
    if resettable and peak is not None and start_rss is not None:
        step.peak_mib = max(peak - start_rss, 0) / 2**20


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# --------------------------------------------------------------------------- the engines
class Engine(Protocol):
    """What the bench needs of a BM25 engine; ids are ints, results best first."""

    name: str

    def build(self, ids: Sequence[int], texts: Sequence[str]) -> dict[str, float]: ...

    def update(
        self, add_ids: Sequence[int], add_texts: Sequence[str], remove_ids: Sequence[int], remove_texts: Sequence[str]
    ) -> dict[str, float]: ...

    def search(self, query: str, k: int) -> list[tuple[int, float]]: ...

    def size_bytes(self) -> int: ...

    def close(self) -> None: ...


def _batches(count: int, desc: str | None) -> Iterator[slice]:
    for start in tqdm(range(0, count, BATCH), desc=desc, disable=desc is None, mininterval=1.0):
        yield slice(start, min(start + BATCH, count))


class TantivyEngine:
    """Our ``LexicalIndex`` (tantivy) in a folder, used exactly as the store uses it."""

    name = "tantivy"

    def __init__(self, folder: Path, progress: str | None = None) -> None:
        from jasper_rag.store.lexical_index import LexicalIndex

        self.folder = folder
        self.index = LexicalIndex(folder)
        self.progress = progress

    def build(self, ids: Sequence[int], texts: Sequence[str]) -> dict[str, float]:
        start = time.perf_counter()
        for part in _batches(len(ids), self.progress and f"{self.progress}: add"):
            self.index.add(ids[part], ["text"] * len(ids[part]), texts[part])
        added = time.perf_counter()
        self.index.commit()
        return {"add_s": added - start, "commit_s": time.perf_counter() - added}

    def update(
        self, add_ids: Sequence[int], add_texts: Sequence[str], remove_ids: Sequence[int], remove_texts: Sequence[str]
    ) -> dict[str, float]:
        start = time.perf_counter()
        self.index.add(add_ids, ["text"] * len(add_ids), add_texts)
        self.index.remove(remove_ids)
        staged = time.perf_counter()
        self.index.commit()
        return {"stage_s": staged - start, "commit_s": time.perf_counter() - staged}

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        scores, ids = self.index.search([query], k)
        return [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]

    def size_bytes(self) -> int:
        return folder_bytes(self.folder)

    def close(self) -> None:
        del self.index


class Bm25sEngine:
    """bm25s with its English stop words and PyStemmer's Snowball English stemmer, saved to a folder.

    bm25s cannot change an index: an update drops the deleted documents' token ids (kept in memory from
    the build), tokenises only the new documents (the vocabulary grows), then indexes the whole corpus
    again and saves it. That is its cheapest correct path (no re-tokenising of unchanged documents)."""

    name = "bm25s"

    def __init__(self, folder: Path, progress: str | None = None) -> None:
        import bm25s
        import Stemmer

        self.bm25s = bm25s
        self.folder = folder
        self.progress = progress
        self.tokenizer = bm25s.tokenization.Tokenizer(stopwords="en", stemmer=Stemmer.Stemmer("english"))
        self.doc_ids: list[int] = []
        self.tokens: list[list[int]] = []
        self.model = None

    def _tokenize(self, texts: Sequence[str], label: str | None) -> list[list[int]]:
        return self.tokenizer.tokenize(
            list(texts), update_vocab=True, return_as="ids", show_progress=label is not None, leave_progress=False
        )

    def _index_and_save(self) -> dict[str, float]:
        start = time.perf_counter()
        model = self.bm25s.BM25()
        show = self.progress is not None
        model.index((self.tokens, dict(self.tokenizer.get_vocab_dict())), show_progress=show)
        self.model = model
        indexed = time.perf_counter()
        shutil.rmtree(self.folder, ignore_errors=True)
        model.save(str(self.folder))
        return {"index_s": indexed - start, "save_s": time.perf_counter() - indexed}

    def build(self, ids: Sequence[int], texts: Sequence[str]) -> dict[str, float]:
        start = time.perf_counter()
        self.doc_ids = list(ids)
        self.tokens = self._tokenize(texts, self.progress)
        return {"tokenize_s": time.perf_counter() - start, **self._index_and_save()}

    def update(
        self, add_ids: Sequence[int], add_texts: Sequence[str], remove_ids: Sequence[int], remove_texts: Sequence[str]
    ) -> dict[str, float]:
        start = time.perf_counter()
        gone = set(remove_ids)
        kept = [row for row, doc_id in enumerate(self.doc_ids) if doc_id not in gone]
        self.doc_ids = [self.doc_ids[row] for row in kept] + list(add_ids)
        self.tokens = [self.tokens[row] for row in kept] + self._tokenize(add_texts, None)
        return {"tokenize_s": time.perf_counter() - start, **self._index_and_save()}

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        assert self.model is not None, "build first"
        query_ids = self.tokenizer.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)
        rows, scores = self.model.retrieve(query_ids, k=min(k, len(self.doc_ids)), show_progress=False, n_threads=0)
        return [
            (self.doc_ids[int(row)], float(score)) for row, score in zip(rows[0], scores[0], strict=True) if score > 0
        ]

    def size_bytes(self) -> int:
        return folder_bytes(self.folder)

    def close(self) -> None:
        self.model, self.tokens, self.doc_ids = None, [], []


def fts5_stopwords() -> frozenset[str]:
    """English stop words dropped from FTS5 queries (bm25s's list; FTS5 itself has none)."""
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def fts5_match(query: str, stopwords: frozenset[str]) -> str | None:
    """The FTS5 MATCH expression for ``query``: an OR of its quoted words (porter stems them), stop words
    dropped; None when nothing is left."""
    words = [word for word in dict.fromkeys(WORD.findall(query.lower())) if word not in stopwords]
    return " OR ".join(f'"{word}"' for word in words) or None


class Fts5Engine:
    """SQLite FTS5 (``porter unicode61``, ``bm25()``), contentless, in a WAL database with the store's
    ``synchronous=FULL``; rows inserted and deleted in place.

    Contentless because the store already holds every text in SQL: the index alone is measured. SQLite
    3.43+ could use ``contentless_delete=1``; before it a delete passes the old text, which the store has."""

    name = "sqlite-fts5"

    def __init__(self, folder: Path, progress: str | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.progress = progress
        self.connection = sqlite3.connect(folder / "lexical.db", isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5(text, content='', tokenize='porter unicode61')"
        )
        self.stopwords = fts5_stopwords()

    def build(self, ids: Sequence[int], texts: Sequence[str]) -> dict[str, float]:
        start = time.perf_counter()
        self.connection.execute("BEGIN")
        for part in _batches(len(ids), self.progress and f"{self.progress}: insert"):
            rows = zip((int(i) for i in ids[part]), texts[part], strict=True)
            self.connection.executemany("INSERT INTO chunks(rowid, text) VALUES (?, ?)", rows)
        inserted = time.perf_counter()
        self.connection.execute("COMMIT")
        return {"insert_s": inserted - start, "commit_s": time.perf_counter() - inserted}

    def update(
        self, add_ids: Sequence[int], add_texts: Sequence[str], remove_ids: Sequence[int], remove_texts: Sequence[str]
    ) -> dict[str, float]:
        start = time.perf_counter()
        self.connection.execute("BEGIN")
        self.connection.executemany(
            "INSERT INTO chunks(chunks, rowid, text) VALUES ('delete', ?, ?)",
            zip((int(i) for i in remove_ids), remove_texts, strict=True),
        )
        self.connection.executemany(
            "INSERT INTO chunks(rowid, text) VALUES (?, ?)", zip((int(i) for i in add_ids), add_texts, strict=True)
        )
        staged = time.perf_counter()
        self.connection.execute("COMMIT")
        return {"stage_s": staged - start, "commit_s": time.perf_counter() - staged}

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        match = fts5_match(query, self.stopwords)
        if match is None:
            return []
        rows = self.connection.execute(
            "SELECT rowid, rank FROM chunks WHERE chunks MATCH ? ORDER BY rank LIMIT ?", (match, k)
        ).fetchall()
        return [(int(rowid), -float(rank)) for rowid, rank in rows]  # bm25(): lower is better

    def size_bytes(self) -> int:
        self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return folder_bytes(self.folder)

    def close(self) -> None:
        self.connection.close()


ENGINES: dict[str, Callable[[Path, str | None], Engine]] = {
    "tantivy": TantivyEngine,
    "bm25s": Bm25sEngine,
    "sqlite-fts5": Fts5Engine,
}


# --------------------------------------------------------------------------- measurements
def score_quality(engine: Engine, data: BeirSet, k: int = 100) -> dict[str, float]:
    """nDCG@10 and Recall@100 (x100, mean over the qrels' queries) of ``engine`` built on ``data.corpus``."""
    doc_ids = list(data.corpus)
    with measured() as step:
        engine.build(list(range(len(doc_ids))), [data.corpus[doc_id] for doc_id in doc_ids])
    ndcg, recall = [], []
    for query_id, qrels in data.qrels.items():
        found = engine.search(data.queries[query_id], k)
        ranking = rank_documents({doc_ids[row]: score for row, score in found})
        ndcg.append(ndcg_at_k(ranking, qrels, 10))
        recall.append(recall_at_k(ranking, qrels, 100))
    return {
        "ndcg_at_10": 100 * float(np.mean(ndcg)),
        "recall_at_100": 100 * float(np.mean(recall)),
        "queries": len(ndcg),
        "documents": len(doc_ids),
        "build_s": step.seconds,
    }


def latencies(engine: Engine, queries: Sequence[str], k: int, budget_s: float, desc: str | None) -> dict[str, float]:
    """Single-query latency (ms), wall and process CPU: p50, p95, mean over ``queries`` (after 5 untimed
    warm-up queries); past ``budget_s`` seconds no further query is timed, and ``queries`` says how many were."""
    for query in queries[:5]:
        engine.search(query, k)
    times, cpu_times = [], []
    started = time.perf_counter()
    for query in tqdm(queries, desc=desc, disable=desc is None, mininterval=1.0):
        start, cpu_start = time.perf_counter(), time.process_time()
        engine.search(query, k)
        times.append(1000 * (time.perf_counter() - start))
        cpu_times.append(1000 * (time.process_time() - cpu_start))
        if time.perf_counter() - started > budget_s:
            break
    return {
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
        "mean_ms": float(np.mean(times)),
        "p50_cpu_ms": float(np.percentile(cpu_times, 50)),
        "p95_cpu_ms": float(np.percentile(cpu_times, 95)),
        "queries": len(times),
    }


@dataclass
class Workload:
    """One corpus size: the chunks, the update's new chunks and deleted ids, the timed queries."""

    size: int
    texts: list[str]
    real: int
    added: list[str]
    removed: list[int]
    queries: list[str]

    @property
    def mean_words(self) -> float:
        sample = self.texts[:: max(1, len(self.texts) // 10_000)]
        return float(np.mean([len(text.split()) for text in sample]))


def make_workload(documents: Sequence[str], queries: Sequence[str], size: int, config: LexicalBenchConfig) -> Workload:
    """The chunks of ``size`` and the update (new chunks drawn with another seed; deleted ids seeded)."""
    texts, real = make_chunks(documents, size, config.passage_words, config.seed)
    added = SentencePool(documents).draw(config.update, config.passage_words, config.seed + size)
    removed = sorted(random.Random(config.seed + 1).sample(range(size), config.update))
    return Workload(size, texts, real, added, removed, list(queries[: config.latency_queries]))


def measure_engine(name: str, workload: Workload, config: LexicalBenchConfig, root: Path) -> dict[str, object]:
    """Build, update, time queries and size one engine on one workload (its folder removed afterwards)."""
    label = f"{name} {workload.size:,}"
    folder = root / f"{name}-{workload.size}"
    gc.collect()  # the previous engine's garbage out of the memory baseline
    engine = ENGINES[name](folder, label)
    try:
        ids = list(range(workload.size))
        with measured() as build:
            build_parts = engine.build(ids, workload.texts)
        added_ids = list(range(workload.size, workload.size + config.update))
        removed_texts = [workload.texts[i] for i in workload.removed]
        with measured() as update:
            update_parts = engine.update(added_ids, workload.added, workload.removed, removed_texts)
        latency = latencies(engine, workload.queries, config.k, config.latency_budget_s, f"{label}: queries")
        size = engine.size_bytes()
    finally:
        engine.close()
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "engine": name,
        "size": workload.size,
        "build_s": build.seconds,
        "build_cpu_s": build.cpu_seconds,
        "build_peak_mib": build.peak_mib,
        "build_parts": build_parts,
        "update_s": update.seconds,
        "update_cpu_s": update.cpu_seconds,
        "update_peak_mib": update.peak_mib,
        "update_parts": update_parts,
        "latency": latency,
        "index_mib": size / 2**20,
    }


# --------------------------------------------------------------------------- machine and run
def machine_facts() -> dict[str, object]:
    """CPU, cores, memory, load and the engines' library versions (``bench/machine.py``'s readings)."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "memory_gib": memory_gib(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "versions": {**package_versions(VERSIONED), "sqlite": sqlite3.sqlite_version},
    }


def load_scifact(eval_dir: Path) -> BeirSet:
    """SciFact's test split from the eval folder."""
    return load_beir(Path(eval_dir) / "scifact", "test")


def run_lexical_bench(
    config: LexicalBenchConfig, eval_dir: Path, output_dir: Path, work_dir: Path | None = None
) -> list[Path]:
    """Measure every candidate (quality, then each size, smallest first) and write the reports after each
    step; an engine that fails at a size is recorded with its error and skipped at larger sizes."""
    data = load_scifact(eval_dir)
    started = datetime.now(timezone.utc)
    documents = list(data.corpus.values())
    query_ids = sorted(data.qrels)
    random.Random(config.seed).shuffle(query_ids)
    queries = [data.queries[query_id] for query_id in query_ids]
    payload: dict[str, object] = {
        "generated_at": started.isoformat(timespec="seconds"),
        "config": asdict(config),
        "machine": machine_facts(),
        "quality": [],
        "scale": [],
        "workloads": [],
        "failures": [],
    }

    def write() -> list[Path]:
        payload["seconds"] = round((datetime.now(timezone.utc) - started).total_seconds(), 1)
        payload["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
        return write_reports(payload, output_dir)

    files: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="lexical-bench-", dir=work_dir) as tmp:
        root = Path(tmp)
        for name in config.candidates:
            engine = ENGINES[name](root / f"{name}-quality", None)
            try:
                payload["quality"].append({"engine": name, **score_quality(engine, data, config.k)})  # type: ignore[union-attr]
            finally:
                engine.close()
            log.info("%s quality: %s", name, payload["quality"][-1])  # type: ignore[index]
        files = write()
        failed: set[str] = set()
        for size in sorted(config.sizes):
            workload = make_workload(documents, queries, size, config)
            payload["workloads"].append(  # type: ignore[union-attr]
                {"size": size, "real_passages": workload.real, "mean_words": workload.mean_words}
            )
            for name in config.candidates:
                if name in failed:
                    continue
                try:
                    row = measure_engine(name, workload, config, root)
                except (MemoryError, OSError, sqlite3.Error, ValueError) as error:
                    failed.add(name)
                    payload["failures"].append({"engine": name, "size": size, "error": repr(error)})  # type: ignore[union-attr]
                    log.warning("%s at %s chunks failed: %r", name, f"{size:,}", error)
                else:
                    payload["scale"].append(row)  # type: ignore[union-attr]
                    log.info("%s at %s chunks: %s", name, f"{size:,}", row)
                files = write()
            del workload
            gc.collect()
    return files


# --------------------------------------------------------------------------- reports
def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def quality_markdown(payload: dict) -> str:
    rows = [
        [row["engine"], _fmt(row["ndcg_at_10"], 2), _fmt(row["recall_at_100"], 2), _fmt(row["build_s"], 2)]
        for row in payload["quality"]
    ]
    return _table(["engine", "nDCG@10", "Recall@100", "build (s)"], rows)


def size_markdown(payload: dict, size: int) -> str:
    rows = []
    for row in (row for row in payload["scale"] if row["size"] == size):
        latency = row["latency"]
        rows.append(
            [
                row["engine"],
                f"{_fmt(row['build_s'])} ({_fmt(row['build_cpu_s'])})",
                f"{_fmt(row['update_s'], 2)} ({_fmt(row['update_cpu_s'], 2)})",
                f"{_fmt(latency['p50_ms'], 2)} ({_fmt(latency['p50_cpu_ms'], 2)})",
                f"{_fmt(latency['p95_ms'], 2)} ({_fmt(latency['p95_cpu_ms'], 2)})",
                f"{latency['queries']:,}",
                _fmt(row["index_mib"]),
                _fmt(row["build_peak_mib"], 0),
                _fmt(row["update_peak_mib"], 0),
            ]
        )
    for failure in (item for item in payload["failures"] if item["size"] == size):
        rows.append([failure["engine"], f"failed: {failure['error']}", *["—"] * 7])
    header = [
        "engine",
        "build s (CPU s)",
        "update s (CPU s)",
        "p50 ms (CPU ms)",
        "p95 ms (CPU ms)",
        "queries timed",
        "index (MiB)",
        "build peak (MiB)",
        "update peak (MiB)",
    ]
    return _table(header, rows)


def full_markdown(payload: dict) -> str:
    """``lexical.md`` from the payload alone."""
    config, machine = payload["config"], payload["machine"]
    versions = ", ".join(f"{name} {value}" for name, value in machine["versions"].items())
    parts = [
        "# Lexical engines: tantivy vs bm25s vs SQLite FTS5",
        "",
        f"Generated {payload['generated_at']} by `make bench-lexical` (`jasper-rag bench --suite lexical`) in "
        f"{payload.get('seconds', 0):,.0f} s. Machine: {machine['cpu']}, {machine['cores']} cores, "
        f"{_fmt(machine['memory_gib'])} GiB; load average {machine['load_average'][0]:.1f} at start, "
        f"{payload.get('load_average_after', [float('nan')])[0]:.1f} at the end. Versions: {versions}.",
        "",
        "Engines: **tantivy** is `jasper_rag.store.lexical_index.LexicalIndex` (simple tokenizer, lower case, "
        "English stop words, Snowball English stemmer; one writer thread); **bm25s** uses its English stop words "
        "and PyStemmer's Snowball English stemmer, and, having no in-place update, re-indexes the whole corpus "
        "from token ids kept since the build (only the new chunks are tokenised) and saves it; **sqlite-fts5** is "
        "a contentless FTS5 table (`porter unicode61`, `bm25()` ranking) in a WAL database with "
        "`synchronous=FULL`, queried with an OR of the query's words minus stop words, rows inserted and deleted "
        "in place.",
        "",
        "## Quality: SciFact test",
        "",
        f'{payload["quality"][0]["documents"] if payload["quality"] else 0:,} abstracts (`title + " " + text`), '
        f"{payload['quality'][0]['queries'] if payload['quality'] else 0} queries; x100.",
        "",
        quality_markdown(payload),
        "",
        "## Scale",
        "",
        f"Build: index every chunk, then commit / save. Update: add {config['update']:,} new chunks and delete "
        f"{config['update']:,}, then commit / save (searchable and on disk). Latency: one query at a time, top "
        f"{config['k']}, SciFact queries (at most {config['latency_queries']}, or as many as "
        f"{config['latency_budget_s']:.0f} s allow), measured after the update, query analysis included. Each "
        "time is wall clock, then in brackets the process's CPU time (all its threads), which other load on the "
        "machine does not inflate. Index: bytes on disk. Peak: resident memory above the step's start (the "
        "chunks' texts are already loaded).",
    ]
    for workload in payload["workloads"]:
        size = workload["size"]
        parts += [
            "",
            f"### {size:,} chunks",
            "",
            f"{workload['real_passages']:,} SciFact passages + {size - workload['real_passages']:,} drawn from "
            f"sentences of different abstracts; {workload['mean_words']:.0f} words per chunk on average.",
            "",
            size_markdown(payload, size),
        ]
    return "\n".join(parts) + "\n"


def write_reports(payload: dict, output_dir: Path) -> list[Path]:
    """``lexical.json`` (every figure), then ``lexical.md`` rendered from it."""
    return render_from_json(write_json(payload, output_dir / "lexical.json"))


def render_from_json(json_path: Path) -> list[Path]:
    """Render ``lexical.md`` next to ``json_path`` from it."""
    return render_markdown(json_path, full_markdown)
