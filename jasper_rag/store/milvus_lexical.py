"""The lexical (BM25) side of the Milvus backend: full-text search in the store's own Milvus collection.

Every row of the collection (one per embedded entry, ``milvus_vectors``) also holds ``terms``: the entry's
text analysed on the client by the tantivy index's English analysis (``lexical_index.terms``: words,
lower-cased, long words and English stop words dropped, Snowball stems), joined by spaces. Milvus's BM25
function turns them into the sparse vector ``bm25``, searched through an inverted index with tantivy's
BM25 settings (k1 1.2, b 0.75). Queries are analysed the same way (their first distinct terms, as
tantivy searches them). Milvus's own analyzers are not used: Milvus Lite 3.2.2 has no ``english``
analyzer and ignores stemming filters, so a Milvus server and Milvus Lite would index different terms.
Analysed on the client, both index exactly the terms the tantivy index would; Milvus only splits them
again at the spaces (its ``standard`` tokenizer; a server also splits runs of CJK characters).

The terms are written in the same upsert as the vectors, so the two sides hold the same rows: the
vectors' commit protocol, cleanup and ``doctor`` cover both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from jasper_rag.store.lexical_index import query_terms, terms
from jasper_rag.store.milvus_common import MAX_LIMIT, filter_expression, literal, stored_ids

if TYPE_CHECKING:
    from jasper_rag.store.vectors import SearchScope

TERMS_FIELD = "terms"
SPARSE_FIELD = "bm25"
ANALYZER = {"tokenizer": "standard"}  # splits the client's terms at the spaces
BM25_PARAMS = {"bm25_k1": 1.2, "bm25_b": 0.75}  # tantivy's
TERMS_BYTES = 65535  # Milvus's longest VARCHAR


def analysed(text: str) -> str:
    """The analysed terms of ``text`` joined by spaces, cut after the last whole term that fits a VARCHAR."""
    kept, size = [], -1
    for term in terms(text):
        size += len(term.encode()) + 1
        if size > TERMS_BYTES:
            break
        kept.append(term)
    return " ".join(kept)


class MilvusLexical:
    """BM25 search over the ``terms`` of one Milvus collection (the ``LexicalSearch`` of the Milvus backend)."""

    def __init__(self, client, collection: str) -> None:
        self.client = client
        self.collection = collection

    def ids(self) -> np.ndarray:
        """Every entry id with terms, sorted (every row of the collection)."""
        return np.sort(stored_ids(self.client, self.collection))

    def search(
        self, queries: Sequence[str], k: int, kinds: Sequence[str] | None = None, scope: SearchScope | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(BM25 scores, ids)`` per query, padded with ``-inf`` / ``-1``.

        ``kinds`` limits to entry kinds; ``scope`` to the entries its filter matches (an expression)."""
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        words = [" ".join(query_terms(query)) for query in queries]
        rows = [row for row, text in enumerate(words) if text]
        if not rows:
            return scores, ids
        where = []
        if kinds is not None:
            where.append(f"kind in [{', '.join(literal(kind) for kind in kinds)}]")
        if scope is not None:
            where.append(filter_expression(scope.where))
        results = self.client.search(
            self.collection,
            data=[words[row] for row in rows],
            anns_field=SPARSE_FIELD,
            limit=min(k, MAX_LIMIT),
            filter=" and ".join(where),
            search_params={"metric_type": "BM25"},
            output_fields=["id"],
        )
        for row, hits in zip(rows, results, strict=True):
            for place, hit in enumerate(hits):
                # Milvus Lite 3.2.2 reports BM25 scores negated (a server, positive); BM25 is never negative
                ids[row, place], scores[row, place] = hit["id"], abs(hit["distance"])
        return scores, ids
