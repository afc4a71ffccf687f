"""The store: SQL metadata plus one vector index per (entry kind, model head), kept in step.

The vectors live in a backend (``vectors.VectorBackend``, chosen by ``JASPER_STORE``): FAISS files in the
index folder (``faiss``, the default, described here) or Milvus (``milvus``: ``milvus_vectors``, whose own
write order its docstring and docs/scale.md give). The backend a store was built with is recorded in SQL;
opening it with another is refused.

Write order (crash safety): a commit runs in one SQL transaction. Inside it, the rows of changed
and deleted files are deleted, the new rows inserted (giving their ids), and every touched index is
written as a *new generation* file (``<store id>.chunk.full.g000007.faiss``: temp file, fsync, rename). Only
then does the transaction commit, switching ``index_state`` to the new generations together with
the rows. A crash before the commit leaves the old rows and the old index files, which agree; the
new files are unreferenced garbage that the next writer (or ``doctor --repair``) deletes. Readers
load the generation named in SQL, so they see the old or the new state, never a mix. The previous
generation is kept one commit longer for readers that are still loading it.

The lexical (BM25) index (tantivy) follows the same rule: each commit writes a new generation folder
(``<store id>.lexical.g000007/``), made of hard links to the previous generation's immutable segment
files plus the new segments and deletions, committed by tantivy before SQL commits; SQL's
``lexical_generation`` is the switch, in the same transaction as the rows. A store without one (made
before it existed) gets it built from the stored texts when a writer next opens it (``sync_lexical``).
The Milvus backend keeps the lexical side itself, in the rows of its vectors (``milvus_lexical``): a
Milvus store has no tantivy folder.

One database, one index folder: the first open records the folder in the database (an id also written
to a marker file in the folder, so a folder moved or copied together with its database still opens),
and a database bound to another folder is refused; two index folders can therefore never take turns
committing generations of one database. Writers exclude each other with a file lock in the folder
and, on PostgreSQL, a session-level advisory lock held for the writer's whole duration.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, or_, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jasper_rag.config import Settings, get_settings
from jasper_rag.store.database import make_engine, make_sessions
from jasper_rag.store.faiss_vectors import FaissVectors
from jasper_rag.store.heads import ModelIdentity
from jasper_rag.store.lexical_index import LexicalIndex, LexicalIndexError
from jasper_rag.store.models import Document, DocumentStatus, Entry, IndexState, PendingVectorDelete, StoreMeta
from jasper_rag.store.vector_index import fsync_dir
from jasper_rag.store.vectors import (
    AddedVectors,
    EntryFilter,
    KeptVectors,
    LexicalSearch,
    SearchScope,
    StoreBackendError,
    StoreFolderMismatchError,
    VectorBackend,
    VectorChanges,
    VectorSearch,
    drop_states,
)

log = logging.getLogger(__name__)

MODEL_KEY = "model"
STORE_ID_KEY = "store_id"  # prefixes the index file names: two databases can never take each other's files
INDEX_FOLDER_KEY = "index_folder"  # {"id", "path"} of the one index folder this database belongs to
LEXICAL_KEY = "lexical_generation"  # the lexical index's generation that matches the rows
BACKEND_KEY = "vector_store"  # the vector backend holding the store's vectors (absent: faiss, as before it existed)
LOCK_FILE = ".writer.lock"
INDEX_FILE = re.compile(
    r"^(?P<store>[0-9a-f]+)\.(?P<kind>[a-z]+)\.(?P<head>[A-Za-z0-9_-]+)\.g(?P<generation>\d+)\.faiss$"
)
LEXICAL_FOLDER = re.compile(r"^(?P<store>[0-9a-f]+)\.lexical\.g(?P<generation>\d+)$")
SQL_BATCH = 500  # ids or paths per IN (...) clause


class StoreModelMismatchError(RuntimeError):
    """The store holds vectors of another model than the one given."""


@dataclass(frozen=True)
class EntryView:
    """A stored entry with its source file: what a search hit shows."""

    id: int
    kind: str
    text: str
    path: str
    file_type: str
    ordinal: int
    page: int | None = None
    char_start: int | None = None
    char_end: int | None = None
    heading: str | None = None
    ocr: bool = False
    answer: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class DocumentView:
    """One document's row, without its entries."""

    path: str
    file_type: str
    status: str
    error: str | None
    content_hash: str | None
    entries: int


