"""Search per head dimension and index type: tuned setting, latency (single and batched), recall@10, bytes, build.

Recall@10 is measured against exact search with the same head, and each row also gives the top-10 overlap
with exact full-head search (what a smaller head costs in answers). Every index type is tuned first: its
settings are tried cheapest first (fewer bytes, then less search work) on a held-out set of tuning queries,
and the first that reaches ``TARGET_RECALL`` is the one measured, on the reported queries (never the ones it
was tuned on); an index type that reaches it with no setting is dropped (``Tuning`` records what was tried).
Single queries run on one thread (FAISS's OpenMP and numpy's BLAS limited with ``threadpoolctl``);
batched queries use every core. Besides the FAISS indexes, two composite options are measured:
``funnel`` (shortlist from the smallest head's Flat index, exact re-scoring with the full head; the
shortlist length is tuned the same way) and ``compact`` (``CompactFullHeadIndex``: exact full-head
search from (hidden+1)-d vectors), plus the funnel re-scoring from the compact index.

Index types are FAISS factory strings, tuned on their search-time parameter (HNSW ``efSearch``, IVF
``nprobe``), or one of the families in ``FAMILIES``, whose build-time setting is tuned too (IVF list count
from the corpus size, PQ code size, SQ type). PQ codes are FAISS's 4-bit fast-scan ones (``PQ{m}x4fs``:
``m`` half-bytes per vector), which train in seconds where 8-bit codes of the same size take minutes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import faiss
import numpy as np
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from jasper_rag.bench.compact_index import CompactFullHead, CompactFullHeadIndex
from jasper_rag.bench.stats import Spread, call_latency, timed
from jasper_rag.bench.vectors import Corpus, project
from jasper_rag.encoder import FULL_HEAD
from jasper_rag.search.funnel import funnel_search
from jasper_rag.store import VectorIndex
from jasper_rag.store.vector_index import IndexTrainingError

log = logging.getLogger(__name__)

TARGET_RECALL = 0.95  # recall@10 against exact search of the same head an index type must reach on tuning queries
EF_SEARCH = (16, 32, 64, 128, 256, 512)  # HNSW candidate list sizes tried
NPROBE = (1, 2, 4, 8, 16, 32, 64, 128)  # IVF lists visited per query tried (up to a quarter of the lists)
SHORTLISTS = (100, 200, 400, 800)  # funnel shortlist lengths tried


def ivf_lists(size: int) -> int:
    """IVF list count for ``size`` vectors: the power of two nearest to sqrt(size)."""
    return 2 ** max(0, round(math.log2(math.sqrt(max(size, 1)))))


FAMILIES: dict[str, Callable[[int, int], list[str]]] = {  # name -> (dim, size) -> factories, cheapest first
    "IVF,Flat": lambda dim, size: [f"IVF{ivf_lists(size)},Flat"],
    "IVF,PQ": lambda dim, size: [f"IVF{ivf_lists(size)},PQ{dim // d}x4fs" for d in (4, 2) if dim % (2 * d) == 0],
    "SQ": lambda dim, size: ["SQ4", "SQ8", "SQfp16"],
}


def factories_for(index_type: str, dim: int, size: int) -> list[str]:
    """The factories tried for an index type (a family in ``FAMILIES`` or one factory string), cheapest first."""
    return FAMILIES[index_type](dim, size) if index_type in FAMILIES else [index_type]


def search_settings(index: VectorIndex) -> list[str]:
    """FAISS search-time parameter strings tried on a built index, least search work first (``[""]``: none)."""
    ivf = faiss.try_extract_index_ivf(index.index)
    if ivf is not None:
        return [f"nprobe={n}" for n in NPROBE if n <= max(1, ivf.nlist // 4)]
    inner = faiss.downcast_index(index.index.index) if isinstance(index.index, faiss.IndexIDMap2) else None
    if isinstance(inner, faiss.IndexHNSW):
        return [f"efSearch={ef}" for ef in EF_SEARCH]
    return [""]


@dataclass(frozen=True)
class SearchRow:
    """One (corpus size, head, index option) measurement."""

    size: int
    real_vectors: int
    head: str
    dim: int
    index: str  # the index type (a factory string, a family, or a composite)
    params: str  # its tuned setting: factory and search-time parameters
    build_s: float
    bytes_per_vector: float
    recall_at_10: float  # against exact search with the same head, on the reported queries
    full_overlap_at_10: float  # top-10 overlap with exact full-head search
    tune_recall_at_10: float  # what the setting reached on the tuning queries
    single_p50_ms: float
    single_p95_ms: float
    batch_ms_per_query: Spread

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Tuning:
    """The settings tried for one index type on one head and size, and the one chosen (None: dropped)."""

    size: int
    head: str
    index: str
    chosen: str | None
    tried: list[tuple[str, float]]  # (setting, recall@10 on the tuning queries), in the order tried

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Queries:
    """Hidden vectors of the reported queries and of the held-out tuning queries."""

    reported: np.ndarray
    tuning: np.ndarray


def exact_top_k(hidden: np.ndarray, head: nn.Linear, queries: np.ndarray, k: int, block: int = 100_000) -> np.ndarray:
    """Ids of the exact top-``k`` cosines between ``queries`` and the head's vectors of ``hidden`` (in blocks)."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(hidden), block):
        scores = queries @ project(hidden[start : start + block], head).T
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
        best_ids = np.concatenate([best_ids, top + start], axis=1)
        keep = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
        best_scores, best_ids = np.take_along_axis(best_scores, keep, 1), np.take_along_axis(best_ids, keep, 1)
    return best_ids


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean share of each query's true top-``k`` ids found in its top-``k``."""
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)]))


