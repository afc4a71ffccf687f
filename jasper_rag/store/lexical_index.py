"""The lexical index: BM25 over entry texts with tantivy, addressed by the same SQL entry ids as FAISS.

English analysis: words split on non-alphanumerics, lower-cased, words of 40 bytes or more dropped,
English stop words removed, Snowball English stemming. Queries are analysed the same way and become
an OR of their terms (user text is never parsed as query syntax). tantivy was chosen over bm25s and
SQLite FTS5 by measurement (``docs/search.md``): it updates in place and answers in milliseconds at
a million chunks.

The folder holds one tantivy index; the store gives every committed state its own folder (a
generation), so an index here is never changed after the store has committed it.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tantivy

if TYPE_CHECKING:
    from jasper_rag.store.vectors import SearchScope

log = logging.getLogger(__name__)

TOKENIZER = "jasper_en"
WRITER_HEAP = 64_000_000  # bytes of tantivy's indexing buffer
MAX_WORD = 40
MAX_QUERY_TERMS = 64  # a query's first distinct terms searched (bounds the work a pasted page can cause)


class LexicalIndexError(RuntimeError):
    """The lexical index folder cannot be opened or written."""


def analyzer() -> tantivy.TextAnalyzer:
    """The English analysis shared by documents and queries."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_WORD))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stopword("english"))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


_ANALYZER = analyzer()


def terms(text: str) -> list[str]:
    """The analysed terms of ``text``, in order (stems, stop words gone)."""
    return _ANALYZER.analyze(text)


def query_terms(query: str) -> list[str]:
    """The query's first ``MAX_QUERY_TERMS`` distinct analysed terms: what a search looks for (an OR of them)."""
    return list(dict.fromkeys(terms(query)))[:MAX_QUERY_TERMS]