@dataclass
class DocumentRecord:
    """A file's new state, ready to commit: its row, its entries and the vectors of the embedded ones.

    ``vectors[head]`` has one row per entry with ``embedded=True``, in the order of ``entries``.
    """

    path: str
    file_type: str
    status: str
    content_hash: str | None = None
    error: str | None = None
    size_bytes: int | None = None
    pages: int | None = None
    entries: list[Entry] = field(default_factory=list)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


def index_file_name(store_id: str, kind: str, head: str, generation: int) -> str:
    return f"{store_id}.{kind}.{head}.g{generation:06d}.faiss"


def like_literal(text: str) -> str:
    """``text`` matched literally inside a SQL LIKE pattern (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def batched(items: Sequence, size: int = SQL_BATCH) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Store:
    """Documents, entries and vectors of one corpus. ``Store.open()`` uses the settings' locations.

    Read API (for the searcher): ``model``, ``heads``, ``kinds()``, ``index(kind, head)`` (a
    ``VectorSearch``: ``search(vectors, k)``, ``reconstruct(ids)``), ``fetch(ids)`` -> ``EntryView``s,
    ``refresh()`` to pick up commits made by another process. Writes go through ``writer()``.
    ``settings`` choose the vector backend (``store``, ``milvus_*``; default: the process settings).
    """

    def __init__(
        self, url: str, index_dir: str | Path, factory: str = "Flat", settings: Settings | None = None
    ) -> None:
        self.url = url
        self.shown_url = make_url(url).render_as_string(hide_password=True)  # for messages: no password
        self.index_dir = Path(index_dir)
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self.factory = factory
        self.engine = make_engine(url)
        self.sessions = make_sessions(self.engine)
        self.store_id = self._store_id()
        self._bind_index_folder()
        self.vectors = self._open_backend(settings or get_settings())
        self.model: ModelIdentity | None = None
        self._states: dict[tuple[str, str], IndexState] = {}
        self._loaded: dict[tuple[str, str], tuple[int, VectorSearch]] = {}
        self.lexical_generation: int | None = None
        self._lexical: tuple[int, LexicalIndex] | None = None
        self.refresh()

    @classmethod
    def open(
        cls, settings: Settings | None = None, db_url: str | None = None, index_dir: str | Path | None = None
    ) -> Store:
        """The store at ``db_url`` / ``index_dir``, defaulting to the settings (``indexes/jasper.db``)."""
        settings = settings or get_settings()
        return cls(db_url or settings.database_url, index_dir or settings.indexes_dir, settings.index_factory, settings)

    def close(self) -> None:
        self.vectors.close()
        self.engine.dispose()

    def _open_backend(self, settings: Settings) -> VectorBackend:
        """The configured vector backend, recorded in SQL; a store holding vectors in another is refused."""
        with self.sessions() as session, session.begin():
            meta = session.get(StoreMeta, BACKEND_KEY)
            has_vectors = bool(session.scalar(select(func.count()).select_from(IndexState)))
            recorded = meta.value if meta is not None else "faiss"  # absent: made before backends were recorded
            if has_vectors and recorded != settings.store:
                raise StoreBackendError(
                    f"the store {self.shown_url} keeps its vectors in {recorded!r}, not {settings.store!r}: open it "
                    f"with JASPER_STORE={recorded}, or give the {settings.store!r} store its own database (--db)"
                )
            if meta is None:
                session.add(StoreMeta(key=BACKEND_KEY, value=settings.store))
            elif meta.value != settings.store:
                meta.value = settings.store  # no vectors yet: the store takes the configured backend
        if settings.store == "milvus":
            from jasper_rag.store.milvus_vectors import IndexConfig, MilvusVectors

            uri = settings.milvus_uri or str(self.index_dir / "milvus.db")
            token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
            config = IndexConfig.from_settings(settings)
            return MilvusVectors(uri, token, settings.milvus_timeout_s, self.store_id, self.sessions, config)
        return FaissVectors(self.index_path, self.factory)

    def _store_id(self) -> str:
        """This database's id (created once), which names its index files."""
        for _ in range(2):
            try:
                with self.sessions() as session, session.begin():
                    meta = session.get(StoreMeta, STORE_ID_KEY)
                    if meta is None:
                        meta = StoreMeta(key=STORE_ID_KEY, value=uuid.uuid4().hex[:12])
                        session.add(meta)
                    return meta.value
            except IntegrityError:  # another process created it at the same moment: read theirs
                continue
        raise RuntimeError(f"cannot create the store id in {self.shown_url}")

    def _folder_marker(self) -> Path:
        return self.index_dir / f".{self.store_id}.folder"

    def _read_folder_id(self) -> str | None:
        try:
            return self._folder_marker().read_text().strip() or None
        except FileNotFoundError:
            return None

    def _write_folder_id(self, folder_id: str) -> str:
        """Create the marker atomically (written in full, then linked into place); an existing one wins."""
        marker = self._folder_marker()
        tmp = marker.with_name(f"{marker.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_text(folder_id + "\n")
            os.link(tmp, marker)
        except FileExistsError:
            return self._read_folder_id() or folder_id
        finally:
            tmp.unlink(missing_ok=True)
        return folder_id

    def _bind_index_folder(self) -> None:
        """Bind this database to its index folder on first open; refuse another folder afterwards."""
        here = str(self.index_dir.resolve())
        for _ in range(2):
            try:
                with self.sessions() as session, session.begin():
                    meta = session.get(StoreMeta, INDEX_FOLDER_KEY)
                    if meta is None:
                        folder_id = self._read_folder_id() or self._write_folder_id(uuid.uuid4().hex)
                        session.add(StoreMeta(key=INDEX_FOLDER_KEY, value=json.dumps({"id": folder_id, "path": here})))
                        return
                    bound = json.loads(meta.value)
                    folder_id = self._read_folder_id()
                    if folder_id is None and bound["path"] == here:  # its own folder, emptied or recreated
                        folder_id = self._write_folder_id(bound["id"])
                    if folder_id != bound["id"]:
                        raise StoreFolderMismatchError(
                            f"the database {self.shown_url} belongs to the index folder {bound['path']}, not {here}; "
                            f"open it with --index-dir {bound['path']} (JASPER_INDEXES_DIR), or give this folder "
                            "its own database (--db)"
                        )
                    if bound["path"] != here:  # the folder moved together with its database
                        meta.value = json.dumps({"id": folder_id, "path": here})
                    return
            except IntegrityError:  # another process bound it at the same moment: check against theirs
                continue
        raise RuntimeError(f"cannot record the index folder in {self.shown_url}")

    # ================================================================= reading
    def refresh(self) -> None:
        """Re-read the model identity and the current index generations from SQL."""
        with self.sessions() as session:
            self._states = {(s.kind, s.head): s for s in session.scalars(select(IndexState))}
            meta = session.get(StoreMeta, MODEL_KEY)
            lexical = session.get(StoreMeta, LEXICAL_KEY)
        self.model = ModelIdentity(**json.loads(meta.value)) if meta else None
        self.lexical_generation = int(lexical.value) if lexical else None

    def lexical_path(self, generation: int) -> Path:
        return self.index_dir / f"{self.store_id}.lexical.g{generation:06d}"

    def lexical(self) -> LexicalSearch | None:
        """The committed lexical index (None when the store has none yet or it is unreadable): the tantivy
        generation SQL names, or the vector backend's own when it keeps one (Milvus)."""
        if self.vectors.keeps_lexical:
            return self.vectors.lexical(self.model) if self.model is not None else None
        generation = self.lexical_generation
        if generation is None:
            return None
        if self._lexical is not None and self._lexical[0] == generation:
            return self._lexical[1]
        try:
            index = LexicalIndex.open_existing(self.lexical_path(generation))
        except LexicalIndexError as error:
            log.warning("%s; `jasper-rag doctor --repair` rebuilds it", error)
            return None
        self._lexical = (generation, index)
        return index

    @property
    def heads(self) -> dict[str, int]:
        """Head name -> dimension of the model that built the store (empty before the first ingest)."""
        return dict(self.model.heads) if self.model else {}

    def kinds(self) -> list[str]:
        """Entry kinds that have indexes."""
        return sorted({kind for kind, _ in self._states})

    def index_states(self) -> dict[tuple[str, str], IndexState]:
        return dict(self._states)

    def index(self, kind: str, head: str) -> VectorSearch:
        """The committed index of one kind and head (KeyError when the store has none)."""
        for attempt in range(2):
            state = self._states[(kind, head)]
            cached = self._loaded.get((kind, head))
            if cached and cached[0] == state.generation:
                return cached[1]
            try:
                index = self.vectors.load(self.model, kind, head, state)
            except (FileNotFoundError, RuntimeError):
                if attempt:
                    raise
                self.refresh()  # a writer moved on between our read of SQL and of the file
                continue
            self._loaded[(kind, head)] = (state.generation, index)
            return index
        raise AssertionError("unreachable")

    def index_path(self, kind: str, head: str, generation: int) -> Path:
        return self.index_dir / index_file_name(self.store_id, kind, head, generation)

    def fetch(self, ids: Iterable[int]) -> list[EntryView]:
        """The entries with these ids, in the given order (unknown ids are left out)."""
        wanted = [int(i) for i in ids]
        found: dict[int, EntryView] = {}
        with self.sessions() as session:
            for batch in batched(wanted):
                query = (
                    select(Entry, Document.path, Document.file_type)
                    .join(Document)
                    .where(Entry.id.in_(batch), Document.status.in_(DocumentStatus.DONE))
                )
                for entry, path, file_type in session.execute(query):
                    found[entry.id] = EntryView(
                        id=entry.id,
                        kind=entry.kind,
                        text=entry.text,
                        path=path,
                        file_type=file_type,
                        ordinal=entry.ordinal,
                        page=getattr(entry, "page", None),
                        char_start=getattr(entry, "char_start", None),
                        char_end=getattr(entry, "char_end", None),
                        heading=getattr(entry, "heading", None),
                        ocr=bool(getattr(entry, "ocr", False)),
                        answer=getattr(entry, "answer", None),
                        width=getattr(entry, "width", None),
                        height=getattr(entry, "height", None),
                    )
        return [found[i] for i in wanted if i in found]

    def entry_ids(self, where: EntryFilter) -> np.ndarray:
        """Sorted ids of the embedded entries of searchable files that ``where`` matches (its docstring gives
        the meaning; every backend applies the same)."""
        query = (
            select(Entry.id).join(Document).where(Entry.embedded.is_(True), Document.status.in_(DocumentStatus.DONE))
        )
        if where.file_types:
            suffixes = (Document.path.ilike(f"%.{like_literal(t)}", escape="\\") for t in where.file_types)
            query = query.where(or_(func.lower(Document.file_type).in_(where.file_types), *suffixes))
        if where.folders:
            conditions = []
            for folder in where.folders:  # compared exactly (SQLite's LIKE would ignore the case of letters)
                inside = folder + "/"
                conditions += [Document.path == folder, func.substr(Document.path, 1, len(inside)) == inside]
            query = query.where(or_(*conditions))
        with self.sessions() as session:
            return np.sort(np.fromiter(session.scalars(query), dtype=np.int64))

    def scope(self, where: EntryFilter | None) -> SearchScope | None:
        """What the searches of one query batch take as its filter (None: no filter)."""
        return None if where is None else SearchScope(where, self.entry_ids)

    def kinds_of(self, ids: Iterable[int]) -> dict[int, str]:
        """Entry id -> kind, for the ids that exist."""
        wanted = [int(i) for i in ids]
        found: dict[int, str] = {}
        with self.sessions() as session:
            for batch in batched(wanted):
                found.update(
                    (int(i), k) for i, k in session.execute(select(Entry.id, Entry.kind).where(Entry.id.in_(batch)))
                )
        return found

    def documents(self, status: str | None = None) -> list[DocumentView]:
        """Every document row (optionally of one status), with its number of entries."""
        counts = select(Entry.document_id, func.count().label("n")).group_by(Entry.document_id).subquery()
        query = select(Document, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.document_id == Document.id)
        if status is not None:
            query = query.where(Document.status == status)
        with self.sessions() as session:
            return [
                DocumentView(doc.path, doc.file_type, doc.status, doc.error, doc.content_hash, int(n))
                for doc, n in session.execute(query.order_by(Document.path))
            ]

    def embedded_ids(self, kind: str) -> np.ndarray:
        """Ids of the entries of ``kind`` that must have a vector in every head's index."""
        with self.sessions() as session:
            query = select(Entry.id).where(Entry.kind == kind, Entry.embedded.is_(True)).order_by(Entry.id)
            return np.fromiter(session.scalars(query), dtype=np.int64)

    # ================================================================= writing
    @contextmanager
    def writer(self) -> Iterator[Store]:
        """Exclusive write access: a file lock beside the indexes, and on PostgreSQL also an advisory lock
        (so writers on different machines exclude each other too); leftovers of crashed runs are removed."""
        with (self.index_dir / LOCK_FILE).open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("another process is writing to %s; waiting for it", self.index_dir)
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with self._database_lock():
                    self.refresh()
                    self.remove_garbage()
                    self.vectors.cleanup(self.model)
                    self.sync_lexical()
                    yield self
            finally:
                self.vectors.discard()
                fcntl.flock(lock, fcntl.LOCK_UN)

    def advisory_lock_key(self) -> int:
        """The PostgreSQL advisory lock key of this database's writers (from its store id)."""
        return int(self.store_id, 16) & 0x7FFF_FFFF_FFFF_FFFF

    @contextmanager
    def _database_lock(self) -> Iterator[None]:
        """On PostgreSQL, a session-level advisory lock on a dedicated connection, held while the writer is."""
        if self.engine.dialect.name != "postgresql":
            yield
            return
        key = self.advisory_lock_key()
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            if not connection.scalar(select(func.pg_try_advisory_lock(key))):
                log.warning("another writer holds the database lock of %s; waiting for it", self.index_dir)
                connection.execute(select(func.pg_advisory_lock(key)))
            try:
                yield
            finally:
                connection.execute(select(func.pg_advisory_unlock(key)))

    def bind_model(self, identity: ModelIdentity) -> None:
        """Record the model that builds the vectors; refuse another model while vectors of one exist."""
        with self.sessions() as session, session.begin():
            meta = session.get(StoreMeta, MODEL_KEY)
            if meta is not None:
                recorded = ModelIdentity(**json.loads(meta.value))
                if recorded.fingerprint == identity.fingerprint:
                    self.model = recorded
                    return
                if session.scalar(select(func.count()).select_from(Entry)):
                    raise StoreModelMismatchError(self._mismatch(recorded, identity))
                drop_states(session)
                meta.value = json.dumps(asdict(identity))
            else:
                session.add(StoreMeta(key=MODEL_KEY, value=json.dumps(asdict(identity))))
        self.model = identity
        self.refresh()

    def check_model(self, identity: ModelIdentity) -> None:
        """Raise ``StoreModelMismatchError`` when the stored vectors come from another model (for searchers)."""
        if self.model is not None and self.model.fingerprint != identity.fingerprint:
            raise StoreModelMismatchError(self._mismatch(self.model, identity))

    def _mismatch(self, recorded: ModelIdentity, identity: ModelIdentity) -> str:
        return (
            f"the store in {self.index_dir} holds vectors of model '{recorded.source}' "
            f"(fingerprint {recorded.fingerprint}, heads {recorded.heads}); the current model is "
            f"'{identity.source}' (fingerprint {identity.fingerprint}). Rebuild it with `jasper-rag ingest --rebuild`."
        )

    def commit(self, records: Sequence[DocumentRecord], deleted_paths: Sequence[str] = ()) -> None:
        """Replace the documents of ``records`` and delete those of ``deleted_paths``, rows and vectors at once."""
        if not records and not deleted_paths:
            return
        heads = self.heads
        if not heads:
            raise RuntimeError("bind_model() must be called before the first commit")
        staged: Path | None = None
        try:
            with self.sessions() as session, session.begin():
                removed = self._delete_documents(session, [r.path for r in records] + list(deleted_paths))
                for record in records:
                    session.add(self._document_row(record))
                session.flush()  # assigns entry ids
                self.vectors.write(session, self.model, VectorChanges(removed, self._added_vectors(records, heads)))
                if not self.vectors.keeps_lexical:
                    embedded = [entry for record in records for entry in record.entries if entry.embedded]
                    generation, lexical = self._stage_lexical(session)
                    staged = self.lexical_path(generation)
                    lexical.remove(entry_id for ids in removed.values() for entry_id in ids)
                    lexical.add((e.id for e in embedded), (e.kind for e in embedded), (e.text for e in embedded))
                    lexical.commit()
        except BaseException:
            self.vectors.discard()
            if staged is not None:
                shutil.rmtree(staged, ignore_errors=True)
            raise
        self.vectors.committed()
        self._after_commit()

    def clear(self) -> None:
        """Delete every document, entry, index and the model record (``--rebuild``)."""
        staged: Path | None = None
        try:
            with self.sessions() as session, session.begin():
                session.execute(delete(Entry))
                session.execute(delete(Document))
                drop_states(session)
                session.execute(delete(PendingVectorDelete))
                session.execute(delete(StoreMeta).where(StoreMeta.key == MODEL_KEY))
                if not self.vectors.keeps_lexical:
                    generation, lexical = self._stage_lexical(session, empty=True)
                    staged = self.lexical_path(generation)
                    lexical.commit()
        except BaseException:
            if staged is not None:
                shutil.rmtree(staged, ignore_errors=True)
            raise
        self.vectors.cleared()
        self._after_commit()

    def replace_vectors(
        self,
        kept: KeptVectors,
        stale_documents: Sequence[int] = (),
        dropped: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Doctor's repair, in one commit: each (kind, head) of ``kept`` holds exactly the given ids (vectors
        read from the given source), documents whose vectors were lost marked stale (entries deleted, so the
        next ingest embeds them again), index records of unknown heads dropped."""
        try:
            self._replace_vectors(kept, stale_documents, dropped)
        except BaseException:
            self.vectors.discard()
            raise
        self.vectors.committed()
        self._after_commit()
        if stale_documents:
            self.sync_lexical(force=True)  # the entries of stale documents are gone from SQL

    def _replace_vectors(
        self,
        kept: KeptVectors,
        stale_documents: Sequence[int],
        dropped: Sequence[tuple[str, str]],
    ) -> None:
        with self.sessions() as session, session.begin():
            for batch in batched(list(stale_documents)):
                session.execute(delete(Entry).where(Entry.document_id.in_(batch)))
                for document in session.scalars(select(Document).where(Document.id.in_(batch))):
                    document.status = DocumentStatus.STALE
                    document.content_hash = None
                    document.error = "vectors were lost; the next ingest embeds it again"
            for kind, head in dropped:
                session.execute(delete(IndexState).where(IndexState.kind == kind, IndexState.head == head))
            if kept:
                self.vectors.replace(session, self.model, kept)

    def rebuild_indexes(self) -> None:
        """Doctor's repair: build every vector index that is not the configured one anew (writer lock held)."""
        with self.sessions() as session, session.begin():
            self.vectors.rebuild_indexes(session, self.model)
        self.refresh()

    # ----------------------------------------------------------------- the lexical index
    def _stage_lexical(self, session: Session, empty: bool = False) -> tuple[int, LexicalIndex]:
        """The next lexical generation, recorded in the caller's transaction: a folder of hard links to
        the current generation's files (tantivy never changes a written file), or an empty index."""
        meta = session.get(StoreMeta, LEXICAL_KEY)
        if meta is None:
            meta = StoreMeta(key=LEXICAL_KEY, value="0")
            session.add(meta)
        current = int(meta.value)
        generation = current + 1
        meta.value = str(generation)
        target = self.lexical_path(generation)
        shutil.rmtree(target, ignore_errors=True)  # a leftover of a crashed writer
        source = self.lexical_path(current)
        if not empty and current and source.is_dir():
            link_tree(source, target)
        index = LexicalIndex(target)
        fsync_dir(self.index_dir)  # the new folder's name is durable before SQL can point at it
        return generation, index

    def sync_lexical(self, force: bool = False) -> int:
        """Make sure the lexical index SQL names opens (writer lock held); otherwise, or with ``force``,
        build a new generation from the stored texts of every embedded entry. Returns how many entries
        the rebuilt index holds (0 when nothing was done, and always with a backend that keeps the lexical
        side in the rows of its vectors)."""
        if self.vectors.keeps_lexical:
            return 0
        if not force and self.lexical_generation is not None:
            try:
                LexicalIndex.open_existing(self.lexical_path(self.lexical_generation)).ids()
                return 0
            except LexicalIndexError as error:
                log.warning("%s; rebuilding it from the stored texts", error)
        staged: Path | None = None
        added = 0
        try:
            with self.sessions() as session, session.begin():
                generation, lexical = self._stage_lexical(session, empty=True)
                staged = self.lexical_path(generation)
                ids = select(Entry.id).where(Entry.embedded.is_(True)).order_by(Entry.id)
                all_ids = list(session.scalars(ids))
                for batch in batched(all_ids, 5000):
                    rows = session.execute(select(Entry.id, Entry.kind, Entry.text).where(Entry.id.in_(batch))).all()
                    lexical.add((r.id for r in rows), (r.kind for r in rows), (r.text for r in rows))
                    added += len(rows)
                lexical.commit()
        except BaseException:
            if staged is not None:
                shutil.rmtree(staged, ignore_errors=True)
            raise
        log.info("lexical index: generation %d built from %d stored texts", generation, added)
        self._after_commit()
        return added

    # ----------------------------------------------------------------- internals
    def _delete_documents(self, session: Session, paths: Sequence[str]) -> dict[str, list[int]]:
        """Delete documents and their entries; returns the embedded entry ids removed, per kind."""
        removed: dict[str, list[int]] = defaultdict(list)
        for batch in batched(list(paths)):
            documents = select(Document.id).where(Document.path.in_(batch))
            query = select(Entry.id, Entry.kind).where(Entry.document_id.in_(documents), Entry.embedded.is_(True))
            for entry_id, kind in session.execute(query):
                removed[kind].append(entry_id)
            session.execute(
                delete(Entry).where(Entry.document_id.in_(documents)), execution_options={"synchronize_session": False}
            )
            session.execute(
                delete(Document).where(Document.path.in_(batch)), execution_options={"synchronize_session": False}
            )
        return removed

    @staticmethod
    def _document_row(record: DocumentRecord) -> Document:
        return Document(
            path=record.path,
            content_hash=record.content_hash,
            file_type=record.file_type,
            status=record.status,
            error=record.error,
            size_bytes=record.size_bytes,
            pages=record.pages,
            entries=list(record.entries),
        )

    @staticmethod
    def _added_vectors(records: Sequence[DocumentRecord], heads: dict[str, int]) -> list[AddedVectors]:
        """The embedded entries (ids assigned) of each record and kind, with their vectors; shapes checked."""
        added = []
        for record in records:
            embedded = [entry for entry in record.entries if entry.embedded]
            if not embedded:
                continue
            for head, dim in heads.items():
                shape = record.vectors[head].shape if head in record.vectors else None
                if shape != (len(embedded), dim):
                    raise ValueError(f"{record.path}: head '{head}' vectors {shape}, expected {(len(embedded), dim)}")
            for kind in sorted({entry.kind for entry in embedded}):
                rows = [i for i, entry in enumerate(embedded) if entry.kind == kind]
                ids = np.asarray([embedded[i].id for i in rows], dtype=np.int64)
                vectors = {head: record.vectors[head][rows] for head in heads}
                texts = [embedded[i].text for i in rows]
                added.append(AddedVectors(kind, record.path, record.file_type, ids, vectors, texts))
        return added

    def _after_commit(self) -> None:
        self.refresh()
        self.remove_garbage()

    def garbage(self) -> list[Path]:
        """Index files no reader can need (neither current nor previous generation) and temp files."""
        junk = []
        for path in sorted(self.index_dir.iterdir()):
            if path.name.startswith(f".{self.store_id}.") and path.name.endswith(".tmp"):
                junk.append(path)
                continue
            folder = LEXICAL_FOLDER.match(path.name)
            if folder and folder["store"] == self.store_id:
                current = self.lexical_generation
                if current is None or int(folder["generation"]) not in (current, current - 1):
                    junk.append(path)
                continue
            match = INDEX_FILE.match(path.name)
            if not match or match["store"] != self.store_id:
                continue
            state = self._states.get((match["kind"], match["head"]))
            generation = int(match["generation"])
            if state is None or generation not in (state.generation, state.generation - 1):
                junk.append(path)
        return junk

    def remove_garbage(self) -> list[Path]:
        """Delete what ``garbage()`` lists (call with the writer lock held)."""
        junk = self.garbage()
        for path in junk:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return junk


def link_tree(source: Path, target: Path) -> None:
    """``target`` as a copy of the flat folder ``source`` made of hard links (a real copy where links fail)."""
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.is_file() and not path.name.endswith(".lock"):
            try:
                os.link(path, target / path.name)
            except OSError:
                shutil.copy2(path, target / path.name)
