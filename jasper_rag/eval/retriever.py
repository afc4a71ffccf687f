"""The retriever section of ``make eval``: what the product's search modes find on retrieval tasks.

For every retrieval task (e.g. SciFact) and every candidate encoder, the queries are answered the way
the searcher answers them with its default ``SearchOptions`` (``jasper_rag.search.hybrid.hybrid_rank``):

- ``dense``: the top-``shortlist`` documents by cosine with the candidate's vectors;
- ``hybrid-mix`` / ``hybrid-minmax`` / ``hybrid-rrf``: the union of that dense shortlist and the
  lexical (BM25) shortlist, every candidate scored exactly with the encoder, fused with the default
  equal mix (``dense_weight`` 0.5) of max-scaled or min-max-scaled scores, or reciprocal-rank fusion
  (``rrf_k`` 60); nothing is tuned on the test queries;
- ``lexical``: BM25 alone (tantivy, English analysis: the store's ``LexicalIndex``), once per task;
- ``funnel ...`` (models with several heads): the dense shortlist comes from the smallest head and the
  largest head scores every candidate (the searcher's ``funnel=True``), then the same modes;
- ``hybrid-mix, weight tuned on half A``: the one variant with a tuned setting. The judged queries
  are split in two seeded halves; ``dense_weight`` is picked from ``TUNE_GRID`` on half A and both
  the default mix and the tuned one are scored on half B only, beside the min-max mix (``mix``'s
  scaling was chosen over min-max on half A: half B is the held-out comparison).

Rankings are cut at ``top_k`` (100), scored by nDCG@10 and Recall@100 (x100) like the dense table.
``dense_cost`` is the dense work per query in millions of multiply-adds: a full scan of the corpus with
the shortlisting head plus exact re-scoring (with the scoring head) of the candidates that scan did
not score (the lexical-only ones; with a funnel, every candidate).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jasper_rag.embedding import TextEncoder, for_role, normalize_rows
from jasper_rag.eval.candidates import Candidate
from jasper_rag.eval.encoders import PCAEncoder
from jasper_rag.eval.metrics import ndcg_at_k, recall_at_k
from jasper_rag.eval.runner import not_cached
from jasper_rag.eval.tasks import RetrievalTask, Task
from jasper_rag.search.hybrid import hybrid_rank
from jasper_rag.search.options import SearchOptions
from jasper_rag.store.lexical_index import LexicalIndex

log = logging.getLogger(__name__)

DEFAULTS = SearchOptions()  # the product's defaults: hybrid, equal mix, RRF k 60, shortlist 100
MODES: dict[str, SearchOptions] = {
    "dense": DEFAULTS.with_changes(mode="dense"),
    "hybrid-mix": DEFAULTS.with_changes(mode="hybrid", fusion="mix"),
    "hybrid-minmax": DEFAULTS.with_changes(mode="hybrid", fusion="minmax"),
    "hybrid-rrf": DEFAULTS.with_changes(mode="hybrid", fusion="rrf"),
}
LEXICAL_MODEL = "lexical: BM25 (tantivy)"
TUNED_MODE = "hybrid-mix, weight tuned on half A"
TUNE_GRID = (0.3, 0.4, 0.5, 0.6, 0.7)
SPLIT_SEED = 0
ALL_QUERIES = "all"
HALF_B = f"half B (seed {SPLIT_SEED})"


@dataclass(frozen=True)
class RetrieverRow:
    """One (candidate, mode) on one retrieval task; scores x100 over ``queries`` (all, or half B)."""

    model: str
    head_dim: int
    task: str
    mode: str
    ndcg_at_10: float
    recall_at_100: float
    queries: str = ALL_QUERIES
    dense_cost: float | None = None
    settings: str = ""


def settings_text(options: SearchOptions) -> str:
    if options.mode == "dense":
        return f"shortlist {options.shortlist}"
    if options.mode == "lexical":
        return f"BM25 top {options.shortlist}"
    fusion = f"rrf k={options.rrf_k}" if options.fusion == "rrf" else f"{options.fusion} w={options.dense_weight:g}"
    return f"{fusion}, shortlists {options.shortlist}+{options.shortlist}"


class TaskRetrieval:
    """One retrieval task's lexical index, BM25 shortlists, query halves and scoring."""

    def __init__(self, task: RetrievalTask, shortlist: int = DEFAULTS.shortlist) -> None:
        self.task = task
        self.k = min(task.top_k, len(task.doc_ids))
        self.shortlist = max(shortlist, self.k)
        docs = [task.data.corpus[i] for i in task.doc_ids]
        self.queries = [task.data.queries[i] for i in task.query_ids]
        self.index = LexicalIndex(None)
        self.index.add(range(len(docs)), ["doc"] * len(docs), docs)
        self.index.commit()
        started = time.perf_counter()
        self.lexical_scores, self.lexical_ids = self.index.search(self.queries, self.shortlist)
        self.lexical_ms = 1000 * (time.perf_counter() - started) / max(len(self.queries), 1)
        order = np.random.default_rng(SPLIT_SEED).permutation(len(self.queries))
        self.half_a = np.sort(order[: len(order) // 2])
        self.half_b = np.sort(order[len(order) // 2 :])

    # ----------------------------------------------------------------- ranking
    def embed(self, encoder: TextEncoder, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Unit (document, query) vectors, as the dense table computes them."""
        docs = [self.task.data.corpus[i] for i in self.task.doc_ids]
        doc_vectors = for_role(encoder, "passage").encode(docs, batch_size=batch_size)
        query_vectors = for_role(encoder, "query").encode(self.queries, batch_size=batch_size)
        return normalize_rows(doc_vectors), normalize_rows(query_vectors)

    def rank(
        self,
        scoring: tuple[np.ndarray, np.ndarray] | None,
        options: SearchOptions,
        shortlisting: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[list[np.ndarray], float | None]:
        """Ranked document positions per query, and the mean dense cost (M multiply-adds per query).

        ``scoring`` = (docs, queries) of the head that scores; ``shortlisting`` those of the head that
        makes the dense shortlist (default: the same, i.e. no funnel)."""
        shortlisting = shortlisting or scoring
        rankings: list[np.ndarray] = []
        costs: list[float] = []
        for row in range(len(self.queries)):
            dense_ids = np.zeros(0, dtype=np.int64)
            scores_of = _no_dense
            if options.mode != "lexical" and scoring is not None and shortlisting is not None:
                coarse = shortlisting[0] @ shortlisting[1][row]
                top = (
                    np.argpartition(-coarse, self.shortlist - 1)[: self.shortlist]
                    if self.shortlist < len(coarse)
                    else np.arange(len(coarse))
                )
                dense_ids = top[np.argsort(-coarse[top], kind="stable")]
                scores_of = _Rescorer(scoring[0], scoring[1][row])
            ids, _, _ = hybrid_rank(
                dense_ids, scores_of, self.lexical_ids[row], self.lexical_scores[row], options, k=self.k
            )
            rankings.append(ids)
            if isinstance(scores_of, _Rescorer):
                full_scan = shortlisting is scoring
                rescored = scores_of.count - (len(dense_ids) if full_scan else 0)
                costs.append(len(shortlisting[0]) * shortlisting[0].shape[1] + rescored * scoring[0].shape[1])
        return rankings, (float(np.mean(costs)) / 1e6 if costs else None)

    def score(self, rankings: Sequence[np.ndarray], rows: np.ndarray | None = None) -> tuple[float, float]:
        """Mean nDCG@10 and Recall@100 (x100) over ``rows`` (default: every judged query)."""
        rows = np.arange(len(rankings)) if rows is None else rows
        ndcg, recall = [], []
        for row in rows:
            ranking = [self.task.doc_ids[i] for i in rankings[row]]
            qrels = self.task.data.qrels[self.task.query_ids[row]]
            ndcg.append(ndcg_at_k(ranking, qrels, 10))
            recall.append(recall_at_k(ranking, qrels, 100))
        return 100 * float(np.mean(ndcg)), 100 * float(np.mean(recall))

    # ----------------------------------------------------------------- rows
    def lexical_row(self) -> RetrieverRow:
        options = DEFAULTS.with_changes(mode="lexical")
        rankings, _ = self.rank(None, options)
        ndcg, recall = self.score(rankings)
        return RetrieverRow(LEXICAL_MODEL, 0, self.task.name, "lexical", ndcg, recall, settings=settings_text(options))

    def mode_rows(
        self,
        model: str,
        head_dim: int,
        scoring: tuple[np.ndarray, np.ndarray],
        shortlisting: tuple[np.ndarray, np.ndarray] | None = None,
        prefix: str = "",
    ) -> list[RetrieverRow]:
        rows = []
        for mode, options in MODES.items():
            rankings, cost = self.rank(scoring, options, shortlisting)
            ndcg, recall = self.score(rankings)
            settings = settings_text(options)
            if shortlisting is not None:
                settings += f"; dense shortlist by the {shortlisting[0].shape[1]}-d head"
            rows.append(
                RetrieverRow(model, head_dim, self.task.name, prefix + mode, ndcg, recall, ALL_QUERIES, cost, settings)
            )
        return rows

    def tuned_rows(self, model: str, head_dim: int, scoring: tuple[np.ndarray, np.ndarray]) -> list[RetrieverRow]:
        """The equal mix and the mix with ``dense_weight`` tuned on half A, both scored on half B
        (none when a half is empty: fewer than two judged queries)."""
        if len(self.half_a) == 0 or len(self.half_b) == 0:
            return []
        runs = {w: self.rank(scoring, MODES["hybrid-mix"].with_changes(dense_weight=w)) for w in TUNE_GRID}
        on_a = {w: self.score(rankings, self.half_a)[0] for w, (rankings, _) in runs.items()}
        best = max(TUNE_GRID, key=lambda w: (round(on_a[w], 6), -abs(w - DEFAULTS.dense_weight)))
        variants = {
            "hybrid-minmax": MODES["hybrid-minmax"],
            "hybrid-mix": MODES["hybrid-mix"],
            TUNED_MODE: MODES["hybrid-mix"].with_changes(dense_weight=best),
        }
        rows = []
        for mode, options in variants.items():
            rankings, cost = runs[options.dense_weight] if mode != "hybrid-minmax" else self.rank(scoring, options)
            ndcg, recall = self.score(rankings, self.half_b)
            settings = settings_text(options)
            if mode == TUNED_MODE:
                settings += f" (grid {', '.join(f'{w:g}' for w in TUNE_GRID)}; half A nDCG@10 {on_a[best]:.2f})"
            rows.append(RetrieverRow(model, head_dim, self.task.name, mode, ndcg, recall, HALF_B, cost, settings))
        return rows


def _no_dense(ids: np.ndarray) -> np.ndarray:
    raise AssertionError("lexical mode asked for dense scores")


class _Rescorer:
    """Exact dense scores of candidate ids for one query, counting how many were computed."""

    def __init__(self, docs: np.ndarray, query: np.ndarray) -> None:
        self.docs, self.query, self.count = docs, query, 0

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        self.count += len(ids)
        return self.docs[ids] @ self.query


def funnel_pairs(candidates: Sequence[Candidate]) -> dict[int, int]:
    """For each multi-head model: candidate index of its largest head -> that of its smallest."""
    families: dict[str, list[int]] = {}
    for position, candidate in enumerate(candidates):
        if candidate.family:
            families.setdefault(candidate.family, []).append(position)
    pairs = {}
    for members in families.values():
        dims = {candidates[i].head_dim for i in members}
        if len(dims) >= 2:
            largest = max(members, key=lambda i: candidates[i].head_dim)
            pairs[largest] = min(members, key=lambda i: candidates[i].head_dim)
    return pairs


def evaluate_retrievers(
    candidates: Sequence[Candidate],
    tasks: Sequence[Task],
    batch_size: int = 32,
    pca_sample: int = 2000,
    cached_only: bool = False,
) -> tuple[list[RetrieverRow], list[str]]:
    """Retriever rows for every retrieval task in ``tasks`` (others are ignored), plus notes.

    With ``cached_only``, candidates whose vectors are not all cached are left out (the dense table
    notes them already)."""
    rows: list[RetrieverRow] = []
    notes: list[str] = []
    for task in tasks:
        if isinstance(task, RetrievalTask):
            run = TaskRetrieval(task)
            rows.append(run.lexical_row())
            notes.append(f"{task.name}: BM25 answered in {run.lexical_ms:.2f} ms per query (tantivy, in memory)")
            rows += _candidate_rows(run, candidates, batch_size, pca_sample, cached_only)
    return rows, notes


def _candidate_rows(
    run: TaskRetrieval, candidates: Sequence[Candidate], batch_size: int, pca_sample: int, cached_only: bool
) -> list[RetrieverRow]:
    task, texts = run.task, run.task.texts()
    pairs = funnel_pairs(candidates)
    vectors: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def vectors_of(position: int) -> tuple[np.ndarray, np.ndarray] | None:
        candidate = candidates[position]
        if position not in vectors:
            if cached_only and any(not_cached(source, texts) for source in candidate.sources):
                return None
            if isinstance(candidate.encoder, PCAEncoder):
                candidate.encoder.fit(task.corpus_sample(pca_sample), batch_size=batch_size)
            vectors[position] = run.embed(candidate.encoder, batch_size)
        return vectors[position]

    rows: list[RetrieverRow] = []
    for position, candidate in enumerate(candidates):
        found = vectors_of(position)
        if found is None:
            continue
        log.info("retriever: %s %d-d on %s", candidate.model, candidate.head_dim, task.name)
        rows += run.mode_rows(candidate.model, candidate.head_dim, found)
        small = pairs.get(position)
        small_vectors = vectors_of(small) if small is not None else None
        if small is not None and small_vectors is not None:
            label = f"{candidates[small].head_dim}->{candidate.head_dim}"
            rows += run.mode_rows(candidate.model, candidate.head_dim, found, small_vectors, f"funnel {label} ")
        rows += run.tuned_rows(candidate.model, candidate.head_dim, found)
        for done in [p for p in vectors if p != small]:
            vectors.pop(done)  # memory stays flat: one candidate's vectors at a time (plus a funnel's small head)
    return rows