class QueryWords:
    """A query's words with their stems, analysed once for matching against many texts."""

    def __init__(self, query: str) -> None:
        self.words: list[tuple[str, list[str]]] = []
        for raw in query.split():
            word = raw.strip(".,;:!?()[]{}\"'")
            stems = terms(word)
            if word and stems and word not in (known for known, _ in self.words):
                self.words.append((word, stems))
            if len(self.words) == MAX_QUERY_TERMS:
                break

    def found_in(self, text: str) -> list[str]:
        """The words all of whose stems occur in ``text``."""
        present = set(terms(text))
        return [word for word, stems in self.words if all(stem in present for stem in stems)]


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("entry_id", stored=True, indexed=True, fast=True)
    builder.add_text_field("kind", stored=False, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("text", stored=False, tokenizer_name=TOKENIZER, index_option="freq")
    return builder.build()


class LexicalIndex:
    """BM25 search over entry texts in one folder (``folder=None``: in memory, for evaluation)."""

    def __init__(self, folder: Path | None = None, create: bool = True) -> None:
        self.folder = folder
        self.schema = _schema()
        try:
            if folder is None:
                self.index = tantivy.Index(self.schema)
            elif create:
                folder.mkdir(parents=True, exist_ok=True)
                self.index = tantivy.Index(self.schema, path=str(folder), reuse=True)
            elif not (folder / "meta.json").is_file():
                raise LexicalIndexError(f"no lexical index in {folder}")
            else:
                self.index = tantivy.Index.open(str(folder))
        except ValueError as error:
            raise LexicalIndexError(f"cannot open the lexical index in {folder}: {error}") from error
        self.index.register_tokenizer(TOKENIZER, _ANALYZER)
        self._writer: tantivy.IndexWriter | None = None

    @classmethod
    def open_existing(cls, folder: Path) -> LexicalIndex:
        """The index in ``folder`` for reading (``LexicalIndexError`` when there is none or it is unreadable)."""
        return cls(folder, create=False)

    @classmethod
    def rebuilt(cls, folder: Path) -> LexicalIndex:
        """A new, empty index in place of whatever ``folder`` held (for repairs)."""
        shutil.rmtree(folder, ignore_errors=True)
        return cls(folder)

    # ----------------------------------------------------------------- reading
    def reload(self) -> None:
        """See the latest commit (another process may have written)."""
        try:
            self.index.reload()
        except ValueError as error:
            raise LexicalIndexError(f"cannot read the lexical index in {self.folder}: {error}") from error

    def ids(self) -> np.ndarray:
        """Every entry id in the index, sorted."""
        searcher = self.index.searcher()
        total = searcher.num_docs
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        hits = searcher.search(tantivy.Query.all_query(), total).hits
        return np.sort(np.fromiter((searcher.doc(address)["entry_id"][0] for _, address in hits), dtype=np.int64))

    def search(
        self, queries: Sequence[str], k: int, kinds: Sequence[str] | None = None, scope: SearchScope | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(BM25 scores, ids)`` per query, padded with ``-inf`` / ``-1``.

        ``kinds`` limits to entry kinds; ``scope`` to the entries SQL resolves its filter to."""
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        searcher = self.index.searcher()
        limits = self._limits(kinds, None if scope is None else scope.ids)
        for row, query in enumerate(queries):
            found = self._search_one(searcher, query, k, limits)
            for col, (score, entry_id) in enumerate(found):
                scores[row, col], ids[row, col] = score, entry_id
        return scores, ids

    def _limits(self, kinds: Sequence[str] | None, allowed: np.ndarray | None) -> list[tantivy.Query]:
        limits = []
        if kinds is not None:
            limits.append(tantivy.Query.term_set_query(self.schema, "kind", list(kinds)))
        if allowed is not None:
            limits.append(tantivy.Query.term_set_query(self.schema, "entry_id", [int(i) for i in allowed]))
        return limits

    def _search_one(
        self, searcher: tantivy.Searcher, query: str, k: int, limits: list[tantivy.Query]
    ) -> list[tuple[float, int]]:
        words = self._words(query)
        if not words:
            return []
        return self._entry_ids(searcher, self._run(searcher, self._query(words, limits), k))

    _words = staticmethod(query_terms)  # a method, so that the bench can time it (bench/hybrid.py)

    def _query(self, words: list[str], limits: list[tantivy.Query]) -> tantivy.Query:
        """An OR of the terms, within every limit (the limits do not score)."""
        should = [(tantivy.Occur.Should, tantivy.Query.term_query(self.schema, "text", word)) for word in words]
        text_query = tantivy.Query.boolean_query(should)
        if not limits:
            return text_query
        return tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, text_query)]
            + [(tantivy.Occur.Must, tantivy.Query.const_score_query(q, 0.0)) for q in limits]
        )

    @staticmethod
    def _run(searcher: tantivy.Searcher, query: tantivy.Query, k: int) -> list:
        return searcher.search(query, k).hits

    @staticmethod
    def _entry_ids(searcher: tantivy.Searcher, hits: list) -> list[tuple[float, int]]:
        """``(BM25, entry id)`` of each hit (the id is a stored field)."""
        return [(float(score), int(searcher.doc(address)["entry_id"][0])) for score, address in hits]

    # ----------------------------------------------------------------- writing
    def _write(self) -> tantivy.IndexWriter:
        if self._writer is None:
            try:
                self._writer = self.index.writer(heap_size=WRITER_HEAP, num_threads=1)
            except ValueError as error:
                raise LexicalIndexError(f"cannot write the lexical index in {self.folder}: {error}") from error
        return self._writer

    def add(self, ids: Iterable[int], kinds: Iterable[str], texts: Iterable[str]) -> None:
        """Stage entries for the next ``commit``."""
        writer = self._write()
        for entry_id, kind, text in zip(ids, kinds, texts, strict=True):
            writer.add_document(tantivy.Document(entry_id=int(entry_id), kind=kind, text=text))

    def remove(self, ids: Iterable[int]) -> None:
        """Stage the removal of entries for the next ``commit``."""
        writer = self._write()
        for entry_id in ids:
            writer.delete_documents_by_term("entry_id", int(entry_id))

    def clear(self) -> None:
        """Stage the removal of every entry."""
        self._write().delete_all_documents()

    def commit(self) -> None:
        """Make the staged changes durable and visible (one tantivy commit)."""
        writer = self._write()
        writer.commit()
        writer.wait_merging_threads()
        self._writer = None
        self.index.reload()

    def rollback(self) -> None:
        """Drop the staged changes."""
        if self._writer is not None:
            self._writer.rollback()
            self._writer = None
