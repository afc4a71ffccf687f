"""``make eval``'s backend section: the in-house model on every inference backend it ships.

Each backend of ``jasper_rag.config.BACKENDS`` (the ONNX ones need onnxruntime) scores every head of the
model on the run's retrieval and STS tasks (their main metric: SciFact nDCG@10, STS Benchmark Spearman).
A backend qualifies when none of its scores is more than ``QUALITY_TOLERANCE`` points below eager torch's
(same head, same task). Speed is texts per second of one all-heads pass over a seeded sample of the
tasks' texts (wall clock, best of ``jasper_rag.backend_choice.SPEED_REPEATS``, the settings' threads). The
section names the fastest qualifying backend and checks the shipped default (``jasper_rag.config.default_backend``;
``auto`` is what ``jasper_rag.backend_choice`` picks for the model on this machine) against it.

Vectors are cached per backend: eager shares the main table's cache; an ONNX backend's views carry the
backend and its ONNX file's digest in their name, so a new export or quantisation is scored afresh.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from jasper_rag.backend_choice import choose_backend, texts_per_second
from jasper_rag.backends import QUALITY_TOLERANCE, TORCH, cached_onnx, file_digest
from jasper_rag.config import AUTO_BACKEND, BACKENDS, Settings, default_backend
from jasper_rag.encoder import JasperEncoder
from jasper_rag.eval.encoders import SharedPassHeads
from jasper_rag.eval.tasks import RetrievalTask, STSTask, Task
from jasper_rag.vector_cache import CachedEncoder

log = logging.getLogger(__name__)

SPEED_SAMPLE = 128  # texts timed per backend


@dataclass(frozen=True)
class BackendRow:
    """One backend x head x task score (x100) and its difference to eager's (None for eager itself)."""

    backend: str
    head: str
    head_dim: int
    task: str
    metric: str
    score: float
    delta: float | None


@dataclass
class BackendSection:
    """Scores, speeds and verdicts of every backend; ``default`` is the shipped default backend on this machine
    (``jasper_rag.config.default_backend``: what ``Settings.backend`` is unless ``JASPER_BACKEND`` is set)."""

    model: str
    rows: list[BackendRow]
    speed: dict[str, float]  # backend -> texts per second
    default: str
    tolerance: float = QUALITY_TOLERANCE
    notes: list[str] = field(default_factory=list)

    @property
    def backends(self) -> list[str]:
        return list(dict.fromkeys(row.backend for row in self.rows))

    def worst_delta(self, backend: str) -> float | None:
        deltas = [row.delta for row in self.rows if row.backend == backend and row.delta is not None]
        return min(deltas) if deltas else None

    def qualifies(self, backend: str) -> bool:
        """Scored on every (head, task) eager was, and never more than ``tolerance`` points below it."""
        if backend == TORCH:
            return True
        reference = {(row.head, row.task) for row in self.rows if row.backend == TORCH}
        scored = {(row.head, row.task) for row in self.rows if row.backend == backend}
        worst = self.worst_delta(backend)
        return bool(reference) and scored >= reference and worst is not None and worst >= -self.tolerance

    @property
    def fastest(self) -> str | None:
        """The fastest qualifying backend (None when no speed was measured)."""
        timed = [backend for backend in self.backends if backend in self.speed and self.qualifies(backend)]
        return max(timed, key=self.speed.__getitem__, default=None)

    def default_check(self) -> str | None:
        """A warning unless the shipped default was scored and timed, qualifies, and is the fastest that does."""
        if self.default not in self.speed:
            return f"the default backend '{self.default}' (Settings.backend) was not scored and timed: unchecked"
        if not self.qualifies(self.default):
            return (
                f"the default backend '{self.default}' (Settings.backend) no longer qualifies (a score more than "
                f"{self.tolerance:g} below eager): make '{self.fastest}' the default"
            )
        if self.fastest != self.default:
            return (
                f"'{self.fastest}' qualifies and is faster than the default backend '{self.default}' (Settings.backend)"
            )
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "tolerance": self.tolerance,
            "default": self.default,
            "fastest_qualifying": self.fastest,
            "qualifies": {backend: self.qualifies(backend) for backend in self.backends},
            "texts_per_second": self.speed,
            "rows": [asdict(row) for row in self.rows],
            "notes": self.notes,
        }


def available_backends() -> tuple[list[str], list[str]]:
    """The backends this installation can run, and a note for each it cannot."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return [TORCH], ["onnx backends not scored: onnxruntime is not installed (pip install 'jasper-rag[bench]')"]
    return list(BACKENDS), []


def backend_heads(encoder: JasperEncoder, backend: str, dims: Sequence[int], settings: Settings) -> SharedPassHeads:
    """``encoder``'s heads on ``backend``, their vectors cached apart from every other backend's."""
    encoder.use_backend(backend, settings.cache_dir)
    if backend == TORCH:
        return SharedPassHeads(encoder, dims)
    digest = file_digest(cached_onnx(encoder, backend, settings.cache_dir))
    return SharedPassHeads(encoder, dims, tag=f"{backend}-{digest}")


def speed_sample(tasks: Sequence[Task], size: int = SPEED_SAMPLE, seed: int = 0) -> list[str]:
    """A seeded sample of the tasks' texts (queries, documents and sentences alike)."""
    texts = list(dict.fromkeys(text for task in tasks for text in task.texts()))
    return random.Random(seed).sample(texts, min(size, len(texts)))


def evaluate_backends(
    encoder: JasperEncoder,
    label: str,
    tasks: Sequence[Task],
    settings: Settings,
    heads: Sequence[str] | None = None,
    cached_only: bool = False,
) -> BackendSection:
    """Every backend x head of ``encoder`` on the retrieval and STS ``tasks``, with speeds and verdicts."""
    scored_tasks = [task for task in tasks if isinstance(task, (RetrievalTask, STSTask))]
    names = [name for name in encoder.config.heads if heads is None or name in heads]
    dims = [encoder.config.heads[name] for name in names]
    backends, notes = available_backends()
    shipped = default_backend({"device": settings.device})
    default = choose_backend(encoder, settings.cache_dir) if shipped == AUTO_BACKEND else shipped
    scores: dict[tuple[str, str, str], float] = {}
    rows: list[BackendRow] = []
    speed: dict[str, float] = {}
    sample = speed_sample(scored_tasks)
    for backend in backends:
        shared = backend_heads(encoder, backend, dims, settings)
        complete = True
        for task in scored_tasks:
            texts = task.texts()
            for name, dim in zip(names, dims, strict=True):
                cached = CachedEncoder(shared.view(dim), settings.cache_dir / "vectors")
                if cached_only and cached.missing(texts):
                    notes.append(f"{backend} {name} on {task.name}: vectors not cached (cached-only run)")
                    complete = False
                    continue
                log.info("backends: %s %s on %s", backend, name, task.name)
                score = task.evaluate(cached, batch_size=settings.batch_size)[task.main_metric] or 0.0
                scores[backend, name, task.name] = score
                eager = scores.get((TORCH, name, task.name))
                delta = None if backend == TORCH or eager is None else round(score - eager, 4)
                rows.append(BackendRow(backend, name, dim, task.name, task.main_metric, round(score, 2), delta))
        if complete and sample:
            speed[backend] = texts_per_second(encoder, sample, settings.batch_size)
    encoder.use_backend(TORCH)
    section = BackendSection(label, rows, speed, default, notes=notes)
    warning = section.default_check()
    if warning:
        log.warning(warning)
        section.notes.append(warning)
    return section
