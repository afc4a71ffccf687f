"""Ingestion throughput: end-to-end chunks/s of ``ingest_paths`` against raw encoding of the same chunks.

Documents are written as ``.txt`` files into a scratch folder and ingested into a fresh scratch store
(SQLite + FAISS) with the student, once per backend and repeat; the chunks stored are then embedded
again with ``embed_heads`` alone (the pipeline's own encoding call: one backbone pass feeds every head),
two ways:

- unsorted: batches of ``batch_size`` chunks in arrival order (file by file), the simple way, padded to
  each batch's longest chunk: what encoding costs without the pipeline's cross-file length sorting;
- sorted: all chunks in one call, batched by token length (``jasper_rag.batching``): the best the
  encoder does on these chunks.

End to end includes everything a run does: walking, reading, hashing, parsing in the worker process
(started fresh each run), chunking, embedding, SQL, index writes and commits. CPU seconds are this
process's plus the parse worker's (a finished child). Each backend's ONNX file is exported and its
session opened before any timing, so no figure includes the export.
"""

from __future__ import annotations

import re
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from jasper_rag.batching import sorted_batches, token_lengths
from jasper_rag.bench.stats import Timed
from jasper_rag.config import Settings
from jasper_rag.ingest import worker
from jasper_rag.ingest.pipeline import EMBED_BATCHES, ingest_paths
from jasper_rag.store import EntryKind, Store, embed_heads


@dataclass(frozen=True)
class IngestSpeed:
    """One backend's median wall and CPU seconds (over ``repeats``) to ingest the documents end to end
    and to encode their chunks raw, unsorted and length-sorted."""

    backend: str
    documents: int
    chunks: int
    heads: int
    repeats: int
    ingest: Timed
    raw_unsorted: Timed
    raw_sorted: Timed
    padding: dict[str, float]

    @property
    def overhead_wall(self) -> float:
        """Extra time of the pipeline over the sorted raw encoding, as a share of it (wall clock)."""
        return self.ingest.wall / self.raw_sorted.wall - 1

    @property
    def overhead_cpu(self) -> float:
        """The same in CPU time (not inflated by other jobs on the machine)."""
        return self.ingest.cpu / self.raw_sorted.cpu - 1

    def to_json(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "documents": self.documents,
            "chunks": self.chunks,
            "heads": self.heads,
            "repeats": self.repeats,
            **{f"{name}_{unit}_s": getattr(getattr(self, name), unit) for name in TIMINGS for unit in ("wall", "cpu")},
            **{f"{name}_chunks_per_s": self.chunks / getattr(self, name).wall for name in TIMINGS},
            **{f"{name}_chunks_per_cpu_s": self.chunks / getattr(self, name).cpu for name in TIMINGS},
            "overhead_wall": self.overhead_wall,
            "overhead_cpu": self.overhead_cpu,
            "padding": self.padding,
        }


TIMINGS = ("ingest", "raw_unsorted", "raw_sorted")


def write_documents(texts: Sequence[str], folder: Path) -> list[Path]:
    """One ``.txt`` file per text (``doc-00000.txt``, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, text in enumerate(texts):
        path = folder / f"doc-{number:05d}.txt"
        path.write_text(re.sub(r"\s+\n", "\n", text) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the parse workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed_with_children(action: Callable[[], object]) -> Timed:
    """Wall and CPU seconds of ``action``, the CPU of children it started and ended included."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    action()
    return Timed(time.perf_counter() - wall, _cpu_seconds() - cpu)


def ingest_once(encoder, folder: Path, scratch: Path, settings: Settings) -> tuple[Timed, list[str]]:
    """Ingest ``folder`` into a new store under ``scratch`` with a fresh parse worker (ended and reaped
    inside the timing, so its CPU counts); the timing and the stored chunks' texts in arrival order."""
    scratch.mkdir(parents=True)
    store = Store(f"sqlite:///{scratch / 'meta.db'}", scratch / "indexes")
    try:

        def run() -> None:
            ingest_paths([folder], encoder, store, settings, progress=False)
            worker.close_idle()

        worker.close_idle()
        timing = timed_with_children(run)
        chunks = [entry.text for entry in store.fetch(store.embedded_ids(EntryKind.CHUNK))]
    finally:
        store.close()
    return timing, chunks


