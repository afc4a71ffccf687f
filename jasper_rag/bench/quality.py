"""Quality of the student's CPU inference variants, scored by the eval harness's own tasks.

Each variant (eager torch, ONNX, ONNX int8) is wrapped in the on-disk vector cache (keyed by its
fingerprint), so re-runs only score. A faster variant qualifies as the CPU default when its main
score is within ``tolerance`` points of the eager model's on every task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from jasper_rag.backends import QUALITY_TOLERANCE
from jasper_rag.embedding import TextEncoder
from jasper_rag.eval.tasks import Task
from jasper_rag.vector_cache import CachedEncoder


@dataclass(frozen=True)
class VariantQuality:
    """Main score of one variant on one task."""

    variant: str
    task: str
    metric: str
    score: float

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def score_variants(
    variants: Mapping[str, TextEncoder], tasks: Sequence[Task], cache_root: Path, batch_size: int
) -> list[VariantQuality]:
    """The main metric of every variant on every task (vectors cached under ``cache_root``)."""
    rows = []
    for name, encoder in variants.items():
        cached = CachedEncoder(encoder, cache_root)
        for task in tasks:
            score = task.evaluate(cached, batch_size=batch_size)[task.main_metric]
            rows.append(VariantQuality(name, task.name, task.main_metric, float(score or 0.0)))
    return rows


def qualifying(rows: Sequence[VariantQuality], reference: str, tolerance: float = QUALITY_TOLERANCE) -> list[str]:
    """Variants whose score is within ``tolerance`` of ``reference``'s on every task both were scored on."""
    base = {row.task: row.score for row in rows if row.variant == reference}
    variants = dict.fromkeys(row.variant for row in rows)
    return [
        name
        for name in variants
        if all(base.get(row.task, -1e9) - row.score <= tolerance for row in rows if row.variant == name)
    ]
