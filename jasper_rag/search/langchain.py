"""LangChain-core adapters: ``JasperEmbeddings`` (an ``Embeddings``) and ``JasperRetriever``.

The retriever takes every search option (``SearchOptions``: k, mode, fusion, dim, funnel, filters...)
at construction and, for one call only, at invoke time::

    retriever = JasperRetriever(searcher=searcher, k=4, mode="hybrid", file_types=["pdf"])
    retriever.invoke("query", k=1, mode="lexical")  # this call only

Its documents carry source, page, chunk id and the **raw** scores in their metadata (LangChain's
FAISS store converts inner products to a "relevance score" that has been inverted in many versions;
we never convert).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import AliasChoices, ConfigDict, Field, model_validator

from jasper_rag.encoder import JasperEncoder
from jasper_rag.search.options import SearchOptions, option_names
from jasper_rag.search.searcher import Hit, Searcher

# invoke() keywords that belong to LangChain's run machinery, not to the search
_RUN_KWARGS = frozenset({"verbose", "run_id"})


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


# optional Hit fields (hybrid search) -> metadata keys; added when the hit has a value
_OPTIONAL_METADATA = {
    "cosine": "cosine",
    "bm25": "bm25",
    "dense_rank": "dense_rank",
    "lexical_rank": "lexical_rank",
    "matched": "matched_terms",
    "mode": "mode",
    "answer": "answer",
    "heading": "heading",
}


def hit_to_document(hit: Hit) -> Document:
    """A LangChain document whose metadata cites the source and keeps the raw scores (never converted).

    ``score`` is the ranking score of the hit's mode (dense: cosine; lexical: BM25; hybrid: the fused
    score); ``ocr`` says whether the text was recognised from an image; ``heading`` (where the chunk sits
    in its document), ``cosine``, ``bm25``, their ranks, ``matched_terms`` (the query words found in the text)
    and ``mode`` are added when the hit has them (not None, not empty).
    """
    metadata: dict[str, Any] = {
        "source": hit.path,
        "page": hit.page,
        "chunk": hit.chunk,
        "id": hit.id,
        "kind": hit.kind,
        "file_type": hit.file_type,
        "score": hit.score,
        "ocr": hit.ocr,
    }
    for attribute, key in _OPTIONAL_METADATA.items():
        value = getattr(hit, attribute, None)
        if value is None or value == ():
            continue
        metadata[key] = list(value) if isinstance(value, tuple | list) else value
    return Document(page_content=hit.text, metadata=metadata)


def validate_options(changes: dict[str, Any], base: SearchOptions | None = None) -> SearchOptions:
    """``base`` (default ``SearchOptions()``) with ``changes``; an unknown name or a bad value raises
    ``ValueError`` naming it."""
    base = base or SearchOptions()
    for name, value in changes.items():  # one at a time, so that a wrong type also names its option
        try:
            base.with_changes(**{name: value})
        except TypeError as error:
            raise ValueError(f"search option '{name}' has the wrong type ({value!r}): {error}") from error
    return base.with_changes(**changes)


def _comparable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _merge(sources: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Merge option dicts; the same option from two sources with different values is an error."""
    merged: dict[str, Any] = {}
    given_by: dict[str, str] = {}
    for source, options in sources:
        for name, value in options.items():
            if name in merged and _comparable(merged[name]) != _comparable(value):
                raise ValueError(
                    f"search option '{name}' given twice ({given_by[name]}={merged[name]!r}, {source}={value!r})"
                )
            merged[name] = value
            given_by[name] = source
    return merged


class JasperRetriever(BaseRetriever):
    """A LangChain retriever over a ``Searcher`` (works in LCEL chains: ``retriever | format_docs``).

    State: ``k`` (the number of documents, default 4) and ``search_kwargs`` (every other search option,
    see ``SearchOptions``; also accepted as ``search_options``). The constructor also takes the options
    flat (``JasperRetriever(searcher=s, k=2, mode="dense", dim=128, file_types=["pdf"])``) or as one
    record (``options=SearchOptions(...)``); they all end up in ``k`` and ``search_kwargs``. Invoke-time
    keywords (``retriever.invoke(q, k=1, mode="lexical")``) change the options for that call only.
    Unknown option names and invalid values raise ``ValueError`` naming the option.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", populate_by_name=True)

    searcher: Searcher
    k: int = 4
    search_kwargs: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("search_kwargs", "search_options")
    )

    @model_validator(mode="before")
    @classmethod
    def _gather_options(cls, data: Any) -> Any:
        """Fold ``options=``, ``search_options=`` and flat option names into ``k`` and ``search_kwargs``."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        record = data.pop("options", None)
        if record is not None and not isinstance(record, SearchOptions):
            raise ValueError(f"options must be a SearchOptions, not {type(record).__name__}")
        if "search_kwargs" in data and "search_options" in data:
            raise ValueError("give search_kwargs or search_options (the same thing), not both")
        kwargs = data.pop("search_kwargs", None)
        if kwargs is None:
            kwargs = data.pop("search_options", None)
        if kwargs is not None and not isinstance(kwargs, dict):
            raise ValueError(f"search_kwargs must be a dict, not {type(kwargs).__name__}")
        known = set(option_names())
        own = set(cls.model_fields) | {"search_options"}
        flat = {name: data.pop(name) for name in list(data) if name in known and name != "k"}
        unknown = sorted(name for name in data if name not in own)
        if unknown:  # neither a retriever field nor a search option: name it like SearchOptions does
            SearchOptions().with_changes(**{name: data[name] for name in unknown})
        sources = []
        if record is not None:
            sources.append(("options", {f.name: getattr(record, f.name) for f in fields(record)}))
        sources.append(("search_kwargs", dict(kwargs or {})))
        sources.append(("keyword", {**flat, **({"k": data["k"]} if "k" in data else {})}))
        merged = _merge(sources)
        if "k" in merged:
            data["k"] = merged.pop("k")
        data["search_kwargs"] = merged
        return data

    @model_validator(mode="after")
    def _check_options(self) -> JasperRetriever:
        self.call_options()
        return self

    @property
    def options(self) -> SearchOptions:
        """What a call without overrides runs with: the searcher's options changed by ``k`` and ``search_kwargs``."""
        return validate_options({**self.search_kwargs, "k": self.k}, self._searcher_options())

    def _searcher_options(self) -> SearchOptions:
        options = getattr(self.searcher, "options", None)
        return options if isinstance(options, SearchOptions) else SearchOptions()

    def call_options(self, **overrides: Any) -> dict[str, Any]:
        """The changes one call passes to the searcher: ``k`` and ``search_kwargs`` changed by ``overrides``.

        Validated here (``ValueError`` naming the option) before anything is searched."""
        changes = {**self.search_kwargs, "k": self.k, **overrides}
        validate_options(changes, self._searcher_options())
        return changes

    def _search(self, query: str, overrides: dict[str, Any]) -> list[Document]:
        changes = self.call_options(**{name: value for name, value in overrides.items() if name not in _RUN_KWARGS})
        return [hit_to_document(hit) for hit in self.searcher.search(query, **changes)]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return self._search(query, kwargs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return await run_in_executor(None, self._search, query, kwargs)