def encode_unsorted(encoder, chunks: Sequence[str], batch_size: int) -> None:
    """Every head's vectors of ``chunks`` in batches of ``batch_size`` in arrival order (no sorting across batches)."""
    for start in range(0, len(chunks), batch_size):
        embed_heads(encoder, chunks[start : start + batch_size], batch_size)


def padding_ratios(encoder, chunks: Sequence[str], batch_size: int, window: int) -> dict[str, float]:
    """Padded tokens per real token when ``chunks`` are encoded in batches in arrival order, length-sorted
    within consecutive windows of ``window`` texts (the pipeline's), or all sorted at once: counts, which
    a busy machine cannot blur."""
    lengths = token_lengths(encoder.tokenizer, chunks, encoder.config.max_length)
    count = len(lengths)

    def padded(batches: Sequence[np.ndarray]) -> float:
        return sum(len(rows) * int(lengths[rows].max()) for rows in batches) / int(lengths.sum())

    windows = [
        start + rows
        for start in range(0, count, window)
        for rows in sorted_batches(lengths[start : start + window], batch_size)
    ]
    return {
        "arrival_order": padded(
            [np.arange(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]
        ),
        f"sorted_in_windows_of_{window}": padded(windows),
        "sorted_all_at_once": padded(list(sorted_batches(lengths, batch_size))),
    }


def _median(runs: Sequence[Timed]) -> Timed:
    return Timed(float(np.median([run.wall for run in runs])), float(np.median([run.cpu for run in runs])))


def measure_backend(
    encoder, documents: int, folder: Path, scratch: Path, settings: Settings, repeats: int
) -> IngestSpeed:
    """``repeats`` rounds of (ingest, raw unsorted, raw sorted) with ``encoder`` on its current backend."""
    embed_heads(encoder, ["warm up: exports and opens the backend's session"], settings.batch_size)
    runs: dict[str, list[Timed]] = {name: [] for name in TIMINGS}
    chunks: list[str] = []
    for number in range(repeats):
        timing, chunks = ingest_once(encoder, folder, scratch / f"{encoder.backend}-{number}", settings)
        if not chunks:
            raise ValueError("ingestion stored no chunks: nothing to compare")
        runs["ingest"].append(timing)
        size = settings.batch_size
        runs["raw_unsorted"].append(timed_with_children(partial(encode_unsorted, encoder, chunks, size)))
        runs["raw_sorted"].append(timed_with_children(partial(embed_heads, encoder, chunks, size)))
    return IngestSpeed(
        backend=encoder.backend,
        documents=documents,
        chunks=len(chunks),
        heads=len(encoder.config.heads) or 1,
        repeats=repeats,
        **{name: _median(values) for name, values in runs.items()},
        padding=padding_ratios(encoder, chunks, settings.batch_size, EMBED_BATCHES * settings.batch_size),
    )


def measure_ingestion(
    encoder, texts: Sequence[str], settings: Settings, backends: Sequence[str] = ("torch",), repeats: int = 1
) -> list[IngestSpeed]:
    """Ingest ``texts`` (as .txt files) and encode their chunks raw, on each backend (the encoder is
    returned to its own backend afterwards)."""
    own = encoder.backend
    with tempfile.TemporaryDirectory(prefix="jasper-bench-ingest-") as scratch:
        root = Path(scratch)
        write_documents(texts, root / "docs")
        try:
            speeds = []
            for backend in backends:
                encoder.use_backend(backend, settings.cache_dir)
                speeds.append(measure_backend(encoder, len(texts), root / "docs", root, settings, repeats))
        finally:
            encoder.use_backend(own, settings.cache_dir)
    return speeds
