"""Where the store keeps its vectors: the backend interface, and what a commit hands it.

The SQL database is the source of truth for documents and entries in every backend; a backend keeps
one searchable set of vectors per (entry kind, model head), addressed by SQL entry id. ``faiss``
(the default, ``faiss_vectors.FaissVectors``) writes FAISS files beside the database, one new
generation per commit; ``milvus`` (``milvus_vectors.MilvusVectors``) keeps them in a Milvus server or
a Milvus Lite file. The store calls ``write`` inside the SQL transaction that changes the rows (after
SQL assigned the new ids), then ``committed`` or ``discard`` after it; docs/scale.md tells each
backend's crash-safety order. A search's file filters reach every backend as one ``EntryFilter`` (inside a
``SearchScope``), which each applies inside its search with the same meaning.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePath
from typing import Protocol

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from jasper_rag.store.heads import ModelIdentity
from jasper_rag.store.models import IndexState, StoreMeta

EMPTY_IDS = np.zeros(0, dtype=np.int64)
GENERATION_FLOOR_KEY = "generation_floor"  # the largest generation of index records since deleted


class StoreFolderMismatchError(RuntimeError):
    """The database belongs to another index folder than the one given."""


class StoreBackendError(StoreFolderMismatchError):
    """The vector backend cannot be opened as configured (bad setting, server unreachable, package missing),
    or the store's vectors live in another backend. A ``StoreFolderMismatchError``: every command that
    reports a misplaced store reports this one the same way (one line, no traceback)."""


@dataclass(frozen=True)
class EntryFilter:
    """A search's file filters, normalised. An entry matches when its file's type is one of ``file_types`` or
    its path ends with ``.<type>`` (both compared lower-cased), and, when ``folders`` are given, its file is
    one of them or lies under one (``<folder>/...``, compared exactly: ``/a/b`` never matches ``/a/bc``)."""

    file_types: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()

    @classmethod
    def of(cls, file_types: Sequence[str] | None = None, path_prefix: str | None = None) -> EntryFilter | None:
        """The filter of a search's ``file_types`` (``markdown``, ``md``, ``.MD``) and ``path_prefix`` (a folder
        of the ingested tree; a relative one is also taken from the working directory); None when neither
        filters anything."""
        types = tuple(sorted({t.lower().lstrip(".") for t in file_types or ()}))
        folders = set()
        folder = (path_prefix or "").strip().rstrip("/")
        if folder:
            folders.add(folder)
            if not PurePath(path_prefix).is_absolute():  # stored paths are absolute: also the folder from here
                folders.add(str(Path(path_prefix).resolve()))
        if not types and not folders:
            return None
        return cls(types, tuple(sorted(folders)))


class SearchScope:
    """One search's ``EntryFilter`` as the searches take it: Milvus turns ``where`` into an expression on its
    scalar fields; FAISS and tantivy read ``ids``, the matching entry ids SQL resolves it to (sorted; resolved
    once, on first use, so a search that never needs them never asks SQL)."""

    def __init__(self, where: EntryFilter, resolve: Callable[[EntryFilter], np.ndarray]) -> None:
        self.where = where
        self._resolve = resolve

    @cached_property
    def ids(self) -> np.ndarray:
        return self._resolve(self.where)


class LexicalSearch(Protocol):
    """The store's lexical (BM25) index as the searcher and ``doctor`` read it: tantivy
    (``lexical_index.LexicalIndex``) or the Milvus backend's own (``milvus_lexical.MilvusLexical``)."""

    def ids(self) -> np.ndarray: ...

    def search(
        self, queries: Sequence[str], k: int, kinds: Sequence[str] | None = None, scope: SearchScope | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...


class VectorSearch(Protocol):
    """The vectors of one (entry kind, head), as the searcher and ``doctor`` read them."""

    factory: str

    @property
    def dim(self) -> int: ...

    @property
    def ntotal(self) -> int: ...

    def ids(self) -> np.ndarray: ...

    def search(
        self, vectors: np.ndarray, k: int, scope: SearchScope | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def reconstruct(self, ids: np.ndarray) -> np.ndarray: ...


@dataclass
class AddedVectors:
    """The embedded entries of one kind of one document, with their vectors per head and their texts (rows
    in id order)."""

    kind: str
    path: str
    file_type: str
    ids: np.ndarray
    vectors: dict[str, np.ndarray]
    texts: list[str]


@dataclass
class VectorChanges:
    """One commit's vector changes: the embedded entry ids deleted (per kind) and the entries added."""

    removed: dict[str, list[int]] = field(default_factory=dict)
    added: list[AddedVectors] = field(default_factory=list)

    def kinds(self) -> list[str]:
        """Every kind whose vectors change."""
        return sorted(set(self.removed) | {part.kind for part in self.added})

    def added_of(self, kind: str, head: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """The ids and ``head`` vectors added to ``kind``, in commit order."""
        parts = [part for part in self.added if part.kind == kind]
        if not parts:
            return EMPTY_IDS, np.zeros((0, dim), dtype=np.float32)
        return np.concatenate([p.ids for p in parts]), np.concatenate([p.vectors[head] for p in parts])

    def counts(self) -> dict[str, tuple[int, int]]:
        """Kind -> (vectors added, vectors removed)."""
        added: dict[str, int] = defaultdict(int)
        for part in self.added:
            added[part.kind] += len(part.ids)
        return {kind: (added[kind], len(self.removed.get(kind, []))) for kind in self.kinds()}


KeptVectors = dict[tuple[str, str], tuple[np.ndarray, VectorSearch | None]]
"""(kind, head) -> the ids to keep and where to read their vectors (``doctor --repair``)."""


class VectorBackend(Protocol):
    """One store's vectors. Writes run with the store's writer lock held."""

    name: str
    keeps_lexical: bool  # True: the backend also keeps the lexical side (``lexical``); False: the store's tantivy

    def lexical(self, model: ModelIdentity) -> LexicalSearch | None:
        """The backend's lexical index of ``model``'s entries (only when ``keeps_lexical``; None while empty)."""
        ...

    def load(self, model: ModelIdentity, kind: str, head: str, state: IndexState) -> VectorSearch:
        """The committed vectors of one kind and head of ``model`` (``state``: their SQL record)."""
        ...

    def write(self, session: Session, model: ModelIdentity, changes: VectorChanges) -> None:
        """Apply ``changes`` and record the new ``IndexState`` rows in ``session`` (not yet committed)."""
        ...

    def replace(self, session: Session, model: ModelIdentity, kept: KeptVectors) -> None:
        """``doctor --repair``: keep exactly the given ids of each (kind, head), their vectors read from the
        given source (None: none are kept), recorded in ``session``."""
        ...

    def index_problems(self, model: ModelIdentity) -> list[str]:
        """How the indexes of ``model``'s vectors differ from the configured index (``doctor`` reports them)."""
        ...

    def rebuild_indexes(self, session: Session, model: ModelIdentity) -> None:
        """``doctor --repair``: build the indexes ``index_problems`` names as configured, recorded in ``session``."""
        ...

    def committed(self) -> None:
        """The SQL transaction of the last ``write`` / ``replace`` committed."""
        ...

    def discard(self) -> None:
        """Undo what the last ``write`` staged and no commit kept (after a failed transaction, and when the
        writer ends)."""
        ...

    def cleanup(self, model: ModelIdentity | None) -> None:
        """Remove what crashed writers left behind (a writer calls it when it starts)."""
        ...

    def cleared(self) -> None:
        """Every entry was deleted and the commit is done (``--rebuild``): drop every vector."""
        ...

    def close(self) -> None: ...


def record_state(session: Session, kind: str, head: str, dim: int, factory: str, count: int) -> IndexState:
    """Point the ``index_state`` row of (kind, head) at its next generation (in the caller's transaction)."""
    state = session.get(IndexState, (kind, head))
    if state is None:
        floor = session.get(StoreMeta, GENERATION_FLOOR_KEY)
        state = IndexState(kind=kind, head=head, generation=int(floor.value) if floor else 0)
        session.add(state)
    state.generation += 1
    state.dim, state.factory, state.count = dim, factory, count
    return state


def drop_states(session: Session) -> None:
    """Delete every ``index_state`` row (a rebuild or a new model) in the caller's transaction. Generations
    never go back: the next records start above every deleted one, so a reader that cached a generation
    (and the FAISS file of it) never takes the rebuilt index for the one it has."""
    top = session.scalar(select(func.max(IndexState.generation)))
    if top:
        floor = session.get(StoreMeta, GENERATION_FLOOR_KEY)
        if floor is None:
            session.add(StoreMeta(key=GENERATION_FLOOR_KEY, value=str(top)))
        else:
            floor.value = str(max(int(floor.value), top))
    session.execute(delete(IndexState))
