"""The Milvus vector backend (``JASPER_STORE=milvus``): a Milvus server, or a Milvus Lite file, through pymilvus.

One collection per store and model (``jasper_<store id>_<model fingerprint>``), one row per embedded
entry: the primary key is the SQL entry id, the scalar fields ``kind``, ``file_type`` (lower-cased),
``path`` and ``reversed_path`` (the path lower-cased and reversed) describe it, and one inner-product
vector field per model head holds its vectors (docs/scale.md says why one collection rather than one per
head), indexed as ``JASPER_MILVUS_INDEX`` says when the collection is created (FLAT, HNSW or IVF_FLAT:
``IndexConfig``). The entry's analysed text (``terms``) and its BM25 sparse vector make the store's
lexical side (``milvus_lexical``). Searches and reads are strongly consistent. A search's file filters
become an expression on the scalar fields (``milvus_common.filter_expression``), never a list of ids.

Write order (SQL stays the source of truth): a commit *upserts* the new rows before the SQL transaction
commits and records the ids it deletes in SQL (``pending_vector_deletes``, same transaction); the
deletes run after the commit. A crash before the commit leaves rows whose ids SQL never committed: ids
above the largest entry id (SQL never hands out an id twice once committed). A crash after it leaves
the recorded deletes. The next writer removes both when it starts (``cleanup``); until then a search
may see those rows, and the store drops every hit without a SQL row.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from jasper_rag.store.heads import ModelIdentity
from jasper_rag.store.milvus_common import MAX_LIMIT, batches, filter_expression, literal, stored_ids
from jasper_rag.store.milvus_lexical import (
    ANALYZER,
    BM25_PARAMS,
    SPARSE_FIELD,
    TERMS_BYTES,
    TERMS_FIELD,
    MilvusLexical,
    analysed,
)
from jasper_rag.store.models import Entry, IndexState, PendingVectorDelete
from jasper_rag.store.vectors import (
    KeptVectors,
    SearchScope,
    StoreBackendError,
    VectorChanges,
    record_state,
)

if TYPE_CHECKING:
    from jasper_rag.config import Settings

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'jasper-rag[milvus]'"
METRIC = "IP"
PATH_LENGTH = 65535  # Milvus's longest VARCHAR (``Document.path`` holds 4096 characters)
FIELD = re.compile(r"[^A-Za-z0-9_]")
LAYOUT_FIELDS = ("id", "kind", "file_type", "path", "reversed_path", TERMS_FIELD, SPARSE_FIELD)
REPAIR = "`jasper-rag doctor --repair`"


@dataclass(frozen=True)
class IndexConfig:
    """The vector index the settings ask for (``JASPER_MILVUS_INDEX`` and its ``JASPER_MILVUS_HNSW_*`` /
    ``JASPER_MILVUS_IVF_*`` parameters): built when a collection is created; its search parameters are
    used for whichever of these indexes a collection has."""

    index_type: str
    hnsw_m: int
    hnsw_ef_construction: int
    hnsw_ef: int
    ivf_nlist: int
    ivf_nprobe: int

    @classmethod
    def from_settings(cls, settings: Settings) -> IndexConfig:
        return cls(
            settings.milvus_index,
            settings.milvus_hnsw_m,
            settings.milvus_hnsw_ef_construction,
            settings.milvus_hnsw_ef,
            settings.milvus_ivf_nlist,
            settings.milvus_ivf_nprobe,
        )

    def build_params(self) -> dict[str, int]:
        if self.index_type == "HNSW":
            return {"M": self.hnsw_m, "efConstruction": self.hnsw_ef_construction}
        if self.index_type == "IVF_FLAT":
            return {"nlist": self.ivf_nlist}
        return {}

    def search_params(self, index_type: str, k: int) -> dict[str, Any]:
        """The search parameters of a field indexed with ``index_type`` (HNSW's ``ef`` is at least ``k``, as
        Milvus requires)."""
        params = {"HNSW": {"ef": max(self.hnsw_ef, k)}, "IVF_FLAT": {"nprobe": self.ivf_nprobe}}
        return {"metric_type": METRIC, "params": params.get(index_type, {})}

    def describe(self) -> str:
        """``"HNSW M=16 efConstruction=200"``: the index and its build parameters."""
        return " ".join([self.index_type, *(f"{key}={value}" for key, value in self.build_params().items())])

    def differs(self, described: dict[str, Any] | None) -> bool:
        """Whether an index as ``describe_index`` reports it (None: no index) is not this one (build parameters
        compared where Milvus reports them; Milvus Lite reports only the index type and metric)."""
        if described is None or str(described.get("index_type", "")).upper() != self.index_type:
            return True
        if str(described.get("metric_type", METRIC)).upper() != METRIC:
            return True
        reported = build_params(described)
        return any(str(reported.get(key, value)) != str(value) for key, value in self.build_params().items())


def build_params(described: dict[str, Any]) -> dict[str, Any]:
    """The build parameters in a ``describe_index`` answer: top-level entries, or a ``params`` dict."""
    nested = described.get("params")
    return {**described, **nested} if isinstance(nested, dict) else described


def field_name(head: str) -> str:
    """The vector field of a head (Milvus field names take letters, digits and underscores)."""
    return "v_" + FIELD.sub("_", head)


def kind_filter(kind: str) -> str:
    """The expression of the rows of one entry kind."""
    return f"kind == {literal(kind)}"


def collection_prefix(store_id: str) -> str:
    return f"jasper_{store_id}_"


def collection_name(store_id: str, model: ModelIdentity) -> str:
    return collection_prefix(store_id) + FIELD.sub("_", model.fingerprint)


class _Failures(logging.Handler):
    """Keeps the exceptions a library logged instead of letting them print their tracebacks."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(str(record.exc_info[1]))


