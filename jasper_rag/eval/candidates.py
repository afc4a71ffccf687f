"""The encoders ``make eval`` compares, each wrapped in the on-disk vector cache.

Groups (``--models``):
- ``inhouse``: the trained model (settings ``model``) at each of its heads;
- ``recipes``: every other packaged recipe's model that has been trained (e.g. ``models/jasper-default``
  after ``make train RECIPE=default``), at each of its heads, so the recipes compare side by side;
- ``start``: the student's starting model (settings ``student_init``), pooled vector;
- ``teachers``: each teacher the in-house model was distilled from (the recipe recorded with it; the
  packaged default recipe's teachers when it has no record or is not trained yet);
- ``ensemble``: those teachers concatenated (paper eq. 1), computed from the teachers' cached vectors;
- ``truncate`` / ``pca``: the start reduced to each baseline dimension (truncation; PCA fitted per
  task on a document sample), computed from the start's cached vectors.
``teacher:NAME`` scores any sentence-transformers folder or packaged name as a teacher (with its
prompts per role, e.g. ``teacher:embeddinggemma-300m``), before any model is distilled from it.
Any other entry is a model folder or packaged name, loaded with ``load_encoder`` and evaluated at
each head (or its pooled vector when it has none).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from jasper_rag.config import Settings
from jasper_rag.embedding import TextEncoder
from jasper_rag.encoder import CONFIG_FILE, JasperEncoder, load_encoder
from jasper_rag.eval.encoders import PCAEncoder, SharedPassHeads, TruncatedEncoder
from jasper_rag.teachers import TeacherEnsemble, TeacherSet, load_teacher, model_teacher_set
from jasper_rag.vector_cache import CachedEncoder
from jasper_rag.weights import PACKAGED_MODELS

log = logging.getLogger(__name__)

MODEL_GROUPS = ("inhouse", "recipes", "start", "teachers", "ensemble", "truncate", "pca")
TEACHER_PREFIX = "teacher:"


@dataclass(frozen=True)
class Candidate:
    """One row group of the report: a label, a dimension, what to score and where its vectors come from.

    ``sources`` are the vector caches ``encoder`` reads (the model's own, both teachers' for the
    ensemble, the start's for baselines); ``runs`` the uncached encoders behind them, timed for the
    report's encode seconds. ``family`` groups the heads of one model (empty for single-vector
    encoders and baselines): the retriever section funnels from its smallest head to its largest.
    """

    model: str
    head_dim: int
    encoder: TextEncoder
    sources: tuple[CachedEncoder, ...]
    runs: tuple[TextEncoder, ...]
    family: str = ""


class CandidateBuilder:
    """Builds candidates from settings, loading each model once."""

    def __init__(self, settings: Settings, heads: Sequence[str] | None = None) -> None:
        self.settings = settings
        self.heads = list(heads) if heads else None
        self.cache_root = settings.cache_dir / "vectors"
        self.notes: list[str] = []

    def cached(self, encoder: TextEncoder) -> CachedEncoder:
        return CachedEncoder(encoder, self.cache_root)

    @cached_property
    def teacher_set(self) -> TeacherSet:
        return model_teacher_set(self.settings.model)

    @cached_property
    def teachers(self) -> list[TextEncoder]:
        return [load_teacher(name) for name in self.teacher_set.names]

    @cached_property
    def cached_teachers(self) -> list[CachedEncoder]:
        return [self.cached(teacher) for teacher in self.teachers]

    @cached_property
    def start(self) -> TextEncoder:
        return load_encoder(self.settings.student_init).at(None)

    @property
    def start_label(self) -> str:
        return Path(self.settings.student_init).name or self.settings.student_init

    @cached_property
    def cached_start(self) -> CachedEncoder:
        return self.cached(self.start)

    def build(self, models: Sequence[str], baseline_dims: Sequence[int]) -> list[Candidate]:
        """Candidates for every group or model path in ``models``, in that order."""
        candidates: list[Candidate] = []
        for entry in models:
            if entry == "inhouse":
                candidates += self.inhouse()
            elif entry == "recipes":
                candidates += self.recipe_models()
            elif entry == "start":
                candidates.append(
                    Candidate(
                        f"start: {self.start_label}",
                        self.start.dim,
                        self.cached_start,
                        (self.cached_start,),
                        (self.start,),
                    )
                )
            elif entry == "teachers":
                candidates += [
                    Candidate(f"teacher: {teacher.name}", teacher.dim, cached, (cached,), (teacher,))
                    for teacher, cached in zip(self.teachers, self.cached_teachers, strict=True)
                ]
            elif entry == "ensemble":
                ensemble = TeacherEnsemble(self.cached_teachers, self.teacher_set.weights)
                candidates.append(
                    Candidate(
                        f"ensemble: {ensemble.name}",
                        ensemble.dim,
                        ensemble,
                        tuple(self.cached_teachers),
                        tuple(self.teachers),
                    )
                )
            elif entry.startswith(TEACHER_PREFIX):
                teacher = load_teacher(entry.removeprefix(TEACHER_PREFIX))
                cached = self.cached(teacher)
                candidates.append(Candidate(f"teacher: {teacher.name}", teacher.dim, cached, (cached,), (teacher,)))
            elif entry in ("truncate", "pca"):
                reduce = TruncatedEncoder if entry == "truncate" else PCAEncoder
                candidates += [
                    Candidate(
                        f"{entry}: {self.start_label}",
                        dim,
                        reduce(self.cached_start, dim),
                        (self.cached_start,),
                        (self.start,),
                    )
                    for dim in baseline_dims
                ]
            elif Path(entry).is_dir() or entry in PACKAGED_MODELS:
                candidates += self.model_heads(load_encoder(entry), Path(entry).name or entry)
            else:
                raise ValueError(
                    f"unknown model '{entry}': use a group ({', '.join(MODEL_GROUPS)}), a model folder "
                    f"or a packaged name ({', '.join(PACKAGED_MODELS)}), or teacher:NAME"
                )
        return candidates

    def inhouse(self) -> list[Candidate]:
        """Every (selected) head of the trained model; a note instead when it is not built yet."""
        path = Path(self.settings.model)
        if not (path / CONFIG_FILE).is_file():
            note = f"in-house model not found at {path}: build it with `make train`; the other encoders are evaluated"
            log.warning(note)
            self.notes.append(note)
            return []
        return self.model_heads(load_encoder(path), path.name)

    def recipe_models(self) -> list[Candidate]:
        """Every head of each packaged recipe's trained model, except the in-house one (already a group)."""
        from jasper_rag.train.recipes import load_recipe, recipe_names

        inhouse = Path(self.settings.model).resolve()
        candidates: list[Candidate] = []
        for name in recipe_names():
            path = Path(load_recipe(name).output)
            if path.resolve() != inhouse and (path / CONFIG_FILE).is_file():
                candidates += self.model_heads(load_encoder(path), path.name)
        return candidates

    def model_heads(self, encoder: JasperEncoder, label: str) -> list[Candidate]:
        """One candidate per selected head (all heads by default; the pooled vector when there is none)."""
        heads = encoder.config.heads
        unknown = sorted(set(self.heads or ()) - set(heads))
        if unknown and heads:
            raise ValueError(f"{label}: no head named {unknown}; its heads are {sorted(heads)}")
        dims = [dim for name, dim in heads.items() if self.heads is None or name in self.heads]
        if not heads:
            dims = [encoder.hidden_size]
        shared = SharedPassHeads(encoder, dims)
        cached = [self.cached(shared.view(dim)) for dim in dims]
        return [
            Candidate(label, dim, source, (source,), (encoder.at(dim),), family=label)
            for dim, source in zip(dims, cached, strict=True)
        ]
