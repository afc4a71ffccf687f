"""Teacher targets: each teacher's vector of each text computed once, on disk, then ensembled.

Every teacher is wrapped separately in a ``CachedEncoder`` (memory-mapped ``.npy`` shards under
``<cache>/vectors/<teacher key>/``, shared with the evaluation embeddings), so a text embedded by
``mpnet-base`` for evaluation or for another recipe is never embedded again, an interrupted run
resumes from its last finished chunk, and under ``torchrun`` each process fills its own share
(shard files tagged with its rank). When the processes run on several machines whose cache folders
are not shared, the new vectors are then exchanged over the process group, so every machine's cache
ends up complete and no text is embedded twice. The ensemble follows the paper's eq. 1: each teacher's vectors
L2-normalised, scaled by the teacher's weight, concatenated, normalised again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from jasper_rag.embedding import TextEncoder
from jasper_rag.teachers import combine_blocks
from jasper_rag.train.distributed import DistEnv
from jasper_rag.vector_cache import CachedEncoder

log = logging.getLogger(__name__)

EXCHANGE_ROWS = 8192  # rows per process per all-gather when machines exchange teacher vectors


def fill_cache(
    teacher: TextEncoder, texts: Sequence[str], root: Path, dist: DistEnv, batch_size: int = 32, chunk_size: int = 256
) -> CachedEncoder:
    """Embed the texts missing from ``teacher``'s cache, split round-robin over the processes."""
    dist.barrier()  # every process sees the same cache before splitting the work
    missing = missing_anywhere(CachedEncoder(teacher, root), texts, dist)
    mine = missing[dist.rank :: dist.world]
    if mine:
        log.info("rank %d: embedding %d of %d texts with %s", dist.rank, len(mine), len(texts), teacher.name)
    own = CachedEncoder(teacher, root, shard_tag=f"rank{dist.rank}-")
    own.fill(mine, batch_size=batch_size, chunk_size=chunk_size, show_progress=dist.is_main)
    dist.barrier()
    if dist.world > 1:
        share_between_machines(own, missing, dist)
    return CachedEncoder(teacher, root)


def missing_anywhere(cache: CachedEncoder, texts: Sequence[str], dist: DistEnv) -> list[str]:
    """The distinct texts missing from the cache of at least one process (every process gets the same list:
    machines whose folders are not shared may hold different texts)."""
    distinct = list(dict.fromkeys(texts))
    lacking = set(cache.missing(distinct))
    flags = dist.union(np.array([text in lacking for text in distinct], dtype=bool))
    return [text for text, flag in zip(distinct, flags, strict=True) if flag]


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


def share_between_machines(own: CachedEncoder, missing: Sequence[str], dist: DistEnv) -> None:
    """Give every machine the vectors the other machines just computed, when their cache folders are not
    shared (a folder on shared storage already has them all and nothing moves). Process ``rank`` computed
    ``missing[rank::world]``; the rows are gathered everywhere, ``EXCHANGE_ROWS`` per process at a time,
    and the first process of each machine stores the ones its folder lacks."""
    lacking = set(CachedEncoder(own.encoder, own.folder.parent).missing(missing))
    if not dist.union(np.array([bool(lacking)]))[0]:
        return
    step = EXCHANGE_ROWS * dist.world  # a multiple of world: each part's rank::world rows are this rank's own
    for start in range(0, len(missing), step):
        part = missing[start : start + step]
        mine = torch.from_numpy(own.encode(part[dist.rank :: dist.world])).to(dist.device)
        rows = dist.gather_rows(mine, len(part)).cpu().numpy()
        wanted = [i for i, text in enumerate(part) if text in lacking]
        if wanted and dist.local_rank == 0:
            log.info("rank %d: storing %d vectors of %s computed on other machines", dist.rank, len(wanted), own.name)
            CachedEncoder(own.encoder, own.folder.parent, shard_tag=f"gathered-rank{dist.rank}-").store(
                [part[i] for i in wanted], rows[wanted]
            )
    dist.barrier()
