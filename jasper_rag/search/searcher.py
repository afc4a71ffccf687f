"""The searcher: queries -> hits with text, score, evidence, kind and source (file, page, chunk).

Three modes (``SearchOptions.mode``): ``dense`` ranks by the cosine of the model's vectors (one
forward pass embeds a query for every head; each entry kind has its own FAISS index per head),
``lexical`` by BM25 over the words (the store's tantivy index), ``hybrid`` (the default) fuses the
two: the union of both shortlists is re-scored exactly with the chosen head and fused
(``hybrid.hybrid_rank``). ``funnel=True`` takes the dense shortlist from the smallest head and
re-scores it with the chosen one. Filters (kinds, file types, a folder prefix) are applied inside
both searches, so a filtered query returns ``k`` hits whenever ``k`` entries match: the store hands each
search one ``SearchScope``, which FAISS and tantivy read as the entry ids SQL resolves it to and Milvus as
an expression on its scalar fields.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import faiss
import numpy as np

from jasper_rag.config import Settings, get_settings
from jasper_rag.encoder import JasperEncoder, load_encoder
from jasper_rag.search.hybrid import hybrid_rank
from jasper_rag.search.options import SearchOptions
from jasper_rag.store import EntryView, Store, StoreModelMismatchError, embed_heads, model_identity
from jasper_rag.store.lexical_index import QueryWords
from jasper_rag.store.vectors import EntryFilter, SearchScope

log = logging.getLogger(__name__)


class EmptyStoreError(RuntimeError):
    """The store has no vectors yet."""


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


@dataclass(frozen=True, kw_only=True)
class Hit(EntryView):
    """One search result: the stored entry (text, kind, source file, page, chunk), its score and evidence.

    ``score`` ranks the hits of the search's ``mode``: the cosine (dense), BM25 (lexical) or the fused
    score (hybrid). ``cosine`` is the dense cosine with the chosen head, ``bm25`` the lexical score
    (None when that side did not score the entry); ``dense_rank`` / ``lexical_rank`` are 1-based
    places among the candidates (None: not ranked there); ``matched`` the query words found in the text.
    """

    score: float
    mode: str = "dense"
    cosine: float | None = None
    bm25: float | None = None
    dense_rank: int | None = None
    lexical_rank: int | None = None
    matched: tuple[str, ...] = ()

    @classmethod
    def from_entry(cls, entry: EntryView, score: float, **evidence: Any) -> Hit:
        return cls(**asdict(entry), score=float(score), **evidence)

    @property
    def chunk(self) -> int:
        """The entry's position in its file (chunk number)."""
        return self.ordinal

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, with ``chunk`` beside the entry's ``ordinal``."""
        return {**asdict(self), "matched": list(self.matched), "chunk": self.chunk}


