"""Encoding time per (encoder, task), measured once and remembered.

Vectors come from the cache, so the time of the run that filled it is not at hand. Instead each
encoder is timed on a seeded random sample of the task's texts (after a warm-up batch) and the time
is scaled to the whole task; the figure is stored in a small JSON ledger next to the vector cache,
so re-runs cost nothing. What is timed is the CPU time of one torch thread: wall-clock time on a
shared machine mostly measures the other jobs, CPU time on one thread compares encoders fairly.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from jasper_rag.embedding import TextEncoder
from jasper_rag.vector_cache import encoder_key

log = logging.getLogger(__name__)


class SpeedLedger:
    """Seconds each encoder needs to embed a task's texts, keyed by encoder identity and task."""

    def __init__(self, path: str | Path, sample_size: int = 64, seed: int = 0) -> None:
        self.path = Path(path)
        self.sample_size = sample_size
        self.seed = seed
        self.entries: dict[str, float] = self._read()

    def _read(self) -> dict[str, float]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
            return {str(key): float(value) for key, value in data.items()}
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring unreadable speed ledger %s (it will be rebuilt)", self.path)
            return {}

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    def seconds(self, encoder: TextEncoder, task_name: str, texts: Sequence[str], batch_size: int = 32) -> float:
        """Estimated one-thread CPU seconds for ``encoder`` (uncached) to embed all ``texts``; timed once."""
        key = f"{encoder_key(encoder)}|{task_name}|{len(texts)}|cpu1"
        if key not in self.entries:
            self.entries[key] = self._measure(encoder, texts, batch_size)
            self._write()
        return self.entries[key]

    def _measure(self, encoder: TextEncoder, texts: Sequence[str], batch_size: int) -> float:
        rng = np.random.default_rng(self.seed)
        size = min(self.sample_size, len(texts))
        sample = [texts[i] for i in rng.choice(len(texts), size=size, replace=False)]
        log.info("timing %s on %d texts (CPU time, one thread)", encoder.name, size)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            encoder.encode(sample[:2], batch_size=batch_size)  # warm-up: lazy init, allocator
            start = time.process_time()
            encoder.encode(sample, batch_size=batch_size)
            elapsed = time.process_time() - start
        finally:
            torch.set_num_threads(threads)
        return elapsed * len(texts) / max(size, 1)
