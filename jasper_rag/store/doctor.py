"""``doctor``: compare the SQL entries with every vector index, report drift, and repair it.

Consistent means: every (kind, head) index named in SQL (a FAISS file, or the rows of a Milvus
collection) loads, has the head's dimension and holds exactly the ids of the embedded SQL entries of
its kind, each once. Repair keeps every vector that both sides agree on, drops vectors without rows,
and marks documents whose vectors are missing as ``stale`` (their rows go; the next ingest embeds
them again), all in one commit. When the FAISS file SQL names is unreadable, repair starts from the
newest older generation still on disk that loads (the previous one is kept one commit longer), so
only documents whose vectors it lacks become stale.
Leftover files of interrupted runs are garbage, not drift: reported, and deleted by ``--repair``. A Milvus
collection whose vector index is not the configured one (``JASPER_MILVUS_INDEX``) is reported too, and
repair builds it as configured.
The lexical index SQL names must open and hold exactly the embedded entries, each once; repair
rebuilds what differs from the stored texts (an unreadable one from scratch). On Milvus the lexical side
is the rows of the vectors (``milvus_lexical``), which the vector checks and repair already cover.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select

from jasper_rag.store.lexical_index import LexicalIndex, LexicalIndexError
from jasper_rag.store.models import DocumentStatus, Entry, EntryKind
from jasper_rag.store.store import INDEX_FILE, Store, batched
from jasper_rag.store.vector_index import VectorIndex
from jasper_rag.store.vectors import VectorSearch

EMPTY = np.zeros(0, dtype=np.int64)


@dataclass
class IndexCheck:
    """How one (kind, head) index compares with SQL."""

    kind: str
    head: str
    expected: int
    stored: int = 0
    missing: np.ndarray = field(default_factory=lambda: EMPTY)
    extra: np.ndarray = field(default_factory=lambda: EMPTY)
    duplicates: np.ndarray = field(default_factory=lambda: EMPTY)
    error: str | None = None
    source: VectorSearch | None = field(default=None, repr=False)  # what repair keeps vectors from

    @property
    def ok(self) -> bool:
        return self.error is None and not (len(self.missing) or len(self.extra) or len(self.duplicates))

    def describe(self) -> str:
        if self.ok:
            return f"{self.kind}/{self.head}: ok ({self.stored} vectors)"
        parts = [self.error] if self.error else []
        for name, ids in (("missing vectors", self.missing), ("vectors without rows", self.extra)):
            if len(ids):
                parts.append(f"{len(ids)} {name} (e.g. ids {ids[:5].tolist()})")
        if len(self.duplicates):
            parts.append(f"{len(self.duplicates)} duplicated ids")
        return f"{self.kind}/{self.head}: " + "; ".join(parts)


@dataclass
class LexicalCheck:
    """How the lexical index compares with SQL."""

    expected: int
    stored: int = 0
    missing: int = 0
    extra: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not (self.missing or self.extra)

    def describe(self) -> str:
        if self.ok:
            return f"lexical: ok ({self.stored} entries)"
        parts = [self.error] if self.error else []
        parts += [
            f"{n} {name}" for name, n in (("missing entries", self.missing), ("entries without rows", self.extra)) if n
        ]
        return "lexical: " + "; ".join(parts) + " (repair rebuilds it from the stored texts)"


@dataclass
class DoctorReport:
    checks: list[IndexCheck]
    problems: list[str]
    garbage: list[Path]
    stale_documents: int
    lexical: LexicalCheck | None = None

    @property
    def consistent(self) -> bool:
        lexical_ok = self.lexical is None or self.lexical.ok
        return not self.problems and lexical_ok and all(check.ok for check in self.checks)

    def render(self) -> str:
        lines = [check.describe() for check in self.checks]
        if self.lexical is not None:
            lines.append(self.lexical.describe())
        lines += [f"problem: {problem}" for problem in self.problems]
        if self.garbage:
            lines.append(f"{len(self.garbage)} leftover files of interrupted runs (removed by --repair)")
        if self.stale_documents:
            lines.append(f"{self.stale_documents} stale documents (the next ingest embeds them again)")
        lines.append("consistent" if self.consistent else "DRIFT: run `jasper-rag doctor --repair`")
        return "\n".join(lines)


def _load(store: Store, kind: str, head: str, dim: int) -> tuple[VectorSearch | None, str | None]:
    if (kind, head) not in store.index_states():
        return None, "no index"
    try:
        index = store.index(kind, head)
    except Exception as err:  # a missing or unreadable file is a finding, not a crash
        return None, f"index file unreadable ({type(err).__name__}: {err})"
    if index.dim != dim:
        return None, f"index dimension {index.dim} != head dimension {dim}"
    return index, None


def _older_generation(store: Store, kind: str, head: str, dim: int) -> tuple[int, VectorIndex] | None:
    """The newest generation older than the one SQL names that is still on disk and loads."""
    state = store.index_states()[(kind, head)]
    older = []
    for path in store.index_dir.glob(f"{store.store_id}.{kind}.{head}.g*.faiss"):
        match = INDEX_FILE.match(path.name)
        if match and match["store"] == store.store_id and int(match["generation"]) < state.generation:
            older.append((int(match["generation"]), path))
    for generation, path in sorted(older, reverse=True):
        try:
            index = VectorIndex.load(path, state.factory)
        except Exception:  # unreadable too: try the one before
            continue
        if index.dim == dim:
            return generation, index
    return None


def _check_index(store: Store, kind: str, head: str, dim: int, sql_ids: np.ndarray) -> IndexCheck:
    index, error = _load(store, kind, head, dim)
    if index is None and error != "no index":
        older = _older_generation(store, kind, head, dim)
        if older is not None:
            index = older[1]
            error += f"; generation {older[0]} is readable: repair rebuilds from it"
    if index is None:
        return IndexCheck(kind, head, len(sql_ids), missing=sql_ids, error=error)
    ids = index.ids()
    unique, counts = np.unique(ids, return_counts=True)
    return IndexCheck(
        kind,
        head,
        expected=len(sql_ids),
        stored=len(ids),
        missing=np.setdiff1d(sql_ids, unique),
        extra=np.setdiff1d(unique, sql_ids),
        duplicates=unique[counts > 1],
        error=error,
        source=index,
    )


def check(store: Store) -> DoctorReport:
    """Compare SQL with every index (read-only)."""
    store.refresh()
    heads = store.heads
    states = store.index_states()
    problems = [
        f"index {kind}/{head} belongs to no head of the model {sorted(heads)}"
        for kind, head in states
        if head not in heads
    ]
    if store.model is not None:
        problems += store.vectors.index_problems(store.model)
    checks = []
    for kind in EntryKind.ALL:
        sql_ids = store.embedded_ids(kind)
        if len(sql_ids) and not heads:
            problems.append(f"{len(sql_ids)} {kind} entries but no model recorded")
        for head, dim in heads.items():
            if len(sql_ids) or (kind, head) in states:
                checks.append(_check_index(store, kind, head, dim, sql_ids))
    stale = len(store.documents(DocumentStatus.STALE))
    return DoctorReport(checks, problems, store.garbage(), stale, _check_lexical(store))


def _check_lexical(store: Store) -> LexicalCheck | None:
    """The lexical index against the embedded entries (None for a store that never had entries)."""
    sql_ids = np.concatenate([EMPTY, *(store.embedded_ids(kind) for kind in EntryKind.ALL)])
    if store.vectors.keeps_lexical:  # the rows of the vectors: a Milvus collection
        index = store.lexical()
        if index is None:
            return LexicalCheck(len(sql_ids), missing=len(sql_ids), error="no lexical index") if len(sql_ids) else None
    else:
        if not len(sql_ids) and store.lexical_generation is None:
            return None
        if store.lexical_generation is None:
            return LexicalCheck(len(sql_ids), missing=len(sql_ids), error="no lexical index")
        try:
            index = LexicalIndex.open_existing(store.lexical_path(store.lexical_generation))
        except LexicalIndexError as error:
            return LexicalCheck(len(sql_ids), missing=len(sql_ids), error=str(error))
    try:
        ids = index.ids()
    except LexicalIndexError as error:
        return LexicalCheck(len(sql_ids), missing=len(sql_ids), error=str(error))
    unique = np.unique(ids)
    return LexicalCheck(
        expected=len(sql_ids),
        stored=len(ids),
        missing=len(np.setdiff1d(sql_ids, unique)),
        extra=len(np.setdiff1d(unique, sql_ids)) + len(ids) - len(unique),
    )


def _documents_of(store: Store, entry_ids: np.ndarray) -> set[int]:
    with store.sessions() as session:
        found: set[int] = set()
        for batch in batched(entry_ids.tolist()):
            found.update(session.scalars(select(Entry.document_id).where(Entry.id.in_(batch))))
        return found


def _entries_of(store: Store, document_ids: set[int]) -> np.ndarray:
    with store.sessions() as session:
        found: list[int] = []
        for batch in batched(sorted(document_ids)):
            found.extend(session.scalars(select(Entry.id).where(Entry.document_id.in_(batch))))
        return np.asarray(found, dtype=np.int64)


def repair(store: Store) -> DoctorReport:
    """Fix every drift ``check`` finds (under the writer lock, one commit); returns the new report."""
    with store.writer():
        report = check(store)
        if not report.consistent:
            heads = store.heads
            missing = np.concatenate([EMPTY, *(c.missing for c in report.checks)])
            stale_documents = _documents_of(store, missing)
            if not heads:  # vectors of an unknown model: nothing can be kept
                stale_documents |= _documents_of(store, np.concatenate([store.embedded_ids(k) for k in EntryKind.ALL]))
            dropped_entries = _entries_of(store, stale_documents)
            kept = {}
            for item in report.checks:
                index = item.source  # the current index, or the older generation an unreadable one falls back to
                ids = EMPTY if index is None else index.ids()
                if item.ok and not np.isin(ids, dropped_entries).any():
                    continue
                ids = ids[np.isin(ids, store.embedded_ids(item.kind)) & ~np.isin(ids, dropped_entries)]
                ids = ids[np.sort(np.unique(ids, return_index=True)[1])]  # first copy of each id, in order
                kept[(item.kind, item.head)] = (ids, index)
            dropped = [key for key in store.index_states() if key[1] not in heads]
            store.replace_vectors(kept, sorted(stale_documents), dropped)  # re-syncs the lexical index if needed
            if report.lexical is not None and not report.lexical.ok:
                store.sync_lexical(force=True)
            if store.model is not None:
                store.rebuild_indexes()
    return check(store)
