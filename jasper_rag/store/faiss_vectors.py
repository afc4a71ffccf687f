"""The default vector backend: one FAISS file per (entry kind, head) and generation, beside the database.

Each commit writes every touched index as a *new generation* file (``<store id>.chunk.full.g000007.faiss``:
temp file, fsync, rename) inside the SQL transaction; the commit switches ``index_state`` to it. A crash
before the commit leaves the old files, which SQL still names, and unreferenced new ones (garbage the
store deletes: ``Store.garbage``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from jasper_rag.store.heads import ModelIdentity
from jasper_rag.store.models import IndexState
from jasper_rag.store.vector_index import VectorIndex
from jasper_rag.store.vectors import KeptVectors, VectorChanges, record_state


class FaissVectors:
    """FAISS files named by ``index_path(kind, head, generation)``; new indexes built with ``factory``."""

    name = "faiss"
    keeps_lexical = False  # the store keeps a tantivy index beside the files

    def __init__(self, index_path: Callable[[str, str, int], Path], factory: str = "Flat") -> None:
        self.index_path = index_path
        self.factory = factory
        self._working: dict[tuple[str, str], VectorIndex] = {}

    def load(self, model: ModelIdentity | None, kind: str, head: str, state: IndexState) -> VectorIndex:
        return VectorIndex.load(self.index_path(kind, head, state.generation), state.factory)

    def lexical(self, model: ModelIdentity) -> None:
        """None: the store's tantivy index is the lexical side."""

    def write(self, session: Session, model: ModelIdentity, changes: VectorChanges) -> None:
        changed: dict[tuple[str, str], VectorIndex] = {}
        for kind in changes.kinds():
            removed = np.asarray(changes.removed.get(kind, []), dtype=np.int64)
            for head, dim in model.heads.items():
                index = self._working_index(session, kind, head, dim)
                index.remove(removed)
                index.add(*changes.added_of(kind, head, dim))
                changed[(kind, head)] = index
        self._save(session, changed)

    def replace(self, session: Session, model: ModelIdentity, kept: KeptVectors) -> None:
        rebuilt = {}
        for (kind, head), (ids, source) in kept.items():
            fresh = VectorIndex.create(model.heads[head], source.factory if source is not None else self.factory)
            if len(ids):
                fresh.add(ids, source.reconstruct(ids))
            rebuilt[(kind, head)] = fresh
        self._save(session, rebuilt)

    def index_problems(self, model: ModelIdentity) -> list[str]:
        """None: each FAISS file keeps the factory it was built with (``JASPER_INDEX_FACTORY`` applies to new
        indexes), which ``index_state`` records and loading uses."""
        return []

    def rebuild_indexes(self, session: Session, model: ModelIdentity) -> None:
        """Nothing to rebuild (see ``index_problems``)."""

    def committed(self) -> None:
        """Nothing to do: the commit switched to the new files."""

    def discard(self) -> None:
        self._working.clear()  # they may be ahead of what was committed

    def cleanup(self, model: ModelIdentity | None) -> None:
        """Nothing here: leftover files are the store's garbage (``Store.remove_garbage``)."""
        self._working.clear()

    def cleared(self) -> None:
        self._working.clear()

    def close(self) -> None:
        self._working.clear()

    def _working_index(self, session: Session, kind: str, head: str, dim: int) -> VectorIndex:
        """The writer's own copy of an index (readers' copies are never changed in place)."""
        key = (kind, head)
        if key not in self._working:
            state = session.get(IndexState, key)
            if state is None:
                self._working[key] = VectorIndex.create(dim, self.factory)
            else:
                self._working[key] = self.load(None, kind, head, state)
        return self._working[key]

    def _save(self, session: Session, indexes: dict[tuple[str, str], VectorIndex]) -> None:
        """Write each index as the next generation and point its ``index_state`` row at it (same transaction)."""
        for (kind, head), index in indexes.items():
            state = record_state(session, kind, head, index.dim, index.factory, index.ntotal)
            index.save(self.index_path(kind, head, state.generation))