@contextmanager
def faiss_threads(count: int):
    """Temporarily limit FAISS's OpenMP threads (single queries run faster on one thread)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class Searcher:
    """Search one store with the encoder that built it."""

    def __init__(
        self, store: Store, encoder: JasperEncoder, batch_size: int = 32, options: SearchOptions | None = None
    ) -> None:
        self.store = store
        self.encoder = encoder
        self.batch_size = batch_size
        self.options = options or SearchOptions()  # the defaults of every search; calls override them
        self.identity = model_identity(encoder)  # hashing the weights takes ~0.2 s: once, not per search
        self._check_model()

    @classmethod
    def open(
        cls, settings: Settings | None = None, model: str | None = None, options: SearchOptions | None = None
    ) -> Searcher:
        """The configured store with the configured model (``JASPER_MODEL``, ``JASPER_DB_URL``...)."""
        settings = settings or get_settings()
        return cls(Store.open(settings), load_encoder(model or settings.model), settings.batch_size, options)

    def _check_model(self) -> None:
        recorded = self.store.model
        if recorded is None:
            return
        current = self.identity
        if recorded.fingerprint != current.fingerprint:
            raise StoreModelMismatchError(
                f"the index in {self.store.index_dir} was built by model '{recorded.source}' "
                f"(fingerprint {recorded.fingerprint}), not by the loaded '{current.source}' "
                f"(fingerprint {current.fingerprint}): re-ingest with `jasper-rag ingest --rebuild` "
                "or load the model that built it"
            )

    # ----------------------------------------------------------------- facts
    @property
    def heads(self) -> dict[str, int]:
        """Head name -> dimension of the indexes in the store."""
        return self.store.heads

    def head_for(self, dim: int | None) -> str:
        """The head of ``dim`` (None = the largest, i.e. the full head)."""
        heads = self.heads
        if not heads:
            raise EmptyStoreError("the index is empty: ingest documents first (`make ingest` or `jasper-rag ingest`)")
        if dim is None:
            return max(heads, key=heads.__getitem__)
        for head, size in heads.items():
            if size == dim:
                return head
        raise ValueError(f"no index of dimension {dim}; available: {sorted(heads.values())}")

    def funnel_head(self, dim: int | None = None) -> str:
        """The head that shortlists in a funnel search: ``dim``'s, or the smallest."""
        return self.head_for(dim) if dim is not None else min(self.heads, key=self.heads.__getitem__)

    def kinds(self) -> list[str]:
        return self.store.kinds()

    # ----------------------------------------------------------------- search
    def embed_queries(self, queries: Sequence[str]) -> dict[str, np.ndarray]:
        """Unit query vectors for every head, from one forward pass."""
        return embed_heads(self.encoder, list(queries), batch_size=self.batch_size)

    def search(
        self, query: str, k: int | None = None, *, options: SearchOptions | None = None, **changes: Any
    ) -> list[Hit]:
        """Top-``k`` hits for one query; ``options`` and ``changes`` as in ``search_batch``."""
        return self.search_batch([query], k, options=options, **changes)[0]

    def resolve(self, options: SearchOptions | None = None, k: int | None = None, **changes: Any) -> SearchOptions:
        """The options a call runs with: ``options`` (or the searcher's) with ``k`` and ``changes`` applied."""
        if k is not None:
            changes["k"] = k
        return (options or self.options).with_changes(**changes)

    def search_batch(
        self, queries: Sequence[str], k: int | None = None, *, options: SearchOptions | None = None, **changes: Any
    ) -> list[list[Hit]]:
        """Top-``k`` hits per query, best first.

        Options (``SearchOptions`` fields, given as ``options`` and/or keywords): ``mode`` dense /
        lexical / hybrid; ``fusion`` mix / rrf with ``dense_weight`` / ``rrf_k``; ``dim`` picks the
        head (None = full); ``kinds`` chunk / image / faq; ``file_types`` (e.g. ``["pdf", "md"]``);
        ``path_prefix`` (a folder of the ingested tree); ``funnel`` shortlists with the ``funnel_dim``
        head (default: the smallest); ``shortlist`` candidates per side.
        """
        opts = self.resolve(options, k, **changes)
        self.store.refresh()  # pick up ingests made since the last search
        self._check_model()
        head = self.head_for(opts.dim)
        vectors = None if opts.mode == "lexical" else self.embed_queries(queries)
        return self._search(list(queries), vectors, head, opts)

    def search_vectors(self, vectors: dict[str, np.ndarray], options: SearchOptions) -> list[list[Hit]]:
        """Dense search with precomputed unit query vectors (per head), e.g. of an image query."""
        self.store.refresh()
        self._check_model()
        opts = options.with_changes(mode="dense")
        return self._search(None, vectors, self.head_for(opts.dim), opts)

    # ----------------------------------------------------------------- internals
    def _mode(self, mode: str) -> str:
        """``mode``, or ``dense`` when the store has no lexical index yet (stores made before it existed)."""
        if mode != "dense" and self.store.lexical() is None:
            if mode == "lexical":
                raise EmptyStoreError(
                    f"the store in {self.store.index_dir} has no lexical index yet: run `jasper-rag ingest` "
                    "or `jasper-rag doctor --repair` once to build it"
                )
            log.warning(
                "no lexical index in %s yet: searching dense only (ingest once to build it)", self.store.index_dir
            )
            return "dense"
        return mode

    def _search(
        self, queries: list[str] | None, vectors: dict[str, np.ndarray] | None, head: str, opts: SearchOptions
    ) -> list[list[Hit]]:
        mode = self._mode(opts.mode)
        opts = opts.with_changes(mode=mode)
        count = len(queries) if queries is not None else len(next(iter(vectors.values())))
        available = self.store.kinds()
        kinds = [kind for kind in (opts.kinds or available) if kind in available]
        scope = self.store.scope(EntryFilter.of(opts.file_types, opts.path_prefix))
        if not kinds:
            return [[] for _ in range(count)]
        depth = opts.k if mode == "dense" and not opts.funnel else max(opts.shortlist, opts.k)
        dense_head = self.funnel_head(opts.funnel_dim) if opts.funnel else head
        empty_ids = np.full((count, 0), -1, dtype=np.int64)
        dense_ids, kind_of = empty_ids, {}
        if mode != "lexical":
            dense_ids, kind_of = self._dense_shortlist(vectors[dense_head], dense_head, kinds, depth, scope)
        lexical_ids, lexical_scores = empty_ids, np.zeros((count, 0), dtype=np.float32)
        if mode != "dense":
            lexical_scores, lexical_ids = self.store.lexical().search(queries, depth, kinds, scope)
            unknown = {int(i) for i in lexical_ids[lexical_ids >= 0]} - kind_of.keys()
            if len(kinds) == 1:  # the lexical search was limited to that kind
                kind_of.update(dict.fromkeys(unknown, kinds[0]))
            else:
                kind_of.update(self.store.kinds_of(sorted(unknown)))
        results = []
        for row in range(count):
            words = QueryWords(queries[row]) if mode != "dense" else None
            query_vector = vectors[head][row] if vectors is not None else None
            ids, scores, evidence = hybrid_rank(
                dense_ids[row],
                lambda found, q=query_vector: self._exact_scores(found, q, head, kind_of),
                lexical_ids[row],
                lexical_scores[row],
                opts,
            )
            entries = {entry.id: entry for entry in self.store.fetch(ids)}
            hits = []
            for place, entry_id in enumerate(ids):
                entry = entries.get(int(entry_id))
                if entry is None:
                    continue
                hits.append(
                    Hit.from_entry(
                        entry,
                        scores[place],
                        mode=mode,
                        cosine=_finite(evidence.dense[place]),
                        bm25=_finite(evidence.lexical[place]),
                        dense_rank=int(evidence.dense_rank[place]) or None,
                        lexical_rank=int(evidence.lexical_rank[place]) or None,
                        matched=tuple(words.found_in(entry.text)) if words is not None else (),
                    )
                )
            results.append(hits)
        return results

    def _dense_shortlist(
        self, queries: np.ndarray, head: str, kinds: list[str], depth: int, scope: SearchScope | None
    ) -> tuple[np.ndarray, dict[int, str]]:
        """The best ``depth`` ids per query over the kinds' indexes of ``head``, and each id's kind."""
        count = len(queries)
        scores, ids, kind_of = [], [], {}
        with faiss_threads(1 if count == 1 else faiss.omp_get_max_threads()):
            for kind in kinds:
                found_scores, found_ids = self.store.index(kind, head).search(queries, depth, scope)
                scores.append(found_scores)
                ids.append(found_ids)
                kind_of.update((int(i), kind) for i in found_ids[found_ids >= 0])
        scores, ids = np.concatenate(scores, axis=1), np.concatenate(ids, axis=1)
        scores = np.where(ids >= 0, scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
        return np.take_along_axis(ids, order, axis=1), kind_of

    def _exact_scores(self, ids: np.ndarray, query: np.ndarray, head: str, kind_of: dict[int, str]) -> np.ndarray:
        """Cosines of ``query`` with the stored ``head`` vectors of ``ids`` (nan where an id has none)."""
        scores = np.full(len(ids), np.nan)
        by_kind: dict[str, list[int]] = {}
        for row, entry_id in enumerate(ids):
            kind = kind_of.get(int(entry_id))
            if kind is not None:
                by_kind.setdefault(kind, []).append(row)
        for kind, rows in by_kind.items():
            try:
                index = self.store.index(kind, head)
            except KeyError:
                continue
            rows_array = np.asarray(rows)
            try:
                scores[rows_array] = index.reconstruct(ids[rows_array]) @ query
            except KeyError:  # an id without a vector (the store changed under us): score the others
                for row in rows:
                    try:
                        scores[row] = float(index.reconstruct(ids[row : row + 1])[0] @ query)
                    except KeyError:
                        continue
        return scores
