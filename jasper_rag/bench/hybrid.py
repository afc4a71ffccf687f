"""``jasper-rag bench --suite hybrid`` / ``make bench-hybrid``: the product's search modes end to end.

A real store (``Store.commit`` of ``DocumentRecord``s: SQL rows, one FAISS index per head, the tantivy
lexical index) is built at each size (default 10,000 and 100,000 chunks), then ``Searcher.search`` is
timed one query at a time on one thread (FAISS's OpenMP, BLAS and torch limited) in every mode: dense,
lexical, hybrid (mix), hybrid (rrf), dense + funnel, hybrid + funnel.

Chunks are realistic English, made the way ``bench/lexical.py`` makes them: SciFact abstracts sliced
into ~100-word passages, topped up with passages of sentences drawn (seeded) from different abstracts.
Embedding 100,000 chunks on a 2-core machine would take hours, so only ``embedded_passages`` (2,000,
a seeded sample; None: all ~11,000) real passages are embedded (every head, one forward pass each,
cached under ``<cache_dir>/bench/hybrid``); a chunk that is one of them keeps its own vectors, and every
other chunk gets, per head, the unit vector of a randomly chosen embedded passage plus seeded Gaussian
noise of norm about ``noise`` (0.1), normalised again (cosine ~0.995 with its base).

Two latencies per mode, over the same SciFact test queries (interleaved: each query runs in every mode
in turn, so load from other jobs falls on all modes alike, after a few untimed warm-up queries):

- *with embedding*: ``Searcher.search(query, ...)`` as the product calls it (query embedding included);
- *search only*: the same call path without the embedding: the query vectors are computed once up front
  and the bench runs what ``Searcher.search_batch`` runs after embedding (``store.refresh()``, the model
  check, ``searcher._search``).

Then a profile pass splits each mode's search-only time into stages (exclusive wall time of the store,
index and ranking calls, by wrapping them for that pass only; see ``StageProfiler``). Reports:
``hybrid.json`` (every figure) and ``hybrid.md`` (rendered from the JSON only), rewritten after every
size so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import random
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from jasper_rag.bench.lexical import _fmt, folder_bytes, load_scifact, make_chunks, passages
from jasper_rag.bench.machine import Machine, memory_gib, package_versions, peak_matmul_gflops
from jasper_rag.bench.report import _table, render_markdown, write_json
from jasper_rag.config import Settings, get_settings
from jasper_rag.encoder import CONFIG_FILE, JasperEncoder, load_encoder
from jasper_rag.files import atomic_write
from jasper_rag.search import searcher as searcher_module
from jasper_rag.search.options import DEFAULT_SHORTLIST, SearchOptions
from jasper_rag.search.searcher import Hit, Searcher
from jasper_rag.store import Chunk, DocumentRecord, DocumentStatus, Store, embed_heads, model_identity
from jasper_rag.store import lexical_index as lexical_module
from jasper_rag.store.lexical_index import QueryWords

log = logging.getLogger(__name__)

# label -> SearchOptions changes; "dense" is the baseline of the ratios
MODES: dict[str, dict[str, Any]] = {
    "dense": {"mode": "dense"},
    "lexical": {"mode": "lexical"},
    "hybrid mix": {"mode": "hybrid", "fusion": "mix"},
    "hybrid rrf": {"mode": "hybrid", "fusion": "rrf"},
    "dense + funnel": {"mode": "dense", "funnel": True},
    "hybrid + funnel": {"mode": "hybrid", "funnel": True},
}
RATIOS = {  # (numerator, denominator) of the reported latency ratios
    "hybrid mix / dense": ("hybrid mix", "dense"),
    "hybrid rrf / dense": ("hybrid rrf", "dense"),
    "hybrid + funnel / dense + funnel": ("hybrid + funnel", "dense + funnel"),
    "hybrid + funnel / dense": ("hybrid + funnel", "dense"),
}


@dataclass
class HybridBenchConfig:
    """What to build and measure (defaults: about 15 minutes on an idle 2-core machine, most of it the
    one-off embedding of the real passages)."""

    sizes: tuple[int, ...] = (10_000, 100_000)
    queries: int = 200
    warmup: int = 5  # untimed queries per mode before timing
    profile_queries: int = 100  # queries per mode in the stage profile (0: no profile)
    k: int = 10
    shortlist: int = DEFAULT_SHORTLIST
    chunks_per_document: int = 50
    commit_chunks: int = 10_000  # chunks per Store.commit (each commit rewrites every head's index)
    passage_words: int = 100
    noise: float = 0.1  # norm of the Gaussian noise added to a drawn chunk's borrowed unit vector
    embedded_passages: int | None = 2_000  # real passages embedded (seeded sample; None: all)
    seed: int = 0
    model: str | None = None
    measure_peak: bool = True  # the machine's peak matmul GFLOP/s (a few seconds)

    def __post_init__(self) -> None:
        if not self.sizes or min(self.sizes) < 1:
            raise ValueError(f"sizes must be positive, got {self.sizes}")
        if self.queries < 1 or self.chunks_per_document < 1 or self.commit_chunks < 1:
            raise ValueError("queries, chunks_per_document and commit_chunks must be positive")


# --------------------------------------------------------------------------- the model and the vectors
def bench_encoder(config: HybridBenchConfig, settings: Settings) -> tuple[JasperEncoder, str]:
    """The trained model (``config.model`` or the settings') when it exists, else the packaged start
    model (``settings.student_init``); with a label saying which."""
    model = config.model or settings.model
    if (Path(model) / CONFIG_FILE).is_file():
        return load_encoder(model, device="cpu").eval(), f"{model} (trained model)"
    encoder = load_encoder(settings.student_init, device="cpu").eval()
    return encoder, f"{settings.student_init} (packaged start model; no trained model at {model})"


def passage_vectors(
    encoder: JasperEncoder, texts: Sequence[str], cache_dir: Path | None, batch_size: int
) -> tuple[dict[str, np.ndarray], float, bool]:
    """Unit vectors of ``texts`` for every store head (one forward pass), the seconds it took, and
    whether they came from the cache (``<cache_dir>/<fingerprint>-<texts digest>.npz``)."""
    digest = hashlib.blake2b("\x00".join(texts).encode("utf-8"), digest_size=12).hexdigest()
    path = cache_dir / f"{encoder.fingerprint()}-{digest}.npz" if cache_dir is not None else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}, 0.0, True
    start = time.perf_counter()
    with tqdm(total=len(texts), desc="embedding real passages", unit="text", mininterval=2.0) as bar:
        vectors = embed_heads(encoder, texts, batch_size=batch_size, on_batch=bar.update)
    seconds = time.perf_counter() - start
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: np.savez(tmp, **vectors))
    return vectors, seconds, False


def chunk_vectors(
    chunks: Sequence[str], base_texts: Sequence[str], base: dict[str, np.ndarray], noise: float, seed: int
) -> tuple[dict[str, np.ndarray], int]:
    """Per head, one unit vector per chunk: an embedded passage's own vector when the chunk is one of
    ``base_texts``, else a random embedded passage's vector plus seeded Gaussian noise of norm ~``noise``,
    normalised; and how many chunks have their own vectors."""
    row_of = {text: row for row, text in enumerate(base_texts)}
    rows = np.fromiter((row_of.get(text, -1) for text in chunks), dtype=np.int64, count=len(chunks))
    drawn = rows < 0
    rng = np.random.default_rng(seed)
    rows[drawn] = rng.integers(0, len(base_texts), size=int(drawn.sum()))
    out = {}
    for number, (head, vectors) in enumerate(sorted(base.items())):
        chosen = vectors[rows].astype(np.float32)
        dim = chosen.shape[1]
        head_rng = np.random.default_rng([seed, number])
        chosen[drawn] += head_rng.standard_normal((int(drawn.sum()), dim), dtype=np.float32) * (noise / np.sqrt(dim))
        chosen /= np.linalg.norm(chosen, axis=1, keepdims=True)
        out[head] = chosen
    return out, int((~drawn).sum())


# --------------------------------------------------------------------------- the store
def build_store(
    folder: Path,
    encoder: JasperEncoder,
    chunks: Sequence[str],
    vectors: dict[str, np.ndarray],
    config: HybridBenchConfig,
) -> tuple[Store, dict[str, object]]:
    """A SQLite store in ``folder`` holding ``chunks`` (``chunks_per_document`` per document), committed
    ``commit_chunks`` at a time; returns it with the build figures."""
    folder.mkdir(parents=True, exist_ok=True)
    store = Store(f"sqlite:///{folder / 'jasper.db'}", folder / "indexes")
    per_document, per_commit = config.chunks_per_document, max(config.commit_chunks, config.chunks_per_document)
    commit_seconds: list[float] = []
    started = time.perf_counter()
    with store.writer():
        store.bind_model(model_identity(encoder))
        bar = tqdm(total=len(chunks), desc=f"store {len(chunks):,}: commit", unit="chunk", mininterval=2.0)
        for batch_start in range(0, len(chunks), per_commit):
            records = []
            batch_end = min(batch_start + per_commit, len(chunks))
            for doc_start in range(batch_start, batch_end, per_document):
                rows = range(doc_start, min(doc_start + per_document, batch_end))
                records.append(
                    DocumentRecord(
                        path=f"/bench/hybrid/doc{doc_start // per_document:06d}.txt",
                        file_type="text",
                        status=DocumentStatus.INGESTED,
                        content_hash=f"{doc_start:064x}",
                        entries=[
                            Chunk(text=chunks[row], ordinal=number, embedded=True) for number, row in enumerate(rows)
                        ],
                        vectors={head: array[rows.start : rows.stop] for head, array in vectors.items()},
                    )
                )
            commit_start = time.perf_counter()
            store.commit(records)
            commit_seconds.append(time.perf_counter() - commit_start)
            bar.update(batch_end - batch_start)
        bar.close()
    build_s = time.perf_counter() - started
    index_dir = folder / "indexes"
    sizes: dict[str, float] = {}
    for (kind, head), state in sorted(store.index_states().items()):
        sizes[f"faiss {kind}/{head} ({state.dim}-d)"] = store.index_path(kind, head, state.generation).stat().st_size
    if store.lexical_generation is not None:
        sizes["tantivy"] = folder_bytes(store.lexical_path(store.lexical_generation))
    sizes["sqlite"] = sum(path.stat().st_size for path in folder.glob("jasper.db*"))
    figures = {
        "build_s": build_s,
        "commits": len(commit_seconds),
        "commit_s_first": commit_seconds[0] if commit_seconds else None,
        "commit_s_last": commit_seconds[-1] if commit_seconds else None,
        "commit_s_total": sum(commit_seconds),
        "documents": -(-len(chunks) // per_document),
        "sizes_mib": {name: value / 2**20 for name, value in sizes.items()},
        "index_folder_mib": folder_bytes(index_dir) / 2**20,
    }
    return store, figures


# --------------------------------------------------------------------------- timing
@contextmanager
def one_thread() -> Iterator[None]:
    """FAISS's OpenMP, BLAS and torch on one thread (single queries, as ``bench/search.py`` times them)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def search_prepared(
    searcher: Searcher, query: str, vectors: dict[str, np.ndarray], options: SearchOptions
) -> list[Hit]:
    """What ``Searcher.search`` runs for one query once its vectors are known (``search_batch`` minus
    ``embed_queries``): refresh, model check, the head, then the search itself."""
    searcher.store.refresh()
    searcher._check_model()
    head = searcher.head_for(options.dim)
    return searcher._search([query], None if options.mode == "lexical" else vectors, head, options)


