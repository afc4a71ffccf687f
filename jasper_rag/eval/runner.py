"""Score every candidate encoder on every task, with timings, as flat result rows."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from jasper_rag.embedding import ROLES
from jasper_rag.eval.candidates import Candidate
from jasper_rag.eval.encoders import PCAEncoder
from jasper_rag.eval.speed import SpeedLedger
from jasper_rag.eval.tasks import Task
from jasper_rag.vector_cache import CachedEncoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResultRow:
    """One score: scores are x100 except FAQ ``threshold`` (raw cosine); None = undefined."""

    model: str
    head_dim: int
    task: str
    metric: str
    score: float | None
    encode_seconds: float


def evaluate(
    candidates: Sequence[Candidate],
    tasks: Sequence[Task],
    ledger: SpeedLedger,
    batch_size: int = 32,
    pca_sample: int = 2000,
    cached_only: bool = False,
) -> tuple[list[ResultRow], list[str]]:
    """Every candidate on every task; PCA baselines are fitted on each task's document sample.

    With ``cached_only``, pairs whose vectors are not all in the cache are skipped instead of
    embedded; the second return value names them.
    """
    rows: list[ResultRow] = []
    skipped: list[str] = []
    total = len(candidates) * len(tasks)
    step = 0
    texts_of = {task.name: task.texts() for task in tasks}
    for candidate in candidates:
        for task in tasks:
            texts = texts_of[task.name]
            step += 1
            log.info("[%d/%d] %s %d-d on %s", step, total, candidate.model, candidate.head_dim, task.name)
            if cached_only and any(not_cached(source, texts) for source in candidate.sources):
                skipped.append(f"{candidate.model} {candidate.head_dim}-d on {task.name}: vectors not cached")
                log.info("    skipped: vectors not cached (cached-only run)")
                continue
            if isinstance(candidate.encoder, PCAEncoder):
                candidate.encoder.fit(task.corpus_sample(pca_sample), batch_size=batch_size)
            scores = task.evaluate(candidate.encoder, batch_size=batch_size)
            seconds = sum(ledger.seconds(run, task.name, texts, batch_size) for run in candidate.runs)
            log.info("    %s %s = %s", task.name, task.main_metric, _fmt(scores[task.main_metric]))
            rows += [
                ResultRow(candidate.model, candidate.head_dim, task.name, metric, score, round(seconds, 4))
                for metric, score in scores.items()
            ]
    return rows, skipped


def not_cached(source: CachedEncoder, texts: Sequence[str]) -> set[str]:
    """Texts in none of the source's caches (one per prompt role for encoders with prompts)."""
    views = {id(view): view for view in (source.for_role(role) for role in ROLES)}.values()
    return set.intersection(*(set(view.missing(texts)) for view in views))


def _fmt(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.2f}"
