"""The searcher: queries -> hits with text, raw cosine score, kind and source (file, page, chunk).

One forward pass embeds a query for every head; each entry kind (chunk / image / faq) has its own
index per head, and hits of several kinds are merged by score. ``funnel=True`` shortlists with the
smallest head and re-scores with the chosen head (see ``funnel.py``). Scores are raw cosines.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any

import faiss
import numpy as np

from jasper_rag.config import Settings, get_settings
from jasper_rag.encoder import JasperEncoder, load_encoder
from jasper_rag.search.funnel import funnel_search
from jasper_rag.store import EntryView, Store, StoreModelMismatchError, embed_heads, model_identity

log = logging.getLogger(__name__)

DEFAULT_SHORTLIST = 100


class EmptyStoreError(RuntimeError):
    """The store has no vectors yet."""


@dataclass(frozen=True, kw_only=True)
class Hit(EntryView):
    """One search result: the stored entry (text, kind, source file, page, chunk) and its raw cosine."""

    score: float

    @classmethod
    def from_entry(cls, entry: EntryView, score: float) -> Hit:
        return cls(**asdict(entry), score=float(score))

    @property
    def chunk(self) -> int:
        """The entry's position in its file (chunk number)."""
        return self.ordinal

    def matches_type(self, types: set[str]) -> bool:
        """True when the hit's file type (``markdown``) or extension (``md``) is in ``types``."""
        return self.file_type.lower() in types or PurePath(self.path).suffix.lower().lstrip(".") in types

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, with ``chunk`` beside the entry's ``ordinal``."""
        return {**asdict(self), "chunk": self.chunk}


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

    def __init__(self, store: Store, encoder: JasperEncoder, batch_size: int = 32) -> None:
        self.store = store
        self.encoder = encoder
        self.batch_size = batch_size
        self.identity = model_identity(encoder)  # hashing the weights takes ~0.2 s: once, not per search
        self._check_model()

    @classmethod
    def open(cls, settings: Settings | None = None, model: str | None = None) -> Searcher:
        """The configured store with the configured model (``JASPER_MODEL``, ``JASPER_DB_URL``...)."""
        settings = settings or get_settings()
        return cls(Store.open(settings), load_encoder(model or settings.model), settings.batch_size)

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

    def search(self, query: str, k: int = 10, **options: Any) -> list[Hit]:
        """Top-``k`` hits for one query; see ``search_batch`` for the options."""
        return self.search_batch([query], k=k, **options)[0]

    def search_batch(
        self,
        queries: Sequence[str],
        k: int = 10,
        dim: int | None = None,
        kinds: Sequence[str] | None = None,
        file_types: Sequence[str] | None = None,
        funnel: bool = False,
        shortlist: int = DEFAULT_SHORTLIST,
        funnel_dim: int | None = None,
    ) -> list[list[Hit]]:
        """Top-``k`` hits per query, best first.

        ``dim`` picks the head (None = full); ``kinds`` limits to chunk / image / faq; ``file_types``
        keeps hits from files of those types (e.g. ``["pdf", "md"]``); ``funnel`` shortlists
        ``shortlist`` candidates with the ``funnel_dim`` head (default: the smallest) and re-scores
        them with the chosen head.
        """
        if k <= 0:
            raise ValueError("k must be positive")
        self.store.refresh()  # pick up ingests made since the last search
        self._check_model()
        head = self.head_for(dim)
        vectors = self.embed_queries(queries)
        small = self.funnel_head(funnel_dim) if funnel else None
        return self.search_vectors(vectors, k, head, kinds, file_types, small, shortlist)

    def search_vectors(
        self,
        vectors: dict[str, np.ndarray],
        k: int,
        head: str,
        kinds: Sequence[str] | None = None,
        file_types: Sequence[str] | None = None,
        funnel_head: str | None = None,
        shortlist: int = DEFAULT_SHORTLIST,
    ) -> list[list[Hit]]:
        """Search with precomputed unit query vectors (per head): used for text and image queries.

        With ``funnel_head``, candidates are shortlisted with that head and re-scored with ``head``."""
        available = self.store.kinds()
        wanted = [kind for kind in (kinds or available) if kind in available]
        count = len(vectors[head])
        merged: list[list[tuple[float, int]]] = [[] for _ in range(count)]
        allowed_types = {t.lower().lstrip(".") for t in file_types} if file_types else None
        fetch = k if allowed_types is None else 4 * k
        with faiss_threads(1 if count == 1 else faiss.omp_get_max_threads()):
            for kind in wanted:
                scores, ids = self._search_kind(kind, vectors, head, fetch, funnel_head, shortlist)
                for row in range(count):
                    merged[row].extend((float(s), int(i)) for s, i in zip(scores[row], ids[row], strict=True) if i >= 0)
        results: list[list[Hit]] = []
        for row_hits in merged:
            row_hits.sort(key=lambda pair: -pair[0])
            entries = {entry.id: entry for entry in self.store.fetch(i for _, i in row_hits)}
            hits = [Hit.from_entry(entries[i], s) for s, i in row_hits if i in entries]
            if allowed_types is not None:
                hits = [hit for hit in hits if hit.matches_type(allowed_types)]
            results.append(hits[:k])
        return results

    def _search_kind(
        self, kind: str, vectors: dict[str, np.ndarray], head: str, k: int, funnel_head: str | None, shortlist: int
    ) -> tuple[np.ndarray, np.ndarray]:
        index = self.store.index(kind, head)
        if funnel_head is None or funnel_head == head:
            return index.search(vectors[head], k)
        small = self.store.index(kind, funnel_head)
        return funnel_search(small, index, vectors[funnel_head], vectors[head], k, shortlist)