def summary(seconds: Sequence[float], cpu_seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / mean of wall and process CPU milliseconds."""
    wall, cpu = 1000 * np.asarray(seconds), 1000 * np.asarray(cpu_seconds)
    return {
        "p50_ms": float(np.percentile(wall, 50)),
        "p95_ms": float(np.percentile(wall, 95)),
        "mean_ms": float(np.mean(wall)),
        "p50_cpu_ms": float(np.percentile(cpu, 50)),
        "p95_cpu_ms": float(np.percentile(cpu, 95)),
        "queries": len(wall),
    }


def time_modes(
    searcher: Searcher, queries: Sequence[str], vectors: dict[str, np.ndarray], config: HybridBenchConfig, label: str
) -> dict[str, dict[str, dict[str, float]]]:
    """Mode -> {"with_embedding", "search_only"} -> latency summary; each query runs in every mode in turn."""
    calls: dict[str, dict[str, Callable[[int], object]]] = {}
    for mode, changes in MODES.items():
        options = searcher.resolve(None, config.k, shortlist=config.shortlist, **changes)

        def full(i: int, changes: dict[str, Any] = changes) -> object:
            return searcher.search(queries[i], k=config.k, shortlist=config.shortlist, **changes)

        def alone(i: int, options: SearchOptions = options) -> object:
            return search_prepared(searcher, queries[i], {h: v[i : i + 1] for h, v in vectors.items()}, options)

        calls[mode] = {"with_embedding": full, "search_only": alone}
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    cpu: dict[tuple[str, str], list[float]] = defaultdict(list)
    with one_thread():
        for i in range(min(config.warmup, len(queries))):
            for variants in calls.values():
                for call in variants.values():
                    call(i)
        for i in tqdm(range(len(queries)), desc=f"{label}: queries x {2 * len(MODES)}", mininterval=2.0):
            for mode, variants in calls.items():
                for variant, call in variants.items():
                    start, cpu_start = time.perf_counter(), time.process_time()
                    call(i)
                    times[(mode, variant)].append(time.perf_counter() - start)
                    cpu[(mode, variant)].append(time.process_time() - cpu_start)
    return {
        mode: {variant: summary(times[(mode, variant)], cpu[(mode, variant)]) for variant in variants}
        for mode, variants in calls.items()
    }


def ratios(latency: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """The ratios of ``RATIOS`` for p50 and p95, with and without embedding."""
    found = {}
    for name, (top, bottom) in RATIOS.items():
        if top in latency and bottom in latency:
            found[name] = {
                f"{variant} {stat}": latency[top][variant][f"{stat}_ms"] / latency[bottom][variant][f"{stat}_ms"]
                for variant in ("with_embedding", "search_only")
                for stat in ("p50", "p95")
            }
    return found


# --------------------------------------------------------------------------- the stage profile
class StageProfiler:
    """Exclusive wall time per stage: wrapped calls, each charged its own time minus that of the wrapped
    calls inside it; what no wrapper covers is the remainder. Wrappers are set on instances and modules
    for the profile pass only and removed afterwards."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._stack: list[float] = []  # time spent in wrapped children of each open frame
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: object, name: str, stage: str) -> None:
        original = getattr(owner, name)
        had_own = isinstance(owner, type) or name in getattr(owner, "__dict__", {})
        profiler = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            profiler._stack.append(0.0)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                children = profiler._stack.pop()
                profiler.totals[stage] += elapsed - children
                if profiler._stack:
                    profiler._stack[-1] += elapsed

        raw = owner.__dict__.get(name) if isinstance(owner, type) else None
        if isinstance(raw, classmethod):
            setattr(owner, name, classmethod(lambda cls, *a, **kw: timed(*a, **kw)))
        else:
            setattr(owner, name, timed)

        def undo() -> None:
            if isinstance(owner, type):
                setattr(owner, name, raw)
            elif had_own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)

        self._undo.append(undo)

    def remove(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


def split_lexical_search(index: lexical_module.LexicalIndex, profiler: StageProfiler) -> None:
    """Time the lexical search's query analysis, tantivy search and stored-id loads as separate stages
    (the index's own steps, wrapped on this instance for the profile only)."""
    profiler.wrap(index, "_words", "lexical: query analysis")
    profiler.wrap(index, "_run", "lexical: tantivy search")
    profiler.wrap(index, "_entry_ids", "lexical: stored-id loads (searcher.doc)")


def profile_modes(
    searcher: Searcher, queries: Sequence[str], vectors: dict[str, np.ndarray], config: HybridBenchConfig
) -> dict[str, dict[str, float]]:
    """Mode -> stage -> mean exclusive ms per query of the search-only path (plus the query embedding)."""
    store = searcher.store
    lexical = store.lexical()
    count = min(config.profile_queries, len(queries))
    found: dict[str, dict[str, float]] = {}
    with one_thread():
        embed_start = time.perf_counter()
        for i in range(count):
            searcher.embed_queries([queries[i]])
        embed_ms = 1000 * (time.perf_counter() - embed_start) / max(count, 1)
        for mode, changes in MODES.items():
            options = searcher.resolve(None, config.k, shortlist=config.shortlist, **changes)
            profiler = StageProfiler()
            profiler.wrap(store, "refresh", "store.refresh (SQL)")
            profiler.wrap(searcher, "_check_model", "model check")
            profiler.wrap(store, "kinds", "store.kinds")
            profiler.wrap(searcher, "_dense_shortlist", "dense: FAISS shortlist")
            profiler.wrap(searcher, "_exact_scores", "dense: exact re-scoring (reconstruct)")
            profiler.wrap(store, "kinds_of", "store.kinds_of (SQL)")
            profiler.wrap(store, "fetch", "store.fetch (SQL rows)")
            profiler.wrap(searcher_module, "hybrid_rank", "hybrid_rank (numpy, fusion)")
            profiler.wrap(QueryWords, "found_in", "matched_words")
            profiler.wrap(Hit, "from_entry", "Hit construction")
            if lexical is not None:
                profiler.wrap(lexical, "search", "lexical: tantivy wrapper")
                split_lexical_search(lexical, profiler)
            try:
                start = time.perf_counter()
                for i in range(count):
                    search_prepared(searcher, queries[i], {h: v[i : i + 1] for h, v in vectors.items()}, options)
                total = time.perf_counter() - start
            finally:
                profiler.remove()
            stages = {stage: 1000 * seconds / count for stage, seconds in sorted(profiler.totals.items())}
            stages["other (searcher._search's own code)"] = 1000 * total / count - sum(stages.values())
            stages["total search only"] = 1000 * total / count
            stages["query embedding (separately)"] = embed_ms
            found[mode] = stages
    return found


# --------------------------------------------------------------------------- machine and run
def machine_facts(measure_peak: bool = True) -> dict[str, object]:
    """``bench/machine.py``'s description plus memory, and the search libraries' versions."""
    facts = asdict(Machine.describe(peak_matmul_gflops() if measure_peak else float("nan")))
    facts["versions"].update(package_versions(("tantivy", "sqlalchemy", "threadpoolctl")))
    facts["memory_gib"] = memory_gib()
    return facts


def run_hybrid_bench(
    config: HybridBenchConfig,
    eval_dir: Path,
    output_dir: Path,
    settings: Settings | None = None,
    encoder: JasperEncoder | None = None,
    encoder_label: str | None = None,
    work_dir: Path | None = None,
) -> list[Path]:
    """Build the store at each size (smallest first), time every mode, profile, and write the reports
    after each size. ``encoder`` overrides the model (tests)."""
    settings = settings or get_settings()
    started = datetime.now(timezone.utc)
    if encoder is None:
        encoder, encoder_label = bench_encoder(config, settings)
    encoder_label = encoder_label or encoder.config.source
    data = load_scifact(eval_dir)
    documents = list(data.corpus.values())
    query_ids = sorted(data.qrels)
    random.Random(config.seed).shuffle(query_ids)
    queries = [data.queries[query_id] for query_id in query_ids[: config.queries]]
    payload: dict[str, object] = {
        "generated_at": started.isoformat(timespec="seconds"),
        "config": asdict(config),
        "machine": machine_facts(config.measure_peak),
        "model": encoder_label,
        "heads": dict(model_identity(encoder).heads),
        "sizes": [],
    }

    def write() -> list[Path]:
        payload["seconds"] = round((datetime.now(timezone.utc) - started).total_seconds(), 1)
        payload["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
        return write_reports(payload, output_dir)

    all_passages = sorted(set(passages(documents, config.passage_words)))
    base_texts = all_passages
    if config.embedded_passages is not None and config.embedded_passages < len(all_passages):
        base_texts = sorted(random.Random(config.seed).sample(all_passages, config.embedded_passages))
    cache = settings.cache_dir / "bench" / "hybrid"
    base, embed_s, cached = passage_vectors(encoder, base_texts, cache, settings.batch_size)
    payload["real_passages"] = {
        "count": len(all_passages),
        "embedded": len(base_texts),
        "embed_s": embed_s,
        "from_cache": cached,
    }
    searcher_options = SearchOptions(k=config.k, shortlist=config.shortlist)
    query_vectors = embed_heads(encoder, queries, batch_size=settings.batch_size)
    files: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-", dir=work_dir) as tmp:
        for size in sorted(config.sizes):
            chunks, real = make_chunks(documents, size, config.passage_words, config.seed)
            synth_start = time.perf_counter()
            vectors, own = chunk_vectors(chunks, base_texts, base, config.noise, config.seed)
            synth_s = time.perf_counter() - synth_start
            folder = Path(tmp) / f"store-{size}"
            store, build = build_store(folder, encoder, chunks, vectors, config)
            del vectors
            gc.collect()
            try:
                searcher = Searcher(store, encoder, settings.batch_size, searcher_options)
                open_start = time.perf_counter()  # first search loads every index from disk
                searcher.search(queries[0], k=config.k, mode="hybrid", funnel=True)
                searcher.search(queries[0], k=config.k, mode="hybrid")
                build["first_search_load_s"] = time.perf_counter() - open_start
                latency = time_modes(searcher, queries, query_vectors, config, f"{size:,}")
                profile = profile_modes(searcher, queries, query_vectors, config) if config.profile_queries > 0 else {}
            finally:
                store.close()
                shutil.rmtree(folder, ignore_errors=True)
            payload["sizes"].append(  # type: ignore[union-attr]
                {
                    "size": size,
                    "real_passages": real,
                    "own_vectors": own,
                    "mean_words": float(np.mean([len(text.split()) for text in chunks[:: max(1, size // 5000)]])),
                    "vectors_s": synth_s,
                    "build": build,
                    "latency": latency,
                    "ratios": ratios(latency),
                    "profile": profile,
                }
            )
            log.info("hybrid bench at %s chunks: %s", f"{size:,}", ratios(latency))
            files = write()
            del chunks
            gc.collect()
    return files


# --------------------------------------------------------------------------- reports
def latency_markdown(row: dict) -> str:
    lines = []
    for mode, variants in row["latency"].items():
        full, alone = variants["with_embedding"], variants["search_only"]
        lines.append(
            [
                mode,
                f"{_fmt(full['p50_ms'], 2)} ({_fmt(full['p50_cpu_ms'], 2)})",
                f"{_fmt(full['p95_ms'], 2)} ({_fmt(full['p95_cpu_ms'], 2)})",
                f"{_fmt(alone['p50_ms'], 2)} ({_fmt(alone['p50_cpu_ms'], 2)})",
                f"{_fmt(alone['p95_ms'], 2)} ({_fmt(alone['p95_cpu_ms'], 2)})",
            ]
        )
    header = [
        "mode",
        "with embedding p50 ms (CPU)",
        "with embedding p95 ms (CPU)",
        "search only p50 ms (CPU)",
        "search only p95 ms (CPU)",
    ]
    return _table(header, lines)


def ratio_markdown(row: dict) -> str:
    lines = [
        [
            name,
            _fmt(values["with_embedding p50"], 2),
            _fmt(values["with_embedding p95"], 2),
            _fmt(values["search_only p50"], 2),
            _fmt(values["search_only p95"], 2),
        ]
        for name, values in row["ratios"].items()
    ]
    return _table(["ratio (wall)", "with embedding p50", "p95", "search only p50", "p95"], lines)


def profile_markdown(row: dict) -> str:
    profile = row["profile"]
    if not profile:
        return "(no profile)"
    modes = list(profile)
    stages = sorted({stage for values in profile.values() for stage in values})
    order = [stage for stage in stages if stage not in ("total search only", "query embedding (separately)")]
    order += ["total search only", "query embedding (separately)"]
    lines = [[stage, *(_fmt(profile[mode].get(stage, 0.0), 2) for mode in modes)] for stage in order]
    return _table(["stage (mean ms per query)", *modes], lines)


def build_markdown(row: dict) -> str:
    build = row["build"]
    lines = [
        ["vectors for every chunk (borrowed + noise)", f"{_fmt(row['vectors_s'], 1)} s"],
        [
            f"store build ({build['documents']:,} documents, {build['commits']} commits)",
            f"{_fmt(build['build_s'], 1)} s",
        ],
        ["  of which Store.commit calls", f"{_fmt(build['commit_s_total'], 1)} s"],
        ["  first / last commit", f"{_fmt(build['commit_s_first'], 1)} s / {_fmt(build['commit_s_last'], 1)} s"],
        ["first searches (indexes loaded from disk)", f"{_fmt(build['first_search_load_s'], 2)} s"],
        *[[f"size: {name}", f"{_fmt(mib, 1)} MiB"] for name, mib in build["sizes_mib"].items()],
        ["size: index folder (current + previous generation)", f"{_fmt(build['index_folder_mib'], 1)} MiB"],
    ]
    return _table(["build step", "figure"], lines, text_columns=2)


def full_markdown(payload: dict) -> str:
    """``hybrid.md`` from the payload alone."""
    config, machine = payload["config"], payload["machine"]
    versions = ", ".join(f"{name} {value}" for name, value in machine["versions"].items())
    real = payload.get("real_passages", {})
    embedded = (
        "vectors read from the bench cache"
        if real.get("from_cache")
        else f"embedded in {_fmt(real.get('embed_s'), 0)} s"
    )
    parts = [
        "# Search modes end to end: dense, lexical, hybrid",
        "",
        f"Generated {payload['generated_at']} by `make bench-hybrid` (`jasper-rag bench --suite hybrid`) in "
        f"{payload.get('seconds', 0):,.0f} s. Machine: {machine['cpu']}, {machine['cores']} cores, "
        f"{_fmt(machine.get('memory_gib'))} GiB, peak matmul {_fmt(machine['peak_gflops'], 0)} GFLOP/s; load "
        f"average {machine['load_average'][0]:.1f} at start, "
        f"{payload.get('load_average_after', [float('nan')])[0]:.1f} at the end. Versions: {versions}.",
        "",
        f"Model: **{payload['model']}**; heads {payload['heads']}.",
        "",
        "Store: a real SQLite store (`Store.commit` of `DocumentRecord`s: SQL rows, one exact `Flat` FAISS "
        "index per head, the tantivy lexical index), "
        f"{config['chunks_per_document']} chunks per document, {config['commit_chunks']:,} chunks per commit. "
        "Chunks: SciFact abstracts sliced into "
        f"~{config['passage_words']}-word passages, topped up with passages of sentences drawn from different "
        f"abstracts (as `bench/lexical.py` makes them). Vectors: {real.get('embedded', 0):,} of the "
        f"{real.get('count', 0):,} real passages (a seeded sample; embedding all of them takes the better part "
        f"of an hour on a busy 2-core machine) are embedded with every head ({embedded}); a chunk that is one of "
        "them keeps its own vectors, every other chunk gets the unit vector of a random embedded passage plus "
        f"seeded Gaussian noise of norm ~{config['noise']}, normalised (cosine ~0.995 with it). Exact (`Flat`) "
        "search costs the same whatever the vectors; what they change is how much the dense and lexical "
        "shortlists overlap, hence how many candidates hybrid re-scores (at most twice the shortlist).",
        "",
        f"Latency: `Searcher.search`, one query at a time on one thread (FAISS, BLAS, torch), top "
        f"{config['k']}, shortlist {config['shortlist']} per side, {config['queries']} SciFact test queries, "
        "each run in every mode in turn after "
        f"{config['warmup']} warm-up queries. *With embedding*: the product call, query embedding included "
        "(lexical embeds nothing). *Search only*: the same path with the query vectors computed up front "
        "(`store.refresh()`, model check, `Searcher._search`). Wall milliseconds, then the process's CPU "
        "milliseconds in brackets (what other jobs on the machine do not inflate).",
    ]
    for row in payload["sizes"]:
        size = row["size"]
        parts += [
            "",
            f"## {size:,} chunks",
            "",
            f"{row['real_passages']:,} SciFact passages + {size - row['real_passages']:,} drawn; "
            f"{row['mean_words']:.0f} words per chunk on average; {row.get('own_vectors', 0):,} chunks with "
            "their own vectors.",
            "",
            "### Latency",
            "",
            latency_markdown(row),
            "",
            ratio_markdown(row),
            "",
            "### Build and size",
            "",
            build_markdown(row),
            "",
            "### Where the time goes (search only)",
            "",
            f"Mean exclusive wall ms per query over {config['profile_queries']} queries, each call timed by a "
            "wrapper set for this pass only (the lexical search's three steps are `LexicalIndex`'s own "
            "`_words`, `_run` and `_entry_ids`); *other* is `Searcher._search`'s own code.",
            "",
            profile_markdown(row),
        ]
    return "\n".join(parts) + "\n"


def write_reports(payload: dict, output_dir: Path) -> list[Path]:
    """``hybrid.json`` (every figure), then ``hybrid.md`` rendered from it."""
    return render_from_json(write_json(payload, output_dir / "hybrid.json"))


def render_from_json(json_path: Path) -> list[Path]:
    """Render ``hybrid.md`` next to ``json_path`` from it."""
    return render_markdown(json_path, full_markdown)