def index_bytes(index: VectorIndex) -> int:
    """Bytes of the index as FAISS serialises it (vectors or codes, ids, graph links, centroids)."""
    return int(faiss.serialize_index(index.index).nbytes)


Searcher = Callable[[np.ndarray], np.ndarray]  # queries -> top-k ids


@dataclass(frozen=True)
class CompactCheck:
    """The compact index against exact full-head search on the same queries."""

    size: int
    full_dim: int
    compact_dim: int
    bytes_per_vector: float
    full_flat_bytes_per_vector: float
    identical_rankings: float  # share of queries whose top-k ids come in exactly the same order
    identical_sets: float  # share of queries whose top-k id sets are equal

    @property
    def bytes_ratio(self) -> float:
        return self.bytes_per_vector / self.full_flat_bytes_per_vector

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "bytes_ratio": self.bytes_ratio}


class SearchBench:
    """Tunes and measures index options on one corpus with fixed reported and tuning query sets."""

    def __init__(self, queries: int, k: int = 10, batch_repeats: int = 3) -> None:
        self.queries = queries
        self.k = k
        self.batch_repeats = batch_repeats
        self.compact_checks: list[CompactCheck] = []
        self.tunings: list[Tuning] = []

    def measure(
        self,
        corpus: Corpus,
        option: tuple[str, int, str, str],
        build_s: float,
        nbytes: float,
        search: Searcher,
        queries: np.ndarray,
        truth: tuple[np.ndarray, np.ndarray],
        tune_recall: float,
    ) -> SearchRow:
        """Latency (single on one thread, batched on all), recall and size of one option; ``option`` is
        (head, dim, index type, tuned setting), ``truth`` the exact top-k ids of the same head and of the full head."""
        head, dim, index, params = option
        size = len(corpus.hidden)
        with threadpool_limits(limits=1):  # FAISS's OpenMP and numpy's BLAS: one thread per single query
            single = call_latency(lambda i: search(queries[i : i + 1]), len(queries))
        found = search(queries)
        batched = [timed(lambda: search(queries)).wall for _ in range(self.batch_repeats)]
        return SearchRow(
            size=size,
            real_vectors=corpus.real,
            head=head,
            dim=dim,
            index=index,
            params=params,
            build_s=round(build_s, 3),
            bytes_per_vector=round(nbytes / size, 1),
            recall_at_10=round(recall_at_k(found, truth[0], self.k), 4),
            full_overlap_at_10=round(recall_at_k(found, truth[1], self.k), 4),
            tune_recall_at_10=round(tune_recall, 4),
            single_p50_ms=round(single.p50_ms, 3),
            single_p95_ms=round(single.p95_ms, 3),
            batch_ms_per_query=Spread.of([1000 * seconds / len(queries) for seconds in batched]),
        )

    def tune(
        self, index_type: str, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, head: str
    ) -> tuple[VectorIndex, str, float, float] | None:
        """Build the index type's settings cheapest first; the first to reach ``TARGET_RECALL`` on the tuning
        ``queries``: ``(index, setting, build seconds, tuning recall)``, or None (dropped)."""
        ids = np.arange(len(vectors), dtype=np.int64)
        tried: list[tuple[str, float]] = []
        for factory in factories_for(index_type, vectors.shape[1], len(vectors)):
            index = VectorIndex.create(vectors.shape[1], factory)
            try:
                build = timed(lambda index=index: index.add(ids, vectors))
            except IndexTrainingError:
                tried.append((f"{factory} (too few vectors to train)", 0.0))
                continue
            for setting in search_settings(index):
                index.set_search_parameters(setting)
                recall = recall_at_k(index.search(queries, self.k)[1], truth, self.k)
                label = f"{factory} {setting}".strip()
                tried.append((label, round(recall, 4)))
                if recall >= TARGET_RECALL:
                    self.tunings.append(Tuning(len(vectors), head, index_type, label, tried))
                    return index, label, build.wall, recall
        self.tunings.append(Tuning(len(vectors), head, index_type, None, tried))
        return None

    def run(
        self, corpus: Corpus, queries: Queries, heads: dict[str, nn.Linear], plan: Mapping[str, Sequence[str]]
    ) -> list[SearchRow]:
        """The index types ``plan`` names for each head, tuned and measured, then the compact and funnel options.

        The funnel shortlists from the smallest head's Flat index (when planned) and re-scores from the
        full head's Flat index (when planned) and from the compact index."""
        size = len(corpus.hidden)
        reported, tuning = queries.reported[: self.queries], queries.tuning[: self.queries]
        full_truth = self.truth(corpus, heads[FULL_HEAD], reported, tuning)
        small_head = min(heads, key=lambda name: heads[name].out_features)
        rows: list[SearchRow] = []
        kept: dict[str, tuple[VectorIndex, float]] = {}
        bar = tqdm(total=sum(len(types) for types in plan.values()), desc=f"indexes @ {size:,}", unit="index")
        for name, index_types in plan.items():
            head = heads[name]
            vectors, head_reported, head_tuning = (project(x, head) for x in (corpus.hidden, reported, tuning))
            truth = full_truth if name == FULL_HEAD else self.truth(corpus, head, reported, tuning)
            for index_type in index_types:
                tuned = self.tune(index_type, vectors, head_tuning, truth[1], name)
                bar.update(1)
                if tuned is None:
                    continue
                index, setting, build_s, tune_recall = tuned

                def search(batch: np.ndarray, index: VectorIndex = index) -> np.ndarray:
                    return index.search(batch, self.k)[1]

                option = (name, vectors.shape[1], index_type, setting)
                reported_truth = (truth[0], full_truth[0])
                rows.append(
                    self.measure(
                        corpus, option, build_s, index_bytes(index), search, head_reported, reported_truth, tune_recall
                    )
                )
                if index_type == "Flat" and name in (small_head, FULL_HEAD):
                    kept[name] = (index, build_s)
        bar.close()
        rows += self.composites(corpus, (reported, tuning), heads, kept, small_head, full_truth)
        return rows

    def truth(
        self, corpus: Corpus, head: nn.Linear, reported: np.ndarray, tuning: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k ids of the head for the reported and the tuning queries (one pass over the corpus)."""
        ids = exact_top_k(corpus.hidden, head, project(np.concatenate([reported, tuning]), head), self.k)
        return ids[: len(reported)], ids[len(reported) :]

    def composites(
        self,
        corpus: Corpus,
        queries: tuple[np.ndarray, np.ndarray],
        heads: dict[str, nn.Linear],
        flat: dict[str, tuple[VectorIndex, float]],
        small_head: str,
        full_truth: tuple[np.ndarray, np.ndarray],
    ) -> list[SearchRow]:
        """Compact exact index, and funnel search (shortlist tuned) re-scoring from the full Flat index and from
        the compact one."""
        size = len(corpus.hidden)
        ids = np.arange(size, dtype=np.int64)
        full = heads[FULL_HEAD]
        full_queries = project(queries[0], full)
        compact = CompactFullHeadIndex.create(CompactFullHead.from_head(full))
        build = timed(lambda: compact.add(ids, corpus.hidden))
        found = compact.search(full_queries, self.k)[1]
        truth = full_truth[0]
        self.compact_checks.append(
            CompactCheck(
                size=size,
                full_dim=full.out_features,
                compact_dim=compact.head.dim,
                bytes_per_vector=index_bytes(compact.index) / size,
                full_flat_bytes_per_vector=4 * full.out_features + 8,  # IDMap2(Flat): float32 vector + int64 id
                identical_rankings=float(np.mean(np.all(found == truth, axis=1))),
                identical_sets=float(np.mean([set(a) == set(b) for a, b in zip(found, truth, strict=True)])),
            )
        )
        exact = recall_at_k(found, truth, self.k)
        rows = [
            self.measure(
                corpus,
                (FULL_HEAD, full.out_features, "compact", f"Flat over {compact.head.dim}-d"),
                build.wall,
                index_bytes(compact.index),
                lambda q: compact.search(q, self.k)[1],
                full_queries,
                (truth, truth),
                exact,
            )
        ]
        if small_head not in flat:
            return rows
        small, small_build = flat[small_head]
        rescorers: dict[str, tuple[VectorIndex | CompactFullHeadIndex, float]] = {"compact": (compact, build.wall)}
        if FULL_HEAD in flat:
            rescorers = {"Flat": flat[FULL_HEAD], **rescorers}
        stacked = [np.concatenate([project(q, heads[small_head]), project(q, full)], axis=1) for q in queries]
        cut = heads[small_head].out_features
        first = next(iter(rescorers.values()))[0]

        def funnel(batch: np.ndarray, rescorer, shortlist: int) -> np.ndarray:
            return funnel_search(small, rescorer, batch[:, :cut], batch[:, cut:], self.k, shortlist)[1]

        tried: list[tuple[str, float]] = []
        chosen: int | None = None
        for shortlist in SHORTLISTS:
            recall = recall_at_k(funnel(stacked[1], first, shortlist), full_truth[1], self.k)
            tried.append((f"shortlist={shortlist}", round(recall, 4)))
            if recall >= TARGET_RECALL:
                chosen = shortlist
                break
        name = f"{small_head}->{FULL_HEAD}"
        self.tunings.append(Tuning(size, name, "funnel", tried[-1][0] if chosen else None, tried))
        if chosen is None:
            return rows
        for label, (rescorer, rescorer_build) in rescorers.items():
            nbytes = index_bytes(small) + index_bytes(rescorer.index if label == "compact" else rescorer)
            rows.append(
                self.measure(
                    corpus,
                    (name, full.out_features, f"funnel ({label})", tried[-1][0]),
                    small_build + rescorer_build,
                    nbytes,
                    lambda batch, rescorer=rescorer: funnel(batch, rescorer, chosen),
                    stacked[0],
                    (truth, truth),
                    tried[-1][1],
                )
            )
        return rows
