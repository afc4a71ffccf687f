"""Ingestion overhead: end-to-end chunks/s of ``ingest_paths`` against raw encoding of the same chunks.

Documents are written as ``.txt`` files into a scratch folder and ingested into a scratch store
(SQLite + FAISS) with the student; the chunks it stored are then embedded again with
``embed_heads`` alone (the pipeline's own encoding call: one backbone pass feeds every head). The
difference is the pipeline's cost: reading, hashing, chunking, SQL, index writes, commits.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from jasper_rag.bench.stats import timed
from jasper_rag.config import Settings
from jasper_rag.store import EntryKind, Store, embed_heads


@dataclass(frozen=True)
class IngestSpeed:
    """One ingestion run and the raw encoding of its chunks (wall and process-CPU seconds)."""

    documents: int
    chunks: int
    heads: int
    ingest_wall_s: float
    ingest_cpu_s: float
    encode_wall_s: float
    encode_cpu_s: float

    @property
    def overhead_wall(self) -> float:
        """Extra time of the pipeline over raw encoding, as a share of raw encoding (wall clock)."""
        return self.ingest_wall_s / self.encode_wall_s - 1

    @property
    def overhead_cpu(self) -> float:
        """The same in process-CPU time (not inflated by other jobs on the machine)."""
        return self.ingest_cpu_s / self.encode_cpu_s - 1

    def to_json(self) -> dict[str, object]:
        return {
            **asdict(self),
            "ingest_chunks_per_s": self.chunks / self.ingest_wall_s,
            "encode_chunks_per_s": self.chunks / self.encode_wall_s,
            "overhead_wall": self.overhead_wall,
            "overhead_cpu": self.overhead_cpu,
        }


def write_documents(texts: Sequence[str], folder: Path) -> list[Path]:
    """One ``.txt`` file per text (``doc-00000.txt``, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, text in enumerate(texts):
        path = folder / f"doc-{number:05d}.txt"
        path.write_text(re.sub(r"\s+\n", "\n", text) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def measure_ingestion(encoder, texts: Sequence[str], settings: Settings) -> IngestSpeed:
    """Ingest ``texts`` (as .txt files) into a scratch store, then re-embed its chunks alone."""
    from jasper_rag.ingest.pipeline import ingest_paths

    with tempfile.TemporaryDirectory(prefix="jasper-bench-ingest-") as scratch:
        root = Path(scratch)
        write_documents(texts, root / "docs")
        store = Store(f"sqlite:///{root / 'meta.db'}", root / "indexes")
        try:
            ingest = timed(lambda: ingest_paths([root / "docs"], encoder, store, settings, progress=False))
            chunks = [entry.text for entry in store.fetch(store.embedded_ids(EntryKind.CHUNK))]
        finally:
            store.close()
    if not chunks:
        raise ValueError("ingestion stored no chunks: nothing to compare")
    encode = timed(lambda: embed_heads(encoder, chunks, settings.batch_size))
    return IngestSpeed(
        documents=len(texts),
        chunks=len(chunks),
        heads=len(encoder.config.heads) or 1,
        ingest_wall_s=ingest.wall,
        ingest_cpu_s=ingest.cpu,
        encode_wall_s=encode.wall,
        encode_cpu_s=encode.cpu,
    )
