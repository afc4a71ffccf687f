"""LangChain-core adapters: ``JasperEmbeddings`` (an ``Embeddings``) and ``JasperRetriever``.

The retriever's documents carry source, page, chunk id and the **raw cosine** score in their
metadata (LangChain's FAISS store converts inner products to a "relevance score" that has been
inverted in many versions; we never convert).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from jasper_rag.encoder import JasperEncoder
from jasper_rag.search.searcher import Hit, Searcher


class JasperEmbeddings(Embeddings):
    """Embed with one head of a JasperEncoder (``dim=None``: the pooled vector; ``dim=N``: the N-d head)."""

    def __init__(self, encoder: JasperEncoder, dim: int | None = None, batch_size: int = 32) -> None:
        encoder.head_for_dim(dim)  # fail early on an unknown dimension
        self.encoder = encoder
        self.dim = dim
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encoder.encode(texts, dim=self.dim, batch_size=self.batch_size).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def hit_to_document(hit: Hit) -> Document:
    """A LangChain document whose metadata cites the source and keeps the raw cosine."""
    metadata = {
        "source": hit.path,
        "page": hit.page,
        "chunk": hit.chunk,
        "id": hit.id,
        "kind": hit.kind,
        "file_type": hit.file_type,
        "score": hit.score,
    }
    if hit.answer is not None:
        metadata["answer"] = hit.answer
    return Document(page_content=hit.text, metadata=metadata)


class JasperRetriever(BaseRetriever):
    """A LangChain retriever over a ``Searcher`` (works in LCEL chains: ``retriever | format_docs``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    searcher: Searcher
    k: int = 4
    search_options: dict[str, Any] = Field(default_factory=dict)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [hit_to_document(hit) for hit in self.searcher.search(query, k=self.k, **self.search_options)]
