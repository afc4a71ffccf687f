"""Search per head dimension and index type: latency (single and batched), recall@10, bytes, build time.

Recall@10 is measured against exact search with the full head (the ground truth every cheaper
option is judged by). Single queries run on one thread (FAISS's OpenMP and numpy's BLAS limited
with ``threadpoolctl``); batched queries use every core. Besides the FAISS factories, two composite
options are measured:
``funnel`` (shortlist from the smallest head's Flat index, exact re-scoring with the full head)
and ``compact`` (``CompactFullHeadIndex``: exact full-head search from (hidden+1)-d vectors),
plus the funnel re-scoring from the compact index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
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

log = logging.getLogger(__name__)

NPROBE = 16  # IVF lists visited per query
# Note: FAISS's factory turns on polysemous training for "PQn" codes unless the string ends in "np"
# ("IVF256,PQ16np"); that training costs minutes of build time and only serves polysemous filtering,
# which is off unless ``polysemous_ht`` is set.
EF_SEARCH = 64  # HNSW candidate list size


@dataclass(frozen=True)
class SearchRow:
    """One (corpus size, head, index option) measurement."""

    size: int
    real_vectors: int
    head: str
    dim: int
    index: str
    params: str
    build_s: float
    bytes_per_vector: float
    recall_at_10: float
    single_p50_ms: float
    single_p95_ms: float
    batch_ms_per_query: Spread

    def to_json(self) -> dict[str, object]:
        return asdict(self)


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


def tune(index: VectorIndex) -> str:
    """Set the search-time parameters of approximate indexes; returns them as text for the report."""
    ivf = faiss.try_extract_index_ivf(index.index)
    if ivf is not None:
        ivf.nprobe = NPROBE
        return f"nprobe={NPROBE}"
    inner = faiss.downcast_index(index.index.index) if isinstance(index.index, faiss.IndexIDMap2) else None
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = EF_SEARCH
        return f"efSearch={EF_SEARCH}"
    return ""


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
    """Measures index options on one corpus with a fixed query set."""

    def __init__(self, queries: int, k: int = 10, shortlist: int = 100, batch_repeats: int = 3) -> None:
        self.queries = queries
        self.k = k
        self.shortlist = shortlist
        self.batch_repeats = batch_repeats
        self.compact_checks: list[CompactCheck] = []

    def measure(
        self,
        corpus: Corpus,
        option: tuple[str, int, str, str],
        build_s: float,
        nbytes: float,
        search: Searcher,
        queries: np.ndarray,
        truth: np.ndarray,
    ) -> SearchRow:
        """Latency (single on one thread, batched on all), recall and size of one option; ``option`` is
        (head, dim, index, params)."""
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
            recall_at_10=round(recall_at_k(found, truth, self.k), 4),
            single_p50_ms=round(single.p50_ms, 3),
            single_p95_ms=round(single.p95_ms, 3),
            batch_ms_per_query=Spread.of([1000 * seconds / len(queries) for seconds in batched]),
        )

    def run(
        self,
        corpus: Corpus,
        query_hidden: np.ndarray,
        heads: dict[str, nn.Linear],
        factories: Sequence[str],
        indexed_heads: Sequence[str] | None = None,
    ) -> list[SearchRow]:
        """Every factory on every head (or on ``indexed_heads``), then the compact and funnel options.

        The funnel shortlists from the smallest head's Flat index (when built) and re-scores from the
        full head's Flat index (when built) and from the compact index."""
        size = len(corpus.hidden)
        ids = np.arange(size, dtype=np.int64)
        query_hidden = query_hidden[: self.queries]
        full_queries = project(query_hidden, heads[FULL_HEAD])
        truth = exact_top_k(corpus.hidden, heads[FULL_HEAD], full_queries, self.k)
        small_head = min(heads, key=lambda name: heads[name].out_features)
        indexed = list(indexed_heads or heads)
        rows: list[SearchRow] = []
        kept: dict[str, tuple[VectorIndex, float]] = {}
        bar = tqdm(total=len(indexed) * len(factories), desc=f"indexes @ {size:,}", unit="index")
        for name in indexed:
            vectors, queries = project(corpus.hidden, heads[name]), project(query_hidden, heads[name])
            for factory in factories:
                index = VectorIndex.create(vectors.shape[1], factory)
                build = timed(lambda index=index, vectors=vectors: index.add(ids, vectors))
                params = tune(index)

                def search(batch: np.ndarray, index: VectorIndex = index) -> np.ndarray:
                    return index.search(batch, self.k)[1]

                option = (name, vectors.shape[1], factory, params)
                nbytes = index_bytes(index)
                rows.append(self.measure(corpus, option, build.wall, nbytes, search, queries, truth))
                if factory == "Flat" and name in (small_head, FULL_HEAD):
                    kept[name] = (index, build.wall)
                bar.update(1)
        bar.close()
        rows += self.composites(corpus, query_hidden, heads, kept, small_head, truth)
        return rows

    def composites(
        self,
        corpus: Corpus,
        query_hidden: np.ndarray,
        heads: dict[str, nn.Linear],
        flat: dict[str, tuple[VectorIndex, float]],
        small_head: str,
        truth: np.ndarray,
    ) -> list[SearchRow]:
        """Compact exact index, and funnel search re-scoring from the full Flat index and from the compact one."""
        size = len(corpus.hidden)
        ids = np.arange(size, dtype=np.int64)
        full = heads[FULL_HEAD]
        full_queries = project(query_hidden, full)
        compact = CompactFullHeadIndex.create(CompactFullHead.from_head(full))
        build = timed(lambda: compact.add(ids, corpus.hidden))
        found = compact.search(full_queries, self.k)[1]
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
        rows = [
            self.measure(
                corpus,
                (FULL_HEAD, full.out_features, "compact", f"Flat over {compact.head.dim}-d"),
                build.wall,
                index_bytes(compact.index),
                lambda q: compact.search(q, self.k)[1],
                full_queries,
                truth,
            )
        ]
        if small_head not in flat:
            return rows
        small, small_build = flat[small_head]
        small_queries = project(query_hidden, heads[small_head])
        stacked = np.concatenate([small_queries, full_queries], axis=1)
        cut = small_queries.shape[1]
        rescorers: dict[str, tuple[VectorIndex | CompactFullHeadIndex, float]] = {"compact": (compact, build.wall)}
        if FULL_HEAD in flat:
            rescorers = {"Flat": flat[FULL_HEAD], **rescorers}
        for label, (rescorer, rescorer_build) in rescorers.items():

            def search(batch: np.ndarray, rescorer=rescorer) -> np.ndarray:
                found = funnel_search(small, rescorer, batch[:, :cut], batch[:, cut:], self.k, self.shortlist)
                return found[1]

            nbytes = index_bytes(small) + index_bytes(rescorer.index if label == "compact" else rescorer)
            rows.append(
                self.measure(
                    corpus,
                    (
                        f"{small_head}->{FULL_HEAD}",
                        full.out_features,
                        f"funnel ({label})",
                        f"shortlist={self.shortlist}",
                    ),
                    small_build + rescorer_build,
                    nbytes,
                    search,
                    stacked,
                    truth,
                )
            )
        return rows
