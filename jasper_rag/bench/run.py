"""``jasper-rag bench`` / ``make bench``: every measurement in one process, then the reports.

The student is the trained model (settings ``model``) when it exists; otherwise the student's start
(settings ``student_init``) with heads fitted in memory the way training starts them (FC1 by least
squares to the teacher ensemble on cached vectors, reduced heads by PCA of FC1), and the report says
so. Everything runs on the CPU.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import numpy as np
from torch import nn

from jasper_rag.backends import OnnxEncoder
from jasper_rag.bench import report
from jasper_rag.bench.encoding import TextSamples, cut_to_tokens, mean_tokens, measure_encoders, transformer_flops
from jasper_rag.bench.ingestion import measure_ingestion
from jasper_rag.bench.machine import Machine, peak_matmul_gflops
from jasper_rag.bench.quality import qualifying, score_variants
from jasper_rag.bench.search import TARGET_RECALL, Queries, SearchBench
from jasper_rag.bench.training import measure_training
from jasper_rag.bench.vectors import (
    NOISE,
    BenchDataError,
    closeness,
    corpus_of_size,
    fit_heads,
    paired_rows,
    read_cache,
    without_texts,
)
from jasper_rag.config import BACKENDS, Settings, get_settings
from jasper_rag.embedding import TextEncoder
from jasper_rag.encoder import CONFIG_FILE, FULL_HEAD, JasperEncoder, load_encoder
from jasper_rag.eval.tasks import RetrievalTask, load_task
from jasper_rag.teachers import TeacherEnsemble, load_teacher, model_teachers
from jasper_rag.vector_cache import CachedEncoder, text_key

log = logging.getLogger(__name__)

SECTIONS = ("encoding", "quality", "search", "ingestion", "training")
EAGER = "torch eager"


@dataclass
class BenchConfig:
    """What to measure and how much of it (defaults: about 15 minutes on an idle 2-core machine)."""

    model: str | None = None
    sections: tuple[str, ...] = SECTIONS
    short_texts: int = 64
    passages: int = 32
    passage_tokens: int = 256
    latency_queries: int = 50
    repeats: int = 3  # timed runs per backend in ingestion
    # Timed runs per encoder and text set: a shared VM halves a run now and then, and the median of 3 can land on two
    # such runs; 5 keeps the median on the steady rate (minutes more, the encoding runs are seconds each).
    encoding_repeats: int = 5
    quality_tasks: tuple[str, ...] = ("stsbenchmark",)
    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    factories: tuple[str, ...] = ("Flat", "HNSW32", "IVF,Flat", "IVF,PQ", "SQ")  # index types (bench/search.py)
    search_queries: int = 200  # reported queries (SciFact), and as many held-out tuning queries
    full_index_limit: int = 200_000
    ingest_docs: int = 500
    ingest_backends: tuple[str, ...] = BACKENDS  # each ingests the documents and encodes their chunks raw
    # Smaller trained students measured beside the main one (encoding and quality, every CPU variant), when present.
    other_students: tuple[str, ...] = ("models/jasper-tiny",)
    train_steps: int = 4
    recipe: str = "quick"
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.sections) - set(SECTIONS))
        if unknown:
            raise ValueError(f"unknown bench sections {unknown}: choose from {list(SECTIONS)}")


@dataclass
class Student:
    """The student as benchmarked.

    ``inference`` at ``inference_dim`` is what encoding speed and CPU variants are measured on: the
    trained model's full head, or (no trained model) the start's pooled vector, whose vectors, ONNX
    files and caches do not change with the fitted heads (a 1152-d head adds < 0.1% of the FLOPs).
    ``encoder`` carries every head (ingestion writes one index per head); ``source`` reloads it.
    """

    encoder: JasperEncoder
    inference: JasperEncoder
    inference_dim: int | None
    label: str
    source: str
    heads: dict[str, nn.Linear]
    hidden_scale: float = 1.0  # cached pooled vectors are unit length; a trained model's heads expect raw ones


@dataclass
class BenchContext:
    """Loaded once, shared by the sections."""

    config: BenchConfig
    settings: Settings
    notes: list[str] = field(default_factory=list)
    results: dict[str, object] = field(default_factory=dict)
    loaded_teachers: dict[str, TextEncoder] = field(default_factory=dict)

    @property
    def cache_root(self) -> Path:
        return self.settings.cache_dir / "vectors"

    @cached_property
    def teacher_names(self) -> list[str]:
        """The teachers of the benchmarked model (its own recipe record; see ``model_teachers``)."""
        return model_teachers(self.config.model or self.settings.model)

    def teacher(self, name: str) -> TextEncoder:
        """A teacher on the CPU, loaded once per run."""
        if name not in self.loaded_teachers:
            self.loaded_teachers[name] = load_teacher(name, device="cpu")
        return self.loaded_teachers[name]


# --------------------------------------------------------------------------- inputs
def real_vectors(context: BenchContext) -> tuple[np.ndarray, Queries, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Cached start-model vectors, the search queries, teacher caches.

    The reported queries are SciFact's; the tuning queries are cached texts that are neither SciFact
    documents nor queries (STS Benchmark and training texts), drawn at random and taken out of the corpus."""
    settings = context.settings
    start = context.teacher(settings.student_init)
    task = load_task("scifact", settings.eval_dir)
    assert isinstance(task, RetrievalTask)
    query_texts = [task.data.queries[i] for i in task.query_ids]
    queries = CachedEncoder(start, context.cache_root).encode(query_texts)
    keys, vectors = read_cache(CachedEncoder(start, context.cache_root).folder)
    scifact = {text_key(text) for text in [*query_texts, *(task.data.corpus[i] for i in task.doc_ids)]}
    other = np.flatnonzero([key.tobytes() not in scifact for key in keys])
    rng = np.random.default_rng(context.config.seed)
    tuning = np.sort(rng.choice(other, min(context.config.search_queries, len(other) // 2), replace=False))
    held_out = np.zeros(len(keys), dtype=bool)
    held_out[tuning] = True
    corpus = without_texts(keys[~held_out], vectors[~held_out], query_texts)
    teachers = {}
    for name in context.teacher_names:
        folder = CachedEncoder(context.teacher(name), context.cache_root).folder
        teachers[name] = read_cache(folder)
    context.results["real_start_vectors"] = len(corpus)
    return corpus, Queries(queries, vectors[held_out]), {"start": (keys, vectors), **teachers}


def load_student(context: BenchContext, caches: dict[str, tuple[np.ndarray, np.ndarray]]) -> Student:
    """The trained model if it exists, else the start with heads fitted in memory (see the module docstring)."""
    settings, config = context.settings, context.config
    model = config.model or settings.model
    if (Path(model) / CONFIG_FILE).is_file():
        encoder = load_encoder(model, device="cpu")
        if FULL_HEAD in encoder.heads:
            full_dim = encoder.heads[FULL_HEAD].out_features
            sample = load_task("stsbenchmark", settings.eval_dir).texts()[:64]
            scale = float(np.median(np.linalg.norm(encoder.encode(sample, dim=None, normalize=False), axis=1)))
            heads = dict(encoder.heads.items())
            return Student(encoder, encoder, full_dim, f"{model} (full head)", model, heads, scale)
    encoder = load_encoder(settings.student_init, device="cpu")
    plain = load_encoder(settings.student_init, device="cpu")
    start = caches["start"]
    hidden, targets = paired_rows(start, {name: caches[name] for name in context.teacher_names})
    if len(hidden) <= 2 * (encoder.hidden_size + 1):
        raise BenchDataError(
            f"only {len(hidden)} texts have cached vectors of the start and every teacher: run `make eval` first"
        )
    heads = fit_heads(hidden, targets, list(load_recipe_dims(config.recipe)))
    for name, head in heads.items():
        encoder.add_head(name, head.out_features).load_state_dict(head.state_dict())
    label = f"{settings.student_init} (pooled vector; no trained model)"
    context.notes.append(
        f"no trained model at {model}: encoding speed and quality are {settings.student_init}'s pooled vector; "
        f"search and ingestion use heads fitted in memory on {len(hidden):,} cached texts (FC1 by least squares "
        "to the teacher ensemble, reduced heads by PCA of FC1, as training starts them)"
    )
    return Student(encoder.eval(), plain, None, label, settings.student_init, heads)


def load_recipe_dims(recipe: str) -> list[int]:
    from jasper_rag.train.recipes import load_recipe

    return list(load_recipe(recipe).reduced_dims)


def text_samples(context: BenchContext, tokenizer) -> TextSamples:
    """Short sentences (STS Benchmark test), 256-token passages (SciFact documents), SciFact queries."""
    config, settings = context.config, context.settings
    rng = random.Random(config.seed)
    sts = load_task("stsbenchmark", settings.eval_dir).texts()
    scifact = load_task("scifact", settings.eval_dir)
    assert isinstance(scifact, RetrievalTask)
    documents = [scifact.data.corpus[i] for i in scifact.doc_ids]
    long_enough = cut_to_tokens(
        tokenizer, rng.sample(documents, min(len(documents), 8 * config.passages)), config.passage_tokens
    )
    queries = [scifact.data.queries[i] for i in scifact.query_ids]
    return TextSamples(
        short=rng.sample(sts, min(config.short_texts, len(sts))),
        passages=long_enough[: config.passages],
        queries=rng.sample(queries, min(config.latency_queries, len(queries))),
    )


# --------------------------------------------------------------------------- sections
def onnx_variants(context: BenchContext, student: Student) -> dict[str, OnnxEncoder]:
    folder = context.settings.cache_dir / "bench" / "onnx" / student.inference.fingerprint()
    return {
        "onnx": OnnxEncoder.export(student.inference, folder),
        "onnx int8": OnnxEncoder.export(student.inference, folder, int8=True),
    }


def student_views(student: Student, variants: dict[str, OnnxEncoder]) -> dict[str, TextEncoder]:
    dim = student.inference_dim
    return {EAGER: student.inference.at(dim), **{name: variant.at(dim) for name, variant in variants.items()}}


def other_students(context: BenchContext) -> dict[str, tuple[Student, dict[str, OnnxEncoder]]]:
    """Label -> (student, its ONNX variants) for each of ``config.other_students`` that is trained (full head
    measured, as for the main student); a missing one is noted in the report."""
    found = {}
    for model in context.config.other_students:
        if not (Path(model) / CONFIG_FILE).is_file():
            context.notes.append(f"{model} is not trained (e.g. `make train RECIPE=tiny`): its rows are left out")
            continue
        encoder = load_encoder(model, device="cpu")
        dim = encoder.heads[FULL_HEAD].out_features if FULL_HEAD in encoder.heads else None
        student = Student(encoder, encoder, dim, f"{model} (full head)", model, dict(encoder.heads.items()))
        found[Path(model).name] = (student, onnx_variants(context, student))
    return found


def labelled_views(label: str, student: Student, variants: dict[str, OnnxEncoder]) -> dict[str, TextEncoder]:
    """``student_views`` of another student, each variant named ``label variant``."""
    return {f"{label} {name}": view for name, view in student_views(student, variants).items()}


def run_encoding(
    context: BenchContext,
    student: Student,
    variants: dict[str, OnnxEncoder],
    others: dict[str, tuple[Student, dict[str, OnnxEncoder]]],
) -> None:
    config, settings = context.config, context.settings
    samples = text_samples(context, student.inference.tokenizer)
    teachers = [context.teacher(name) for name in context.teacher_names]

    def flops(model_config, tokenizer, max_length: int, heads: Sequence[int] = ()) -> tuple[float, float]:
        return tuple(  # type: ignore[return-value]
            transformer_flops(model_config, round(mean_tokens(tokenizer, texts, max_length)), heads)
            for texts in (samples.short, samples.passages)
        )

    def student_flops(measured: Student) -> tuple[float, float]:
        model = measured.inference
        heads = [measured.inference_dim] if measured.inference_dim else []
        return flops(model.backbone.config, model.tokenizer, model.config.max_length, heads)

    students = [("student", "student", student, variants)]
    students += [(label, "other student", other, other_variants) for label, (other, other_variants) in others.items()]
    encoders: list[tuple[str, str, TextEncoder, tuple[float, float] | None]] = []
    for label, role, measured, measured_variants in students:
        cost = student_flops(measured)  # once per model: it tokenizes the samples
        encoders += [
            (f"{label} ({name})", role, view, cost) for name, view in student_views(measured, measured_variants).items()
        ]
    for teacher in teachers:
        module = teacher.model[0]
        encoders.append(
            (
                teacher.name,
                "teacher",
                teacher,
                flops(module.auto_model.config, module.tokenizer, module.max_seq_length),
            )
        )
    ensemble_name = "ensemble (" + " + ".join(context.teacher_names) + ")"
    encoders.append((ensemble_name, "ensemble", TeacherEnsemble(teachers), None))
    speeds = measure_encoders(encoders, samples, config.encoding_repeats, settings.batch_size)
    context.results["encoding"] = [speed.to_json() for speed in speeds]
    context.results["encoding_samples"] = {
        "short": len(samples.short),
        "passages": len(samples.passages),
        "passage_tokens": config.passage_tokens,
        "latency_queries": len(samples.queries),
        "batch_size": settings.batch_size,
    }


def run_quality(
    context: BenchContext,
    student: Student,
    variants: dict[str, OnnxEncoder],
    others: dict[str, tuple[Student, dict[str, OnnxEncoder]]],
) -> None:
    """The main student's variants (and which qualify against its eager scores), then the other students'."""
    tasks = [load_task(name, context.settings.eval_dir) for name in context.config.quality_tasks]
    rows = score_variants(student_views(student, variants), tasks, context.cache_root, context.settings.batch_size)
    context.results["qualifying_variants"] = qualifying(rows, EAGER)
    for label, (other, other_variants) in others.items():
        views = labelled_views(label, other, other_variants)
        rows += score_variants(views, tasks, context.cache_root, context.settings.batch_size)
    context.results["quality"] = [row.to_json() for row in rows]


def run_search(
    context: BenchContext,
    student: Student,
    corpus_real: np.ndarray,
    queries: Queries,
    checkpoint: Callable[[str], object],
) -> None:
    """Every corpus size in turn, smallest first; ``checkpoint`` writes the reports after each size, so an
    interrupted run keeps the sizes it finished. Every index type is tuned and measured on the full head
    and the smallest head; the heads between get the exact Flat index only (their answers against the
    full head's)."""
    config = context.config
    close = closeness(corpus_real, seed=config.seed)
    context.results["search_vectors"] = {"noise": NOISE, **close.to_json()}
    context.notes.append(
        f"search vectors: {len(corpus_real):,} real {context.settings.student_init} pooled vectors from the cache "
        f"(SciFact documents, STS Benchmark and training texts); beyond those, the real vectors repeated, each copy "
        f"plus isotropic Gaussian noise of norm {NOISE} (relative to the unit vector) and renormalised: a copy keeps "
        f"a median cosine of {close.copy_to_source:.2f} to its source, against {close.real_nearest:.2f} between a "
        "real text and its nearest other real text, so copies are near-duplicates of real texts, never new topics; "
        "then mapped through the student's heads"
        + (
            f" (scaled by {student.hidden_scale:.2f}, the student's median raw pooled norm)"
            if student.hidden_scale != 1.0
            else ""
        )
    )
    reported, tuning = (min(config.search_queries, len(q)) for q in (queries.reported, queries.tuning))
    context.notes.append(
        f"search recall@10 is against exact search with the same head, on {reported} SciFact queries; each index "
        f"type's setting is the cheapest that reaches recall@10 >= {TARGET_RECALL} on {tuning} held-out tuning "
        "queries (STS Benchmark and training texts, not in the corpus); an index type that never reaches it is "
        "left out of the table (listed under the table)"
    )
    queries = Queries(queries.reported * student.hidden_scale, queries.tuning * student.hidden_scale)
    bench = SearchBench(config.search_queries)
    rows = []
    small_head = min(student.heads, key=lambda name: student.heads[name].out_features)
    if any(size > config.full_index_limit for size in config.sizes):
        context.notes.append(
            f"above {config.full_index_limit:,} vectors only the {small_head} Flat index, the compact index and "
            "the funnel are built (memory and time of a 2-core machine)"
        )
    order = sorted(config.sizes)
    for size in order:
        corpus = corpus_of_size(corpus_real, size, config.seed)
        np.multiply(corpus.hidden, student.hidden_scale, out=corpus.hidden)  # made like the cached unit vectors
        if size > config.full_index_limit:
            plan = {small_head: ["Flat"]}
        else:
            plan = {
                name: list(config.factories) if name in (FULL_HEAD, small_head) else ["Flat"] for name in student.heads
            }
        rows += bench.run(corpus, queries, student.heads, plan)
        context.results["search"] = [row.to_json() for row in rows]
        context.results["search_tuning"] = [tuning.to_json() for tuning in bench.tunings]
        context.results["search_target"] = TARGET_RECALL
        context.results["compact"] = [check.to_json() for check in bench.compact_checks]
        if size != order[-1]:
            checkpoint(f"search {size}")


def run_ingestion(context: BenchContext, student: Student) -> None:
    scifact = load_task("scifact", context.settings.eval_dir)
    assert isinstance(scifact, RetrievalTask)
    texts = [scifact.data.corpus[i] for i in scifact.doc_ids[: context.config.ingest_docs]]
    speeds = measure_ingestion(
        student.encoder, texts, context.settings, context.config.ingest_backends, context.config.repeats
    )
    context.results["ingestion"] = [speed.to_json() for speed in speeds]


def run_training(context: BenchContext, student: Student) -> None:
    from jasper_rag.train.data import training_texts
    from jasper_rag.train.distributed import DistEnv
    from jasper_rag.train.recipes import load_recipe
    from jasper_rag.train.teacher_vectors import ensemble_targets

    recipe = load_recipe(context.config.recipe)
    batch = recipe.stages[1].batch_size
    needed = batch * (context.config.train_steps + 1)
    texts = training_texts(
        recipe.corpus, recipe.max_texts, recipe.cut_fraction, recipe.max_sentences, recipe.max_words, recipe.seed
    )[:needed]
    teachers = [context.teacher(name) for name in recipe.teachers]
    targets = ensemble_targets(teachers, texts, context.cache_root, DistEnv(device="cpu"))
    speeds = measure_training(
        lambda: load_encoder(student.source, device="cpu"),
        texts,
        targets,
        recipe.reduced_dims,
        batch,
        context.config.train_steps,
        recipe.max_length,
    )
    context.results["training"] = [speed.to_json() for speed in speeds]
    context.results["training_recipe"] = recipe.name


# --------------------------------------------------------------------------- the run
def run_bench(
    config: BenchConfig,
    output_dir: Path | None = None,
    settings: Settings | None = None,
) -> list[Path]:
    """Measure the configured sections and write bench.json / bench.md / bench.png (never the README)."""
    settings = settings or get_settings()
    output_dir = output_dir or settings.reports_dir
    context = BenchContext(config, settings)
    started = datetime.now(timezone.utc)
    peak = peak_matmul_gflops()
    machine = Machine.describe(peak)
    log.info(
        "bench on %s (%d cores, %d torch threads), peak %.0f GFLOP/s",
        machine.cpu,
        machine.cores,
        machine.torch_threads,
        peak,
    )
    corpus_real, queries, caches = real_vectors(context)
    student = load_student(context, caches)
    default_backend = student.encoder.backend  # as loaded: what ingest and search run on (auto: its choice)

    def write(finished: str) -> list[Path]:
        """The reports as they stand: written after every section, so an interrupted run keeps what it measured."""
        context.results["sections_done"] = [*context.results.get("sections_done", []), finished]  # type: ignore[list-item]
        payload = {
            "generated_at": started.isoformat(timespec="seconds"),
            "seconds": round((datetime.now(timezone.utc) - started).total_seconds(), 1),
            "config": asdict(config),
            "machine": asdict(machine),
            "load_average_after": [round(value, 2) for value in os.getloadavg()],
            "student": student.label,
            "default_backend": default_backend,  # what ingest and search use on this machine
            "notes": context.notes,
            **context.results,
        }
        return report.write_reports(payload, output_dir)

    timed = {"encoding", "quality"} & set(config.sections)
    variants = onnx_variants(context, student) if timed else {}
    others = other_students(context) if timed else {}
    sections = {
        "encoding": lambda: run_encoding(context, student, variants, others),
        "quality": lambda: run_quality(context, student, variants, others),
        "ingestion": lambda: run_ingestion(context, student),
        "training": lambda: run_training(context, student),
        "search": lambda: run_search(context, student, corpus_real, queries, write),
    }
    files: list[Path] = []
    for name, section in sections.items():  # search last: its largest size takes longest
        if name in config.sections:
            section()
            files = write(name)
    return files