@contextmanager
def lite_failures() -> Iterator[list[str]]:
    """The errors Milvus Lite logs while starting its server (e.g. a file locked by another process), kept
    for our one-line message rather than printed as a traceback."""
    logger = logging.getLogger("milvus_lite.server_manager")
    handler, propagate = _Failures(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.errors
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def connect(uri: str, token: str | None, timeout: float):
    """A ``MilvusClient`` for ``uri`` (a Milvus Lite ``.db`` file or ``http(s)://host:port``), or a
    ``StoreBackendError`` that names the setting to fix."""
    try:
        from pymilvus import MilvusClient, MilvusException
    except ImportError:
        raise StoreBackendError(f"JASPER_STORE=milvus needs pymilvus and milvus-lite: {INSTALL_HINT}") from None
    if not uri.endswith(".db") and urlparse(uri).scheme not in ("http", "https", "tcp", "unix"):
        raise StoreBackendError(
            f"JASPER_MILVUS_URI={uri!r} is neither a Milvus Lite file (a path ending in .db) nor a server "
            "address (http://host:19530, https://... for Zilliz Cloud)"
        )
    try:
        with lite_failures() as failures:
            return MilvusClient(uri=uri, token=token or "", timeout=timeout)
    except MilvusException as err:
        detail = failures[-1] if failures else getattr(err, "message", str(err))
        if "milvus-lite is required" in detail:
            detail = f"Milvus Lite is not installed ({INSTALL_HINT})"
        raise StoreBackendError(
            f"cannot open Milvus at JASPER_MILVUS_URI={uri!r}: {detail}; check the address, the server and "
            "JASPER_MILVUS_TOKEN (a Milvus Lite file is opened by one process at a time: to share one, run "
            "`milvus-lite server` and give its http:// address)"
        ) from None


class MilvusIndex:
    """The vectors of one (kind, head) in the store's collection: the ``VectorSearch`` reads, live.
    ``index_type``: the field's index, searched with ``config``'s parameters for it."""

    def __init__(
        self, client, collection: str, kind: str, head: str, dim: int, index_type: str, config: IndexConfig
    ) -> None:
        self.client = client
        self.collection = collection
        self.kind = kind
        self.field = field_name(head)
        self._dim = dim
        self.where = kind_filter(kind)
        self.index_type = index_type
        self.config = config
        self.factory = f"milvus {index_type}"

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def ntotal(self) -> int:
        rows = self.client.query(self.collection, filter=self.where, output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def ids(self) -> np.ndarray:
        """Every id of this kind (in no particular order)."""
        return stored_ids(self.client, self.collection, self.where)

    def search(self, vectors: np.ndarray, k: int, scope: SearchScope | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` inner products per query row: ``(scores, ids)``, ids -1 (score -inf) where fewer exist.
        ``scope``: only the entries its filter matches are searched (an expression inside the search)."""
        queries = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise ValueError(f"query dimension {queries.shape[1]} != index dimension {self.dim}")
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        where = self.where if scope is None else f"{self.where} and {filter_expression(scope.where)}"
        results = self.client.search(
            self.collection,
            data=list(queries),
            anns_field=self.field,
            limit=min(k, MAX_LIMIT),
            filter=where,
            search_params=self.config.search_params(self.index_type, min(k, MAX_LIMIT)),
            output_fields=["id"],
        )
        for row, hits in enumerate(results):
            for place, hit in enumerate(hits):
                ids[row, place], scores[row, place] = hit["id"], hit["distance"]
        return scores, ids

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids``; KeyError for an id without one."""
        wanted = [int(i) for i in np.asarray(ids, dtype=np.int64)]
        found: dict[int, list[float]] = {}
        for batch in batches(wanted):
            for row in self.client.get(self.collection, ids=list(batch), output_fields=[self.field, "kind"]):
                if row["kind"] == self.kind:
                    found[int(row["id"])] = row[self.field]
        out = np.empty((len(wanted), self.dim), dtype=np.float32)
        for place, entry_id in enumerate(wanted):
            if entry_id not in found:
                raise KeyError(entry_id)
            out[place] = found[entry_id]
        return out


class MilvusVectors:
    """One store's vectors in Milvus (see the module docstring for the write order)."""

    name = "milvus"
    keeps_lexical = True  # the BM25 side lives in the same rows (``milvus_lexical``)

    def __init__(
        self, uri: str, token: str | None, timeout: float, store_id: str, sessions: sessionmaker, config: IndexConfig
    ) -> None:
        self.uri = uri
        self.store_id = store_id
        self.sessions = sessions
        self.config = config
        self.client = connect(uri, token, timeout)
        self._upserted: list[int] = []  # by the write whose transaction has not committed yet
        self._deletes: list[int] = []  # recorded by that write, to run once it commits
        self._layout_ok: set[str] = set()  # collections known to have this version's fields
        self._warned: set[tuple[str, str]] = set()  # (collection, head) whose other index was reported

    def collection(self, model: ModelIdentity) -> str:
        return collection_name(self.store_id, model)

    def load(self, model: ModelIdentity, kind: str, head: str, state: IndexState) -> MilvusIndex:
        """The (kind, head) vectors, searched with the index the field has: when that is not the configured
        one, a warning says so (once per field) and how to rebuild it."""
        name = self._checked(self.collection(model))
        described = self._describe_index(name, field_name(head))
        if described is None:
            raise StoreBackendError(self._mismatch(name, head, described))
        if self.config.differs(described) and (name, head) not in self._warned:
            self._warned.add((name, head))
            log.warning("%s", self._mismatch(name, head, described))
        return MilvusIndex(self.client, name, kind, head, state.dim, described["index_type"], self.config)

    def lexical(self, model: ModelIdentity) -> MilvusLexical | None:
        """BM25 search over the terms of ``model``'s collection (None before its first commit)."""
        name = self.collection(model)
        if name not in self._layout_ok and not self.client.has_collection(name):
            return None
        return MilvusLexical(self.client, self._checked(name))

    def index_problems(self, model: ModelIdentity) -> list[str]:
        """How the indexes of ``model``'s collection differ from the configured one (doctor reports them;
        ``rebuild_indexes`` builds them as configured)."""
        name = self.collection(model)
        if not self.client.has_collection(name):
            return []
        problems = []
        for head in model.heads:
            described = self._describe_index(name, field_name(head))
            if self.config.differs(described):
                problems.append(self._mismatch(name, head, described))
        return problems

    def rebuild_indexes(self, session: Session, model: ModelIdentity) -> None:
        """Replace every vector index of ``model``'s collection that is not the configured one (writer lock
        held; records new generations in ``session`` so that readers load the new index)."""
        name = self.collection(model)
        wrong = [head for head in model.heads if self.config.differs(self._describe_index(name, field_name(head)))]
        if not wrong:
            return
        self.client.release_collection(name)
        for head in wrong:
            described = self._describe_index(name, field_name(head))
            if described is not None:
                self.client.drop_index(name, described["index_name"])
        # Milvus Lite drops every index of the collection at once: build whatever is left without one
        missing = [head for head in model.heads if self._describe_index(name, field_name(head)) is None]
        self.client.create_index(name, self._index_params(missing, self._describe_index(name, SPARSE_FIELD) is None))
        self.client.load_collection(name)
        for state in session.scalars(select(IndexState).where(IndexState.head.in_(missing))):
            record_state(session, state.kind, state.head, state.dim, f"milvus {self.config.index_type}", state.count)

    def write(self, session: Session, model: ModelIdentity, changes: VectorChanges) -> None:
        name = self._ensure_collection(model)
        fields = {head: field_name(head) for head in model.heads}
        rows = [
            {
                "id": int(entry_id),
                "kind": part.kind,
                "file_type": part.file_type.lower(),
                "path": part.path,
                "reversed_path": part.path.lower()[::-1],
                TERMS_FIELD: analysed(part.texts[place]),
                **{fields[head]: part.vectors[head][place] for head in model.heads},
            }
            for part in changes.added
            for place, entry_id in enumerate(part.ids)
        ]
        for batch in batches(rows):
            self._upserted.extend(row["id"] for row in batch)
            self.client.upsert(name, list(batch))
        removed = sorted({int(i) for ids in changes.removed.values() for i in ids})
        session.add_all(PendingVectorDelete(id=entry_id) for entry_id in removed)
        self._deletes = removed
        factories = self._factories(name, model.heads)
        for kind, (added, dropped) in changes.counts().items():
            for head, dim in model.heads.items():
                state = session.get(IndexState, (kind, head))
                before = state.count if state is not None else 0
                record_state(session, kind, head, dim, factories[head], before + added - dropped)

    def replace(self, session: Session, model: ModelIdentity, kept: KeptVectors) -> None:
        name = self._ensure_collection(model)
        factories = self._factories(name, model.heads)
        for (kind, head), (ids, source) in kept.items():
            stored = source.ids() if source is not None else stored_ids(self.client, name, kind_filter(kind))
            for batch in batches(np.setdiff1d(stored, ids).tolist()):
                self.client.delete(name, ids=list(batch))
            record_state(session, kind, head, model.heads[head], factories[head], len(ids))

    def committed(self) -> None:
        """Run the deletes the committed transaction recorded; when Milvus fails now, the commit stands and
        the next writer runs them (they stay in ``pending_vector_deletes``)."""
        from pymilvus import MilvusException

        self._upserted = []
        deletes, self._deletes = self._deletes, []
        try:
            self._apply_deletes(deletes)
        except MilvusException as err:
            log.warning("Milvus: %d deleted vectors stay until the next writer removes them (%s)", len(deletes), err)

    def discard(self) -> None:
        """Delete the rows a rolled-back write upserted (their ids may be handed out again, or never)."""
        upserted, self._upserted, self._deletes = self._upserted, [], []
        self._delete_ids(upserted)

    def cleanup(self, model: ModelIdentity | None) -> None:
        """Run the deletes a crashed writer recorded, delete rows above the largest committed entry id, and
        drop this store's collections of other models."""
        with self.sessions() as session:
            pending = list(session.scalars(select(PendingVectorDelete.id).order_by(PendingVectorDelete.id)))
            largest = session.scalar(select(func.max(Entry.id))) or 0
        current = self.collection(model) if model is not None else None
        for name in self._store_collections():
            if name != current:
                self.client.drop_collection(name)
                continue
            self.client.delete(name, filter=f"id > {largest}")
            for batch in batches(pending):
                self.client.delete(name, ids=list(batch))
        self._forget_pending(pending)

    def cleared(self) -> None:
        for name in self._store_collections():
            self.client.drop_collection(name)

    def close(self) -> None:
        self.client.close()

    # ----------------------------------------------------------------- internals
    def _store_collections(self) -> list[str]:
        """This store's collections (every model's)."""
        prefix = collection_prefix(self.store_id)
        return [name for name in self.client.list_collections() if name.startswith(prefix)]

    def _delete_ids(self, ids: list[int]) -> None:
        """Delete ``ids`` from every collection of this store (nothing to do without ids)."""
        if not ids:
            return
        for name in self._store_collections():
            for batch in batches(ids):
                self.client.delete(name, ids=list(batch))

    def _apply_deletes(self, ids: list[int]) -> None:
        if not ids:
            return
        self._delete_ids(ids)
        self._forget_pending(ids)

    def _forget_pending(self, ids: list[int]) -> None:
        with self.sessions() as session, session.begin():
            for batch in batches(ids):
                session.execute(delete(PendingVectorDelete).where(PendingVectorDelete.id.in_(batch)))

    def _checked(self, name: str) -> str:
        """``name``, once it is known to have this version's scalar fields (a collection made by an older
        version, without them, is one clear error: its filters could not run)."""
        if name not in self._layout_ok:
            fields = {field["name"] for field in self.client.describe_collection(name)["fields"]}
            missing = [field for field in LAYOUT_FIELDS if field not in fields]
            if missing:
                raise StoreBackendError(
                    f"the Milvus collection {name} at JASPER_MILVUS_URI={self.uri!r} was made by an older "
                    f"jasper-rag (no field {', '.join(missing)}): rebuild it with `jasper-rag ingest --rebuild`"
                )
            self._layout_ok.add(name)
        return name

    def _describe_index(self, name: str, field: str) -> dict[str, Any] | None:
        """The index of a field as Milvus reports it (``index_type``, ``metric_type``, ``index_name``...; None
        when the field has none)."""
        for index_name in self.client.list_indexes(name, field_name=field):
            described = self.client.describe_index(name, index_name)
            if described and described.get("field_name", field) == field:
                return {"index_name": index_name, **described}
        return None

    def _mismatch(self, name: str, head: str, described: dict[str, Any] | None) -> str:
        """How a head's field is indexed against the configured index, and what to do about it."""
        configured = f"configured (JASPER_MILVUS_INDEX: {self.config.describe()})"
        if described is None:
            return f"the Milvus collection {name} has no index on {field_name(head)}, {configured}: {REPAIR} builds it"
        reported = build_params(described)
        found = " ".join(
            [str(described["index_type"]), *(f"{k}={reported[k]}" for k in self.config.build_params() if k in reported)]
        )
        return (
            f"the Milvus collection {name} indexes {field_name(head)} as {found}, not as {configured}; searches "
            f"use its own index until {REPAIR} rebuilds it as configured"
        )

    def _factories(self, name: str, heads: Iterable[str]) -> dict[str, str]:
        """What ``index_state.factory`` records for each head: the index its field has."""
        described = {head: self._describe_index(name, field_name(head)) for head in heads}
        return {head: f"milvus {found['index_type'] if found else 'none'}" for head, found in described.items()}

    def _index_params(self, heads: Sequence[str], terms: bool):
        """Pymilvus index parameters: the configured index on the fields of ``heads``, and with ``terms`` the
        BM25 inverted index. The build parameters travel as one JSON ``params`` entry, which Milvus servers
        and Milvus Lite both read (given as ``params=build``, pymilvus 3 sends each as its own entry, which
        Milvus Lite ignores)."""
        params = self.client.prepare_index_params()
        for head in heads:
            params.add_index(
                field_name(head),
                index_name=field_name(head),
                index_type=self.config.index_type,
                metric_type=METRIC,
                params={"params": self.config.build_params()},
            )
        if terms:
            params.add_index(
                SPARSE_FIELD,
                index_name=SPARSE_FIELD,
                index_type="SPARSE_INVERTED_INDEX",
                metric_type="BM25",
                params={"params": BM25_PARAMS},
            )
        return params

    def _ensure_collection(self, model: ModelIdentity) -> str:
        """The model's collection, created (the configured index per head, the BM25 function and index of
        the terms, strong consistency) if new."""
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        name = self.collection(model)
        if self.client.has_collection(name):
            return self._checked(name)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("kind", DataType.VARCHAR, max_length=8)
        schema.add_field("file_type", DataType.VARCHAR, max_length=16)
        schema.add_field("path", DataType.VARCHAR, max_length=PATH_LENGTH)
        schema.add_field("reversed_path", DataType.VARCHAR, max_length=PATH_LENGTH)
        schema.add_field(
            TERMS_FIELD, DataType.VARCHAR, max_length=TERMS_BYTES, enable_analyzer=True, analyzer_params=ANALYZER
        )
        schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=[TERMS_FIELD],
                output_field_names=[SPARSE_FIELD],
            )
        )
        fields = [field_name(head) for head in model.heads]
        if len(set(fields)) != len(fields):
            raise StoreBackendError(f"the model's heads {sorted(model.heads)} do not map to distinct Milvus fields")
        for head, dim in model.heads.items():
            schema.add_field(field_name(head), DataType.FLOAT_VECTOR, dim=dim)
        index_params = self._index_params(list(model.heads), terms=True)
        self.client.create_collection(name, schema=schema, index_params=index_params, consistency_level="Strong")
        self._layout_ok.add(name)
        return name
