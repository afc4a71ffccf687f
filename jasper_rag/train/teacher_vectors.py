"""Teacher targets: each teacher's vector of each text computed once, on disk, then ensembled.

Every teacher is wrapped separately in a ``CachedEncoder`` (memory-mapped ``.npy`` shards under
``<cache>/vectors/<teacher key>/``, shared with the evaluation embeddings), so a text embedded by
``mpnet-base`` for evaluation or for another recipe is never embedded again, an interrupted run
resumes from its last finished chunk, and under ``torchrun`` each process fills its own share
(shard files tagged with its rank). The ensemble follows the paper's eq. 1: each teacher's vectors
L2-normalised, scaled by the teacher's weight, concatenated, normalised again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jasper_rag.embedding import TextEncoder
from jasper_rag.teachers import combine_blocks
from jasper_rag.train.distributed import DistEnv
from jasper_rag.vector_cache import CachedEncoder

log = logging.getLogger(__name__)


def fill_cache(
    teacher: TextEncoder, texts: Sequence[str], root: Path, dist: DistEnv, batch_size: int = 32, chunk_size: int = 256
) -> CachedEncoder:
    """Embed the texts missing from ``teacher``'s cache, split round-robin over the processes."""
    dist.barrier()  # every process sees the same cache before splitting the work
    missing = CachedEncoder(teacher, root).missing(texts)
    dist.barrier()
    mine = missing[dist.rank :: dist.world]
    if mine:
        log.info("rank %d: embedding %d of %d texts with %s", dist.rank, len(mine), len(texts), teacher.name)
    CachedEncoder(teacher, root, shard_tag=f"rank{dist.rank}-").fill(
        mine, batch_size=batch_size, chunk_size=chunk_size, show_progress=dist.is_main
    )
    dist.barrier()
    return CachedEncoder(teacher, root)


def ensemble_targets(
    teachers: Sequence[TextEncoder],
    texts: Sequence[str],
    root: Path,
    dist: DistEnv,
    weights: Sequence[float] | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """The (len(texts), sum of teacher dims) float32 ensemble target of every text (``combine_blocks``)."""
    blocks = [fill_cache(teacher, texts, root, dist, batch_size=batch_size).encode(texts) for teacher in teachers]
    return combine_blocks(blocks, weights or [1.0] * len(teachers))
